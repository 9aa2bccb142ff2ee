"""Throughput of `llava-cot data check` on a large file, without opening images.

Writes N synthetic LLaVA-CoT records (four-stage gpt turns of realistic length) to a temporary
JSONL file, then times (a) the baseline, a bare `json.loads` of every line, and (b) the full
check (decoding, field validation, duplicate ids, four-stage parsing). Prints lines/s for both
and the cost ratio; the last line is one JSON object of the figures.

    python benchmarks/check_speed.py [--n 100000]
"""

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from llava_cot import check, records, stages
from llava_cot.records import Record


def _records(n: int, seed: int = 0):
    rng = random.Random(seed)
    words = ["the", "red", "cube", "small", "sphere", "large", "blue", "cylinder", "is", "left", "of", "right", "count", "object"]

    def sentence(k: int) -> str:
        return " ".join(rng.choice(words) for _ in range(k)).capitalize() + "."

    for i in range(n):
        response = stages.render({s: " ".join(sentence(12) for _ in range(rng.randint(1, 6))) for s in stages.STAGES})
        yield Record.make(f"s{i}", sentence(10), response, image=f"images/{i}.png", answer=str(i % 7))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jsonl"
        records.write(path, _records(args.n))
        mb = path.stat().st_size / 1e6

        t0 = time.perf_counter()
        with path.open() as f:
            base_n = sum(1 for line in f if json.loads(line))
        base_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        results = list(check.check(path))
        check_s = time.perf_counter() - t0
    bad = sum(not isinstance(r, Record) for r in results)
    assert base_n == len(results) == args.n and bad == 0, (base_n, len(results), bad)
    figures = {
        "lines": args.n,
        "file_mb": round(mb, 1),
        "check_seconds": round(check_s, 3),
        "check_lines_per_s": round(args.n / check_s),
        "json_only_lines_per_s": round(args.n / base_s),
        "check_over_json_only": round(check_s / base_s, 2),
    }
    print(f"file: {args.n} lines, {mb:.1f} MB")
    print(f"baseline json.loads only: {figures['json_only_lines_per_s']:,} lines/s")
    print(f"data check (no images):   {figures['check_lines_per_s']:,} lines/s, {check_s:.2f} s in all")
    print(f"check costs {figures['check_over_json_only']}x the bare JSON decode")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
