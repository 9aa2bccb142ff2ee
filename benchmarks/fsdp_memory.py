"""Peak host memory per process while N processes load a model to train it: whole and in float32
on every process (what `llava-cot train` did with --fsdp before it loaded shards, and what it does
data-parallel, without --fsdp), against --fsdp's sharded load (`llava_cot.fsdp.load`: each
process reads its slice of every tensor, float32 master weights for that slice only).

    python benchmarks/fsdp_memory.py [--hidden 768] [--layers 4] [--nproc 2]

Builds a small Mllama (Llama-3.2-Vision's architecture) stored in bfloat16, as that checkpoint is,
then loads it each way in fresh processes under torchrun (gloo, CPU). Each process reports its
resident memory before loading (the interpreter, torch, transformers) and its peak (VmHWM) after.
Private memory (RssAnon) is what each process adds to the host; the checkpoint's
mapped pages (RssFile, counted in VmHWM) sit once in the page cache, however many processes map them,
and are dropped when loading ends. The last line is one JSON object of the figures, in MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


class Sampler(threading.Thread):
    """Samples this process's private (RssAnon) and file-backed (RssFile: mapped checkpoint pages,
    shared by the processes of a host through the page cache) resident memory, keeping the peaks."""

    def __init__(self, every_s: float = 0.002):
        super().__init__(daemon=True)
        self.every_s, self.peaks, self.running = every_s, {"RssAnon": 0.0, "RssFile": 0.0}, True

    def run(self) -> None:
        while self.running:
            for field in self.peaks:
                self.peaks[field] = max(self.peaks[field], status_mb(field))
            time.sleep(self.every_s)

    def stop(self) -> dict[str, float]:
        self.running = False
        self.join()
        return self.peaks


def build(out: Path, hidden: int, layers: int) -> float:
    """Save an untrained Mllama in bfloat16 to `out`; returns its weights' size in MB."""
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration

    text = dict(vocab_size=32000, hidden_size=hidden, intermediate_size=hidden * 8 // 3, num_hidden_layers=layers,
                num_attention_heads=hidden // 64, num_key_value_heads=hidden // 128, cross_attention_layers=[1],
                pad_token_id=0, bos_token_id=1, eos_token_id=2)
    vision = dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=2, num_global_layers=1,
                  attention_heads=4, image_size=64, patch_size=16, max_num_tiles=4,
                  intermediate_layers_indices=[0], vision_output_dim=512)
    torch.manual_seed(0)
    model = MllamaForConditionalGeneration(MllamaConfig(text_config=text, vision_config=vision))
    model.to(torch.bfloat16).save_pretrained(out)
    return sum(f.stat().st_size for f in out.glob("*.safetensors")) / 2**20


def worker(mode: str, path: str, report: str) -> None:
    """One process of a launch: load the model `mode`'s way, write this process's figures."""
    import torch.distributed as dist
    import torch.distributed.fsdp  # noqa: F401  (both ways start with the same modules imported)
    import transformers
    import transformers.distributed

    from llava_cot import fsdp, models

    dist.init_process_group("gloo")
    before, anon_before = status_mb("VmRSS"), status_mb("RssAnon")
    sampler = Sampler()
    sampler.start()
    if mode == "whole":  # as models.load does (the model has no processor here)
        model = transformers.AutoModelForImageTextToText.from_pretrained(path, dtype=models.pick_dtype("float32", "cpu"))
    else:
        model = fsdp.load(path, dtype=models.pick_dtype("float32", "cpu"), bf16=False)
    peaks = sampler.stop()
    held = sum((p.to_local() if hasattr(p, "to_local") else p).nbytes for p in model.parameters()) / 2**20
    dist.barrier()
    line = {"rank": dist.get_rank(), "rss_before": before, "peak": status_mb("VmHWM"), "params_held": held,
            "anon_before": anon_before, "anon_peak": peaks["RssAnon"], "file_peak": peaks["RssFile"]}
    Path(f"{report}.{dist.get_rank()}").write_text(json.dumps(line))
    dist.destroy_process_group()


def launch(mode: str, path: Path, nproc: int, work: Path) -> list[dict]:
    report = work / mode
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           __file__, "--worker", mode, str(path), str(report)]
    run = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"{mode} load failed:\n{run.stderr[-3000:]}")
    return [json.loads(Path(f"{report}.{r}").read_text()) for r in range(nproc)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=768, help="the language model's hidden size")
    ap.add_argument("--layers", type=int, default=4, help="decoder layers (one of them cross-attention)")
    ap.add_argument("--nproc", type=int, default=2, help="processes")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        size = build(work / "model", args.hidden, args.layers)
        print(f"model: {size:.0f} MB of bfloat16 weights ({2 * size:.0f} MB in float32), {args.nproc} processes")
        figures: dict = {"weights_mb_bf16": round(size, 1), "nproc": args.nproc}
        for mode in ("whole", "sharded"):
            ranks = launch(mode, work / "model", args.nproc, work)
            for r in ranks:
                r["peak_growth"] = r["peak"] - r["rss_before"]
                r["private_growth"] = r["anon_peak"] - r["anon_before"]
                print(f"{mode:>8} rank {r['rank']}: peak {r['peak']:.0f} MB (VmHWM), {r['peak_growth']:.0f} MB over "
                      f"the {r['rss_before']:.0f} MB before loading; private memory +{r['private_growth']:.0f} MB, "
                      f"mapped file pages up to {r['file_peak']:.0f} MB; holds {r['params_held']:.0f} MB of parameters")
            figures[mode] = [{k: round(v, 1) for k, v in r.items()} for r in ranks]
        for key in ("peak_growth", "private_growth"):
            grown = {m: max(r[key] for r in figures[m]) for m in ("whole", "sharded")}
            figures[f"{key}_ratio"] = round(grown["whole"] / max(grown["sharded"], 1e-9), 2)
            print(f"{key.replace('_', ' ')} per process while loading: {grown['whole']:.0f} MB whole, "
                  f"{grown['sharded']:.0f} MB sharded ({figures[f'{key}_ratio']:.2f}x)")
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
