"""Benchmarks: each one is a small unit registered by name, as in lmms-eval and VLMEvalKit.

A benchmark does three things: `load` its items (from a file the user downloaded, or generated
for the synthetic splits), build the `prompt` the model sees for an item, and `score` one
response against an item. `summarise` turns the scored rows into the metrics the benchmark's
paper reports (overall, per category, and benchmark-specific ones such as MMBench's circular
accuracy or HallusionBench's aAcc / fAcc / qAcc); the default is accuracy overall and per
category.

    from llava_cot.benches import load_bench
    bench = load_bench("mmstar")
    items = bench.load("~/LMUData/MMStar.tsv", limit=0)
    row = bench.score(items[0], response_text)      # {"index", "correct", "prediction", ...}
    metrics = bench.summarise(rows)                  # {"n", "accuracy", "categories": {...}, ...}
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from llava_cot.errors import LlavaCotError


@dataclass
class Item:
    index: str  # unique within the benchmark: predictions files are keyed by it
    question: str  # the question as the data set states it (options not included)
    answer: str  # the gold answer: an option letter, a number, Yes/No or free text
    image: Callable[[], Any] | None  # loads the PIL image when called (TSVs hold base64 strings)
    options: dict[str, str] = field(default_factory=dict)  # letter -> option text
    category: str = "all"
    extra: dict[str, Any] = field(default_factory=dict)  # benchmark-specific fields (e.g. circular group)


class Bench(Protocol):
    name: str

    def load(self, source: str | None, limit: int = 0) -> list[Item]: ...

    def prompt(self, item: Item) -> str: ...

    def score(self, item: Item, response: str) -> dict[str, Any]: ...

    def summarise(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]: ...


def accuracy_by(rows: Sequence[dict[str, Any]], key: str = "category") -> dict[str, Any]:
    """Accuracy overall and per value of `key`: the default summary."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[str(r.get(key, "all"))].append(r)
    if not rows:
        return {"n": 0, "accuracy": 0.0, "categories": {}}
    return {"n": len(rows), "accuracy": sum(bool(r["correct"]) for r in rows) / len(rows),
            "categories": {k: {"n": len(v), "accuracy": sum(bool(r["correct"]) for r in v) / len(v)}
                           for k, v in sorted(groups.items())}}


BENCHES: dict[str, str] = {}  # name -> "module:factory"; filled in as benchmarks are added


def load_bench(name: str, **options: Any) -> Bench:
    import importlib

    try:
        module, factory = BENCHES[name.lower()].split(":")
    except KeyError:
        raise LlavaCotError(f"unknown benchmark {name!r}; choose one of {', '.join(sorted(BENCHES))}") from None
    return getattr(importlib.import_module(module), factory)(**options)
