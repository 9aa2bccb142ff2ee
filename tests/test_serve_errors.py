"""`llava-cot serve` refuses what it cannot do as OpenAI's API and vLLM do: each of these bad
requests gets a 4xx in the `{"error": {...}}` shape with a message that says what is wrong, and the
server answers a good request right after. Also: the API key, CORS, remote images, a full queue."""

import asyncio
import base64
import io
import random
from http.server import BaseHTTPRequestHandler

import openai
import pytest
from PIL import Image
from tests.http_server import serve
from tests.serve_server import data_url, get, post, running

from llava_cot import models
from llava_cot.engines.hf import HFEngine
from llava_cot.serve import ServeConfig, build

IMAGE = models.open_image("examples/scene1.png")
GOOD_URL = data_url(IMAGE)


def _png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _b64(data, kind="image/png"):
    return f"data:{kind};base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def engine():
    e = HFEngine(max_batch=8)
    yield e
    e.close()


@pytest.fixture(scope="module")
def url(engine):
    cfg = ServeConfig(max_image_mb=0.5, max_body_mb=2, max_tokens=1024, max_n=4)
    with running(build(cfg, engine)) as base:
        yield base


@pytest.fixture(scope="module")
def images():
    """The bad images, built once: a truncated PNG, a 20000x20000 one (a few kB compressed,
    400 million pixels decoded), a 5000x5000 one (over the server's pixel limit, under PIL's own),
    and noise over the 0.5 MiB limit."""
    good = _png_bytes(IMAGE)
    noise = Image.frombytes("RGB", (500, 500), random.Random(0).randbytes(500 * 500 * 3))
    return {"truncated": good[: len(good) // 2], "bomb": _png_bytes(Image.new("1", (20000, 20000))),
            "big": _png_bytes(noise), "wide": _png_bytes(Image.new("1", (5000, 5000)))}


def ask(content=None, **extra):
    content = content if content is not None else [{"type": "image_url", "image_url": {"url": GOOD_URL}},
                                                   {"type": "text", "text": "How many circles are there?"}]
    return {"model": "embedded", "messages": [{"role": "user", "content": content}], **extra}


def image_part(url):
    return [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is this?"}]


# name: (request body (or a function of the bad images), status, words the message must say)
BAD = {
    "malformed JSON": (b'{"model": "embedded", "messages": [', 400, "not valid json"),
    "messages not a list": ({"model": "embedded", "messages": "hello"}, 400, "messages"),
    "temperature not a number": (ask(temperature="hot"), 400, "temperature"),
    "no messages field": ({"model": "embedded"}, 400, "messages is required"),
    "empty messages": ({"model": "embedded", "messages": []}, 400, "messages"),
    "empty role": ({"messages": [{"role": "", "content": "hi"}]}, 400, "role"),
    "unknown role": ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "role"),
    "no text": (ask([{"type": "image_url", "image_url": {"url": GOOD_URL}}]), 400, "no text"),
    "empty content": (ask(""), 400, "no content"),
    "image_url not a URL": (ask(image_part("a picture of circles")), 400, "not a url"),
    "bad base64": (ask(image_part("data:image/png;base64,iVBOR%%%")), 400, "base64"),
    "data URL not an image": (ask(image_part(_b64(b"hello", "text/plain"))), 400, "not an image"),
    "image bytes not an image": (ask(image_part(_b64(b"GIF? no, just text"))), 400, "not an image"),
    "truncated PNG": (lambda im: ask(image_part(_b64(im["truncated"]))), 400, "truncated"),
    "decompression bomb": (lambda im: ask(image_part(_b64(im["bomb"]))), 413, "400,000,000 pixels"),
    "image over the pixel limit": (lambda im: ask(image_part(_b64(im["wide"]))), 413, "5000x5000"),
    "image over the byte limit": (lambda im: ask(image_part(_b64(im["big"]))), 413, "limit"),
    "two images": (ask([*image_part(GOOD_URL), {"type": "image_url", "image_url": {"url": GOOD_URL}}]), 400,
                   "2 images"),
    "file URL": (ask(image_part("file:///etc/passwd")), 400, "file:"),
    "remote URL while off": (ask(image_part("http://127.0.0.1:9/x.png")), 400, "--allow-remote-images"),
    "n over the cap": (ask(n=50), 400, "at most 4"),
    "max_tokens over the cap": (ask(max_tokens=100000), 400, "cap"),
    "prompt over the context": (ask("circle " * 3000), 400, "context"),
    "negative temperature": (ask(temperature=-0.5), 400, "temperature"),
    "top_p of 0": (ask(top_p=0), 400, "top_p"),
    "too many stop strings": (ask(stop=[f"s{i}" for i in range(40)]), 400, "stop"),
    "unknown search": (ask(search="telepathy"), 400, "unknown search"),
    "unknown judge": (ask(search="best_of_n", judge="oracle"), 400, "unknown judge"),
    "beam of 0": (ask(search="stage_beam", beam=0), 400, "beam"),
    "unknown model": ({**ask(), "model": "gpt-7"}, 404, "gpt-7"),
    "last message the assistant's": ({"messages": [{"role": "user", "content": "hi"},
                                                   {"role": "assistant", "content": "So"}]}, 400,
                                     "continue_final_message"),
    "system message late": ({"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "x"}]},
                            400, "put it first"),
    "max_tokens of 0": (ask(max_tokens=0), 400, "max_tokens"),
    "top_logprobs over 20": (ask(logprobs=True, top_logprobs=50), 400, "top_logprobs"),
    "a search with n": (ask(search="best_of_n", n=2), 400, "n is not taken"),
    "tools": (ask(tools=[{"type": "function", "function": {"name": "f"}}]), 400, "tools"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_request_is_a_4xx_that_says_what_is_wrong(name, url, images):
    body, status, words = BAD[name]
    got, answer = post(url + "/chat/completions", body(images) if callable(body) else body)
    assert got == status, answer
    assert set(answer["error"]) == {"message", "type", "param", "code"}
    assert words.lower() in answer["error"]["message"].lower()
    # and the server is still fine
    good = openai.OpenAI(base_url=url, api_key="unused", max_retries=0).chat.completions.create(
        model="embedded", messages=ask()["messages"], max_tokens=1)
    assert good.choices[0].finish_reason == "length"


def test_an_unknown_route_and_a_body_over_the_limit(url):
    status, answer = get(url + "/completions/nothing")
    assert status == 404 and "no route" in answer["error"]["message"]
    status, answer = post(url + "/chat/completions", ask("x" * (3 * 2**20)))
    assert status == 413 and "limit" in answer["error"]["message"]


@pytest.fixture(scope="module")
def keyed(engine):
    cfg = ServeConfig(api_key="sesame", cors="http://example.test", allow_remote_images=True, max_image_mb=0.5)
    with running(build(cfg, engine)) as base:
        yield base


def test_the_api_key_is_required_when_set(keyed):
    for key, words in ((None, "no api key"), ("open sesame", "wrong")):
        status, answer = post(keyed + "/chat/completions", ask(max_tokens=1),
                              {"Authorization": f"Bearer {key}"} if key else {})
        assert status == 401 and words in answer["error"]["message"].lower()
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=keyed, api_key="guess", max_retries=0).models.list()
    client = openai.OpenAI(base_url=keyed, api_key="sesame", max_retries=0)
    assert client.chat.completions.create(model="embedded", messages=ask()["messages"], max_tokens=1).choices
    assert get(keyed.removesuffix("/v1") + "/health")[0] == 200  # probes need no key


def test_cors_only_for_the_origin_given(url, keyed):
    import urllib.request

    def preflight(base):
        request = urllib.request.Request(base + "/chat/completions", method="OPTIONS", headers={
            "Origin": "http://example.test", "Access-Control-Request-Method": "POST"})
        try:
            with urllib.request.urlopen(request) as r:
                return r.headers.get("Access-Control-Allow-Origin")
        except urllib.error.HTTPError as e:
            return e.headers.get("Access-Control-Allow-Origin")

    assert preflight(keyed) == "http://example.test"
    assert preflight(url) is None


class _Images(BaseHTTPRequestHandler):
    def do_GET(self):
        data = self.server.app[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_remote_images_when_allowed_within_the_byte_limit(keyed, images):
    client = openai.OpenAI(base_url=keyed, api_key="sesame", max_retries=0)
    with serve(_Images, {"/scene.png": _png_bytes(IMAGE), "/big.png": images["big"]}) as where:
        host = where.removesuffix("/v1")
        r = client.chat.completions.create(model="embedded", messages=ask(image_part(host + "/scene.png"))["messages"],
                                           max_tokens=1)
        assert r.usage.prompt_tokens > 16  # the image's tokens are in the prompt
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(model="embedded", messages=ask(image_part(host + "/big.png"))["messages"])
        assert e.value.status_code == 413
    status, _ = post(keyed + "/chat/completions", ask(image_part("file:///etc/hosts")), {"Authorization": "Bearer sesame"})
    assert status == 400  # file: never, remote images on or not


def test_a_full_queue_is_a_429_and_the_rest_are_answered():
    small = HFEngine(max_batch=1, max_queue=1)
    with running(build(ServeConfig(), small)) as base:
        async def burst():
            async with openai.AsyncOpenAI(base_url=base, api_key="unused", max_retries=0) as client:
                calls = [client.chat.completions.create(model="embedded", messages=ask()["messages"], max_tokens=40)
                         for _ in range(5)]
                return await asyncio.gather(*calls, return_exceptions=True)

        outcomes = asyncio.run(burst())
        refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
        answered = [o for o in outcomes if not isinstance(o, Exception)]
        assert refused and answered and len(refused) + len(answered) == 5
        assert "busy" in refused[0].message
    small.close()
