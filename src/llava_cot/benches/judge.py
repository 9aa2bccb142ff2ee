"""An LLM judge for scoring benchmark answers, on any OpenAI-compatible endpoint, with a cache.

MathVista and MM-Vet are scored by asking a language model (VLMEvalKit and lmms-eval use GPT-4
class models), and multiple-choice and yes/no benchmarks may ask one when no rule reads an answer.
Any server speaking /v1/chat/completions works: OpenAI, vLLM, SGLang, our own `llava-cot serve`.

    judge = Judge(model="gpt-4o-mini", base_url="https://api.openai.com/v1", api_key="sk-...",
                  cache="runs/judge-cache.jsonl")
    text, value = judge.ask(prompt, parse=float_or_none)   # value None: unparseable verdict

Every verdict is cached in a JSONL file, one line per (judge model, prompt), keyed by a hash of
both: a re-score with the same judge never calls it again, and a changed prompt or judge model
is a different key. The default cache is `$XDG_CACHE_HOME/llava-cot/judge-cache.jsonl`
(~/.cache/...). An unparseable verdict is asked again (at temperatures 0, 0.5, 1, ...) up to
`tries` times; what is cached is the first parseable verdict, or the last one, and callers report
an unparseable verdict as such rather than count it as an answer. Nothing connects until the first
uncached question, so a fully cached re-score needs no server at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from llava_cot.errors import LlavaCotError

T = TypeVar("T")


def default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "llava-cot" / "judge-cache.jsonl"


def cache_key(model: str, prompt: str) -> str:
    return hashlib.sha256(json.dumps([model, prompt]).encode()).hexdigest()


class Judge:
    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 cache: str | os.PathLike[str] | None = None, max_tokens: int = 512, tries: int = 3,
                 timeout: float = 120, max_retries: int = 2):
        if not model:
            raise LlavaCotError("a judge needs a model name (e.g. --judge-model gpt-4o-mini)")
        if tries < 1:
            raise LlavaCotError(f"judge tries must be at least 1, not {tries}")
        self.model, self.base_url, self.api_key = model, base_url, api_key
        self.max_tokens, self.tries, self.timeout, self.max_retries = max_tokens, tries, timeout, max_retries
        self.cache_path = Path(cache).expanduser() if cache is not None else default_cache()
        self.calls = 0  # requests actually sent (cache hits are free)
        self._cache: dict[str, str] | None = None
        self._client: Any = None

    def ask(self, prompt: str, parse: Callable[[str], T | None]) -> tuple[str, T | None]:
        """The judge's reply to prompt and what `parse` reads from it (None: unparseable)."""
        cache = self._load()
        key = cache_key(self.model, prompt)
        if key in cache:
            return cache[key], parse(cache[key])
        reply, value = "", None
        for attempt in range(self.tries):
            reply = self._complete(prompt, temperature=0.5 * attempt)
            value = parse(reply)
            if value is not None:
                break
        self._store(key, reply)
        return reply, value

    # ------------------------------------------------------------------ the cache

    def _load(self) -> dict[str, str]:
        if self._cache is not None:
            return self._cache
        self._cache = {}
        if self.cache_path.is_file():
            with self.cache_path.open(encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    try:
                        entry = json.loads(line)
                        self._cache[entry["key"]] = entry["reply"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        # e.g. a line cut short by a crash: that verdict is simply asked again
                        print(f"{self.cache_path}: ignoring unreadable line {lineno}", file=sys.stderr)
        return self._cache

    def _store(self, key: str, reply: str) -> None:
        assert self._cache is not None
        self._cache[key] = reply
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with self.cache_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "model": self.model, "reply": reply}, ensure_ascii=False) + "\n")
        except OSError as e:
            raise LlavaCotError(f"cannot write the judge cache {self.cache_path}: {e.strerror or e}") from None

    # ------------------------------------------------------------------ the endpoint

    def _complete(self, prompt: str, temperature: float) -> str:
        try:
            import openai
        except ImportError:
            raise LlavaCotError("the LLM judge needs the openai package: pip install 'openai>=1.30'") from None
        if self._client is None:
            # Local servers ignore the key, but the client insists on one.
            key = self.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
            self._client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout,
                                         max_retries=self.max_retries)
        where = f"judge {self.model!r} at {self._client.base_url}"
        try:
            response = self._client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}],
                temperature=temperature, max_tokens=self.max_tokens)
        except openai.APIConnectionError:
            raise LlavaCotError(f"cannot reach the {where}; is it running?") from None
        except openai.APIStatusError as e:
            raise LlavaCotError(f"the {where} answered {e.status_code}: {_one_line(e.message)}") from None
        except openai.OpenAIError as e:
            raise LlavaCotError(f"request to the {where} failed: {_one_line(str(e))}") from None
        self.calls += 1
        if not response.choices:
            raise LlavaCotError(f"the {where} returned no choices")
        return response.choices[0].message.content or ""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
