"""Serving under load: `llava-cot serve` against `transformers serve`, the same model, the same
requests, in one run.

Set-up (the comparison server is not a dependency of the package):

    pip install -e ".[serve]" "transformers[serving]"

Both servers are started here as a user starts them, on the embedded model (src/llava_cot/embedded;
`transformers serve DIR` serves a local directory), with the same torch thread count. Then
`--requests` chat completions (an image of examples/ and a question, greedy, `--max-tokens`
at most) go to each from the official `openai` async client at each `--concurrency`, after one
warm-up request. For each server and concurrency: requests/s, generated tokens/s, p50 / p95
latency, errors (any failed request; the client does not retry).

The last line is one JSON object with ours_32_over_ours_1 and ours_32_over_transformers_32
(requests/s ratios at the highest and lowest concurrency), errors, and every figure.
`--burst 200` instead sends 200 requests at once to ours alone and counts the answers by status
class (5xx are bugs; 429 means the queue was full).

    python benchmarks/serve_load.py [--requests 64] [--concurrency 1,8,32] [--max-tokens 128] [--threads 1]
    python benchmarks/serve_load.py --burst 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from llava_cot import models
from llava_cot.engines.remote import image_data_url

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ["How many circles are there?", "How many objects are there?", "How many cubes are there?",
             "Are there more red objects than blue ones?"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], port: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{command[0]} exited: {process.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"{' '.join(command)} did not start in 300 s")


def requests_for(n: int) -> list[list[dict]]:
    images = [image_data_url(models.open_image(p)) for p in sorted((ROOT / "examples").glob("*.png"))]
    return [[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": images[i % len(images)]}},
                                          {"type": "text", "text": QUESTIONS[i % len(QUESTIONS)]}]}]
            for i in range(n)]


async def load(base: str, model: str, messages: list[list[dict]], concurrency: int, max_tokens: int) -> dict:
    """All requests, at most `concurrency` in flight; the figures."""
    from openai import AsyncOpenAI

    gate = asyncio.Semaphore(concurrency)
    latencies, tokens, errors, statuses = [], 0, 0, {}

    async def one(client, msgs):
        nonlocal tokens, errors
        async with gate:
            t0 = time.perf_counter()
            try:
                r = await client.chat.completions.create(model=model, messages=msgs, temperature=0, max_tokens=max_tokens)
                tokens += r.usage.completion_tokens if r.usage else 0
                latencies.append(time.perf_counter() - t0)
                statuses["2xx"] = statuses.get("2xx", 0) + 1
            except Exception as e:  # counted, not raised: a load test reports its failures
                errors += 1
                code = getattr(e, "status_code", None)
                key = f"{code // 100}xx" if code else type(e).__name__
                statuses[key] = statuses.get(key, 0) + 1

    async with AsyncOpenAI(base_url=base, api_key="EMPTY", max_retries=0, timeout=1800) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*[one(client, m) for m in messages])
        wall = time.perf_counter() - t0
    ordered = sorted(latencies) or [float("nan")]
    return {"concurrency": concurrency, "requests": len(messages), "seconds": round(wall, 2),
            "requests_per_s": round(len(latencies) / wall, 3), "tokens_per_s": round(tokens / wall, 1),
            "p50_s": round(statistics.median(ordered), 3),
            "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
            "errors": errors, "statuses": statuses}


def servers(args: argparse.Namespace) -> dict[str, tuple[list[str], str]]:
    """name -> (command, model name to ask for)."""
    embedded = str(models.EMBEDDED_DIR)
    out = {"ours": ([sys.executable, "-m", "llava_cot", "serve", "--max-batch", str(args.max_batch),
                     "--device", "cpu"], "embedded")}
    if not args.burst and not args.ours_only:
        if shutil.which("transformers") is None:
            raise SystemExit("transformers serve is not installed: pip install 'transformers[serving]'")
        out["transformers"] = (["transformers", "serve", embedded, "--device", "cpu", "--log-level", "error"], embedded)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each server")
    parser.add_argument("--burst", type=int, default=0, help="send this many requests at once to ours alone")
    parser.add_argument("--ours-only", action="store_true", help="skip transformers serve")
    args = parser.parse_args()
    levels = [args.burst] if args.burst else [int(c) for c in args.concurrency.split(",")]
    messages = requests_for(args.burst or args.requests)
    print(f"load average before: {os.getloadavg()}; cpus: {os.cpu_count()}", flush=True)
    results: dict[str, list[dict]] = {}
    for name, (command, model) in servers(args).items():
        port = free_port()
        process = start([*command, "--port", str(port)], port, args.threads)
        base = f"http://127.0.0.1:{port}/v1"
        try:
            asyncio.run(load(base, model, messages[:1], 1, args.max_tokens))  # warm-up
            results[name] = []
            for c in levels:
                row = asyncio.run(load(base, model, messages, c, args.max_tokens))
                results[name].append(row)
                print(f"{name:>12} c={c:<3} {row['requests_per_s']:7.3f} req/s {row['tokens_per_s']:8.1f} tok/s "
                      f"p50 {row['p50_s']:7.2f} s p95 {row['p95_s']:7.2f} s errors {row['errors']} {row['statuses']}",
                      flush=True)
        finally:
            process.terminate()
            process.wait(30)
    print(f"load average after: {os.getloadavg()}", flush=True)
    summary: dict = {"max_tokens": args.max_tokens, "threads": args.threads, "results": results,
                     "errors": sum(r["errors"] for rows in results.values() for r in rows)}
    if args.burst:
        summary["errors_5xx"] = results["ours"][0]["statuses"].get("5xx", 0)
    else:
        ours = {r["concurrency"]: r for r in results["ours"]}
        high, low = max(ours), min(ours)
        summary[f"ours_{high}_over_ours_{low}"] = round(ours[high]["requests_per_s"] / ours[low]["requests_per_s"], 2)
        if "transformers" in results:
            theirs = {r["concurrency"]: r for r in results["transformers"]}
            summary[f"ours_{high}_over_transformers_{high}"] = round(
                ours[high]["requests_per_s"] / theirs[high]["requests_per_s"], 2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
