"""`llava-cot ask --image PATH "QUESTION"`: one question about one image, answered in four stages.

The stages are printed, labelled, as the model streams them; then the final answer. `--json`
prints one object instead: {"stages": {...}, "answer": ..., "text": ..., "search": {...cost...},
"trace": [...what the search weighed, llava_cot.search...]}.
With no --model the embedded model shipped in the package answers, offline. `--search NAME`
spends more compute for a better answer (llava_cot.search: best_of_n, sentence_beam, stage_beam,
swires, self_consistency), sampling `--beam` candidates per step; the stages are then printed
once the search has chosen them, with what the search cost.

    llava-cot ask --image examples/scene1.png "How many objects are there?"
    llava-cot ask --image examples/scene1.png "How many objects are there?" --search stage_beam --beam 4
    llava-cot ask --image examples/scene1.png "How many objects are there?" --base-url http://HOST:8000/v1

With --base-url the model served there answers (vLLM, SGLang, any OpenAI-compatible server; no
local model is loaded), and `--judge-checkpoint` / `--judge-base-url` give a search's judge its own
model (llava_cot.engines.options).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from llava_cot import stages
from llava_cot.engines.options import EngineOptions
from llava_cot.errors import LlavaCotError
from llava_cot.judges import JUDGES
from llava_cot.search import SEARCHES  # names only: the searches themselves load lazily


@dataclass
class AskConfig(EngineOptions):
    """Answer a question about an image, reasoning in four stages (SUMMARY, CAPTION, REASONING, CONCLUSION)."""

    question: str = field(metadata={"help": "the question about the image", "positional": True})
    image: str = field(metadata={"help": "path of the image (PNG, JPEG, ...)"})
    model: str | None = field(default=None, metadata={"help": "model directory or hub id (default: the embedded model)"})
    json: bool = field(default=False, metadata={"help": "print one JSON object instead of streaming the stages"})
    search: str = field(default="greedy", metadata={"help": "inference-time search", "choices": list(SEARCHES)})
    beam: int = field(default=4, metadata={"help": "candidates sampled per search step"})
    judge: str | None = field(default=None, metadata={
        "help": "the search's judge (default: its own)", "choices": list(JUDGES)})
    seed: int = field(default=0, metadata={"help": "sampling seed of the search"})
    max_new_tokens: int = field(default=1536, metadata={"help": "most tokens to generate"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, or auto"})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16 or float16"})

    def __post_init__(self) -> None:
        if not self.question.strip():
            raise LlavaCotError("the question is empty")
        if self.max_new_tokens < 1:
            raise LlavaCotError("--max-new-tokens must be at least 1")
        if self.beam < 1:
            raise LlavaCotError("--beam must be at least 1")


class _StagePrinter:
    """Feeds streamed text to a StreamParser and prints each stage under its label, a blank line
    between stages. Trailing whitespace is held back until more text of the stage follows."""

    def __init__(self, out: Any) -> None:
        self.parser = stages.StreamParser()
        self.out = out
        self.started = False  # anything printed yet
        self.fresh = True  # at the start of a stage's text
        self.held = ""  # trailing whitespace not yet printed

    def __call__(self, piece: str) -> None:
        self._show(self.parser.feed(piece))

    def close(self) -> None:
        self._show(self.parser.close())

    def _show(self, events: list[stages.Event]) -> None:
        for e in events:
            if isinstance(e, stages.StageStart):
                self._write(("\n" if self.started else "") + f"{e.stage}\n")
                self.started, self.fresh, self.held = True, True, ""
            elif isinstance(e, stages.StageText) and e.stage is not None:
                text = self.held + (e.text.lstrip() if self.fresh else e.text)
                body = text.rstrip()
                self.held = text[len(body):]
                if body:
                    self._write(body)
                    self.fresh = False
            elif isinstance(e, stages.StageEnd):
                self._write("\n")
                self.held = ""

    def _write(self, s: str) -> None:
        self.out.write(s)
        self.out.flush()


def ask(image: Any, question: str, model: Any = None, max_new_tokens: int = 1536,
        on_text: Any = None, search: str = "greedy", beam: int = 4, seed: int = 0,
        judge: str | None = None, temperature: float = 0.7, history: Any = (),
        judge_engine: Any = None) -> dict[str, Any]:
    """Answer one question: the result object of `--json`. `model` is an engine (llava_cot.engines),
    a `models.Loaded` or a model name. A greedy answer from a local engine streams through
    `on_text` as it is decoded; a search returns once it has chosen. `temperature` is the search's
    sampling temperature; `history` earlier (question, answer) turns about the same image. The
    search's judge asks `judge_engine` when one is given, else the answering model."""
    from llava_cot.engines import Prompt, Sampling
    from llava_cot.search import SearchConfig, run

    engine = model if hasattr(model, "generate") else _engine(model)
    prompt = Prompt(image, question, history=tuple(history))
    trace: list[dict[str, Any]] = []  # greedy chooses nothing
    if search == "greedy" and hasattr(engine, "submit"):
        t0, before = time.perf_counter(), engine.cost.copy()
        request = engine.submit(prompt, Sampling(max_new_tokens=max_new_tokens))
        for delta in request.stream():
            if on_text is not None:
                on_text(delta.text)
        [done] = request.result()
        spent = engine.cost - before
        text, cost = done.text.strip(), {"name": "greedy", "tokens_generated": done.tokens,
                                         "forward_passes": spent.forward_passes, "judge_calls": 0,
                                         "seconds": round(time.perf_counter() - t0, 3)}
    else:
        result = run(search, engine, prompt,
                     SearchConfig(beam=beam, max_new_tokens=max_new_tokens, seed=seed, judge=judge,
                                  temperature=temperature), judge_engine=judge_engine)
        text, cost, trace = result.text, result.cost(), result.trace
        if on_text is not None:
            on_text(text)
    parsed = stages.parse(text)
    return {
        "stages": {s: parsed.stages.get(s, "") for s in stages.STAGES},
        "answer": stages.answer_text(text),
        "text": text,
        "format_ok": parsed.ok,
        "search": cost,
        "trace": trace,
    }


