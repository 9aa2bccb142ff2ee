"""A chat completion streamed as Server-Sent Events while the engine decodes it.

Each choice opens with a `role` chunk; its text then goes out as deltas: reasoning first, each
delta naming the stage it belongs to (`delta.stage`, with `reasoning` and `reasoning_content`),
then the CONCLUSION as `content` (reasoning/reasoning.py decides what is which, the same way as
for a whole answer). A stop string is never shown: the last characters of a choice that asks for
stop strings are held back until it is clear they are not one. Each choice ends with a chunk
carrying `finish_reason`, `stop_reason` and, when asked for, its token log-probabilities; then
the usage chunk (`stream_options.include_usage`), then `data: [DONE]`.

The engine's stream is a blocking iterator, read on a thread of its own and handed to the event
loop; deltas that arrived together go out as one chunk. When the client goes away the generator
is closed and the request cancelled: its rows leave the batch at the next step.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from llava_cot.serve import reasoning
from llava_cot.serve.errors import ApiError, error_body
from llava_cot.serve.protocol import ChatCompletionChunk, DeltaMessage, StreamChoice, Usage, dump
from llava_cot.serve.serving import (
    ChatService,
    Job,
    engine_result,
    finish_reason,
    logprobs,
    search_usage,
    visible_text,
)

_END = object()


@dataclass
class _Choice:
    """One choice's progress: the text decoded so far, and how much of it has gone out."""

    splitter: reasoning.Splitter = field(default_factory=reasoning.Splitter)
    text: str = ""
    sent: int = 0


def sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


class _Chunks:
    """Chunks of one job, as SSE lines."""

    def __init__(self, service: ChatService, job: Job) -> None:
        self.service, self.job = service, job

    def chunk(self, choices: list[StreamChoice], **extra: Any) -> str:
        job = self.job
        return sse(dump(ChatCompletionChunk(id=job.id, created=job.created, model=self.service.settings.served_name,
                                            choices=choices, **extra)))

    def text(self, index: int, state: _Choice, new: str, last: bool = False) -> list[str]:
        """Chunks for new visible text of a choice (and, when `last`, what the splitter held)."""
        job = self.job
        if job.raw:
            pieces = [reasoning.Piece("content", new)] if new else []
        else:
            pieces = state.splitter.feed(new) + (state.splitter.close() if last else [])
            if not job.request.include_reasoning:
                pieces = [p for p in pieces if p.kind == "content"]
        return [self.chunk([StreamChoice(index=index, delta=_delta(p))]) for p in _merge(pieces)]


def _delta(p: reasoning.Piece) -> DeltaMessage:
    if p.kind == "reasoning":
        return DeltaMessage(reasoning=p.text, reasoning_content=p.text, stage=p.stage)
    return DeltaMessage(content=p.text, stage=p.stage)


def _merge(pieces: list[reasoning.Piece]) -> list[reasoning.Piece]:
    """Neighbouring pieces of one kind and stage as one (fewer, larger chunks under load)."""
    out: list[reasoning.Piece] = []
    for p in pieces:
        if out and (out[-1].kind, out[-1].stage) == (p.kind, p.stage):
            out[-1] = reasoning.Piece(p.kind, out[-1].text + p.text, p.stage)
        else:
            out.append(p)
    return out


async def stream(service: ChatService, job: Job, req: Any) -> AsyncIterator[str]:
    """The SSE lines of a plain (sampled) job submitted as `req` (submitted before the response
    begins, so that a full queue is a 429, not an error inside a 200 stream), as it decodes."""
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[Any] = asyncio.Queue()
    out = _Chunks(service, job)
    r = job.request

    def pump() -> None:
        try:
            for delta in req.stream():
                loop.call_soon_threadsafe(items.put_nowait, delta)
        except BaseException:  # the failure is read from result() below
            pass
        finally:
            loop.call_soon_threadsafe(items.put_nowait, _END)

    async def lines() -> AsyncIterator[str]:
        states = [_Choice() for _ in range(r.n)]
        # the longest stop string, less one character, may be the start of one: held back
        hold = 0 if r.include_stop_str_in_output else max(map(len, r.stops), default=0)
        for i in range(r.n):
            yield out.chunk([StreamChoice(index=i, delta=DeltaMessage(role="assistant", content=""))])
        threading.Thread(target=pump, name=f"llava-cot-stream-{job.id[-6:]}", daemon=True).start()
        while True:
            batch = [await items.get()]
            while not items.empty():  # everything that arrived meanwhile, in one go
                batch.append(items.get_nowait())
            for delta in (d for d in batch if d is not _END):
                state = states[delta.index]
                state.text += delta.text
                upto = max(state.sent, len(state.text) - hold)
                new, state.sent = state.text[state.sent:upto], upto
                for line in out.text(delta.index, state, new):
                    yield line
            if _END in batch:
                break
        completions = engine_result(req)
        job.prompt_tokens = req.prompt_tokens or job.prompt_tokens
        for i, (state, c) in enumerate(zip(states, completions, strict=True)):
            final = visible_text(c, r)
            for line in out.text(i, state, final[state.sent:] if final.startswith(state.text[:state.sent]) else "",
                                 last=True):
                yield line
            yield out.chunk([StreamChoice(index=i, delta=DeltaMessage(), finish_reason=finish_reason(c),
                                          stop_reason=c.stop_reason, logprobs=logprobs(c) if r.logprobs else None)])
        if r.stream_options is not None and r.stream_options.include_usage:
            generated = sum(c.tokens for c in completions)
            yield out.chunk([], usage=Usage(prompt_tokens=job.prompt_tokens, completion_tokens=generated,
                                            total_tokens=job.prompt_tokens + generated))
        service.finished(job, 200, completions)

    try:
        async for line in _guarded(lines(), service, job):
            yield line
    finally:
        if not req.done:
            req.cancel()  # the client went away mid-stream: free its rows
            service.finished(job, 499)


async def stream_search(service: ChatService, job: Job) -> AsyncIterator[str]:
    """The SSE lines of a search: it runs to its end, then its answer goes out stage by stage."""

    async def lines() -> AsyncIterator[str]:
        from llava_cot.search import finished

        out = _Chunks(service, job)
        yield out.chunk([StreamChoice(index=0, delta=DeltaMessage(role="assistant", content=""))])
        result = await service.run_search(job)
        for line in out.text(0, _Choice(), result.text, last=True):
            yield line
        yield out.chunk([StreamChoice(index=0, delta=DeltaMessage(),
                                      finish_reason="stop" if finished(result.text) else "length")],
                        search=result.cost())
        if job.request.stream_options is not None and job.request.stream_options.include_usage:
            yield out.chunk([], usage=search_usage(job, result))
        service.finished(job, 200, tokens=result.tokens_generated)

    async for line in _guarded(lines(), service, job):
        yield line


async def _guarded(lines: AsyncIterator[str], service: ChatService, job: Job) -> AsyncIterator[str]:
    """The lines, then `[DONE]`; a failure once the stream has begun goes out as an error event
    (the status line is sent already), in the same body shape as any other error."""
    try:
        async for line in lines:
            yield line
    except ApiError as e:
        service.finished(job, e.status)
        yield sse(e.body())
    except Exception as e:  # a bug of ours: say so, and keep serving
        service.finished(job, 500)
        yield sse(error_body(500, f"internal error: {type(e).__name__}: {e}"))
    yield sse("[DONE]")
