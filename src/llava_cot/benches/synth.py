"""The synthetic benchmarks (synth-test, synth-hard, synth-train, synth-phrasings), and any LLaVA-CoT
data file with gold answers ("records"). synth-phrasings is the heldout split: test scenes, each
question worded in a phrasing that no training split uses, to measure generalisation to wording.

    bench = load_bench("synth-test")
    items = bench.load(None, limit=200)         # generated now: seed 1234, the first 200 questions
    bench.load("runs/synth-test", limit=200)    # the same, with the images kept in that folder
    load_bench("records").load("data/test.jsonl")   # records with "answer" (and "options")

A synthetic split is generated on the fly by `llava_cot.synth.generate` with the fixed seed
BENCH_SEED, so every run scores the same items (limit 0 means 1000); the images are read into
memory, so the temporary folder can go. The prompt is the record's question as the model was
trained on it (options included, for the `choice` family). Categories are question families.
A response is right by `answers.is_correct` on its CONCLUSION (number, yes/no, option or text,
as the gold answer is written); with match="vlmeval", options are matched by VLMEvalKit's rules.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from llava_cot import answers, records
from llava_cot.benches import Item, accuracy_by
from llava_cot.benches.choice import check_match, read_choice
from llava_cot.benches.tsv import image_loader
from llava_cot.errors import LlavaCotError

BENCH_SEED = 1234  # the synthetic benches' seed: fixed, so scores are comparable across runs
DEFAULT_N = 1000
OPTIONS_HEADER = "\nOptions:"  # how synth questions list their options (synth/templates.py)


@dataclass
class RecordsBench:
    name: str = "records"
    split: str | None = None  # a synthetic split to generate, or None: read the file given to load
    match: str = "ours"
    judge: Any = None  # accepted for a uniform interface; unused
    judge_fallback: bool = False
    log: TextIO | None = None
    bad: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_match(self.match)

    def load(self, source: str | None, limit: int = 0) -> list[Item]:
        if self.split is None:
            if not source:
                raise LlavaCotError("records needs a LLaVA-CoT JSONL file whose records carry a gold 'answer'")
            return self._read(Path(source).expanduser(), limit, in_memory=False)
        from llava_cot.synth.generate import SynthConfig, generate

        n = limit or DEFAULT_N
        if source:  # keep the generated files there
            generate(SynthConfig(out=source, n=n, split=self.split, seed=BENCH_SEED))
            return self._read(Path(source) / f"{self.split}.jsonl", n, in_memory=False)
        with tempfile.TemporaryDirectory() as tmp:
            generate(SynthConfig(out=tmp, n=n, split=self.split, seed=BENCH_SEED))
            return self._read(Path(tmp) / f"{self.split}.jsonl", n, in_memory=True)

    def _read(self, path: Path, limit: int, in_memory: bool) -> list[Item]:
        if not path.is_file():
            raise LlavaCotError(f"{path} does not exist")
        items = []
        for rec in records.read(path, on_error="skip", log=self.log):
            if "answer" not in rec.extra:
                raise LlavaCotError(f"{path}: record at line {rec.line} has no gold 'answer' field")
            items.append(_item(rec, path.parent, in_memory))
            if limit and len(items) >= limit:
                break
        if not items:
            raise LlavaCotError(f"{path}: no records to score")
        return items

    def prompt(self, item: Item) -> str:
        return item.extra["prompt"]

    def score(self, item: Item, response: str) -> dict[str, Any]:
        gold = item.extra["gold"]
        if item.options and self.match != "ours":
            prediction: Any = read_choice(response, item.options, self.match)
            correct = prediction == item.answer
        else:
            prediction = answers.extract(response, gold, item.options or None)
            correct = answers.is_correct(response, gold, item.options or None)
        return {"index": item.index, "category": item.category, "answer": item.answer,
                "prediction": prediction, "correct": correct}

    def summarise(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return accuracy_by(rows)


def _item(rec: records.Record, root: Path, in_memory: bool) -> Item:
    image = None
    if rec.image is not None:
        path = root / rec.image
        if in_memory:
            try:
                data: bytes | Path = path.read_bytes()
            except OSError as e:
                raise LlavaCotError(f"image {path} cannot be read: {e.strerror or e}") from None
        else:
            data = path
        image = image_loader(data, f"record {rec.id}")
    question = rec.question
    options = {str(k): str(v) for k, v in (rec.extra.get("options") or {}).items()}
    if options and OPTIONS_HEADER in question:
        question = question[: question.index(OPTIONS_HEADER)]
    gold = rec.extra["answer"]
    extra = {"prompt": rec.question, "gold": gold}
    return Item(rec.id, question, str(gold), image, options, str(rec.extra.get("family", "all")), extra)


def synth_test(**options: Any) -> RecordsBench:
    return RecordsBench("synth-test", "test", **options)


def synth_hard(**options: Any) -> RecordsBench:
    return RecordsBench("synth-hard", "hard", **options)


def synth_train(**options: Any) -> RecordsBench:
    return RecordsBench("synth-train", "train", **options)


def synth_phrasings(**options: Any) -> RecordsBench:
    return RecordsBench("synth-phrasings", "heldout", **options)


def records_file(**options: Any) -> RecordsBench:
    return RecordsBench("records", None, **options)