def _engine(model: Any) -> Any:
    from llava_cot.engines.hf import HFEngine

    return HFEngine(model)


def main(cfg: AskConfig) -> int:
    from llava_cot import models
    from llava_cot.engines import options as engines

    engines.check(cfg)
    image = models.open_image(cfg.image)  # before loading the model: a bad path fails fast
    if cfg.model is None and cfg.base_url is None:  # the embedded model: say when the image is not of its world
        from llava_cot.synth import world

        if note := world.note(image):
            print(note, file=sys.stderr)
    remote = engines.answering(cfg, concurrency=max(8, cfg.beam))  # with --base-url nothing loads here
    judge_engine = engines.judging(cfg, cfg.device, cfg.dtype, concurrency=max(8, cfg.beam))
    loaded = remote or models.load(cfg.model, device=cfg.device, dtype=cfg.dtype)
    options = {"search": cfg.search, "beam": cfg.beam, "seed": cfg.seed, "judge": cfg.judge,
               "judge_engine": judge_engine}
    if cfg.json:
        print(json.dumps(ask(image, cfg.question, loaded, cfg.max_new_tokens, **options), ensure_ascii=False))
        engines.report(remote, judge_engine)
        return 0
    printer = _StagePrinter(sys.stdout)
    result = ask(image, cfg.question, loaded, cfg.max_new_tokens, on_text=printer, **options)
    printer.close()
    cost = result["search"]
    print(f"\nAnswer: {result['answer']}")
    judged = f", {cost['judge_calls']} judge calls" if cost["judge_calls"] else ""
    print(f"({cost['name']}: {cost['tokens_generated']} tokens generated, {cost['forward_passes']} forward passes"
          f"{judged}, {cost['seconds']:.2f} s"
          + ("" if result["format_ok"] else "; the response is not in the four-stage format") + ")",
          file=sys.stderr)
    engines.report(remote, judge_engine)
    return 0
