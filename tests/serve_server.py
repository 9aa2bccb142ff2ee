"""`llava-cot serve`'s app on a real uvicorn server, on a free localhost port, in a thread."""

import base64
import contextlib
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import uvicorn


@contextlib.contextmanager
def running(app):
    """Serve the ASGI `app`; yields the base URL of its API ("http://127.0.0.1:PORT/v1")."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def data_url(image, fmt="PNG"):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def post(url, body, headers=None):
    """(status, parsed JSON body) of a raw POST; `body` bytes are sent as they are."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    return _open(request)


def get(url, headers=None):
    return _open(urllib.request.Request(url, headers=headers or {}))


def _open(request):
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            raw = response.read()
            status, kind = response.status, response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        raw, status, kind = e.read(), e.code, e.headers.get("Content-Type", "")
    return status, (json.loads(raw) if "json" in kind else raw.decode())
