"""`llava-cot eval --model M --bench B`: accuracy of a model on a data set, per question family,
with format validity (all four stages, in order), by batched greedy generation.

B is a LLaVA-CoT data file whose records carry a gold "answer" (and "options" for multiple
choice; images relative to the file), or a synthetic split by name (`synth-test`, `synth-hard`),
generated on the fly with a fixed seed so every run scores the same items. With `--search NAME`
each item is answered by that inference-time search (llava_cot.search) instead of batched
greedy decoding, and the tokens generated, judge calls and seconds per item are reported.

    llava-cot eval --model runs/tiny --bench synth-test --limit 1000 --out runs/tiny/eval
    llava-cot eval --bench synth-hard --limit 200 --search stage_beam --beam 4
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava_cot import answers, records, stages
from llava_cot.errors import LlavaCotError

SYNTH_BENCHES = {"synth-test": "test", "synth-hard": "hard", "synth-train": "train"}
BENCH_SEED = 1234  # the synthetic benches' seed: fixed, so scores are comparable across runs


@dataclass
class EvalConfig:
    """Score a model on a data set with gold answers: accuracy per family and format validity."""

    model: str | None = field(default=None, metadata={"help": "model directory or hub id (default: embedded)"})
    bench: str = field(default="synth-test", metadata={"help": "a data file, or synth-test / synth-hard"})
    limit: int = field(default=1000, metadata={"help": "score at most this many items (0: all)"})
    batch_size: int = field(default=32, metadata={"help": "items generated together"})
    max_new_tokens: int = field(default=1536, metadata={"help": "most tokens per response"})
    search: str = field(default="greedy", metadata={
        "help": "inference-time search", "choices": ["greedy", "best_of_n", "sentence_beam", "stage_beam", "swires",
                                                     "self_consistency"]})
    beam: int = field(default=4, metadata={"help": "candidates sampled per search step"})
    seed: int = field(default=0, metadata={"help": "sampling seed of the search"})
    out: str | None = field(default=None, metadata={"help": "directory for predictions.jsonl and metrics.json"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, or auto"})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16 or float16"})


def load_items(bench: str, limit: int, workdir: str) -> tuple[list[records.Record], Path]:
    """The records to score and the root their image paths are relative to."""
    if bench in SYNTH_BENCHES:
        from llava_cot.synth.generate import SynthConfig, generate

        n = limit or 1000
        generate(SynthConfig(out=workdir, n=n, split=SYNTH_BENCHES[bench], seed=BENCH_SEED))
        path = Path(workdir) / f"{SYNTH_BENCHES[bench]}.jsonl"
    else:
        path = Path(bench)
        if not path.is_file():
            raise LlavaCotError(f"bench {bench} is neither a data file nor one of {', '.join(SYNTH_BENCHES)}")
    items = []
    for rec in records.read(path, on_error="skip"):
        if "answer" not in rec.extra:
            raise LlavaCotError(f"{path}: record at line {rec.line} has no gold 'answer' field")
        items.append(rec)
        if limit and len(items) >= limit:
            break
    if not items:
        raise LlavaCotError(f"{path}: no records to score")
    return items, path.parent


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def score(rec: records.Record, response: str) -> dict[str, Any]:
    options = rec.extra.get("options") or None
    return {
        "id": rec.id,
        "family": rec.extra.get("family", "all"),
        "answer": rec.extra["answer"],
        "prediction": stages.answer_text(response),
        "correct": answers.is_correct(response, rec.extra["answer"], options),
        "format_ok": stages.parse(response).ok,
        "response": response,
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Overall and per-family accuracy and format validity."""
    fams: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        fams[r["family"]].append(r)

    def rate(rs: list[dict[str, Any]], key: str) -> float:
        return sum(bool(r[key]) for r in rs) / len(rs)

    def mean(key: str) -> float:
        return sum(r.get(key, 0) for r in rows) / len(rows)

    return {
        "n": len(rows),
        "accuracy": rate(rows, "correct"),
        "format_valid": rate(rows, "format_ok"),
        "tokens_per_item": mean("tokens"),
        "judge_calls_per_item": mean("judge_calls"),
        "seconds_per_item": mean("seconds"),
        "families": {f: {"n": len(rs), "accuracy": rate(rs, "correct"), "format_valid": rate(rs, "format_ok")}
                     for f, rs in sorted(fams.items())},
    }


