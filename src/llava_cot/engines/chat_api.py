"""The OpenAI chat-completions API as pure functions, for the `openai` engine (llava_cot.engines.remote):
the messages of a Prompt, a Completion from a response's choice (stop strings the server did not
apply cut here), a short choice's log-probability from the top candidates, and a server's error
message in one line. No network here.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

from llava_cot.engines import Completion, Prompt


def without(options: dict[str, Any], fields: Any) -> dict[str, Any]:
    """Request `options` less the optional `fields` (remote.OPTIONAL; top_logprobs goes with logprobs)."""
    gone = set(fields) | ({"top_logprobs"} if "logprobs" in fields else set())
    return {k: v for k, v in options.items() if k not in gone}


def messages(prompt: Prompt) -> list[dict[str, Any]]:
    """The conversation before the assistant's text: the system message, the earlier turns and
    the question, the image with the first user turn (as models.messages renders it locally)."""
    turns: list[dict[str, Any]] = [{"role": "system", "content": prompt.system}] if prompt.system is not None else []
    for i, (user, assistant) in enumerate([*prompt.history, (prompt.question, None)]):
        content: list[dict[str, Any]] = []
        if i == 0 and prompt.image is not None:
            content.append({"type": "image_url", "image_url": {"url": image_data_url(prompt.image)}})
        content.append({"type": "text", "text": user})
        turns.append({"role": "user", "content": content})
        if assistant is not None:
            turns.append({"role": "assistant", "content": assistant})
    return turns


def image_data_url(image: Any) -> str:
    """A PIL image as a `data:image/png;base64,...` URL."""
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def completion(choice: Any, tokens_share: int, stop: Sequence[str]) -> Completion:
    text = choice.message.content or ""
    content = logprob_content(choice)
    tokens = len(content) if content else tokens_share
    logprob = sum(t.logprob for t in content)
    reason = None
    if choice.finish_reason == "length":
        finish = "length"
    else:
        # vLLM names the stop string it matched (an int is a stop token id, None the end of turn).
        reason = getattr(choice, "stop_reason", None)
        if choice.finish_reason == "stop" and isinstance(reason, str) and reason in stop:
            text, finish = text + reason, "stop"
        else:
            finish, reason = "end", None
    # Stop strings the server was not given (past the API's limit, or all of them for a server
    # that refuses them): cut at the first one, and count only the tokens kept.
    found = first_stop(text, stop)
    if found is not None:
        (cut, reason), finish = found, "stop"
        if cut < len(text):
            text = text[:cut]
            if content:
                kept, length = [], 0
                for t in content:
                    if length >= cut:
                        break
                    kept.append(t)
                    length += len(t.token)
                tokens, logprob = len(kept), sum(t.logprob for t in kept)
    return Completion(text=text, tokens=tokens, logprob=float(logprob), finish=finish, stop_reason=reason)


def first_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """The end of the earliest stop string in `text`, and that string, or None."""
    ends = [(i + len(s), s) for s in stops if s and (i := text.find(s)) >= 0]
    return min(ends, key=lambda e: e[0]) if ends else None


def logprob_content(choice: Any) -> list[Any]:
    logprobs = getattr(choice, "logprobs", None)
    return list(getattr(logprobs, "content", None) or [])


def choice_logprob(top: list[tuple[str, float]], choice: str) -> float:
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


def split(total: int, n: int) -> list[int]:
    """`total` tokens shared as evenly as possible between `n` choices."""
    return [total // n + (i < total % n) for i in range(n)]


def one_line(text: str) -> str:
    return " ".join(text.split())


def error_message(error: Any) -> str:
    """The server's own message from an error body ({"error": {"message"}} or {"message"})."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        # OpenAI's and vLLM's {"message"}, FastAPI's {"detail"} (transformers serve)
        message = (inner.get("message") or inner.get("detail")) if isinstance(inner, dict) else inner
        if message:
            return one_line(str(message))
    return one_line(error.message)
