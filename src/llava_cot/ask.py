"""`llava-cot ask --image PATH "QUESTION"`: one question about one image, answered in four stages.

The stages are printed, labelled, as the model streams them; then the final answer. `--json`
prints one object instead: {"stages": {...}, "answer": ..., "text": ..., "search": {...cost...}}.
With no --model the embedded model shipped in the package answers, offline.

    llava-cot ask --image examples/scene1.png "How many objects are there?"
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from llava_cot import stages
from llava_cot.errors import LlavaCotError


@dataclass
class AskConfig:
    """Answer a question about an image, reasoning in four stages (SUMMARY, CAPTION, REASONING, CONCLUSION)."""

    question: str = field(metadata={"help": "the question about the image", "positional": True})
    image: str = field(metadata={"help": "path of the image (PNG, JPEG, ...)"})
    model: str | None = field(default=None, metadata={"help": "model directory or hub id (default: the embedded model)"})
    json: bool = field(default=False, metadata={"help": "print one JSON object instead of streaming the stages"})
    max_new_tokens: int = field(default=1536, metadata={"help": "most tokens to generate"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, or auto"})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16 or float16"})

    def __post_init__(self) -> None:
        if not self.question.strip():
            raise LlavaCotError("the question is empty")
        if self.max_new_tokens < 1:
            raise LlavaCotError("--max-new-tokens must be at least 1")


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
        on_text: Any = None) -> dict[str, Any]:
    """Answer one question: the result object of `--json`. `model` is a `models.Loaded` or a name."""
    from llava_cot import generation, models

    loaded = model if isinstance(model, models.Loaded) else models.load(model)
    t0 = time.perf_counter()
    gen = generation.generate(loaded, [image], [question], max_new_tokens=max_new_tokens, on_text=on_text)[0]
    seconds = time.perf_counter() - t0
    parsed = stages.parse(gen.text)
    return {
        "stages": {s: parsed.stages.get(s, "") for s in stages.STAGES},
        "answer": stages.answer_text(gen.text),
        "text": gen.text,
        "format_ok": parsed.ok,
        "search": {"name": "greedy", "tokens_generated": gen.tokens, "forward_passes": gen.tokens,
                   "judge_calls": 0, "seconds": round(seconds, 3)},
    }


def main(cfg: AskConfig) -> int:
    from llava_cot import models

    image = models.open_image(cfg.image)  # before loading the model: a bad path fails fast
    loaded = models.load(cfg.model, device=cfg.device, dtype=cfg.dtype)
    if cfg.json:
        print(json.dumps(ask(image, cfg.question, loaded, cfg.max_new_tokens), ensure_ascii=False))
        return 0
    printer = _StagePrinter(sys.stdout)
    result = ask(image, cfg.question, loaded, cfg.max_new_tokens, on_text=printer)
    printer.close()
    cost = result["search"]
    print(f"\nAnswer: {result['answer']}")
    print(f"({cost['tokens_generated']} tokens in {cost['seconds']:.2f} s"
          + ("" if result["format_ok"] else "; the response is not in the four-stage format") + ")",
          file=sys.stderr)
    return 0
