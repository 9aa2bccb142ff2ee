"""The demo's Gradio page and its API endpoint, over one engine.

    from llava_cot.demo.app import Demo, build
    page = build(Demo(engine, Limits(), examples()))
    page.launch()

`Demo.respond` is the page's handler: a generator that yields the chat so far while the answer
streams (the engine decodes on its own thread; `ask` hands each decoded piece over a queue), so
the stage boxes fill as the model writes them. A search shows its stages once it has chosen
them, with what it weighed. `Demo.api` is `/ask` for `gradio_client`: the `ask --json` object.
Every error a user can cause becomes a message in the chat; the conversation is left as it was.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from llava_cot.demo import view
from llava_cot.demo.images import Limits, load_image, where
from llava_cot.errors import LlavaCotError
from llava_cot.judges import JUDGES
from llava_cot.search import SEARCHES

log = logging.getLogger("llava_cot.demo")
OWN_JUDGE = "default"  # the judge control's value for "the search's own judge"


@dataclass(frozen=True)
class Settings:
    """The page's controls, and their defaults (those of `llava-cot ask`)."""

    search: str = "greedy"
    beam: int = 4
    judge: str = OWN_JUDGE
    temperature: float = 0.7  # of a search's samples; greedy decodes greedily
    max_new_tokens: int = 1536

    def options(self) -> dict[str, Any]:
        """`llava_cot.ask.ask`'s keyword arguments."""
        if self.search not in SEARCHES:
            raise LlavaCotError(f"unknown search {self.search!r}; choose one of {', '.join(SEARCHES)}")
        if self.judge != OWN_JUDGE and self.judge not in JUDGES:
            raise LlavaCotError(f"unknown judge {self.judge!r}; choose one of {OWN_JUDGE}, {', '.join(JUDGES)}")
        if int(self.beam) < 1 or int(self.max_new_tokens) < 1 or float(self.temperature) < 0:
            raise LlavaCotError("beam and max tokens must be at least 1, temperature at least 0")
        return {"search": self.search, "beam": int(self.beam), "judge": None if self.judge == OWN_JUDGE else self.judge,
                "temperature": float(self.temperature), "max_new_tokens": int(self.max_new_tokens)}


@dataclass
class Conversation:
    """One chat about one image: its turns go back to the model with each follow-up question."""

    image: str | None = None  # the server-side path of the image the chat is about
    turns: list[tuple[str, str]] = field(default_factory=list)  # (question, four-stage answer)
    messages: list[dict[str, Any]] = field(default_factory=list)  # what the chat shows


def stream(work: Callable[[Callable[[str], None]], Any]) -> Iterator[tuple[str, Any]]:
    """Run `work(on_text)` on a thread; yield ("text", everything decoded since the last yield)
    as it comes, then ("done", its result). Its exception is raised here."""
    box: queue.Queue[tuple[str, Any]] = queue.Queue()

    def run() -> None:
        try:
            box.put(("done", work(lambda piece: box.put(("text", piece)))))
        except BaseException as e:  # handed to the page's thread, which reports it
            box.put(("error", e))

    threading.Thread(target=run, name="llava-cot-demo-answer", daemon=True).start()
    while True:
        kind, value = box.get()
        text = ""
        while kind == "text":  # gather what has queued up meanwhile: one page update for it all
            text += value
            try:
                kind, value = box.get_nowait()
            except queue.Empty:
                kind, value = "wait", None
        if text:
            yield "text", text
        if kind == "error":
            raise value
        if kind == "done":
            yield "done", value
            return


