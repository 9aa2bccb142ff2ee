"""Eval throughput and decoding-step cost: the engine's scheduler against one item at a time and
against transformers' `model.generate`, in one run on the same model (default: the embedded one).

Three measurements, each on the same items for both sides:

1. synth-test, greedy: `llava-cot eval`'s path (the hf engine's running batch, --batch-size items
   in flight, one joining as one ends) against one item at a time through the same engine;
2. synth-hard, greedy: the same path against the path eval had before the scheduler (one
   left-padded `model.generate` per --batch-size items, written out below as the baseline: a
   finished answer keeps its row until the longest one of its batch ends);
3. one answer at batch 1: milliseconds per generated token, the engine against `model.generate`
   (the same tokens: greedy, same prompt), and where an engine step's time goes (torch.profiler).

The last line is one JSON object: batched_over_single, hard_new_over_old, step_ms_engine,
step_ms_generate, and the figures behind them.

    python benchmarks/eval_speed.py [--items 64] [--hard-items 100] [--batch-size 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from llava_cot import models
from llava_cot.engines import Prompt, Sampling
from llava_cot.engines.hf import HFEngine
from llava_cot.evaluation import data
from llava_cot.evaluation.run import evaluate


def generate_baseline(loaded, bench, items, batch_size: int, max_new_tokens: int) -> list[str]:
    """Eval's greedy path before the scheduler: one left-padded `generate` call per batch."""
    processor, texts_out = loaded.processor, []
    for i in range(0, len(items), batch_size):
        batch = items[i:i + batch_size]
        texts = [models.prompt_text(processor, bench.prompt(item)) for item in batch]
        processor.tokenizer.padding_side = "left"
        inputs = processor(images=[item.image() for item in batch], text=texts, padding=True, return_tensors="pt",
                           add_special_tokens=models.add_special_tokens(processor, texts[0])).to(loaded.device)
        with torch.inference_mode():
            out = loaded.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        for seq in out[:, inputs["input_ids"].shape[1]:]:
            texts_out.append(processor.tokenizer.decode(seq, skip_special_tokens=True).strip())
    return texts_out


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def step_profile(engine: HFEngine, prompt: Prompt, tokens: int) -> dict[str, float]:
    """Where one engine step's time goes, in ms per step: the model's forward (transformers'
    modules: the operators' own time, and the Python around them) and the rest, which is ours
    (scheduling, sampling, stop strings, streaming). The scheduler's steps run in this thread,
    under the engine's lock, so that the timers and the profiler see them."""
    from torch.profiler import ProfilerActivity, profile

    from llava_cot.engines.sequence import Request

    runner, decode, spent = engine.runner, engine.runner.decode, [0.0]

    def timed_decode(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return decode(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    def steps(profiler=None):
        request = Request(prompt, Sampling(max_new_tokens=tokens))
        engine.scheduler.waiting.append(request)
        t0 = time.perf_counter()
        with engine.lock, torch.inference_mode():
            while not request.done:
                engine.scheduler._step()
        return time.perf_counter() - t0, max(1, request.result()[0].tokens - 1)

    runner.decode = timed_decode
    try:
        wall, n = steps()
    finally:
        runner.decode = decode
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        steps()
    ops = [(e.self_cpu_time_total / 1000 / n, e.key) for e in prof.key_averages() if e.key.startswith("aten::")]
    forward, op_time = 1000 * spent[0] / n, sum(v for v, _ in ops)
    top = sorted(ops, reverse=True)[:5]
    return {"ms_per_step": round(1000 * wall / n, 3), "model_forward_ms": round(forward, 3),
            "forward_operators_ms": round(op_time, 3), "forward_python_ms": round(forward - op_time, 3),
            "ours_ms": round(1000 * wall / n - forward, 3), **{f"op:{k}": round(v, 3) for v, k in top}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="model directory (default: the embedded model)")
    ap.add_argument("--items", type=int, default=64, help="synth-test items")
    ap.add_argument("--hard-items", type=int, default=100, help="synth-hard items (at least 50)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=1536)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    loaded = models.load(args.model, device=args.device, dtype="float32")
    engine = HFEngine(loaded, max_batch=args.batch_size)
    bench, items = data.load("synth-test", limit=args.items)
    hard_bench, hard = data.load("synth-hard", limit=args.hard_items)
    run = dict(progress=False, max_new_tokens=args.max_new_tokens)
    evaluate(engine, bench, items[:2], batch_size=2, **run)  # warm-up: first-call allocations, lazy imports

    batched, t_batched = timed(lambda: evaluate(engine, bench, items, batch_size=args.batch_size, **run))
    single, t_single = timed(lambda: evaluate(engine, bench, items, batch_size=1, **run))
    same = sum(a["response"] == b["response"] for a, b in zip(batched, single, strict=True))
    print(f"synth-test, {len(items)} items: batch {args.batch_size} {len(items) / t_batched:.2f} items/s, "
          f"one at a time {len(items) / t_single:.2f} items/s; {same}/{len(items)} responses identical")

    new, t_new = timed(lambda: evaluate(engine, hard_bench, hard, batch_size=args.batch_size, **run))
    old, t_old = timed(lambda: generate_baseline(loaded, hard_bench, hard, args.batch_size, args.max_new_tokens))
    agree = sum(r["response"] == o for r, o in zip(new, old, strict=True))
    print(f"synth-hard, {len(hard)} items at batch {args.batch_size}: scheduler {len(hard) / t_new:.2f} items/s, "
          f"model.generate batches {len(hard) / t_old:.2f} items/s; {agree}/{len(hard)} responses identical")

    prompt = Prompt(items[0].image(), bench.prompt(items[0]))
    [[out]], t_engine = timed(lambda: engine.generate([prompt], Sampling(max_new_tokens=args.max_new_tokens)))
    _, inputs = engine.encode(prompt)
    with torch.inference_mode():
        gen, t_generate = timed(lambda: loaded.model.generate(**inputs, max_new_tokens=out.tokens, do_sample=False))
    gen_tokens = gen.shape[1] - inputs["input_ids"].shape[1]
    step_engine, step_generate = 1000 * t_engine / out.tokens, 1000 * t_generate / gen_tokens
    profile = step_profile(engine, prompt, out.tokens)
    print(f"batch 1, {out.tokens} tokens: engine {step_engine:.2f} ms/token, model.generate {step_generate:.2f} ms/token")
    print("engine step, profiled: " + ", ".join(f"{k} {v}" for k, v in profile.items()))
    print(json.dumps({
        "model": loaded.name, "device": args.device, "threads": args.threads, "batch_size": args.batch_size,
        "items": len(items), "hard_items": len(hard),
        "batched_over_single": round(t_single / t_batched, 2), "same_responses": same,
        "batched_items_per_s": round(len(items) / t_batched, 3), "single_items_per_s": round(len(items) / t_single, 3),
        "hard_new_over_old": round(t_old / t_new, 2), "hard_same_responses": agree,
        "hard_new_items_per_s": round(len(hard) / t_new, 3), "hard_old_items_per_s": round(len(hard) / t_old, 3),
        "step_ms_engine": round(step_engine, 3), "step_ms_generate": round(step_generate, 3),
        "step_tokens": out.tokens, "profile": profile,
    }))


if __name__ == "__main__":
    main()
