"""An engine that talks to an OpenAI-compatible chat server: vLLM, SGLang, or OpenAI itself.

Serve a model, then point the engine at it:

    vllm serve Xkev/Llama-3.2V-11B-cot --max-model-len 8192

    from llava_cot.engines import load_engine
    engine = load_engine("openai", base_url="http://localhost:8000/v1", model="Xkev/Llama-3.2V-11B-cot")

Each prompt is one `chat.completions` request: the image travels as a base64 PNG data URL, the
question as text, and the assistant's text so far as a final assistant message that the server
continues (vLLM's `continue_final_message`; pass `continue_partial=False` for servers that reject
that extra, such as OpenAI's, which then answer in a fresh turn after it). Prompts run
concurrently, at most `max_concurrency` requests in flight.

What the API cannot say directly is filled in here. It accepts at most 4 stop strings: the rest
are applied to the returned text. It leaves the matched stop string out of the text: vLLM names it
(`stop_reason`) and it is put back; a server that does not name it gets finish "end". The
`api_key` defaults to $OPENAI_API_KEY, or a placeholder that local servers accept.
"""

from __future__ import annotations

import base64
import io
import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llava_cot.engines import Completion, Cost, Prompt, Sampling
from llava_cot.errors import LlavaCotError

MAX_SERVER_STOPS = 4  # the OpenAI API's limit on `stop`
TOP_LOGPROBS = 20  # the OpenAI API's (and vLLM's default) limit on `top_logprobs`


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
        self.cost = Cost()
        self._lock = threading.Lock()  # requests finish on pool threads; cost is shared

    # ------------------------------------------------------------------ the Engine interface

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        """`sampling.n` completions per prompt, in the order of `prompts`."""
        if not prompts:
            return []
        if len(prompts) == 1 or self.max_concurrency == 1:
            return [self._generate_one(p, sampling) for p in prompts]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(prompts))) as pool:
            return list(pool.map(lambda p: self._generate_one(p, sampling), prompts))

    def choice_logprobs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> list[list[float]]:
        """For each prompt, the log-probability of each choice as the model's next token, -inf
        when it is not among the server's top 20 candidates. Prompts are sent concurrently.

        The API returns single tokens only, so a multi-token choice is scored on its first token
        (the longest candidate that starts it, when the whole choice is not a candidate).
        Candidates are compared with surrounding whitespace stripped (" yes" and "yes" both count,
        their probabilities summed), matching case first and ignoring it only when nothing matches.
        """
        if len(prompts) <= 1 or self.max_concurrency == 1:
            return [self._choices_one(p, choices) for p in prompts]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(prompts))) as pool:
            return list(pool.map(lambda p: self._choices_one(p, choices), prompts))

    def _choices_one(self, prompt: Prompt, choices: Sequence[str]) -> list[float]:
        response = self._request(prompt, max_tokens=1, temperature=0.0, logprobs=True,
                                 top_logprobs=TOP_LOGPROBS)
        content = _logprob_content(response.choices[0]) if response.choices else []
        top = [(t.token.strip(), t.logprob) for t in (content[0].top_logprobs or [])] if content else []
        return [_choice_logprob(top, choice) for choice in choices]

    # ------------------------------------------------------------------ requests

    def _generate_one(self, prompt: Prompt, sampling: Sampling) -> list[Completion]:
        options: dict[str, Any] = dict(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                                       max_tokens=sampling.max_new_tokens, logprobs=True)
        if sampling.stop:
            options["stop"] = list(sampling.stop[:MAX_SERVER_STOPS])
        if sampling.seed is not None:
            options["seed"] = sampling.seed
        response = self._request(prompt, **options)
        if len(response.choices) != sampling.n:
            raise LlavaCotError(f"the server at {self.client.base_url} returned {len(response.choices)} "
                                f"choices where n={sampling.n} were asked for")
        usage = response.usage
        shares = _split(usage.completion_tokens if usage else 0, sampling.n)
        choices = sorted(response.choices, key=lambda c: c.index)
        return [_completion(c, share, sampling.stop) for c, share in zip(choices, shares, strict=True)]

    def _request(self, prompt: Prompt, **options: Any) -> Any:
        """One chat.completions call, API failures turned into one-line LlavaCotErrors."""
        messages: list[dict[str, Any]] = [{"role": "user", "content": _user_content(prompt)}]
        if prompt.partial:
            messages.append({"role": "assistant", "content": prompt.partial})
            if self.continue_partial:
                # vLLM's chat-completions extras: continue the last message instead of opening a
                # new assistant turn, so the reply is exactly the continuation.
                options["extra_body"] = {"continue_final_message": True, "add_generation_prompt": False}
        openai = self._openai
        where = f"OpenAI-compatible server at {self.client.base_url} (model {self.model!r})"
        try:
            response = self.client.chat.completions.create(model=self.model, messages=messages, **options)
        except openai.APIConnectionError as e:
            reason = _one_line(str(e)).rstrip(".")
            raise LlavaCotError(f"cannot reach the {where} ({reason}); is it running?") from None
        except openai.APIStatusError as e:
            raise LlavaCotError(f"the {where} answered {e.status_code}: {_error_message(e)}") from None
        except openai.OpenAIError as e:
            raise LlavaCotError(f"request to the {where} failed: {_one_line(str(e))}") from None
        self._count(response)
        return response

    def _count(self, response: Any) -> None:
        usage = response.usage
        with self._lock:
            self.cost.forward_passes += 1
            if usage is None:
                self.cost.tokens_generated += sum(len(_logprob_content(c)) for c in response.choices)
                return
            self.cost.tokens_generated += usage.completion_tokens or 0
            self.cost.prompt_tokens += usage.prompt_tokens or 0
            details = getattr(usage, "prompt_tokens_details", None)
            self.cost.cached_tokens += (getattr(details, "cached_tokens", None) or 0) if details else 0


