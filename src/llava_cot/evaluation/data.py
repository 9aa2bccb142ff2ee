"""Benchmarks `llava-cot eval` can score: a registered one (llava_cot.benches), or a data file in
the LLaVA-CoT layout whose records carry a gold "answer" (and "options" for multiple choice).

A data file is read by the registry's "records" bench: an item per record, keyed by the record's
id, its "family" as the category. FileBench and SynthBench below do the same for a registry
without "records" or the synthetic splits (a stand-in, rendered with the same fixed seed).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llava_cot import answers, records, stages
from llava_cot.benches import Bench, Item, accuracy_by
from llava_cot.errors import LlavaCotError

SYNTH_SPLITS = {"synth-test": "test", "synth-hard": "hard", "synth-train": "train"}
BENCH_SEED = 1234  # the synthetic benches' seed: fixed, so scores are comparable across runs


def _opener(path: Path, owner: Any = None) -> Any:
    def open_image() -> Any:
        from llava_cot import models

        _ = owner  # held by the closure: a temporary directory lives as long as its items
        return models.open_image(path)

    return open_image


class FileBench:
    """A LLaVA-CoT data file with gold answers, as a Bench."""

    def __init__(self, path: str | None = None):
        self.path = path
        self.name = path or "file"
        self._dir: Any = None  # a temporary directory the images are in, if any

    def load(self, source: str | None = None, limit: int = 0) -> list[Item]:
        path = Path(source or self.path or "")
        if not path.is_file():
            raise LlavaCotError(f"bench {path} is not a data file")
        items: list[Item] = []
        lines: dict[str, int] = {}
        for rec in records.read(path, on_error="skip"):
            if "answer" not in rec.extra:
                raise LlavaCotError(f"{path}: record at line {rec.line} has no gold 'answer' field")
            if rec.id in lines:  # predictions are keyed by id: two items under one key cannot both be scored
                raise LlavaCotError(f"{path}: id {rec.id!r} at line {rec.line} repeats the id at line {lines[rec.id]}")
            lines[rec.id] = rec.line
            image = _opener(path.parent / rec.image, self._dir) if rec.image is not None else None
            items.append(Item(index=rec.id, question=rec.question, answer=str(rec.extra["answer"]), image=image,
                              options=rec.extra.get("options") or {}, category=str(rec.extra.get("family", "all"))))
            if limit and len(items) >= limit:
                break
        if not items:
            raise LlavaCotError(f"{path}: no records to score")
        return items

    def prompt(self, item: Item) -> str:
        return item.question  # the record's question already lists its options

    def score(self, item: Item, response: str) -> dict[str, Any]:
        return {"index": item.index, "category": item.category, "answer": item.answer,
                "prediction": stages.answer_text(response),
                "correct": answers.is_correct(response, item.answer, item.options or None)}

    def summarise(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return accuracy_by(rows)


class SynthBench(FileBench):
    """A synthetic split rendered on the fly (the stand-in while the registry has none)."""

    def __init__(self, name: str):
        super().__init__(None)
        self.name, self.split = name, SYNTH_SPLITS[name]

    def load(self, source: str | None = None, limit: int = 0) -> list[Item]:
        from llava_cot.synth.generate import SynthConfig, generate

        self._dir = tempfile.TemporaryDirectory(prefix="llava-cot-eval-")
        generate(SynthConfig(out=self._dir.name, n=limit or 1000, split=self.split, seed=BENCH_SEED))
        return super().load(str(Path(self._dir.name) / f"{self.split}.jsonl"), limit)


def resolve(name: str) -> tuple[Bench, bool]:
    """The bench called `name`, and whether it is a data file (the name is then its path)."""
    from llava_cot import benches

    if name.lower() in benches.BENCHES:
        return benches.load_bench(name), False
    if name in SYNTH_SPLITS:
        return SynthBench(name), False
    if Path(name).is_file():
        return (benches.load_bench("records") if "records" in benches.BENCHES else FileBench(name)), True
    known = sorted({*benches.BENCHES, *SYNTH_SPLITS})
    raise LlavaCotError(f"bench {name} is neither a data file nor one of {', '.join(known)}")


def load(name: str, data: str | None = None, limit: int = 0) -> tuple[Bench, list[Item]]:
    """Resolve a bench and load its items (at most `limit`; 0: all). Indices must be unique."""
    bench, is_file = resolve(name)
    items = bench.load(name if is_file else data, limit)
    check_unique(items, name)
    return bench, items


def check_unique(items: Sequence[Item], name: str) -> None:
    """Predictions are keyed by index: two items under one would be scored as one."""
    seen: set[str] = set()
    for item in items:
        if str(item.index) in seen:
            raise LlavaCotError(f"bench {name}: two items share the index {item.index!r}")
        seen.add(str(item.index))
