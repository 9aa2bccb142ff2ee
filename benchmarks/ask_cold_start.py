"""Cold start of `llava-cot ask` with the embedded model: a new process, as a user runs it, timed
from launch to the first character of stage text on stdout and to exit; against the same
question answered in a process that has already imported the package and loaded the model (the
warm baseline), so the ratio is what starting up costs.

    python benchmarks/ask_cold_start.py [--runs 3] [--image examples/scene1.png] [QUESTION]

The command is the installed `llava-cot` next to this Python (as in a fresh venv); the runs are
offline (HF_HUB_OFFLINE=1). The last line is one JSON object of the figures (medians).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from llava_cot import stages

LABELS = set(stages.STAGES)


def cold(cmd: list[str]) -> tuple[float, float]:
    """(seconds to the first stage text, seconds to exit) of one new process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    first, line = None, b""
    assert proc.stdout is not None
    while chunk := proc.stdout.read1(4096):
        if first is None:
            line += chunk
            # the first stage's label line, then its text: the first byte after "LABEL\n"
            head, sep, rest = line.partition(b"\n")
            if sep and head.decode().strip() in LABELS and rest.strip():
                first = time.perf_counter() - t0
    if proc.wait() != 0:
        sys.exit(f"{' '.join(cmd)} exited with {proc.returncode}")
    return first if first is not None else float("nan"), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("question", nargs="?", default="How many circles are there?")
    ap.add_argument("--image", default=str(Path(__file__).resolve().parents[1] / "examples" / "scene1.png"))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    exe = Path(sys.executable).with_name("llava-cot")
    cmd = [str(exe), "ask", "--image", args.image, args.question]
    runs = [cold(cmd) for _ in range(args.runs)]
    first, total = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)

    from llava_cot import ask, models

    loaded = models.load(None)
    image = models.open_image(args.image)
    ask.ask(image, args.question, model=loaded)  # one untimed answer: caches and allocator warm
    warm = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        ask.ask(image, args.question, model=loaded)
        warm.append(time.perf_counter() - t0)
    base = statistics.median(warm)
    print(f"cold `llava-cot ask`: first stage text after {first:.2f} s, done after {total:.2f} s "
          f"(median of {args.runs}: {', '.join(f'{t:.2f}' for _, t in runs)} s)")
    print(f"warm (model loaded, same process): {base:.2f} s per answer")
    print(f"cold start costs {total - base:.2f} s; cold / warm = {total / base:.2f}x")
    print(json.dumps({"cold_first_text_s": round(first, 3), "cold_total_s": round(total, 3),
                      "warm_total_s": round(base, 3), "ratio": round(total / base, 2), "runs": args.runs,
                      "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
