"""`llava-cot eval score`: score a predictions file against a benchmark, without a model.

    llava-cot eval score --bench mmstar --data MMStar.tsv --predictions preds.jsonl --json

A predictions file is JSONL, one {"index": ..., "response": ...} per line (an eval's own
predictions.jsonl is one). Lines that are not such objects are reported with their line numbers
and skipped, and so are indices the bench does not have and repeats of an index already scored.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava_cot.errors import LlavaCotError
from llava_cot.evaluation import data, metrics
from llava_cot.evaluation.metrics import COSTS
from llava_cot.evaluation.run import row


@dataclass
class ScoreConfig(data.ScoringOptions):
    """Score a predictions file (JSONL of {"index", "response"}) against a benchmark."""

    bench: str = field(metadata={"help": "a registered benchmark, or a LLaVA-CoT data file with answers"})
    predictions: str = field(metadata={"help": "JSONL file, one {\"index\", \"response\"} object per line"})
    data: str | None = field(default=None, metadata={"help": "the benchmark's data file where it needs one"})
    limit: int = field(default=0, metadata={"help": "the bench's first N items only (0: all)"})
    json: bool = field(default=False, metadata={"help": "end with one line of JSON: the metrics"})
    out: str | None = field(default=None, metadata={"help": "directory for scored.jsonl, metrics.json/.md and a plot"})


def read_predictions(path: Path, log: Any = None) -> dict[str, tuple[int, dict[str, Any]]]:
    """index -> (line number, prediction) of every good line; bad lines reported on `log`."""
    log = log or sys.stderr
    if not path.is_file():
        raise LlavaCotError(f"predictions file {path} not found")
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"{path}: line {n}: not JSON ({e.msg}); skipped", file=log)
                continue
            if not isinstance(obj, dict) or "index" not in obj or not isinstance(obj.get("response"), str):
                print(f"{path}: line {n}: not an object with an 'index' and a string 'response'; skipped", file=log)
                continue
            key = str(obj["index"])
            if key in found:
                print(f"{path}: line {n}: index {key!r} already predicted at line {found[key][0]}; skipped", file=log)
                continue
            found[key] = (n, obj)
    return found


def main(cfg: ScoreConfig) -> int:
    path = Path(cfg.predictions)
    bench, items = data.load(cfg.bench, cfg.data, cfg.limit, **data.bench_options(cfg, cfg.out))
    found = read_predictions(path)
    known = {str(item.index) for item in items}
    unknown = [(n, k) for k, (n, _) in found.items() if k not in known]
    if unknown:
        listed = ", ".join(f"line {n}: {k!r}" for n, k in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        print(f"{path}: {len(unknown)} indices are not items of {cfg.bench} ({listed}); skipped", file=sys.stderr)
    rows = []
    for item in items:
        if (hit := found.get(str(item.index))) is not None:
            pred = hit[1]
            rows.append(row(bench, item, pred["response"], {k: pred[k] for k in COSTS if k in pred}))
    if not rows:
        raise LlavaCotError(f"no prediction in {path} is for an item of {cfg.bench}")
    missing = len(items) - len(rows)
    if missing:
        print(f"{path}: {missing} of {len(items)} items of {cfg.bench} have no prediction; scored the other "
              f"{len(rows)}", file=sys.stderr)
    m = {"bench": cfg.bench, "predictions": str(path), **metrics.summarise(bench, rows),
         "missing": missing, "unknown": len(unknown)}
    print(metrics.table(m))
    if cfg.out:
        out = Path(cfg.out)
        metrics.write(out, m)
        (out / "scored.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    if cfg.json:
        print(json.dumps(m, ensure_ascii=False))
    return 0
