"""The teacher: chat requests to any OpenAI-compatible server, many in flight, each retried until
it gets an answer or runs out of tries.

    teacher = Teacher(url="http://localhost:8000/v1", model="Qwen/Qwen2-VL-7B-Instruct", retries=8)
    reply = await teacher.chat(messages, seed=0)      # Reply(text, refusal, finish, tokens)

What is retried (with exponential backoff and jitter, or after the server's `Retry-After` /
`retry-after-ms` when it sends one): 429, 408, 409 and 5xx answers, timeouts, connection errors,
a body that is not JSON, and a reply with no choices or empty content. After `retries` retries the
request raises `TeacherError`: the item fails, the run goes on, and a rerun tries it again.
A 401, 403 or 404 is a setting to fix (key, URL, model name), not a failing item: it raises
LlavaCotError and stops the run. Other 4xx answers fail the item at once.

A reply is read from `message.content`, or, from a server that returns the stages apart as
reasoning models do (`llava-cot serve`: `message.stages`), from those stages put back together.

`rpm` spaces request starts (every HTTP attempt counts); `budget` (prompt + completion tokens,
as the server reports them in `usage`) makes the next request raise `BudgetSpent` once reached.
The openai client's own retries are off: they would not honour the budget or the rate limit.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import json
import os
import random
import time
from dataclasses import dataclass
from typing import Any

from llava_cot import stages
from llava_cot.errors import LlavaCotError

PER_CLIENT = 8  # requests in flight per HTTP client (see Teacher.__init__)
MAX_DELAY = 120.0  # seconds: the longest wait between tries, whatever the server asks
_RETRY_STATUS = {408, 409, 429}
_SETTING_STATUS = {401: "check --api-key", 403: "check --api-key", 404: "check the URL and the model name"}


class TeacherError(Exception):
    """A request that failed for good (after its retries): the item is tried again on a rerun."""


class BudgetSpent(Exception):
    """The token budget is spent: no more requests in this run."""


@dataclass(frozen=True)
class Reply:
    text: str
    refusal: str | None = None  # the server's refusal message (OpenAI's `message.refusal`)
    finish: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Retry(Exception):
    def __init__(self, why: str, after: float | None = None):
        super().__init__(why)
        self.after = after


def retry_after(headers: Any) -> float | None:
    """Seconds the server asks us to wait (`retry-after-ms`, `retry-after` in seconds or as a date)."""
    if headers is None:
        return None
    for key, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(key)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        return max(0.0, when.timestamp() - time.time())
    return None


class Teacher:
    def __init__(self, url: str, model: str, api_key: str | None = None, timeout: float = 120,
                 retries: int = 8, backoff: float = 1.0, rpm: float = 0, budget: int = 0,
                 max_tokens: int = 2048, temperature: float = 0.7, extra_body: dict[str, Any] | None = None,
                 concurrency: int = 8):
        import openai  # lazy: the CLI's help must not pay for it

        self._openai = openai
        # Local servers (vLLM, `llava-cot serve`) accept any key, but the client insists on one.
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        # One client per PER_CLIENT requests in flight: the HTTP connection pool under a client
        # looks at each of its connections for every request it places, a cost that grows with the
        # square of the requests in flight (a third of the CPU time at 64, profiled).
        # They share one TLS context: building one (reading the CA bundle) takes a tenth of a second
        # or more; a plain-HTTP teacher (a local server) needs none.
        self._http = _http_library(openai)
        tls = self._http.create_ssl_context() if url.lower().startswith("https:") else False
        self.clients = [openai.AsyncOpenAI(base_url=url, api_key=key, timeout=timeout, max_retries=0,
                                           http_client=openai.DefaultAsyncHttpxClient(verify=tls))
                        for _ in range(max(1, -(-concurrency // PER_CLIENT)))]
        self.url, self.model = url, model
        self.retries, self.backoff, self.budget = retries, backoff, budget
        self.max_tokens, self.temperature, self.extra_body = max_tokens, temperature, extra_body
        self._interval = 60.0 / rpm if rpm > 0 else 0.0
        self._next_start = 0.0
        self.prompt_tokens = self.completion_tokens = self.requests = self.retried = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    async def chat(self, messages: list[dict[str, Any]], seed: int | None = None,
                   stop: list[str] | None = None, temperature: float | None = None) -> Reply:
        """One chat completion, retried as the module says (`temperature`: this request's, if not
        the teacher's)."""
        last = ""
        for attempt in range(self.retries + 1):
            if self.budget and self.tokens >= self.budget:
                raise BudgetSpent(f"token budget of {self.budget} spent")
            await self._pace()
            try:
                return await self._once(messages, seed, stop, temperature)
            except _Retry as e:
                last = str(e)
                if attempt == self.retries:
                    break
                self.retried += 1
                delay = e.after if e.after is not None else self.backoff * 2**attempt * random.uniform(0.5, 1.0)
                await asyncio.sleep(min(delay, MAX_DELAY))
        raise TeacherError(f"{last} (gave up after {self.retries + 1} tries)")

    async def _pace(self) -> None:
        """Wait for this request's slot under --rpm."""
        if not self._interval:
            return
        now = time.monotonic()
        start = max(now, self._next_start)
        self._next_start = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)

    async def _once(self, messages: list[dict[str, Any]], seed: int | None, stop: list[str] | None,
                    temperature: float | None) -> Reply:
        openai = self._openai
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                                "temperature": self.temperature if temperature is None else temperature}
        if seed is not None:
            body["seed"] = seed
        if stop:
            body["stop"] = stop
        body.update(self.extra_body or {})
        client = self.clients[self.requests % len(self.clients)]
        self.requests += 1
        try:
            # The client's plain `post` (its way to any endpoint), read as JSON here: `create` walks
            # every message through its type-driven transform and builds pydantic objects of the
            # reply, which together cost more CPU than the request itself; four fields are needed.
            raw = await client.post("/chat/completions", cast_to=self._http.Response, body=body)
            response = json.loads(raw.text)
        except openai.APIStatusError as e:
            raise self._status_error(e) from None
        except (openai.APITimeoutError, openai.APIConnectionError) as e:
            raise _Retry(f"cannot reach the teacher at {self.url}: {e}") from None
        except (json.JSONDecodeError, UnicodeDecodeError, openai.APIResponseValidationError) as e:
            raise _Retry(f"the teacher's reply is not valid JSON ({e})") from None
        return self._reply(response)

    def _status_error(self, e: Any) -> Exception:
        status = e.status_code
        if status in _SETTING_STATUS:
            return LlavaCotError(f"the teacher at {self.url} (model {self.model!r}) answered {status}: "
                                 f"{_message(e)}; {_SETTING_STATUS[status]}")
        if status in _RETRY_STATUS or status >= 500:
            return _Retry(f"the teacher answered {status}: {_message(e)}", retry_after(e.response.headers))
        return TeacherError(f"the teacher answered {status}: {_message(e)}")

    def _reply(self, response: Any) -> Reply:
        """The parts of a chat.completion object that matter; _Retry for one that has none."""
        response = response if isinstance(response, dict) else {}
        usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
        prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        choices = response.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
        if choice is None:
            raise _Retry("the teacher's reply has no choices")
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        text, refusal, finish = message.get("content"), message.get("refusal"), choice.get("finish_reason")
        text = _staged_text(message) or (text if isinstance(text, str) else "")
        refusal = refusal if isinstance(refusal, str) and refusal.strip() else None
        if finish == "content_filter" and not refusal:
            refusal = "stopped by the server's content filter"
        if not text.strip() and not refusal:
            raise _Retry("the teacher's reply is empty")
        return Reply(text, refusal, finish, prompt, completion)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


def _http_library(openai: Any) -> Any:
    """The HTTP library under the openai client (httpx; httpx2 from openai 3 on): its Response
    type, and the TLS context it builds."""
    base = next(c for c in openai.DefaultAsyncHttpxClient.__mro__ if not c.__module__.startswith("openai"))
    return importlib.import_module(base.__module__.split(".")[0])


def _staged_text(message: dict[str, Any]) -> str | None:
    """The whole four-stage answer of a server that returns it as a reasoning model would
    (`llava-cot serve`: the CONCLUSION as content, every stage by name in `message.stages`)."""
    parts = message.get("stages")
    if not isinstance(parts, dict) or not all(isinstance(v, str) for v in parts.values()):
        return None
    ordered = {s: parts[s] for s in stages.STAGES if s in parts}
    return stages.render(ordered) if ordered else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return " ".join(str(inner["message"]).split())[:200]
    return " ".join(str(getattr(e, "message", e)).split())[:200]
