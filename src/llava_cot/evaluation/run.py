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
from llava_cot.engines.options import EngineOptions
from llava_cot.errors import LlavaCotError
from llava_cot.evaluation import data, metrics, store
from llava_cot.judges import JUDGES
from llava_cot.search import SEARCHES  # names only: the searches themselves load lazily


@dataclass
class EvalConfig(data.ScoringOptions, EngineOptions):
    """Score a model on a benchmark: accuracy per category, format validity, and the cost of an
    answer. Resumable: rerun the same command with the same --out after a kill. With --base-url,
    the model of an OpenAI-compatible server (vLLM, SGLang, ...) answers, --concurrency requests in
    flight. See also `llava-cot eval score` (score a predictions file) and `llava-cot eval plot`
    (compute curves)."""

    model: str | None = field(default=None, metadata={"help": "model directory or hub id (default: embedded)"})
    bench: str = field(default="synth-test", metadata={
        "help": "a registered benchmark (synth-test, synth-hard, mmstar, ...) or a LLaVA-CoT data file with answers"})
    data: str | None = field(default=None, metadata={"help": "the benchmark's data file (TSV etc.) where it needs one"})
    limit: int = field(default=1000, metadata={"help": "score at most this many items (0: all)"})
    batch_size: int = field(default=32, metadata={"help": "items decoding together (greedy): one joins as one ends"})
    concurrency: int = field(default=1, metadata={
        "help": "items searched at once (with --search, or any search with --base-url: the requests in flight); "
                "their candidates decode in one batch"})
    max_new_tokens: int = field(default=1536, metadata={"help": "most tokens per response"})
    search: str = field(default="greedy", metadata={"help": "inference-time search", "choices": list(SEARCHES)})
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


def answer_greedy(engine: Any, bench: Bench, items: Sequence[Item], batch_size: int,
                  max_new_tokens: int) -> Iterator[list[dict[str, Any]]]:
    """Rows as their items finish, greedy, all in the engine's running batch: `batch_size` items
    in flight, and a new one joins as soon as one ends (never waiting for the longest)."""
    import queue

    from llava_cot.engines import Prompt, Sampling

    finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
    sampling = Sampling(max_new_tokens=max_new_tokens)
    pending = iter(items)
    flight: dict[int, Item] = {}

    def submit() -> None:
        item = next(pending, None)
        if item is not None:
            request = engine.submit(Prompt(item.image() if item.image else None, bench.prompt(item)), sampling,
                                    on_done=finished.put)
            flight[id(request)] = item

    for _ in range(batch_size):
        submit()
    last = time.perf_counter()
    while flight:
        request = finished.get()
        item = flight.pop(id(request))
        submit()
        [out] = request.result()
        now = time.perf_counter()
        # the time since the previous item ended: the items' seconds add up to the run's
        seconds, last = now - last, now
        # an item is in one forward pass per token it generated (its prefill, then its steps)
        yield [row(bench, item, out.text.strip(), {"tokens_generated": out.tokens, "forward_passes": out.tokens,
                                                   "judge_calls": 0, "seconds": seconds})]


