"""An eval's figures: the bench's own summary (accuracy overall and per category, and whatever
its paper reports), with format validity and the mean cost of an answer beside it; written as
metrics.json, a Markdown table (metrics.md) and a bar chart of accuracy per category."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llava_cot.benches import Bench

COSTS = ("tokens_generated", "forward_passes", "judge_calls", "seconds")
# mean cost per item in metrics.json: "tokens_per_item" is the x axis of the compute curves
COST_KEYS = {"tokens_generated": "tokens_per_item", "forward_passes": "forward_passes_per_item",
             "judge_calls": "judge_calls_per_item", "seconds": "seconds_per_item"}


def _rate(rows: Sequence[dict[str, Any]], key: str) -> float:
    return sum(bool(r.get(key)) for r in rows) / len(rows) if rows else 0.0


def summarise(bench: Bench, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The bench's summary of `rows`, plus format validity (overall and per category) and the
    mean of each cost that the rows record."""
    summary = dict(bench.summarise(rows))
    summary["format_valid"] = _rate(rows, "format_ok")
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[str(r.get("category", "all"))].append(r)
    for name, cat in summary.get("categories", {}).items():
        if isinstance(cat, dict) and name in groups:
            cat.setdefault("format_valid", _rate(groups[name], "format_ok"))
    for cost, key in COST_KEYS.items():
        if any(cost in r for r in rows):
            summary[key] = sum(r.get(cost, 0) for r in rows) / len(rows)
    if any("retraces" in (r.get("notes") or {}) for r in rows):  # a retracing search (SWIRES)
        retraced = [r for r in rows if (r.get("notes") or {}).get("retraces")]
        summary["retraced_items"] = len(retraced)
        if retraced:
            summary["accuracy_when_retraced"] = _rate(retraced, "correct")
    return summary


def _pct(x: Any) -> str:
    return f"{x:.1%}" if isinstance(x, (int, float)) else "-"


def _figure(x: float) -> str:
    """A rate (a float in [0, 1]) in percent, anything else as a number."""
    return _pct(x) if isinstance(x, float) and 0 <= x <= 1 else f"{x:.4g}"


def table(metrics: dict[str, Any]) -> str:
    """Markdown: a row per category and one for all items, then any other figure of the summary."""
    lines = ["| category | n | accuracy | format valid |", "| --- | ---: | ---: | ---: |"]
    for name, m in metrics.get("categories", {}).items():
        lines.append(f"| {name} | {m.get('n', '-')} | {_pct(m.get('accuracy'))} | {_pct(m.get('format_valid'))} |")
    lines.append(f"| **all** | {metrics['n']} | {_pct(metrics['accuracy'])} | {_pct(metrics.get('format_valid'))} |")
    standard = {"n", "accuracy", "format_valid", "categories", "beam", "seed", "max_new_tokens", *COST_KEYS.values()}
    extra = {k: v for k, v in metrics.items()
             if k not in standard and isinstance(v, (int, float)) and not isinstance(v, bool)}
    costs = {k: metrics[k] for k in COST_KEYS.values() if k in metrics}
    if extra or costs:
        lines += ["", "| figure | value |", "| --- | ---: |"]
        lines += [f"| {k} | {_figure(v)} |" for k, v in extra.items()]
        lines += [f"| {k} | {v:.3g} |" for k, v in costs.items()]
    return "\n".join(lines)


def write(out: Path, metrics: dict[str, Any]) -> None:
    """metrics.json, metrics.md and accuracy_by_category.png in `out`."""
    from llava_cot import plots

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    title = f"{metrics.get('bench', '')} {metrics.get('search', '')}".strip()
    (out / "metrics.md").write_text(f"# {title or 'eval'}\n\n{table(metrics)}\n")
    plots.accuracy_by_category(metrics, out / "accuracy_by_category.png")