def evaluate(loaded: Any, items: list[records.Record], root: Path, batch_size: int = 32,
             max_new_tokens: int = 1536, progress: bool = True) -> list[dict[str, Any]]:
    """Generate greedily for every item, in batches, and score each response."""
    from tqdm import tqdm

    from llava_cot import generation, models

    rows = []
    bar = tqdm(total=len(items), desc="eval", unit="item", disable=not progress)
    for batch in _batches(items, batch_size):
        images = [models.open_image(root / r.image) for r in batch]
        t0 = time.perf_counter()
        outs = generation.generate(loaded, images, [r.question for r in batch], max_new_tokens=max_new_tokens)
        seconds = (time.perf_counter() - t0) / len(batch)  # a batch's time, shared among its items
        for rec, out in zip(batch, outs, strict=True):
            rows.append({**score(rec, out.text), "tokens": out.tokens, "judge_calls": 0, "seconds": seconds})
        bar.update(len(batch))
    bar.close()
    return rows


def evaluate_search(loaded: Any, items: list[records.Record], root: Path, search: str, config: Any,
                    progress: bool = True) -> list[dict[str, Any]]:
    """Answer every item with the search `search` (one item at a time: a search batches within
    an item) and score it, with what each answer cost."""
    from tqdm import tqdm

    from llava_cot import models
    from llava_cot.engines import Prompt
    from llava_cot.engines.hf import HFEngine
    from llava_cot.search import run

    engine = HFEngine(loaded)
    rows = []
    for rec in tqdm(items, desc=f"eval {search}", unit="item", disable=not progress):
        result = run(search, engine, Prompt(models.open_image(root / rec.image), rec.question), config)
        rows.append({**score(rec, result.text), "tokens": result.tokens_generated, "judge_calls": result.judge_calls,
                     "forward_passes": result.forward_passes, "seconds": result.seconds, **result.notes})
    return rows


def table(metrics: dict[str, Any]) -> str:
    lines = ["| family | n | accuracy | format valid |", "| --- | ---: | ---: | ---: |"]
    for fam, m in metrics["families"].items():
        lines.append(f"| {fam} | {m['n']} | {m['accuracy']:.1%} | {m['format_valid']:.1%} |")
    lines.append(f"| **all** | {metrics['n']} | {metrics['accuracy']:.1%} | {metrics['format_valid']:.1%} |")
    return "\n".join(lines)


def main(cfg: EvalConfig) -> int:
    from llava_cot import models

    loaded = models.load(cfg.model, device=cfg.device, dtype=cfg.dtype)
    with tempfile.TemporaryDirectory() as tmp:
        items, root = load_items(cfg.bench, cfg.limit, tmp)
        if cfg.search == "greedy":
            rows = evaluate(loaded, items, root, cfg.batch_size, cfg.max_new_tokens)
        else:
            from llava_cot.search import SearchConfig

            config = SearchConfig(beam=cfg.beam, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
            rows = evaluate_search(loaded, items, root, cfg.search, config)
    metrics = {"model": loaded.name, "bench": cfg.bench, "search": cfg.search,
               "beam": cfg.beam if cfg.search != "greedy" else 1, **summarise(rows)}
    print(table(metrics))
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        with (out / "predictions.jsonl").open("w") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps({k: metrics[k] for k in ("search", "beam", "n", "accuracy", "format_valid", "tokens_per_item",
                                              "judge_calls_per_item", "seconds_per_item")}))
    return 0
