"""Figures of eval runs, drawn with matplotlib (Agg: no display needed).

`accuracy_by_category` draws one run's accuracy per category (`llava-cot eval` writes it beside
metrics.json). `compute_curve` draws accuracy against the mean tokens generated per item, a point
per run and a line per search method through its beam sizes: the paper's inference-scaling
comparison (Table 6), measured. `llava-cot eval plot` draws it from eval output directories:

    llava-cot eval plot runs/eval-greedy runs/eval-stage-4 runs/eval-bon-4 --out compute.png
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava_cot.errors import LlavaCotError


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def accuracy_by_category(metrics: dict[str, Any], path: str | Path) -> None:
    """A bar per category (and one for all items), accuracy in percent, n under each bar."""
    plt = _pyplot()
    cats = {k: v for k, v in metrics.get("categories", {}).items() if isinstance(v, dict) and "accuracy" in v}
    names = [*cats, "all"]
    accs = [100 * v["accuracy"] for v in cats.values()] + [100 * metrics["accuracy"]]
    ns = [v.get("n", "") for v in cats.values()] + [metrics.get("n", "")]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(names) + 1.5), 3.5))
    bars = ax.bar(range(len(names)), accs, color=["tab:blue"] * len(cats) + ["tab:gray"])
    ax.bar_label(bars, labels=[f"{a:.1f}" for a in accs], fontsize=8)
    ax.set_xticks(range(len(names)), [f"{c}\n(n={n})" for c, n in zip(names, ns, strict=True)],
                  rotation=30 if len(names) > 6 else 0, fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(" ".join(str(metrics[k]) for k in ("bench", "search") if metrics.get(k)) or "accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compute_curve(runs: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Accuracy against mean tokens generated per item: a line per (bench, search) through its
    runs in order of cost, each point labelled with its beam."""
    plt = _pyplot()
    lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    several = len({r.get("bench") for r in runs}) > 1
    for r in runs:
        lines[f"{r.get('bench')}: {r['search']}" if several else r["search"]].append(r)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, rs in sorted(lines.items()):
        rs = sorted(rs, key=lambda r: r["tokens_per_item"])
        xs, ys = [r["tokens_per_item"] for r in rs], [100 * r["accuracy"] for r in rs]
        ax.plot(xs, ys, marker="o", label=label)
        for r, x, y in zip(rs, xs, ys, strict=True):
            ax.annotate(f"N={r.get('beam', 1)}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if all(r["tokens_per_item"] > 0 for r in runs):
        ax.set_xscale("log")  # beams grow geometrically (1, 2, 4, 8...), and so does their cost
        from matplotlib.ticker import FuncFormatter, LogLocator

        plain = FuncFormatter(lambda x, _: f"{x:g}")  # 200, 500, 1000 rather than 2x10^2
        ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
    ax.margins(x=0.1, y=0.15)  # room for the labels of the outermost points
    ax.set_xlabel("tokens generated per item (mean)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy against inference compute")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def read_runs(dirs: Sequence[str]) -> list[dict[str, Any]]:
    """Each directory's metrics.json (an eval output directory, or the file itself)."""
    runs = []
    for d in dirs:
        path = Path(d) / "metrics.json" if Path(d).is_dir() else Path(d)
        try:
            m = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise LlavaCotError(f"cannot read {path} ({e}); give eval output directories") from None
        missing = [k for k in ("accuracy", "tokens_per_item", "search") if k not in m]
        if missing:
            raise LlavaCotError(f"{path} has no {', '.join(missing)}: not written by `llava-cot eval`")
        runs.append({**m, "dir": str(d)})
    return runs


@dataclass
class PlotConfig:
    """Draw accuracy against tokens generated per item for several eval runs (their output
    directories), a line per search method through its beam sizes."""

    runs: list[str] = field(metadata={"help": "eval output directories (each with metrics.json)",
                                      "positional": True, "nargs": "+"})
    out: str = field(default="compute.png", metadata={"help": "the PNG file to write"})


def main(cfg: PlotConfig) -> int:
    runs = read_runs(cfg.runs)
    compute_curve(runs, cfg.out)
    print("| search | beam | judge | accuracy | tokens / item | judge calls / item | s / item | n | run |\n"
          "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in sorted(runs, key=lambda r: (r["search"] != "greedy", r["search"], r["tokens_per_item"])):
        calls, seconds = r.get("judge_calls_per_item"), r.get("seconds_per_item")
        print(f"| {r['search']} | {r.get('beam', 1)} | {r.get('judge') or '-'} | {r['accuracy']:.1%} | "
              f"{r['tokens_per_item']:.0f} | {'-' if calls is None else f'{calls:.1f}'} | "
              f"{'-' if seconds is None else f'{seconds:.2f}'} | {r.get('n', '-')} | {r['dir']} |")
    print(f"wrote {cfg.out}")
    return 0
