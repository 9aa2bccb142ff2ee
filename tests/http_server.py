"""A real HTTP server on a free localhost port, in a thread, for tests of our HTTP clients."""

import contextlib
import threading
from http.server import ThreadingHTTPServer


@contextlib.contextmanager
def serve(handler, app):
    """Serve `handler` (a BaseHTTPRequestHandler class; it finds `app` as `self.server.app`);
    yields the base URL of an OpenAI-style API ("http://127.0.0.1:PORT/v1")."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.app = app
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
