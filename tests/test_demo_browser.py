"""`llava-cot demo` in a real browser (headless Chromium from the system's package, driven by
Playwright): upload an example, ask, watch the four stage boxes fill and the embedded model's
answer appear; ask again with stage_beam and see its candidates. Prints the time from pressing
Ask to the first stage text and to the answer, and saves a screenshot:

    OMP_NUM_THREADS=1 python -m pytest -q -s -p no:randomly tests/test_demo_browser.py
"""

from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the demo extra: pip install -e '.[demo]'")
pytest.importorskip("playwright", reason="the demo extra: pip install -e '.[demo]'")

from llava_cot import models, stages
from llava_cot.ask import ask
from llava_cot.demo import browser as web
from llava_cot.demo import view
from llava_cot.engines.hf import HFEngine

pytestmark = pytest.mark.slow

try:
    web.chromium()
except Exception as e:  # no system browser here (CI installs Debian's chromium)
    pytest.skip(str(e), allow_module_level=True)

SCENE = str(Path(__file__).resolve().parents[1] / "examples" / "scene1.png")
QUESTION = "How many circles are there?"
TITLES = [view.title(s) for s in stages.STAGES]


def stage_boxes(page):
    """The boxes of the chat's last answer that are stages: title -> text."""
    found = {}
    for title, text in web.boxes(page):
        word = title.split()[0]  # "Summary (0.4s)"
        if word in TITLES:
            found[word] = text
    return found


def test_the_page_streams_the_four_stages_and_shows_what_a_search_weighed(tmp_path):
    web.chromium()  # fails, saying how to install it, if there is no system Chromium
    want = ask(models.open_image(SCENE), QUESTION, HFEngine(models.load(None, device="cpu")))["answer"]
    with web.served(["--port", str(web.free_port())]) as url, web.browser() as page:
        web.open_page(page, url)
        web.upload(page, SCENE)
        # a mistake first: a message in the page, then the session goes on
        page.click("#ask")
        page.wait_for_function("document.querySelector('#chat').innerText.includes('the question is empty')",
                               timeout=60_000)
        greedy = web.ask(page, QUESTION)
        boxes = stage_boxes(page)
        assert list(boxes) == TITLES and all(boxes.values()), boxes
        assert web.answers(page) == [want]
        assert "tokens generated" in web.chat_text(page)
        assert greedy["first_stage_text"] is not None and greedy["first_stage_text"] < greedy["answer"]
        # again in a new chat (the image uploaded anew), with a search: its candidates are shown
        web.upload(page, SCENE)
        page.wait_for_function("!document.querySelector('#chat').innerText.includes('Answer:')", timeout=30_000)
        searched = web.ask(page, QUESTION, search="stage_beam", beam=2)
        text = web.chat_text(page)
        assert "What stage_beam weighed: 4 steps" in text and text.count("✓ chosen") == 4
        assert "wins 1" in text and "wins 0" in text  # at least one stage had two candidates to weigh
        assert web.answers(page) == [want] and list(stage_boxes(page)) == TITLES
        shot = tmp_path / "demo.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
    for name, t in (("greedy", greedy), ("stage_beam --beam 2", searched)):
        first = "none" if t["first_stage_text"] is None else f"{t['first_stage_text']:.2f} s"
        print(f"\n{name}: first stage text after {first}, answer after {t['answer']:.2f} s (from pressing Ask)")
    print(f"screenshot: {shot}")
