"""Throughput of `llava-cot data synth`: samples written per second, end to end.

Generates N records (one scene and one PNG each) into a temporary directory, (a) as shipped,
with our small PNG writer at zlib level 1, and (b) as a baseline, the same run with each image
saved by Pillow's PNG writer at its default settings. Prints both rates, the speed-up and the
bytes per image; the last line is one JSON object of the figures. Best of --repeat runs each.

    python benchmarks/synth_speed.py [--n 2000] [--split train] [--repeat 3] [--dir /dev/shm]

Creating thousands of small files is often the bottleneck, and its cost on a shared virtual disk
varies several-fold from minute to minute; `--dir /dev/shm` (a RAM disk) measures our code alone.
"""

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

from PIL import Image

from llava_cot.synth import generate as gen


def _pillow_png(img: Image.Image, level: int = 6) -> bytes:
    """The baseline encoder: Pillow's PNG writer with its defaults (the level is ignored)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _run(n: int, split: str, repeat: int, parent: str | None) -> tuple[float, int]:
    """Best wall time over `repeat` runs, and the mean PNG size of the last run."""
    best, size = float("inf"), 0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(dir=parent) as tmp:
            start = time.perf_counter()
            summary = gen.generate(gen.SynthConfig(out=tmp, n=n, split=split, seed=0))
            best = min(best, time.perf_counter() - start)
            pngs = list((Path(tmp) / "images" / split).glob("*.png"))
            size = sum(p.stat().st_size for p in pngs) // max(1, len(pngs))
            assert summary["records"] == n
    return best, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--split", default="train", choices=["train", "test", "hard"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to make the temporary directories")
    args = ap.parse_args()

    ours, ours_bytes = _run(args.n, args.split, args.repeat, args.dir)
    shipped = gen.png
    gen.png = _pillow_png  # swap the encoder for the baseline run only; nothing else changes
    try:
        base, base_bytes = _run(args.n, args.split, args.repeat, args.dir)
    finally:
        gen.png = shipped

    figures = {
        "samples": args.n,
        "split": args.split,
        "dir": args.dir or tempfile.gettempdir(),
        "seconds": round(ours, 3),
        "samples_per_s": round(args.n / ours, 1),
        "baseline_pillow_png_samples_per_s": round(args.n / base, 1),
        "speedup_vs_pillow_png": round(base / ours, 2),
        "bytes_per_image": ours_bytes,
        "baseline_bytes_per_image": base_bytes,
    }
    print(f"ours:     {figures['samples_per_s']:8.0f} samples/s  ({ours_bytes} bytes/image)")
    print(f"baseline: {figures['baseline_pillow_png_samples_per_s']:8.0f} samples/s  "
          f"({base_bytes} bytes/image, Pillow PNG defaults)")
    print(f"speed-up: {figures['speedup_vs_pillow_png']:.2f}x")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
