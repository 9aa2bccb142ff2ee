"""A request to the `hf` engine's scheduler, and the rows it decodes as.

A `Request` is one prompt and its `Sampling`, submitted from any thread: it is answered by
`sampling.n` rows (`Row`), each with its own settings, random generator, stop strings, budget,
detokenizer and position in the batch's KV memory. A row's result therefore depends only on its
own prompt, settings and seed, never on the rows decoding beside it.

    req = engine.submit(prompt, Sampling(n=2, temperature=0.7, seed=0))
    for delta in req.stream(): print(delta.index, delta.text)   # as decoded
    completions = req.result()                                    # or wait for them all
    req.cancel()                                                  # its rows leave at the next step
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from llava_cot.engines import Completion, Cost, Delta, Prompt, Sampling, TokenLogprob
from llava_cot.engines.decoding import Detokenizer, first_stop

_CONTEXT = 6  # prompt tokens kept as left context when decoding the first new tokens
_END = object()  # the stream's last item


class Request:
    def __init__(self, prompt: Prompt, sampling: Sampling, on_done: Callable[[Request], None] | None = None,
                 owner: Cost | None = None) -> None:
        self.prompt = prompt
        self.sampling = sampling
        self.prompt_tokens = 0  # set once the prompt is encoded
        self.results: list[Completion | None] = [None] * sampling.n
        self.error: BaseException | None = None
        self.cancelled = False
        self.cost = Cost()  # what answering it cost; added to `owner` (the submitter's) at the end
        self._owner, self._on_done = owner, on_done
        self._done = threading.Event()
        self._stream: queue.SimpleQueue[Any] = queue.SimpleQueue()

    # -- the caller's side --------------------------------------------------------------

    def stream(self) -> Iterator[Delta]:
        """New text of each sample as it is decoded, until every sample has ended."""
        while (item := self._stream.get()) is not _END:
            yield item
        if self.error is not None:
            raise self.error

    def result(self, timeout: float | None = None) -> list[Completion]:
        if not self._done.wait(timeout):
            raise TimeoutError("the request has not finished")
        if self.error is not None:
            raise self.error
        return [r for r in self.results if r is not None]

    def cancel(self) -> None:
        self.cancelled = True

    @property
    def done(self) -> bool:
        return self._done.is_set()

    # -- the scheduler's side -----------------------------------------------------------

    def emit(self, index: int, text: str) -> None:
        if text:
            self._stream.put(Delta(index, text))

    def finish(self, index: int, completion: Completion) -> None:
        self.results[index] = completion
        if all(r is not None for r in self.results):
            self.close()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.close()

    def close(self) -> None:
        if self._done.is_set():
            return
        if self._owner is not None:
            self._owner.add(self.cost)
        self._done.set()
        self._stream.put(_END)
        if self._on_done is not None:
            self._on_done(self)


class Row:
    """One sample of a request being decoded."""

    def __init__(self, request: Request, index: int, entry: Any, tokenizer: Any, device: Any) -> None:
        import torch

        self.request, self.index, self.entry = request, index, entry
        self.sampling = s = request.sampling
        self.generator = None
        if s.temperature > 0 and s.seed is not None:
            # each sample its own stream, fixed by (seed, index) alone
            self.generator = torch.Generator(device=device).manual_seed(s.seed * 1_000_003 + index)
        self.detok = Detokenizer(tokenizer, entry.ids[-_CONTEXT:])
        self.tokenizer = tokenizer
        self.tokens = 0
        self.logprob = 0.0
        self.token_logprobs: list[TokenLogprob] | None = [] if s.logprobs is not None else None
        self.slot = -1
        self.logits = entry.logits  # the logits its next token is picked from

    @property
    def need(self) -> int:
        """KV tokens this row may hold by its end."""
        return len(self.entry.ids) + self.sampling.max_new_tokens

    def take(self, token: int, logprob: float, logp: Any, eos: set[int]) -> bool:
        """Add a picked token and its log-probability (`logp`: the whole log-softmax it was picked
        from, needed only when alternatives are asked for); whether the row is over."""
        self.tokens += 1
        self.logprob += logprob
        if self.token_logprobs is not None:
            self._record(token, logprob, logp)
        if token in eos:
            return self._end("end", self.detok.final())
        delta = self.detok.add(token)
        stops = self.sampling.stop
        end = first_stop(self.detok.text, delta, stops) if delta and stops else None
        if end is not None:
            text = self.detok.text[:end]
            self.request.emit(self.index, text[len(self.detok.text) - len(delta):])
            reason = next(s for s in stops if text.endswith(s))
            return self._end("stop", text, reason)
        self.request.emit(self.index, delta)
        if self.tokens >= self.sampling.max_new_tokens:
            return self._end("length", self.detok.final())
        return False

    def cancel(self) -> None:
        self._end("cancelled", self.detok.text)

    def _end(self, finish: str, text: str, reason: str | None = None) -> bool:
        self.request.emit(self.index, text[len(self.detok.text):])  # a held-back last character
        self.request.finish(self.index, Completion(text, self.tokens, self.logprob, finish, reason,
                                                   self.token_logprobs))
        return True

    def _record(self, token: int, logprob: float, logp: Any) -> None:
        k = self.sampling.logprobs
        top: list[tuple[str, float]] = []
        if k:
            values, ids = logp.topk(k)
            top = [(self.tokenizer.decode([i]), v) for i, v in zip(ids.tolist(), values.tolist(), strict=True)]
        self.token_logprobs.append(TokenLogprob(self.tokenizer.decode([token]), logprob, top))
