"""An engine that talks to an OpenAI-compatible chat server: vLLM, SGLang, or OpenAI itself.

Serve a model, then point the engine at it:

    vllm serve Xkev/Llama-3.2V-11B-cot --max-model-len 8192

    from llava_cot.engines import load_engine
    engine = load_engine("openai", base_url="http://localhost:8000/v1", model="Xkev/Llama-3.2V-11B-cot")

Each prompt is one `chat.completions` request: the image travels as a base64 PNG data URL, the
question as text, and the assistant's text so far as a final assistant message that the server
continues (vLLM's `continue_final_message`; `continue_partial=False` leaves it out for servers
that reject that extra, such as OpenAI's, which then answer in a fresh turn after it; one that
refuses it is found out anyway, below). Prompts run concurrently, at most `max_concurrency`
requests in flight, all callers together; `cost` is per calling thread, as the hf engine's. The
requests and answers themselves are mapped in `chat_api`.

What the API cannot say directly is filled in here. It accepts at most 4 stop strings: the rest
are applied to the returned text. It leaves the matched stop string out of the text: vLLM names it
(`stop_reason`) and it is put back; a server that does not name it gets finish "end". The
`api_key` defaults to $OPENAI_API_KEY, or a placeholder that local servers accept.

Servers that are not vLLM do less, and the engine learns what from their answers (`notes()`
says what it found). `transformers serve` answers `n=3` with one choice: the other samples are
asked for one request each, request i seeded seed + i. It refuses vLLM's extras (422) and, for a
VLM, stop strings (500): a refused request is sent again without what it refused (see
OPTIONAL), and later ones leave it out. It ignores `logprobs`: sampling does without them, and a
judge that reads verdicts from them stops with one clear error instead of scoring ties.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llava_cot.engines import Completion, Cost, Prompt, Sampling, chat_api
from llava_cot.engines.chat_api import image_data_url
from llava_cot.errors import LlavaCotError

MAX_SERVER_STOPS = 4  # the OpenAI API's limit on `stop`
TOP_LOGPROBS = 20  # the OpenAI API's (and vLLM's default) limit on `top_logprobs`
# What a request may ask for that a server which is not vLLM may refuse, each named by its field.
# A request the server refuses with one of REFUSALS is sent again without them, one at a time
# (then in pairs, then all): the engine remembers what made the difference and leaves it out of
# later requests, doing without (a partial answer continued in a fresh turn, as for OpenAI's API;
# stop strings applied to the returned text; no log-probabilities).
OPTIONAL = ("continue_final_message", "stop", "logprobs", "reasoning_format")
REFUSALS = (400, 422, 500)  # transformers serve: 422 for vLLM's extras, 500 for stop strings on a VLM


class _Refused(LlavaCotError):
    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why  # "it answered 422: ..."


class OpenAIEngine:
    def __init__(self, base_url: str | None = None, model: str = "Xkev/Llama-3.2V-11B-cot",
                 api_key: str | None = None, timeout: float = 600, max_concurrency: int = 8,
                 continue_partial: bool = True, max_retries: int = 2):
        try:
            import openai
        except ImportError:
            raise LlavaCotError("the openai engine needs the openai package: pip install 'openai>=1.30'") from None
        if max_concurrency < 1:
            raise LlavaCotError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self._openai = openai
        # Local servers (vLLM, SGLang) ignore the key unless started with --api-key, but the client
        # insists on one.
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout,
                                    max_retries=max_retries)
        self.model = model
        self.max_concurrency = max_concurrency
        self.continue_partial = continue_partial
        self._costs = threading.local()
        self._lock = threading.Lock()  # requests finish on pool threads
        self._slots = threading.BoundedSemaphore(max_concurrency)  # requests in flight, all callers together
        # What this server turned out not to do (an OPTIONAL field -> how it said so), and whether
        # it answers n > 1 with fewer choices: learned from its answers, so asked only once.
        self.refused: dict[str, str] = {}
        self.one_choice = False

    @property
    def where(self) -> str:
        model = f" (model {self.model!r})" if self.model else ""
        return f"OpenAI-compatible server at {self.client.base_url}{model}"

    @property
    def cost(self) -> Cost:
        """What this thread's calls have cost so far (the requests they made on pool threads
        included). Per thread, as the hf engine's: concurrent searches each see their own."""
        if not hasattr(self._costs, "cost"):
            self._costs.cost = Cost()
        return self._costs.cost

    # ------------------------------------------------------------------ the Engine interface

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        """`sampling.n` completions per prompt, in the order of `prompts`."""
        cost = self.cost
        return self._map(lambda p: self._generate_one(p, sampling, cost), prompts)

    def choice_logprobs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> list[list[float]]:
        """For each prompt, the log-probability of each choice as the model's next token, -inf
        when it is not among the server's top 20 candidates. Prompts are sent concurrently.

        The API returns single tokens only, so a multi-token choice is scored on its first token
        (the longest candidate that starts it, when the whole choice is not a candidate).
        Candidates are compared with surrounding whitespace stripped (" yes" and "yes" both count,
        their probabilities summed), matching case first and ignoring it only when nothing matches.
        A server that gives no log-probabilities is a LlavaCotError (every verdict would be a tie).
        """
        cost = self.cost
        return self._map(lambda p: self._choices_one(p, choices, cost), prompts)

    def served_models(self) -> list[str]:
        """The names of the models the server serves (GET /v1/models)."""
        with self._errors(not_found=f"; is {self.client.base_url} the API's base URL (it usually ends in /v1)?"):
            return [m.id for m in self.client.models.list().data]

    def notes(self) -> list[str]:
        """What this server did not do and how the engine made up for it, one line each."""
        said = {"continue_final_message": "does not continue a partial assistant message: partial answers were "
                                          "continued in a fresh assistant turn",
                "stop": "refuses stop strings: they were applied to the returned text",
                "logprobs": "gives no log-probabilities: completions carry none",
                "reasoning_format": "does not take reasoning_format: its content was read as the whole answer"}
        lines = [f"the {self.where} {said[f]} ({why})" for f, why in self.refused.items()]
        if self.one_choice:
            lines.append(f"the {self.where} answers n > 1 with fewer choices: the rest were asked for one "
                         "per request, request i seeded seed + i")
        return lines

    # ------------------------------------------------------------------ requests

    def _map(self, fn: Any, items: Sequence[Any]) -> list[Any]:
        """`fn` over `items`, concurrently (at most max_concurrency requests in flight), in order."""
        items = list(items)
        if len(items) <= 1 or self.max_concurrency == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    def _choices_one(self, prompt: Prompt, choices: Sequence[str], cost: Cost) -> list[float]:
        self._need_logprobs()
        response = self._request(prompt, cost, max_tokens=1, temperature=0.0, logprobs=True,
                                 top_logprobs=TOP_LOGPROBS)
        content = chat_api.logprob_content(response.choices[0]) if response.choices else []
        top = [(t.token.strip(), t.logprob) for t in (content[0].top_logprobs or [])] if content else []
        if not top:  # a server that ignores `logprobs` (transformers serve) answers with none
            with self._lock:
                self.refused.setdefault("logprobs", "it returned none when asked")
            self._need_logprobs()
        return [chat_api.choice_logprob(top, choice) for choice in choices]

    def _need_logprobs(self) -> None:
        why = self.refused.get("logprobs")
        if why is not None:
            raise LlavaCotError(f"the {self.where} gives no log-probabilities ({why}), which the pairwise and "
                                "pointwise judges read their verdicts from: use --judge majority, or give the judge "
                                "a model that has them (--judge-checkpoint DIR_OR_ID or --judge-base-url URL)")

    def _generate_one(self, prompt: Prompt, sampling: Sampling, cost: Cost) -> list[Completion]:
        if self.one_choice and sampling.n > 1:
            return self._one_by_one(prompt, sampling, range(sampling.n), cost)
        outs = self._sample(prompt, sampling, sampling.n, sampling.seed, cost)
        if len(outs) < sampling.n:
            # transformers serve answers n > 1 with one choice: the rest one request each
            self.one_choice = True
            outs += self._one_by_one(prompt, sampling, range(len(outs), sampling.n), cost)
        return outs

    def _one_by_one(self, prompt: Prompt, sampling: Sampling, indices: Sequence[int], cost: Cost) -> list[Completion]:
        """Completions `indices` of n, one request each, request i seeded seed + i (so that the
        samples differ, and a rerun draws the same ones)."""
        def one(i: int) -> Completion:
            return self._sample(prompt, sampling, 1, None if sampling.seed is None else sampling.seed + i, cost)[0]

        return self._map(one, indices)

    def _sample(self, prompt: Prompt, sampling: Sampling, n: int, seed: int | None, cost: Cost) -> list[Completion]:
        """One request for `n` completions: those the server returned (at least one)."""
        options: dict[str, Any] = dict(n=n, temperature=sampling.temperature, top_p=sampling.top_p,
                                       max_tokens=sampling.max_new_tokens, logprobs=True,
                                       # the raw tagged text in `content` (llama.cpp's field, and
                                       # llava-cot serve's): a server that splits reasoning from
                                       # content would hand a stage search the conclusion alone
                                       reasoning_format="none")
        if sampling.stop:
            options["stop"] = list(sampling.stop[:MAX_SERVER_STOPS])
        if seed is not None:
            options["seed"] = seed
        response = self._request(prompt, cost, **options)
        if not response.choices or len(response.choices) > n:
            raise LlavaCotError(f"the {self.where} returned {len(response.choices)} choices where n={n} "
                                "were asked for")
        usage = response.usage
        shares = chat_api.split(usage.completion_tokens if usage else 0, len(response.choices))
        choices = sorted(response.choices, key=lambda c: c.index)
        return [chat_api.completion(c, share, sampling.stop) for c, share in zip(choices, shares, strict=True)]

    def _request(self, prompt: Prompt, cost: Cost, **options: Any) -> Any:
        """One chat.completions call, less what the server is known to refuse. Refused (see
        OPTIONAL), it is sent again without each optional field in turn, then pairs of them, then
        all: the first that the server takes tells what it refuses, each field with the answer
        the server gave while that field was the only one of them left. When none is taken, the
        answer to the barest request is the error."""
        if prompt.partial and self.continue_partial:
            options["continue_final_message"] = True
        options = chat_api.without(options, self.refused)
        try:
            return self._send(prompt, options, cost)
        except _Refused as refusal:
            present = [f for f in OPTIONAL if f in options]
            answers: dict[frozenset[str], _Refused] = {frozenset(): refusal}
            for k in range(1, len(present) + 1):
                for drop in map(frozenset, itertools.combinations(present, k)):
                    try:
                        response = self._send(prompt, chat_api.without(options, drop), cost)
                    except _Refused as e:
                        answers[drop] = e
                        continue
                    with self._lock:
                        for f in drop:
                            self.refused.setdefault(f, answers.get(drop - {f}, refusal).why)
                    return response
            raise LlavaCotError(str(answers[frozenset(present)])) from None

    def _send(self, prompt: Prompt, options: dict[str, Any], cost: Cost) -> Any:
        options = dict(options)
        messages = chat_api.messages(prompt)
        if prompt.partial:
            messages.append({"role": "assistant", "content": prompt.partial})
        extra = {"reasoning_format": options.pop("reasoning_format")} if "reasoning_format" in options else {}
        if options.pop("continue_final_message", False):
            # vLLM's chat-completions extras: continue the last message instead of opening a
            # new assistant turn, so the reply is exactly the continuation.
            extra.update(continue_final_message=True, add_generation_prompt=False)
        if extra:
            options["extra_body"] = extra
        with self._slots, self._errors():
            response = self.client.chat.completions.create(model=self.model, messages=messages, **options)
        self._count(response, cost)
        return response

    @contextlib.contextmanager
    def _errors(self, not_found: str = "") -> Iterator[None]:
        """API failures as one-line LlavaCotErrors (_Refused for a status of REFUSALS), `not_found`
        added to a 404's."""
        openai = self._openai
        try:
            yield
        except openai.APIConnectionError as e:
            reason = chat_api.one_line(str(e)).rstrip(".")
            raise LlavaCotError(f"cannot reach the {self.where} ({reason}); is it running?") from None
        except openai.APIStatusError as e:
            why = f"it answered {e.status_code}: {chat_api.error_message(e)}"
            message = f"the {self.where} answered {e.status_code}: {chat_api.error_message(e)}"
            message += not_found if e.status_code == 404 else ""
            if e.status_code in REFUSALS:
                raise _Refused(message, why) from None
            raise LlavaCotError(message) from None
        except openai.OpenAIError as e:
            raise LlavaCotError(f"request to the {self.where} failed: {chat_api.one_line(str(e))}") from None

    def _count(self, response: Any, cost: Cost) -> None:
        usage = response.usage
        with self._lock:
            cost.forward_passes += 1
            if usage is None:
                cost.tokens_generated += sum(len(chat_api.logprob_content(c)) for c in response.choices)
                return
            cost.tokens_generated += usage.completion_tokens or 0
            cost.prompt_tokens += usage.prompt_tokens or 0
            details = getattr(usage, "prompt_tokens_details", None)
            cost.cached_tokens += (getattr(details, "cached_tokens", None) or 0) if details else 0


__all__ = ["OpenAIEngine", "image_data_url"]  # image_data_url lives in chat_api; still importable from here
