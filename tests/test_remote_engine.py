"""The OpenAI-compatible engine against a real HTTP server running in this process.

The server is a few lines of http.server speaking /v1/chat/completions: it records each request's
JSON and answers with canned, spec-shaped responses (vLLM's, with `stop_reason`, or OpenAI's
without), so the engine's requests and its reading of the answers are both checked end to end.
"""

import base64
import io
import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest
from PIL import Image
from tests.http_server import serve

from llava_cot.engines import Prompt, Sampling, load_engine
from llava_cot.errors import LlavaCotError

MODEL = "test/tiny-cot"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        app = self.server.app
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with app.lock:
            app.requests.append({"path": self.path, **request})
        status, body = app.respond(request)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output quiet
        pass


class FakeServer:
    def __init__(self):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.respond = lambda request: (200, reply([choice("ok")]))
        self.url = None  # set while served

    def engine(self, **options):
        return load_engine("openai", base_url=self.url, model=MODEL, max_retries=0, **options)


@pytest.fixture
def server():
    s = FakeServer()
    with serve(_Handler, s) as s.url:
        yield s


def choice(text, finish="stop", stop_reason=None, tokens=None, top=None, index=0, logprobs=True):
    """One response choice; `tokens` are (token, logprob) pairs (default: one per character)."""
    tokens = tokens if tokens is not None else [(ch, -0.25) for ch in text]
    c = {"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
    if stop_reason != "omit":  # OpenAI's responses carry no stop_reason at all
        c["stop_reason"] = stop_reason
    if logprobs:
        entries = [{"token": t, "logprob": lp, "bytes": None, "top_logprobs": []} for t, lp in tokens]
        if top is not None:
            entries[0]["top_logprobs"] = [{"token": t, "logprob": lp, "bytes": None} for t, lp in top]
        c["logprobs"] = {"content": entries}
    else:
        c["logprobs"] = None
    return c


def reply(choices, prompt_tokens=11, completion_tokens=None):
    for i, c in enumerate(choices):
        c["index"] = i
    if completion_tokens is None:
        completion_tokens = sum(len(c["logprobs"]["content"]) for c in choices if c["logprobs"])
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": MODEL, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def image():
    img = Image.new("RGB", (4, 3), (200, 10, 10))
    img.putpixel((1, 1), (0, 255, 0))
    return img


def test_generate_sends_the_prompt_and_maps_the_choices(server):
    server.respond = lambda request: (200, reply([
        choice("two circles", stop_reason="</A>", tokens=[("two", -0.5), (" circles", -1.0)]),
        choice("done", stop_reason=None, tokens=[("done", -0.125)]),  # end of turn
        choice("and so", finish="length", tokens=[("and", -1.0), (" so", -2.0)]),
    ], prompt_tokens=40))
    engine = server.engine()
    prompt = Prompt(image(), "How many circles?", partial="<A>I count ")
    sampling = Sampling(n=3, temperature=0.7, top_p=0.9, max_new_tokens=32, stop=("</A>", "</B>"), seed=5)
    (outs,) = engine.generate([prompt], sampling)

    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions" and req["model"] == MODEL
    assert (req["n"], req["temperature"], req["top_p"], req["max_tokens"], req["seed"]) == (3, 0.7, 0.9, 32, 5)
    assert req["stop"] == ["</A>", "</B>"] and req["logprobs"] is True
    user, assistant = req["messages"]
    picture, question = user["content"]
    assert question == {"type": "text", "text": "How many circles?"}
    url = picture["image_url"]["url"]
    assert picture["type"] == "image_url" and url.startswith("data:image/png;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.size == (4, 3) and sent.convert("RGB").tobytes() == image().tobytes()
    assert assistant == {"role": "assistant", "content": "<A>I count "}
    assert req["continue_final_message"] is True and req["add_generation_prompt"] is False

    assert [o.text for o in outs] == ["two circles</A>", "done", "and so"]  # the stop string put back
    assert [o.finish for o in outs] == ["stop", "end", "length"]
    assert [o.tokens for o in outs] == [2, 1, 2]
    assert [o.logprob for o in outs] == pytest.approx([-1.5, -0.125, -3.0])
    assert (engine.cost.tokens_generated, engine.cost.forward_passes, engine.cost.prompt_tokens) == (5, 1, 40)


def test_no_partial_or_no_continue_sends_no_vllm_extras(server):
    engine = server.engine()
    engine.generate([Prompt(None, "Hi")], Sampling())
    engine_off = server.engine(continue_partial=False)
    engine_off.generate([Prompt(None, "Hi", partial="So")], Sampling())
    fresh, off = server.requests
    assert fresh["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert "stop" not in fresh and "seed" not in fresh
    assert off["messages"][-1] == {"role": "assistant", "content": "So"}
    assert "continue_final_message" not in fresh and "continue_final_message" not in off


def test_server_that_does_not_name_the_stop_string_gives_end(server):
    # OpenAI's own shape: no stop_reason, and here no logprobs: tokens come from usage.
    server.respond = lambda request: (200, reply([
        choice("a", stop_reason="omit", logprobs=False),
        choice("b", stop_reason="omit", logprobs=False),
    ], completion_tokens=7))
    outs = server.engine().generate([Prompt(None, "q")], Sampling(n=2, stop=("</A>",)))[0]
    assert [(o.text, o.finish, o.tokens, o.logprob) for o in outs] == [("a", "end", 4, 0.0), ("b", "end", 3, 0.0)]


def test_stop_strings_past_four_are_applied_client_side(server):
    stops = ("<1>", "<2>", "<3>", "<4>", "<5>", "<6>")
    tokens = [("ab", -1.0), ("c<", -1.0), ("5>", -1.0), ("de", -1.0), ("<6>", -1.0), ("f", -1.0)]
    server.respond = lambda request: (200, reply([
        choice("abc<5>de<6>f", finish="length", tokens=tokens),
        choice("xy<6>", stop_reason="<2>", tokens=[("xy", -0.5), ("<6>", -0.5)]),
    ]))
    outs = server.engine().generate([Prompt(None, "q")], Sampling(n=2, stop=stops))[0]
    assert server.requests[0]["stop"] == list(stops[:4])
    assert [(o.text, o.finish, o.tokens) for o in outs] == [("abc<5>", "stop", 3), ("xy<6>", "stop", 2)]
    assert [o.logprob for o in outs] == pytest.approx([-3.0, -1.0])


def test_choice_logprobs_reads_the_top_candidates(server):
    top = [(" yes", -0.5), ("yes", -1.5), ("Yes", -4.0), ("No", -2.0), ("May", -3.0), ("1", -5.0)]
    server.respond = lambda request: (200, reply([choice("x", tokens=[(" yes", -0.5)], top=top)]))
    engine = server.engine()
    [got] = engine.choice_logprobs([Prompt(image(), "Is it?", partial="Verdict: ")],
                                   ["yes", "Yes", "no", "Maybe so", "2", "absent"])
    (req,) = server.requests
    assert (req["max_tokens"], req["logprobs"], req["top_logprobs"], req["temperature"]) == (1, True, 20, 0.0)
    assert req["continue_final_message"] is True
    assert got[0] == pytest.approx(math.log(math.exp(-0.5) + math.exp(-1.5)))  # " yes" and "yes" together
    assert got[1:4] == pytest.approx([-4.0, -2.0, -3.0])  # case first; then any case; then the first token
    assert got[4:] == [float("-inf"), float("-inf")]


def test_prompts_run_concurrently_and_results_keep_their_order(server):
    in_flight, most = [0], [0]
    barrier = threading.Barrier(2, timeout=3)  # only passes when two requests are in flight at once

    def respond(request):
        i = int(request["messages"][0]["content"][0]["text"][1:])
        with server.lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            barrier.wait()
            time.sleep(0.02 * (4 - i))  # later prompts answer sooner
        except threading.BrokenBarrierError:
            return 500, {"error": {"message": "requests were not concurrent"}}
        finally:
            with server.lock:
                in_flight[0] -= 1
        return 200, reply([choice(f"a{i}")])

    server.respond = respond
    engine = server.engine(max_concurrency=2)
    outs = engine.generate([Prompt(None, f"q{i}") for i in range(4)], Sampling())
    assert [o[0].text for o in outs] == ["a0", "a1", "a2", "a3"]
    assert most[0] == 2
    assert engine.cost.forward_passes == 4 and engine.cost.tokens_generated == 8


def test_unknown_model_is_a_one_line_error(server):
    body = {"object": "error", "message": f"The model `{MODEL}` does not exist.\nSee /v1/models.",
            "type": "NotFoundError", "param": None, "code": 404}
    server.respond = lambda request: (404, body)
    with pytest.raises(LlavaCotError) as info:
        server.engine().generate([Prompt(None, "q")], Sampling())
    message = str(info.value)
    assert "\n" not in message
    assert "404" in message and MODEL in message and server.url in message and "does not exist" in message


def test_refused_connection_is_a_one_line_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    engine = load_engine("openai", base_url=url, model=MODEL, max_retries=0, timeout=5)
    with pytest.raises(LlavaCotError, match="cannot reach") as info:
        engine.choice_logprobs([Prompt(None, "q")], ["yes"])
    assert url in str(info.value) and "\n" not in str(info.value)