def answer_search(engine: Any, bench: Bench, items: Sequence[Item], search: str, config: Any,
                  concurrency: int = 1, judge_engine: Any = None) -> Iterator[list[dict[str, Any]]]:
    """Rows as their items finish, each answered by `search`; `concurrency` searches at once
    (each in its own thread, their candidates decoding together in the engine's batch, or as
    concurrent requests to a server). The judge asks `judge_engine`, when given."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from llava_cot.engines import Prompt
    from llava_cot.search import run

    def answer(item: Item) -> list[dict[str, Any]]:
        result = run(search, engine, Prompt(item.image() if item.image else None, bench.prompt(item)), config,
                     judge_engine=judge_engine)
        return [row(bench, item, result.text, {
            "tokens_generated": result.tokens_generated, "forward_passes": result.forward_passes,
            "judge_calls": result.judge_calls, "seconds": result.seconds, "notes": result.notes})]

    pending = iter(items)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="llava-cot-search") as pool:
        flight = {pool.submit(answer, item) for item in (next(pending, None) for _ in range(concurrency))
                  if item is not None}
        while flight:
            done, flight = wait(flight, return_when=FIRST_COMPLETED)
            for future in done:
                item = next(pending, None)
                if item is not None:
                    flight.add(pool.submit(answer, item))
                yield future.result()


def evaluate(model: Any, bench: Bench, items: Sequence[Item], out: Path | None = None, search: str = "greedy",
             config: Any = None, batch_size: int = 32, max_new_tokens: int = 1536,
             progress: bool = True, concurrency: int = 1, judge_engine: Any = None) -> list[dict[str, Any]]:
    """The rows of `items`, in order. `model` is an engine or a `models.Loaded`. With `out`,
    rows already in out/predictions.jsonl are reused (their items are not answered again) and
    each new row is appended as its item finishes. Greedy decodes in a local engine's running
    batch; on an engine without one (a server) it is a 'greedy' search per item, `concurrency`
    at once, as every other search is."""
    from tqdm import tqdm

    if not hasattr(model, "generate"):
        from llava_cot.engines.hf import HFEngine

        model = HFEngine(model, max_batch=max(batch_size, concurrency * 4))
    engine = model
    data.check_unique(items, getattr(bench, "name", "bench"))
    done = {str(r["index"]): r for r in store.load_rows(out)} if out is not None else {}
    todo = [item for item in items if str(item.index) not in done]
    if search == "greedy" and hasattr(engine, "submit"):
        batches = answer_greedy(engine, bench, todo, batch_size, max_new_tokens)
    else:
        from llava_cot.search import SearchConfig

        config = config or SearchConfig(max_new_tokens=max_new_tokens)
        batches = answer_search(engine, bench, todo, search, config, concurrency, judge_engine)
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


def settings(cfg: EvalConfig, model_path: str | None, remote: Any = None, judge_server: Any = None) -> dict[str, Any]:
    """What a resumed run must share with the one it continues: the local model (`model_path`)
    or the server's (`remote`, an openai engine), and the judge's own model, if any."""
    from llava_cot.engines import options

    greedy = cfg.search == "greedy"
    local = model_path is not None and Path(model_path).is_dir()
    bench = str(Path(cfg.bench).resolve()) if Path(cfg.bench).is_file() else cfg.bench
    return {"model": str(Path(model_path).resolve()) if local else model_path,
            "model_fingerprint": store.model_fingerprint(model_path) if model_path else None,
            **options.settings(cfg, remote, judge_server), "bench": bench,
            "data": str(Path(cfg.data).resolve()) if cfg.data else None, "search": cfg.search,
            "beam": 1 if greedy else cfg.beam, "max_new_tokens": cfg.max_new_tokens, "seed": cfg.seed,
            "judge": None if greedy else cfg.judge,
            # each row is scored as it is written: a resumed run must read answers the same way
            "match": cfg.match, "answer_from": cfg.answer_from}


def main(cfg: EvalConfig) -> int:
    import sys

    from llava_cot import models
    from llava_cot.engines import options as engines

    if cfg.batch_size < 1 or cfg.max_new_tokens < 1 or cfg.concurrency < 1:
        raise LlavaCotError("--batch-size, --concurrency and --max-new-tokens must be at least 1")
    engines.check(cfg)
    config = None
    if cfg.search != "greedy":
        from llava_cot.search import SearchConfig

        config = SearchConfig(beam=cfg.beam, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, judge=cfg.judge)
    # Everything a user can get wrong is checked before the run directory is made.
    # A server is asked for its model's name now (no local model is loaded for it at all).
    remote = engines.answering(cfg, cfg.concurrency)
    judge_server = engines.judge_server(cfg, cfg.concurrency)
    model_path = None if remote is not None else models.resolve(cfg.model)
    bench, items = data.load(cfg.bench, cfg.data, cfg.limit, **data.bench_options(cfg, cfg.out))
    out = Path(cfg.out) if cfg.out else None
    run = settings(cfg, model_path, remote, judge_server)
    if out is not None:
        store.check_settings(out, run)
    judge_engine = engines.judging(cfg, cfg.device, cfg.dtype, cfg.concurrency, server=judge_server)
    if remote is not None:
        engine, name = remote, engines.describe(remote)
    else:
        loaded = models.load(cfg.model, device=cfg.device, dtype=cfg.dtype)
        from llava_cot.engines.hf import HFEngine

        # the engine's batch holds a greedy run's items, or every candidate of the concurrent searches
        engine, name = HFEngine(loaded, max_batch=max(cfg.batch_size, cfg.concurrency * cfg.beam)), loaded.name
    rows = evaluate(engine, bench, items, out, cfg.search, config, cfg.batch_size, cfg.max_new_tokens,
                    concurrency=cfg.concurrency, judge_engine=judge_engine)
    engines.report(remote, judge_engine)
    if out is not None and (extra := len(store.load_rows(out)) - len(rows)) > 0:
        print(f"{out / store.PREDICTIONS}: {extra} rows are of items beyond this run's --limit; not counted",
              file=sys.stderr)
    m = {"model": name, "bench": cfg.bench, "search": cfg.search, "beam": run["beam"], "judge": run["judge"],
         "max_new_tokens": cfg.max_new_tokens, "seed": cfg.seed, **metrics.summarise(bench, rows)}
    print(metrics.table(m))
    if out is not None:
        metrics.write(out, m)
    print(json.dumps({k: m.get(k) for k in ("bench", "search", "beam", "n", "accuracy", "format_valid",
                                            "tokens_per_item", "forward_passes_per_item", "judge_calls_per_item",
                                            "seconds_per_item")}))
    return 0
