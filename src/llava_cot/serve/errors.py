"""What the server answers when it cannot do what was asked: one error shape, the right status.

Every error is `{"error": {"message", "type", "param", "code"}}`, the body OpenAI's API and vLLM
send, so clients show our message. The status says whose fault it is: 400 for a request that is
wrong, 401 for a key, 404 for an unknown model or route, 413 for something too large, 429 when the
queue is full (clients retry it), 500 only for a bug of ours.

    raise ApiError(400, "temperature must be at least 0", param="temperature")
"""

from __future__ import annotations

from typing import Any

from llava_cot.errors import LlavaCotError

# status -> the OpenAI error type clients know it by
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          413: "invalid_request_error", 429: "rate_limit_error", 503: "service_unavailable"}


class ApiError(LlavaCotError):
    """A request the server refuses, with the HTTP status and the parameter at fault."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.param, self.code)


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The JSON body of an error (every key present, as the OpenAI client expects)."""
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def bad(message: str, param: str | None = None, code: str = "invalid_value") -> ApiError:
    """A 400: the request is wrong in a way the message explains."""
    return ApiError(400, message, param, code)


def too_large(message: str, param: str | None = None) -> ApiError:
    """A 413: a body or an image over the server's limit."""
    return ApiError(413, message, param, "too_large")


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """pydantic's errors as one line naming each field at fault, and the first field's path."""
    parts, first = [], None
    for e in errors[:3]:
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        # a discriminated union adds the member's tag to the path (messages.0.content.list[...])
        where = ".".join(x for x in loc if not x.startswith(("list[", "str", "function-")))
        first = first or where or None
        if e.get("type") == "json_invalid":
            parts.append(f"the body is not valid JSON ({e.get('ctx', {}).get('error', 'malformed')})")
        elif e.get("type") == "missing":
            parts.append(f"{where} is required")
        else:
            parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more, first
