"""A small OpenAI-compatible server that answers as `transformers serve` (transformers 5.24) was
seen to answer for our embedded model, for tests of the `openai` engine against servers that
are not ours. Real HTTP on a free localhost port (tests.http_server), in this process.

What transformers serve did, request by request (see tests/test_transformers_serve.py):
`n` > 1 -> one choice; `logprobs` / `top_logprobs` -> ignored, `"logprobs": null` (issue 17 saw
a 500 for them instead: `logprobs_status=500`); `stop` -> 500 (it hands the processor, which has
no `get_vocab`, to the stop-string criteria); vLLM's `continue_final_message` /
`add_generation_prompt` -> 422 "Unexpected fields"; a final assistant message without them -> a
fresh assistant turn after it; `seed` -> accepted. Models are listed at GET /v1/models.

The text answered is `answer(seed)`: by default a four-stage answer whose conclusion is the seed.
With `verdicts` (a list of (token, logprob)) it answers a request for `top_logprobs` as vLLM does,
with those as the top candidates: a server a judge can use.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler

from tests.http_server import serve

from llava_cot import stages

MODEL = "/models/tiny-cot"


def four_stages(conclusion):
    return stages.render({"SUMMARY": "I will count.", "CAPTION": "Some shapes.", "REASONING": "I count them.",
                          "CONCLUSION": str(conclusion)})


class TransformersLike:
    """The server's behaviour, and what it was sent (`requests`, each with its "path")."""

    def __init__(self, answer=None, logprobs_status=None, delay=0.0, models=(MODEL,), verdicts=None):
        self.answer = answer or (lambda seed: four_stages(seed))
        self.logprobs_status = logprobs_status  # None: ignore logprobs (as 5.24 did); 500: fail on them
        self.delay = delay
        self.verdicts = verdicts
        self.models = list(models)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0
        self.url = None  # set while served

    def chat(self, request):
        """(status, body) for a chat-completions request."""
        extras = {"continue_final_message", "add_generation_prompt"} & set(request)
        if extras:
            return 422, {"detail": f"Unexpected fields in the request: {extras}"}
        if request.get("stop") is not None:
            return 500, b"Internal Server Error"
        if self.logprobs_status and (request.get("logprobs") or request.get("top_logprobs")):
            return self.logprobs_status, b"Internal Server Error"
        if request.get("model") not in self.models:
            return 400, {"detail": f"Server is pinned to '{self.models[0]}'; requested '{request.get('model')}'."}
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
        finally:
            with self.lock:
                self.in_flight -= 1
        text = self.answer(request.get("seed"))
        if request.get("max_tokens") == 1:
            text = text[:1]
        tokens = len(text.split())
        logprobs = None
        if self.verdicts and request.get("top_logprobs"):
            top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in self.verdicts]
            logprobs = {"content": [{**top[0], "top_logprobs": top}]}
            text = self.verdicts[0][0]
        return 200, {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": request["model"],
                     "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                                  "message": {"role": "assistant", "content": text}}],
                     "usage": {"prompt_tokens": 41, "completion_tokens": tokens, "total_tokens": 41 + tokens}}

    def chats(self):
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        app = self.server.app
        if self.path.rstrip("/").endswith("/v1/models"):
            self._send(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "local"}
                                                        for m in app.models]})
        else:
            self._send(404, {"detail": "Not Found"})

    def do_POST(self):
        app = self.server.app
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with app.lock:
            app.requests.append({"path": self.path, **request})
        self._send(*app.chat(request))

    def _send(self, status, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(body, bytes) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output quiet
        pass


def serving(server):
    """Serve `server` (a TransformersLike); yields its base URL ("http://127.0.0.1:PORT/v1")."""
    return serve(_Handler, server)
