"""The serving logic behind `POST /v1/chat/completions`: a checked request in, an answer out.

A plain request is submitted to the hf engine's scheduler (`engine.submit`) and decodes in its
running batch beside every other request's rows; the answer is built once the request ends,
or streamed as Server-Sent Events while it decodes (`streaming.py`). A request that names a
search (`"search": "stage_beam", "beam": 4, "judge": "likelihood"`) runs `llava_cot.search.run`
on the same engine, in a worker thread (whose calls the engine counts apart, so the search's
cost is its own even while other requests decode beside it).

Nothing here blocks the event loop: requests are checked (images decoded, remote ones fetched)
on worker threads, and a request's end is signalled from the scheduler's thread. A client that
goes away cancels its request: its rows leave the batch at the next step.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from llava_cot.engines import Completion, Prompt, QueueFull, Sampling
from llava_cot.errors import LlavaCotError
from llava_cot.serve import inputs, reasoning
from llava_cot.serve.errors import ApiError, bad
from llava_cot.serve.images import ImageLimits
from llava_cot.serve.metrics import Metrics
from llava_cot.serve.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ChoiceLogprobs,
    LogprobToken,
    ResponseMessage,
    TopLogprob,
    Usage,
)

MIN_LOGPROB = -9999.0  # JSON has no -inf (vLLM clamps the same way)


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


@dataclass(frozen=True)
class Settings:
    served_name: str
    caps: inputs.Caps
    images: ImageLimits = field(default_factory=ImageLimits)
    reasoning_format: str = "stages"  # the default for requests that do not say: "stages" or "none"
    search_workers: int = 4  # searches running at once (each decodes through the shared batch)


@dataclass
class Job:
    """A checked request, ready for the engine."""

    request: ChatCompletionRequest
    prompt: Prompt
    prompt_tokens: int
    sampling: Sampling | None  # None for a search
    id: str = field(default_factory=lambda: "chatcmpl-" + uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))
    started: float = field(default_factory=time.perf_counter)

    @property
    def raw(self) -> bool:
        return self.request.reasoning_format == "none"


class ChatService:
    def __init__(self, engine: Any, settings: Settings, metrics: Metrics | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._searches = ThreadPoolExecutor(settings.search_workers, thread_name_prefix="llava-cot-search")
        self._defaults = _model_defaults(engine)
        self._image_tokens = int(getattr(engine.model.config, "image_seq_length", 0) or 0)

    def close(self) -> None:
        self._searches.shutdown(wait=False, cancel_futures=True)

    # -- checking -------------------------------------------------------------------------

    def check_model(self, name: str | None) -> None:
        if name is not None and name != self.settings.served_name:
            raise ApiError(404, f"the model {name!r} does not exist; this server serves "
                                f"{self.settings.served_name!r} (GET /v1/models)", "model", "model_not_found")

    def prepare(self, request: ChatCompletionRequest) -> Job:
        """The request checked and converted (blocking: an image may be fetched; run it on a worker)."""
        from llava_cot.judges import JUDGES
        from llava_cot.search import SEARCHES

        self.check_model(request.model)
        if request.reasoning_format in (None, "auto"):
            request.reasoning_format = self.settings.reasoning_format
        prompt = inputs.to_prompt(request, self.settings.images)
        tokens = inputs.prompt_tokens(self.engine.processor, prompt, self._image_tokens)
        caps = self.settings.caps
        if request.search is None:
            if request.beam is not None or request.judge is not None:
                raise bad("beam and judge go with a search: add \"search\": \"stage_beam\" (or another)", "search")
            return Job(request, prompt, tokens, inputs.to_sampling(request, caps, tokens, self._defaults))
        if request.search not in SEARCHES:
            raise bad(f"unknown search {request.search!r}; choose one of {', '.join(SEARCHES)}", "search")
        if request.judge is not None and request.judge not in JUDGES:
            raise bad(f"unknown judge {request.judge!r}; choose one of {', '.join(JUDGES)}", "judge")
        if request.beam is not None and request.beam > caps.max_n:
            raise bad(f"beam is {request.beam}; this server samples at most {caps.max_n} candidates", "beam")
        for name, wrong in (("n", request.n != 1), ("logprobs", request.logprobs), ("stop", bool(request.stops))):
            if wrong:
                raise bad(f"a search returns one answer of its own making: {name} is not taken with it", name)
        inputs.to_sampling(request, caps, tokens, self._defaults)  # the same limits on its budget
        return Job(request, prompt, tokens, None)

    # -- answering ------------------------------------------------------------------------

    def submit(self, job: Job, on_done: Any = None) -> Any:
        try:
            return self.engine.submit(job.prompt, job.sampling, on_done)
        except QueueFull as e:
            raise ApiError(429, f"the server is busy ({e}); retry shortly", None, "queue_full") from None

    async def wait(self, job: Job, is_disconnected: Any) -> list[Completion]:
        """Submit the job and wait for its completions; cancel it if the client goes away."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def on_done(_: Any) -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        req = self.submit(job, on_done)
        gone = asyncio.ensure_future(is_disconnected())
        try:
            await asyncio.wait({done, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not done.done():
                req.cancel()
                raise ClientGone()
            job.prompt_tokens = req.prompt_tokens or job.prompt_tokens
            return engine_result(req)
        finally:
            gone.cancel()

    async def run_search(self, job: Job) -> Any:
        """The job's search, on a worker thread; the search's `Result`."""
        from llava_cot.search import SearchConfig, run

        r = job.request
        cfg = SearchConfig(seed=r.seed or 0, judge=r.judge, **({"beam": r.beam} if r.beam else {}),
                           **({"temperature": r.temperature} if r.temperature is not None else {}),
                           **({"top_p": r.top_p} if r.top_p is not None else {}),
                           **({"max_new_tokens": r.token_limit} if r.token_limit else {}))
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._searches, run, r.search, self.engine, job.prompt, cfg)
        except QueueFull as e:
            raise ApiError(429, f"the server is busy ({e}); retry shortly", None, "queue_full") from None
        except ApiError:
            raise
        except LlavaCotError as e:
            raise bad(str(e), "search") from None

    def finished(self, job: Job, status: int, completions: list[Completion] | None = None, tokens: int = 0) -> None:
        """Count a request that started (`metrics.started`) as answered."""
        tokens += sum(c.tokens for c in completions or [])
        self.metrics.finished(status, time.perf_counter() - job.started, job.prompt_tokens if status == 200 else 0,
                              tokens, batch=self.engine.stats()["running"] + len(completions or []))

    def response(self, job: Job, completions: list[Completion]) -> ChatCompletionResponse:
        r = job.request
        choices = [Choice(index=i, message=self.message(job, visible_text(c, r)), finish_reason=finish_reason(c),
                          stop_reason=c.stop_reason, logprobs=logprobs(c) if r.logprobs else None)
                   for i, c in enumerate(completions)]
        generated = sum(c.tokens for c in completions)
        usage = Usage(prompt_tokens=job.prompt_tokens, completion_tokens=generated,
                      total_tokens=job.prompt_tokens + generated)
        return ChatCompletionResponse(id=job.id, created=job.created, model=self.settings.served_name,
                                      choices=choices, usage=usage)

    def search_response(self, job: Job, result: Any) -> ChatCompletionResponse:
        from llava_cot.search import finished

        choice = Choice(index=0, message=self.message(job, result.text),
                        finish_reason="stop" if finished(result.text) else "length")
        return ChatCompletionResponse(id=job.id, created=job.created, model=self.settings.served_name,
                                      choices=[choice], usage=search_usage(job, result), search=result.cost())

    def message(self, job: Job, text: str) -> ResponseMessage:
        if job.raw:
            return ResponseMessage(content=text)
        found = reasoning.split(text)
        if not job.request.include_reasoning:
            return ResponseMessage(content=found.content)
        return ResponseMessage(content=found.content, reasoning=found.reasoning, reasoning_content=found.reasoning,
                               stages=found.stages)


# ---------------------------------------------------------------------------------------------
# helpers (pure)


def engine_result(req: Any) -> list[Completion]:
    """A finished request's completions; a failure the client caused (a prompt the model cannot
    take) is a 400, anything else a bug of ours."""
    try:
        return req.result(timeout=0)
    except LlavaCotError as e:
        raise bad(str(e), "messages") from None


def visible_text(c: Completion, request: ChatCompletionRequest) -> str:
    """What the client sees of a completion: without the stop string that ended it, as OpenAI's
    API returns it (vLLM's `include_stop_str_in_output` keeps it)."""
    if c.stop_reason and not request.include_stop_str_in_output and c.text.endswith(c.stop_reason):
        return c.text[: len(c.text) - len(c.stop_reason)]
    return c.text


def finish_reason(c: Completion) -> str:
    return "length" if c.finish == "length" else "stop"


def logprobs(c: Completion) -> ChoiceLogprobs:
    def clamp(v: float) -> float:
        return max(float(v), MIN_LOGPROB)

    content = [LogprobToken(token=t.token, logprob=clamp(t.logprob), bytes=list(t.token.encode()),
                            top_logprobs=[TopLogprob(token=s, logprob=clamp(v), bytes=list(s.encode()))
                                          for s, v in t.top])
               for t in c.token_logprobs or []]
    return ChoiceLogprobs(content=content)


def search_usage(job: Job, result: Any) -> Usage:
    return Usage(prompt_tokens=job.prompt_tokens, completion_tokens=result.tokens_generated,
                 total_tokens=job.prompt_tokens + result.tokens_generated, forward_passes=result.forward_passes,
                 judge_calls=result.judge_calls, seconds=round(result.seconds, 3))


def _model_defaults(engine: Any) -> dict[str, float]:
    """Sampling defaults from the model's generation config, as vLLM takes them (OpenAI's
    temperature 1 and top_p 1 where it says nothing; greedy where it turns sampling off)."""
    config = getattr(engine.model, "generation_config", None)
    if config is None:
        return {}
    out: dict[str, float] = {}
    if getattr(config, "do_sample", None) is False and "do_sample" in config.to_diff_dict():
        out["temperature"] = 0.0
    for key in ("temperature", "top_p"):
        if key in config.to_diff_dict():
            out.setdefault(key, float(getattr(config, key)))
    return out
