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

Every factory takes the same keyword options, so a caller can pass them whatever the bench:
`match` ("ours" | "vlmeval" | "vlmeval-raw": how an option or yes/no is read; choice.py),
`judge` (a `judge.Judge`, or None), `judge_fallback` (ask the judge when no rule reads a
multiple-choice or yes/no answer; off by default), `log` (where skipped rows are reported;
stderr). `bench.bad` lists the rows `load` skipped. `guess_bench(path)` names the benchmark a
downloaded file belongs to (MMStar.tsv -> "mmstar"). The benchmarks, their files and how each is
scored: docs/benchmarks.md.
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


SCORES = ("accuracy", "aAcc", "fAcc", "qAcc")  # the scores a summary may give, in table order
_HEADS = {"categories": "category", "l2_categories": "l2-category", "skills": "skill", "combinations": "capabilities"}


def table(metrics: dict[str, Any], key: str = "categories") -> str:
    """A summary as a markdown table, the way benchmark papers report it: a line per category (or
    per entry of `key`: "l2_categories", "skills", "combinations"), then the overall line."""
    groups: dict[str, dict[str, Any]] = metrics.get(key) or {}
    scores = [s for s in SCORES if s in metrics and (not groups or all(s in g for g in groups.values()))]
    lines = [f"| {_HEADS.get(key, key)} | n | " + " | ".join(scores) + " |",
             "| --- | ---: |" + " ---: |" * len(scores)]
    for name, g in [*groups.items(), ("**all**", metrics)]:
        lines.append(f"| {name} | {g['n']} | " + " | ".join(f"{g[s]:.1%}" for s in scores) + " |")
    return "\n".join(lines)


_PKG = "llava_cot.benches"
BENCHES: dict[str, str] = {  # name -> "module:factory"
    "synth-test": f"{_PKG}.synth:synth_test",
    "synth-hard": f"{_PKG}.synth:synth_hard",
    "synth-train": f"{_PKG}.synth:synth_train",
    "synth-phrasings": f"{_PKG}.synth:synth_phrasings",
    "records": f"{_PKG}.synth:records_file",
    "mmstar": f"{_PKG}.choice:mmstar",
    "mmbench": f"{_PKG}.choice:mmbench",
    "ai2d": f"{_PKG}.choice:ai2d",
    "ai2d_no_mask": f"{_PKG}.choice:ai2d_no_mask",
    "hallusionbench": f"{_PKG}.hallusion:hallusionbench",
    "mathvista": f"{_PKG}.judged:mathvista",
    "mmvet": f"{_PKG}.judged:mmvet",
}


def load_bench(name: str, **options: Any) -> Bench:
    import importlib

    key = name.lower()
    key = key if key in BENCHES else key.replace("-", "_")
    try:
        module, factory = BENCHES[key].split(":")
    except KeyError:
        raise LlavaCotError(f"unknown benchmark {name!r}; choose one of {', '.join(sorted(BENCHES))}") from None
    return getattr(importlib.import_module(module), factory)(**options)


# What a downloaded file's path says about its benchmark, tried in order (VLMEvalKit's file names,
# lmms-eval's data set names).
_FILE_NAMES = (("mmstar", "mmstar"), ("mmbench", "mmbench"), ("ai2d_test_no_mask", "ai2d_no_mask"),
               ("ai2d-no-mask", "ai2d_no_mask"), ("ai2d", "ai2d"), ("hallusion", "hallusionbench"),
               ("mathvista", "mathvista"), ("mmvet", "mmvet"), ("mm-vet", "mmvet"))


def guess_bench(path: str) -> str | None:
    """The benchmark a data file belongs to, from its path ("~/LMUData/MMStar.tsv" -> "mmstar";
    a .jsonl or .json file -> "records"), or None."""
    lowered = str(path).lower()
    if lowered.endswith((".jsonl", ".json")):
        return "records"
    return next((bench for part, bench in _FILE_NAMES if part in lowered), None)
