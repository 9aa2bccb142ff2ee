"""`llava-cot eval`: score a model (with a search, or batched greedy decoding) on a benchmark,
resumably. See llava_cot.evaluation for the commands and files."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava_cot import stages
from llava_cot.benches import Bench, Item
from llava_cot.errors import LlavaCotError
from llava_cot.evaluation import data, metrics, store
from llava_cot.judges import JUDGES

SEARCH_CHOICES = ["greedy", "best_of_n", "sentence_beam", "stage_beam", "swires", "self_consistency"]


@dataclass
class EvalConfig(data.ScoringOptions):
    """Score a model on a benchmark: accuracy per category, format validity, and the cost of an
    answer. Resumable: rerun the same command with the same --out after a kill. See also
    `llava-cot eval score` (score a predictions file) and `llava-cot eval plot` (compute curves)."""

    model: str | None = field(default=None, metadata={"help": "model directory or hub id (default: embedded)"})
    bench: str = field(default="synth-test", metadata={
        "help": "a registered benchmark (synth-test, synth-hard, mmstar, ...) or a LLaVA-CoT data file with answers"})
    data: str | None = field(default=None, metadata={"help": "the benchmark's data file (TSV etc.) where it needs one"})
    limit: int = field(default=1000, metadata={"help": "score at most this many items (0: all)"})
    batch_size: int = field(default=32, metadata={"help": "items generated together (greedy)"})
    max_new_tokens: int = field(default=1536, metadata={"help": "most tokens per response"})
    search: str = field(default="greedy", metadata={"help": "inference-time search", "choices": SEARCH_CHOICES})
    beam: int = field(default=4, metadata={"help": "candidates sampled per search step"})
    judge: str | None = field(default=None, metadata={
        "help": "the search's judge (default: its own)", "choices": list(JUDGES)})
    seed: int = field(default=0, metadata={"help": "sampling seed of the search"})
    out: str | None = field(default=None, metadata={
        "help": "directory for predictions.jsonl, run.json, metrics.json/.md and plots; a rerun resumes it"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, or auto"})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16 or float16"})


def row(bench: Bench, item: Item, response: str, cost: dict[str, Any]) -> dict[str, Any]:
    """An item's prediction row: the bench's score, the response and its stages, and its cost."""
    parsed = stages.parse(response)
    return {"index": item.index, "category": item.category, "answer": item.answer, **bench.score(item, response),
            "response": response, "stages": {s: parsed.stages.get(s, "") for s in stages.STAGES},
            "format_ok": parsed.ok, **cost}


def answer_greedy(loaded: Any, bench: Bench, items: Sequence[Item], batch_size: int,
                  max_new_tokens: int) -> Iterator[list[dict[str, Any]]]:
    """Rows a batch at a time, by one batched greedy `generate` per batch."""
    from llava_cot import generation

    for i in range(0, len(items), batch_size):
        batch = items[i : i + batch_size]
        images = [item.image() if item.image else None for item in batch]
        t0 = time.perf_counter()
        outs = generation.generate(loaded, images, [bench.prompt(item) for item in batch],
                                   max_new_tokens=max_new_tokens)
        seconds = (time.perf_counter() - t0) / len(batch)  # the batch's time, shared among its items
        # An item is in the batch's forward passes until it stops: one per token it generated.
        yield [row(bench, item, out.text, {"tokens_generated": out.tokens, "forward_passes": out.tokens,
                                           "judge_calls": 0, "seconds": seconds})
               for item, out in zip(batch, outs, strict=True)]


def answer_search(loaded: Any, bench: Bench, items: Sequence[Item], search: str,
                  config: Any) -> Iterator[list[dict[str, Any]]]:
    """Rows one item at a time, each answered by `search` (a search batches within an item)."""
    from llava_cot.engines import Prompt
    from llava_cot.engines.hf import HFEngine
    from llava_cot.search import run

    engine = HFEngine(loaded)
    for item in items:
        result = run(search, engine, Prompt(item.image() if item.image else None, bench.prompt(item)), config)
        yield [row(bench, item, result.text, {
            "tokens_generated": result.tokens_generated, "forward_passes": result.forward_passes,
            "judge_calls": result.judge_calls, "seconds": result.seconds, "notes": result.notes})]


def evaluate(loaded: Any, bench: Bench, items: Sequence[Item], out: Path | None = None, search: str = "greedy",
             config: Any = None, batch_size: int = 32, max_new_tokens: int = 1536,
             progress: bool = True) -> list[dict[str, Any]]:
    """The rows of `items`, in order. With `out`, rows already in out/predictions.jsonl are reused
    (their items are not answered again) and each new batch's rows are appended as it finishes."""
    from tqdm import tqdm

    data.check_unique(items, getattr(bench, "name", "bench"))
    done = {str(r["index"]): r for r in store.load_rows(out)} if out is not None else {}
    todo = [item for item in items if str(item.index) not in done]
    if search == "greedy":
        batches = answer_greedy(loaded, bench, todo, batch_size, max_new_tokens)
    else:
        batches = answer_search(loaded, bench, todo, search, config)
    writer = store.Appender(out)
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=f"eval {search}", unit="item",
               disable=not progress)
    try:
        for rows in batches:
            writer.write(rows)
            done.update((str(r["index"]), r) for r in rows)
            bar.update(len(rows))
    finally:
        writer.close()
        bar.close()
    return [done[str(item.index)] for item in items]


