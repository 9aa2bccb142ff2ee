"""The HTTP layer of `llava-cot serve`: thin FastAPI routes over `ChatService`.

    GET  /health                 200 once the model is loaded
    GET  /v1/models              the served model
    POST /v1/chat/completions    JSON, or Server-Sent Events with "stream": true
    GET  /metrics                Prometheus text

In front of the routes, `_Guard` checks the API key on /v1/ routes (compared in constant time)
and holds the request body to `max_body_bytes` (413), before anything is parsed; CORS headers
are added only for the origins given. Every error, FastAPI's own included (a malformed body, an
unknown route), goes out in the one `{"error": {...}}` shape: 400 where FastAPI would say 422.

    app = build_app(ChatService(engine, settings), api_key="secret")
    uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from llava_cot.serve.errors import ApiError, error_body, too_large, validation_message
from llava_cot.serve.protocol import ChatCompletionRequest, ModelCard, ModelList, dump
from llava_cot.serve.serving import ChatService, ClientGone
from llava_cot.serve.streaming import stream, stream_search


def build_app(service: ChatService, api_key: str | None = None, cors: list[str] | None = None,
              max_body_bytes: int = 32 * 2**20) -> FastAPI:
    app = FastAPI(title="llava-cot", summary="LLaVA-CoT's OpenAI-compatible server: the four stages as reasoning")
    app.state.service = service
    _routes(app, service)
    _handlers(app, service)
    app.add_middleware(_Guard, api_key=api_key, max_body_bytes=max_body_bytes)
    if cors:
        from fastapi.middleware.cors import CORSMiddleware

        # outermost, so that preflight requests (which carry no key) and refusals get its headers
        app.add_middleware(CORSMiddleware, allow_origins=cors, allow_methods=["*"], allow_headers=["*"])
    return app


def _routes(app: FastAPI, service: ChatService) -> None:
    created = int(time.time())

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = ModelCard(id=service.settings.served_name, created=created, max_model_len=service.settings.caps.context)
        return dump(ModelList(data=[card]))

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(service.metrics.render(service.engine.stats()),
                                 media_type="text/plain; version=0.0.4")

    @app.post("/v1/chat/completions")
    async def chat(body: ChatCompletionRequest, raw: Request) -> Response:
        try:
            job = await run_in_threadpool(service.prepare, body)
        except ApiError as e:
            service.metrics.refused(e.status)
            raise
        except Exception:
            service.metrics.refused(500)
            raise
        service.metrics.started()
        try:
            if body.stream:
                lines = stream_search(service, job) if job.sampling is None else stream(service, job, service.submit(job))
                return StreamingResponse(lines, media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            if job.sampling is None:
                result = await service.run_search(job)
                service.finished(job, 200, tokens=result.tokens_generated)
                return JSONResponse(dump(service.search_response(job, result)))
            completions = await service.wait(job, lambda: _disconnected(raw))
        except ClientGone:
            service.finished(job, 499)
            return Response(status_code=499)
        except ApiError as e:
            service.finished(job, e.status)
            raise
        except Exception:
            service.finished(job, 500)  # a bug of ours: counted here, answered by `bug` below
            raise
        service.finished(job, 200, completions)
        return JSONResponse(dump(service.response(job, completions)))


async def _disconnected(request: Request) -> None:
    """Returns once the client has closed the connection (the body is read already, so the next
    ASGI message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _handlers(app: FastAPI, service: ChatService) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        # a request that does not fit the schema is the client's mistake: 400, as OpenAI and vLLM say
        service.metrics.refused(400)
        message, param = validation_message(list(e.errors()))
        return JSONResponse(error_body(400, message, param, "invalid_request"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        if e.status_code == 404:
            message = f"no route {request.method} {request.url.path}; see /v1/models and /v1/chat/completions"
        elif e.status_code == 405:
            message = f"{request.url.path} does not take {request.method}"
        else:
            message = str(e.detail)
        return JSONResponse(error_body(e.status_code, message, None, None), status_code=e.status_code,
                            headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def bug(_: Request, e: Exception) -> JSONResponse:
        return JSONResponse(error_body(500, f"internal error: {type(e).__name__}: {e}"), status_code=500)


DRAIN = 4  # bodies up to this many times the limit are read (and dropped) before the 413


class _Guard:
    """ASGI middleware: the API key on /v1/ routes, and the body size limit (413)."""

    def __init__(self, app: Any, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.key = api_key.encode() if api_key else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if self.key is not None and scope["path"].startswith("/v1/") and scope["method"] != "OPTIONS":
            given = headers.get("authorization", b"")
            token = given[7:].strip() if given[:7].lower() == b"bearer " else b""
            if not hmac.compare_digest(token, self.key):  # constant time: no key guessed byte by byte
                what = "no API key was given" if not given else "the API key is wrong"
                return await _send(send, 401, error_body(401, f"{what}: send 'Authorization: Bearer KEY'",
                                                         None, "invalid_api_key"))
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            if int(length) <= DRAIN * self.max_body_bytes:
                # read and drop a body not far over the limit first: a client still sending when
                # the answer comes and the connection closes sees a broken pipe, not the 413
                while (message := await receive())["type"] == "http.request" and message.get("more_body"):
                    pass
            return await _send(send, 413, too_large(f"the request body is {int(length)} bytes, over this "
                                                    f"server's limit of {self.max_body_bytes}").body())
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        # read the body here, counting (a chunked body has no length to check up front)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                return await _send(send, 413, too_large(f"the request body is over this server's limit of "
                                                        f"{self.max_body_bytes} bytes").body())
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)


async def _send(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
