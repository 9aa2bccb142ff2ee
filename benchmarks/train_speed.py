"""SFT throughput of `llava-cot train` on CPU: tokens per second of a tiny model from scratch.

Renders a small synthetic data set, then trains `--init tiny` (the embedded model's shape: a
Llava with a 2-layer CLIP tower and a 6-layer, 192-wide Llama) for --steps optimizer steps, (a)
as a baseline one example per step, and (b) --batch examples per step padded together by our
collator. Tokens are the non-padding input tokens (prompt, image and answer) counted by the
trainer, over the training time alone (model building and saving excluded). Prints both rates,
the speed-up and the share of padding in a batch; the last line is one JSON object of the figures.

    python benchmarks/train_speed.py [--steps 24] [--batch 8] [--n 128] [--threads 1]

On a shared 2-core machine, a second OpenMP thread slows these small matrix products down
many times over (the threads wait on each other); --threads 1 is the default for that reason.
"""

import argparse
import json
import random
import tempfile
from pathlib import Path

import torch

from llava_cot import models, records, sft, train
from llava_cot.synth.generate import SynthConfig, generate


def _run(data: Path, out: Path, steps: int, batch: int) -> dict:
    """Train and return the trainer's own accounting of the run."""
    cfg = train.TrainConfig(data=str(data), out=str(out), init="tiny", max_steps=steps, batch_size=batch,
                            logging_steps=steps, save_steps=10 * steps, num_workers=0, device="cpu", seed=0)
    trainer = train.train(cfg)
    summary = trainer.state.log_history[-1]  # the end-of-training line: runtime, tokens seen
    return {"tokens": summary["num_input_tokens_seen"], "seconds": summary["train_runtime"],
            "loss": summary["train_loss"]}


def _padding(data: Path, model: Path, batch: int) -> float:
    """The fraction of a padded batch that is padding, over random batches of the data set
    (what batching costs in wasted positions when examples differ in length)."""
    recs = list(records.read(data / "train.jsonl"))
    examples = sft.Examples(recs, models.load(model, device="cpu").processor, images=data)
    lengths = [examples[i]["input_ids"].shape[1] for i in range(len(examples))]
    random.Random(0).shuffle(lengths)
    groups = [lengths[i : i + batch] for i in range(0, len(lengths) - batch + 1, batch)]
    return 1 - sum(map(sum, groups)) / sum(len(g) * max(g) for g in groups)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=24, help="optimizer steps per run")
    ap.add_argument("--batch", type=int, default=8, help="examples per step in the batched run")
    ap.add_argument("--n", type=int, default=128, help="records in the synthetic data set")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate(SynthConfig(out=str(data), n=args.n, seed=0))
        base = _run(data, Path(tmp) / "b1", args.steps, 1)
        ours = _run(data, Path(tmp) / f"b{args.batch}", args.steps, args.batch)
        padding = _padding(data, Path(tmp) / f"b{args.batch}", args.batch)

    figures = {
        "tokens_per_s": round(ours["tokens"] / ours["seconds"]),
        "batch": args.batch,
        "baseline_tokens_per_s": round(base["tokens"] / base["seconds"]),
        "baseline_batch": 1,
        "speedup": round((ours["tokens"] / ours["seconds"]) / (base["tokens"] / base["seconds"]), 2),
        "padding_fraction": round(padding, 3),
        "steps": args.steps,
        "tokens": ours["tokens"],
        "seconds": round(ours["seconds"], 2),
        "threads": args.threads,
        "device": "cpu",
    }
    print(f"batch 1:  {figures['baseline_tokens_per_s']:,} tokens/s ({base['tokens']:,} tokens, {base['seconds']:.2f} s)")
    print(f"batch {args.batch}:  {figures['tokens_per_s']:,} tokens/s ({ours['tokens']:,} tokens, {ours['seconds']:.2f} s)")
    print(f"batching with our collator: {figures['speedup']}x the tokens per second "
          f"({padding:.0%} of a batch-{args.batch} tensor is padding)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