# ---------------------------------------------------------------------- helpers (pure)


def _user_content(prompt: Prompt) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    if prompt.image is not None:
        content.append({"type": "image_url", "image_url": {"url": image_data_url(prompt.image)}})
    content.append({"type": "text", "text": prompt.question})
    return content


def image_data_url(image: Any) -> str:
    """A PIL image as a `data:image/png;base64,...` URL."""
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _completion(choice: Any, tokens_share: int, stop: Sequence[str]) -> Completion:
    text = choice.message.content or ""
    content = _logprob_content(choice)
    tokens = len(content) if content else tokens_share
    logprob = sum(t.logprob for t in content)
    if choice.finish_reason == "length":
        finish = "length"
    else:
        # vLLM names the stop string it matched (an int is a stop token id, None the end of turn).
        reason = getattr(choice, "stop_reason", None)
        if choice.finish_reason == "stop" and isinstance(reason, str) and reason in stop:
            text, finish = text + reason, "stop"
        else:
            finish = "end"
    # Stop strings past the API's limit: cut at the first one, and count only the tokens kept.
    cut = _first_stop(text, stop[MAX_SERVER_STOPS:])
    if cut is not None:
        text, finish = text[:cut], "stop"
        if content:
            kept, length = [], 0
            for t in content:
                if length >= cut:
                    break
                kept.append(t)
                length += len(t.token)
            tokens, logprob = len(kept), sum(t.logprob for t in kept)
    return Completion(text=text, tokens=tokens, logprob=float(logprob), finish=finish)


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    """The end of the earliest stop string in `text`, or None."""
    ends = [i + len(s) for s in stops if s and (i := text.find(s)) >= 0]
    return min(ends) if ends else None


def _logprob_content(choice: Any) -> list[Any]:
    logprobs = getattr(choice, "logprobs", None)
    return list(getattr(logprobs, "content", None) or [])


def _choice_logprob(top: list[tuple[str, float]], choice: str) -> float:
    want = choice.strip()
    # The choice itself as a candidate (matching case, then not); failing that, the longest
    # candidate that starts it, taken as its first token.
    for whole in (True, False):
        for fold in (str, str.casefold):
            if whole:
                hits = [(tok, lp) for tok, lp in top if fold(tok) == fold(want)]
            else:
                hits = [(tok, lp) for tok, lp in top if tok and fold(want).startswith(fold(tok))]
            if hits:
                longest = max(len(tok) for tok, _ in hits)
                return _logsumexp([lp for tok, lp in hits if len(tok) == longest])
    return float("-inf")


def _logsumexp(values: list[float]) -> float:
    peak = max(values)
    if peak == float("-inf"):
        return peak
    return peak + math.log(sum(math.exp(v - peak) for v in values))


def _split(total: int, n: int) -> list[int]:
    """`total` tokens shared as evenly as possible between `n` choices."""
    return [total // n + (i < total % n) for i in range(n)]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _error_message(error: Any) -> str:
    """The server's own message from an error body ({"error": {"message"}} or {"message"})."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return _one_line(str(message))
    return _one_line(error.message)
