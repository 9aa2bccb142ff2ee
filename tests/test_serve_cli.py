"""`llava-cot serve` as a user starts it: the key from $LLAVA_COT_API_KEY, a warning when it
listens beyond localhost without one."""

import os
import socket
import subprocess
import sys
import time

import pytest
from tests.serve_server import get


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*args, env=None):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "llava_cot", "serve", "--port", str(port), *args],
                               env={**os.environ, **(env or {})}, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if get(f"http://127.0.0.1:{port}/health")[0] == 200:
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("llava-cot serve did not start: " + process.stderr.read())


def stop(process):
    process.terminate()
    return process.communicate(timeout=30)[1]


@pytest.mark.slow
def test_the_key_comes_from_the_environment():
    process, base = start(env={"LLAVA_COT_API_KEY": "from-env"})
    try:
        assert get(base + "/v1/models")[0] == 401
        status, models = get(base + "/v1/models", {"Authorization": "Bearer from-env"})
        assert status == 200 and models["data"][0]["id"] == "embedded"
    finally:
        stop(process)


@pytest.mark.slow
def test_listening_beyond_localhost_without_a_key_warns():
    env = {k: v for k, v in os.environ.items() if k != "LLAVA_COT_API_KEY"}
    process, _ = start("--host", "0.0.0.0", env=env)
    assert "without an API key" in stop(process)