def settings(cfg: EvalConfig, model_path: str) -> dict[str, Any]:
    """What a resumed run must share with the one it continues."""
    greedy = cfg.search == "greedy"
    local = Path(model_path).is_dir()
    bench = str(Path(cfg.bench).resolve()) if Path(cfg.bench).is_file() else cfg.bench
    return {"model": str(Path(model_path).resolve()) if local else model_path,
            "model_fingerprint": store.model_fingerprint(model_path), "bench": bench,
            "data": str(Path(cfg.data).resolve()) if cfg.data else None, "search": cfg.search,
            "beam": 1 if greedy else cfg.beam, "max_new_tokens": cfg.max_new_tokens, "seed": cfg.seed,
            "judge": None if greedy else cfg.judge,
            # each row is scored as it is written: a resumed run must read answers the same way
            "match": cfg.match, "answer_from": cfg.answer_from}


def main(cfg: EvalConfig) -> int:
    import sys

    from llava_cot import models

    if cfg.batch_size < 1 or cfg.max_new_tokens < 1:
        raise LlavaCotError("--batch-size and --max-new-tokens must be at least 1")
    config = None
    if cfg.search != "greedy":
        from llava_cot.search import SearchConfig

        config = SearchConfig(beam=cfg.beam, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, judge=cfg.judge)
    # Everything a user can get wrong is checked before the run directory is made.
    model_path = models.resolve(cfg.model)
    bench, items = data.load(cfg.bench, cfg.data, cfg.limit, **data.bench_options(cfg, cfg.out))
    out = Path(cfg.out) if cfg.out else None
    run = settings(cfg, model_path)
    if out is not None:
        store.check_settings(out, run)
    loaded = models.load(cfg.model, device=cfg.device, dtype=cfg.dtype)
    rows = evaluate(loaded, bench, items, out, cfg.search, config, cfg.batch_size, cfg.max_new_tokens)
    if out is not None and (extra := len(store.load_rows(out)) - len(rows)) > 0:
        print(f"{out / store.PREDICTIONS}: {extra} rows are of items beyond this run's --limit; not counted",
              file=sys.stderr)
    m = {"model": loaded.name, "bench": cfg.bench, "search": cfg.search, "beam": run["beam"], "judge": run["judge"],
         "max_new_tokens": cfg.max_new_tokens, "seed": cfg.seed, **metrics.summarise(bench, rows)}
    print(metrics.table(m))
    if out is not None:
        metrics.write(out, m)
    print(json.dumps({k: m.get(k) for k in ("bench", "search", "beam", "n", "accuracy", "format_valid",
                                            "tokens_per_item", "forward_passes_per_item", "judge_calls_per_item",
                                            "seconds_per_item")}))
    return 0
