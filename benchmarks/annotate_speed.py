"""Teacher pipeline throughput: `data annotate` at --concurrency 64 against one request at a time.

A teacher's answer takes long (GPT-4o: seconds; a local vLLM: hundreds of milliseconds), so the
pipeline's speed is how many requests it keeps in flight. This runs the same synthetic items
(plain answers, through `data import`) twice through `llava-cot data annotate`, as the user runs
it, against a local teacher that takes --latency seconds per request (llava_cot.teacher.oracle,
in its own process): at concurrency 1 and at --concurrency. It prints items/s for each, from the
summary `data annotate` prints (the annotation itself, not the process start), and the ratio;
the last line is one JSON object of the figures.

    python benchmarks/annotate_speed.py [--items 256] [--latency 0.2] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from llava_cot.synth.generate import SynthConfig, generate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the teacher exited before it served")
        try:
            urllib.request.urlopen(url + "/models", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the teacher did not come up")


def annotate(data: Path, url: str, out: Path, concurrency: int) -> dict:
    cmd = [sys.executable, "-m", "llava_cot", "data", "annotate", "--input", str(data), "--images",
           str(data.parent), "--teacher-url", url, "--teacher-model", "oracle", "--out", str(out),
           "--concurrency", str(concurrency), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=256)
    ap.add_argument("--latency", type=float, default=0.2, help="seconds the teacher takes per request")
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(SynthConfig(out=str(root / "synth"), n=args.items, split="train", seed=0))
        subprocess.run([sys.executable, "-m", "llava_cot", "data", "import", "--from", str(root / "synth" / "train.jsonl"),
                        "--out", str(root / "vqa")], check=True, capture_output=True)
        data = root / "vqa" / "data.jsonl"
        port = _free_port()
        teacher = subprocess.Popen([sys.executable, "-m", "llava_cot.teacher.oracle", "--input", str(data), "--images",
                                    str(data.parent), "--port", str(port), "--latency", str(args.latency)],
                                   stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/v1"
        try:
            _wait_until_up(url, teacher)
            wide = annotate(data, url, root / "wide.jsonl", args.concurrency)
            single = annotate(data, url, root / "single.jsonl", 1)
        finally:
            teacher.terminate()
            teacher.wait()
    for name, s in ((f"concurrency {args.concurrency:>3}", wide), ("concurrency   1", single)):
        print(f"{name}: {s['seconds']:7.2f} s, {s['items_per_s']:7.2f} items/s, {s['accepted']} accepted "
              f"of {args.items}")
    bound = args.concurrency / args.latency
    speedup = wide["items_per_s"] / single["items_per_s"]
    print(f"speedup {speedup:.1f}x (the latency bound: {1 / args.latency:.1f} and {bound:.0f} items/s)")
    c = args.concurrency  # the keys name it: speedup_64_over_1 and items_per_s_64 by default
    print(json.dumps({"items": args.items, "latency_s": args.latency, "items_per_s_1": single["items_per_s"],
                      f"items_per_s_{c}": wide["items_per_s"], f"speedup_{c}_over_1": round(speedup, 2),
                      "accepted_1": single["accepted"], f"accepted_{c}": wide["accepted"]}))

if __name__ == "__main__":
    main()
