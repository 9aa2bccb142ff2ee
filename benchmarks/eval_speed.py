"""Eval throughput: batched greedy generation against one item at a time, on the same items.

`llava-cot eval` answers greedily in batches (left padding, one `generate` per batch); this
measures what that buys on CPU with the embedded model (default) on synth-test items: items per
second at --batch-size against batch size 1, and how many responses the two agree on (batching
changes floating-point rounding, rarely a token). Prints both, the ratio; the last line is one
JSON object of the figures.

    python benchmarks/eval_speed.py [--items 32] [--batch-size 16] [--max-new-tokens 512] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from llava_cot import models
from llava_cot.evaluation import data
from llava_cot.evaluation.run import evaluate


def timed_eval(loaded, bench, items, batch_size: int, max_new_tokens: int) -> tuple[list[dict], float]:
    t0 = time.perf_counter()
    rows = evaluate(loaded, bench, items, batch_size=batch_size, max_new_tokens=max_new_tokens, progress=False)
    return rows, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="model directory (default: the embedded model)")
    ap.add_argument("--bench", default="synth-test")
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    loaded = models.load(args.model, device=args.device, dtype="float32")
    bench, items = data.load(args.bench, limit=args.items)
    timed_eval(loaded, bench, items[:1], 1, 8)  # warm-up: first-call allocations and lazy imports
    batched, t_batched = timed_eval(loaded, bench, items, args.batch_size, args.max_new_tokens)
    single, t_single = timed_eval(loaded, bench, items, 1, args.max_new_tokens)
    n = len(items)
    same = sum(a["response"] == b["response"] for a, b in zip(batched, single, strict=True))
    tokens = sum(r["tokens_generated"] for r in single)
    print(f"batch {args.batch_size:>3}: {t_batched:7.2f} s, {n / t_batched:6.2f} items/s")
    print(f"batch   1: {t_single:7.2f} s, {n / t_single:6.2f} items/s")
    print(f"batched is {t_single / t_batched:.2f}x the throughput of one item at a time; "
          f"{same}/{n} responses identical; {tokens / n:.0f} tokens per item")
    print(json.dumps({
        "model": loaded.name, "device": args.device, "threads": args.threads, "bench": args.bench, "items": n,
        "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
        "batched_items_per_s": round(n / t_batched, 3), "single_items_per_s": round(n / t_single, 3),
        "speedup": round(t_single / t_batched, 2), "same_responses": same, "tokens_per_item": round(tokens / n, 1),
    }))


if __name__ == "__main__":
    main()
