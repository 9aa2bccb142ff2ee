"""The demo's API: `gradio_client`'s `/ask` takes an image file and a question (the other
controls optional, with the page's defaults) and returns the object `llava-cot ask --json` prints;
a user's mistake comes back as the error's message. The app runs in this process, on a free port."""

from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the demo extra: pip install -e '.[demo]'")

from llava_cot import models
from llava_cot.ask import ask
from llava_cot.demo.app import Demo, build
from llava_cot.demo.browser import free_port
from llava_cot.demo.images import Limits
from llava_cot.engines.hf import HFEngine

SCENE = Path(__file__).resolve().parents[1] / "examples" / "scene1.png"
QUESTION = "How many circles are there?"


@pytest.fixture(scope="module")
def served():
    engine = HFEngine(models.load(None, device="cpu", dtype="float32"))
    page = build(Demo(engine, Limits()))
    port = free_port()
    page.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield engine, f"http://127.0.0.1:{port}/"
    finally:
        page.close()


def same_answer(got, want):
    """Equal but for the seconds it took and the forward passes (the engine's prefix cache may
    have saved the second asking a prefill)."""
    strip = lambda r: {**r, "search": {k: v for k, v in r["search"].items()  # noqa: E731
                                       if k not in ("seconds", "forward_passes")}}
    assert strip(got) == strip(want)


def test_ask_endpoint_returns_what_ask_json_prints(served, tmp_path):
    from gradio_client import Client, handle_file

    engine, url = served
    client = Client(url, verbose=False)
    image = models.open_image(SCENE)
    got = client.predict(handle_file(str(SCENE)), QUESTION, api_name="/ask")
    same_answer(got, ask(image, QUESTION, engine))
    assert got["answer"] == "4" and got["trace"] == []
    searched = client.predict(handle_file(str(SCENE)), QUESTION, search="stage_beam", beam=2, max_new_tokens=768,
                              api_name="/ask")
    same_answer(searched, ask(image, QUESTION, engine, 768, search="stage_beam", beam=2))
    assert [s["stage"] for s in searched["trace"]] == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
    # a user's mistake: the error's message, and the endpoint keeps answering
    from gradio_client.exceptions import AppError

    junk = tmp_path / "notes.png"
    junk.write_text("not an image")
    with pytest.raises(AppError, match=r"the image notes\.png cannot be read"):
        client.predict(handle_file(str(junk)), QUESTION, api_name="/ask")
    with pytest.raises(AppError, match="the question is empty"):
        client.predict(handle_file(str(SCENE)), " ", api_name="/ask")
    with pytest.raises(AppError, match="unknown search"):
        client.predict(handle_file(str(SCENE)), QUESTION, search="nope", api_name="/ask")
    assert client.predict(handle_file(str(SCENE)), QUESTION, api_name="/ask")["answer"] == "4"