class Demo:
    """The demo's logic over one engine (in-process or remote), independent of the page layout."""

    def __init__(self, engine: Any, limits: Limits | None = None, examples: list[str] | None = None) -> None:
        self.engine = engine
        self.limits = limits or Limits()
        self.examples = examples or []

    def _ask(self, image: Any, question: str, settings: Settings, history: list[tuple[str, str]],
             on_text: Callable[[str], None] | None) -> dict[str, Any]:
        from llava_cot.ask import ask

        options = settings.options()
        return ask(image, question, self.engine, options.pop("max_new_tokens"), on_text=on_text, history=history,
                   **options)

    def _checked(self, image: Any, question: str | None) -> tuple[Any, str]:
        question = (question or "").strip()
        if not question:
            raise LlavaCotError("the question is empty: type one, then press Ask")
        return load_image(image, self.limits), question

    def api(self, image: Any, question: str, search: str = "greedy", beam: int = 4, judge: str = OWN_JUDGE,
            temperature: float = 0.7, max_new_tokens: int = 1536) -> dict[str, Any]:
        """`/ask`: one question about one image; the object `llava-cot ask --json` prints."""
        import gradio as gr

        try:
            pil, question = self._checked(image, question)
            return self._ask(pil, question, Settings(search, beam, judge, temperature, max_new_tokens), [], None)
        except LlavaCotError as e:
            raise gr.Error(str(e), print_exception=False) from None

    def respond(self, image: Any, question: str, search: str, beam: int, judge: str, temperature: float,
                max_new_tokens: int, convo: Conversation | None) -> Iterator[tuple[Any, Conversation, Any]]:
        """The page's handler: yields (chat messages, conversation, question box) as the answer forms."""
        import gradio as gr

        path, _ = where(image)
        if convo is None or convo.image != path:  # another image: another conversation
            convo = Conversation(image=path)
        settings = Settings(search, beam, judge, temperature, max_new_tokens)
        try:
            pil, question = self._checked(image, question)
            settings.options()
        except LlavaCotError as e:
            yield [*convo.messages, view.error(e)], convo, gr.skip()
            return
        shown = [*convo.messages, {"role": "user", "content": view.escape(question)}]
        waiting = view.note(f"*{search}: weighing {int(beam)} candidates per step…*" if search != "greedy"
                            else "*thinking…*")
        yield [*shown, waiting], convo, ""
        answer = view.Answer()
        try:
            for kind, value in stream(lambda on_text: self._ask(pil, question, settings, convo.turns, on_text)):
                if kind == "text":
                    answer.feed(value)
                    yield [*shown, *(answer.messages() or [waiting])], convo, gr.skip()
                else:
                    result = value
        except LlavaCotError as e:
            yield [*convo.messages, view.error(e)], convo, question
            return
        except Exception as e:  # a bug: say so in the page, keep the session, keep the traceback in the log
            log.exception("the demo failed to answer")
            bug = view.error(f"{type(e).__name__}: {e} (a bug: the log has its traceback)")
            yield [*convo.messages, bug], convo, question
            return
        answer.close()
        convo.messages = [*shown, *answer.final(result)]
        convo.turns.append((question, result["text"]))
        yield convo.messages, convo, gr.skip()


def theme() -> Any:
    import gradio as gr

    # system fonts only: the default theme's Google fonts cannot load offline
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def build(demo: Demo, concurrency: int = 8) -> Any:
    """The page (a gr.Blocks): image and examples, the search controls, the chat, and `/ask`."""
    import gradio as gr

    with gr.Blocks(title="llava-cot") as page:
        gr.Markdown("## llava-cot: ask about an image, watch the four stages form\n"
                    "Summary, caption, reasoning and conclusion stream in their own boxes; a search "
                    "shows the candidates it weighed at each stage.")
        convo = gr.State(None)
        with gr.Row():
            with gr.Column(scale=2):
                image = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"], label="Image",
                                 height=280, elem_id="image")
                if demo.examples:
                    gr.Examples(demo.examples, inputs=image, label="Examples")
                with gr.Accordion("Search", open=True):
                    search = gr.Dropdown(list(SEARCHES), value=Settings.search, label="search", elem_id="search")
                    beam = gr.Slider(1, 8, value=Settings.beam, step=1, label="beam (candidates per step)",
                                     elem_id="beam")
                    judge = gr.Dropdown([OWN_JUDGE, *JUDGES], value=Settings.judge, label="judge", elem_id="judge")
                    temperature = gr.Slider(0, 1.5, value=Settings.temperature, step=0.05,
                                            label="temperature (of a search's samples)")
                    max_tokens = gr.Slider(16, 2048, value=Settings.max_new_tokens, step=16, label="max tokens")
            with gr.Column(scale=3):
                chat = gr.Chatbot(label="Answer", height="78vh", min_height=480, elem_id="chat", buttons=["copy_all"])
                with gr.Row():
                    question = gr.Textbox(placeholder="Ask about the image (follow-ups keep the chat)",
                                          show_label=False, scale=5, elem_id="question")
                    ask = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
        api_out = gr.JSON(visible=False)
        api_button = gr.Button(visible=False)
        controls = [image, question, search, beam, judge, temperature, max_tokens]
        # raw payloads (preprocess=False): the image's file is opened by us, so an unreadable one
        # becomes our message in the chat rather than Gradio's error
        gr.on([ask.click, question.submit], demo.respond, [*controls, convo], [chat, convo, question],
              api_visibility="private", preprocess=False, concurrency_limit=concurrency)
        api_button.click(demo.api, controls, api_out, api_name="ask", preprocess=False,
                         concurrency_limit=concurrency)
        image.change(lambda: ([], None), None, [chat, convo], api_visibility="private")
    return page
