"""The demo's page driven in a real browser: Playwright with the system's Chromium (Debian's
`chromium` package; Playwright never downloads one). Its browser test and
scripts/demo_screenshot.py use it.

    with served(["--port", str(free_port())]) as url, browser() as page:
        page.goto(url)
        upload(page, "examples/scene1.png")
        times = ask(page, "How many circles are there?", search="stage_beam", beam=2)
        times["first_stage_text"], times["answer"]     # seconds after pressing Ask
        boxes(page)                                   # {"Summary": "I will ...", ...}

Timings are taken in the page itself: a MutationObserver on the chat notes when a stage box of
the new answer first holds text and when its answer appears, against the moment of the click.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

from llava_cot.errors import LlavaCotError

ANSWER_MARK = "Answer:"  # how view.Answer.final opens the answer


def chromium() -> str:
    """The system Chromium's path ($LLAVA_COT_CHROMIUM, else chromium on PATH)."""
    found = os.environ.get("LLAVA_COT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise LlavaCotError("no Chromium found: apt-get install -y chromium (or set $LLAVA_COT_CHROMIUM)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(args: Sequence[str], timeout: float = 300) -> Iterator[str]:
    """`llava-cot demo ARGS` in a subprocess (it needs `--port`); yields its URL once it answers."""
    port = int(args[list(args).index("--port") + 1])
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "-m", "llava_cot", "demo", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the demo exited ({proc.returncode}):\n{proc.stdout.read()}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the demo did not answer on {url} within {timeout:.0f} s") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def browser(width: int = 1400, height: int = 1100) -> Iterator[Any]:
    """A headless Chromium page (Playwright's sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            yield b.new_page(viewport={"width": width, "height": height})
        finally:
            b.close()


def open_page(page: Any, url: str, timeout: float = 60) -> None:
    page.goto(url)
    page.wait_for_selector("#image input[type=file]", state="attached", timeout=timeout * 1000)


def upload(page: Any, path: str) -> None:
    page.set_input_files("#image input[type=file]", path)
    page.wait_for_selector("#image img", timeout=30_000)  # the preview: the upload has landed


def choose(page: Any, search: str | None = None, beam: int | None = None) -> None:
    """Set the search controls as a user would."""
    if search is not None:
        page.click("#search input")
        page.click(f"#search li[aria-label={search}]")
    if beam is not None:
        page.fill("#beam input[type=number]", str(beam))
        page.press("#beam input[type=number]", "Enter")


# Installed before the click: records, in ms since the click, when the new answer's first stage
# box shows text (rendered: Gradio fills a box's text before it lays it out) and when its answer
# appears; boxes and answers already there do not count. Checked at every animation frame.
_WATCH = """(mark) => {
  const chat = document.querySelector('#chat');
  const shown = (e) => e && e.offsetHeight > 0 && e.innerText.replace('…', '').trim() !== '';
  const answers = () => [...chat.querySelectorAll('h2')].filter(h => shown(h) && h.innerText.includes(mark)).length;
  const t = window.__demo = {click: null, first: null, answer: null, boxes: 0, answers: 0};
  document.querySelector('#ask').addEventListener('click', () => {
    t.click = performance.now();
    t.boxes = chat.querySelectorAll('.thought-group').length;
    t.answers = answers();
  }, {capture: true, once: true});
  const check = () => {
    if (t.click !== null) {
      const now = performance.now() - t.click;
      if (t.first === null && [...chat.querySelectorAll('.thought-group')].slice(t.boxes).some(
          g => shown(g.querySelector(':scope > .content'))))
        t.first = now;
      if (t.answer === null && answers() > t.answers) t.answer = now;
    }
    if (t.first === null || t.answer === null) requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
}"""


def ask(page: Any, question: str, search: str | None = None, beam: int | None = None,
        timeout: float = 300) -> dict[str, float | None]:
    """Type `question`, press Ask, wait for the answer: seconds from the click to the first stage
    text (None if no box ever filled) and to the answer."""
    choose(page, search, beam)
    page.fill("#question textarea", question)
    page.evaluate(_WATCH, ANSWER_MARK)
    page.click("#ask")
    page.wait_for_function("window.__demo.answer !== null", timeout=timeout * 1000, polling=100)
    # and every box of the answer laid out (a search's boxes come all at once, their text a moment after)
    page.wait_for_function("""() => [...document.querySelectorAll('#chat .thought-group > .content')]
                                   .every(c => c.offsetHeight > 0)""", timeout=30_000, polling=100)
    page.wait_for_timeout(100)  # a frame or two, for the watcher to see them
    t = page.evaluate("window.__demo")
    return {"first_stage_text": None if t["first"] is None else t["first"] / 1000, "answer": t["answer"] / 1000}


def boxes(page: Any) -> list[tuple[str, str]]:
    """Every box in the chat, in order: (title, text)."""
    return page.evaluate("""() => [...document.querySelectorAll('#chat .thought-group')].map(g => [
        g.querySelector(':scope > .title').innerText.trim(),
        (g.querySelector(':scope > .content') || {innerText: ''}).innerText.trim()])""")


def answers(page: Any) -> list[str]:
    """The answers shown, in order (the text after "Answer:")."""
    heads = page.evaluate("() => [...document.querySelectorAll('#chat h2')].map(h => h.innerText)")
    return [h.split(ANSWER_MARK, 1)[1].strip() for h in heads if ANSWER_MARK in h]


def chat_text(page: Any) -> str:
    return page.inner_text("#chat")
