"""What `GET /metrics` reports, in Prometheus' text format (no client library needed).

Counters of requests (by status), prompt and generated tokens; the engine's queue depth, running
rows (the batch size), and KV tokens read from `engine.stats()` at scrape time; a histogram of
request latency, and one of the batch size seen by requests as they finished.

    metrics = Metrics()
    metrics.finished(status=200, seconds=0.4, prompt_tokens=80, completion_tokens=120)
    metrics.render({"running": 3, "waiting": 0, "kv_tokens": 600})
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter
from typing import Any

PREFIX = "llava_cot"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one: above every bound
        self.sum = 0.0
        self.total = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.total += 1

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            out.append(f'{name}_bucket{{le="{bound:g}"}} {running}')
        out += [f'{name}_bucket{{le="+Inf"}} {self.total}', f"{name}_sum {self.sum:.6f}", f"{name}_count {self.total}"]
        return out


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[int] = Counter()  # by HTTP status
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.batch = _Histogram(BATCH_BUCKETS)
        self.in_flight = 0

    def started(self) -> None:
        with self._lock:
            self.in_flight += 1

    def finished(self, status: int, seconds: float, prompt_tokens: int = 0, completion_tokens: int = 0,
                 batch: int | None = None) -> None:
        with self._lock:
            self.in_flight -= 1
            self.requests[status] += 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.latency.observe(seconds)
            if batch is not None:
                self.batch.observe(batch)

    def refused(self, status: int) -> None:
        """A request answered with an error before it reached the engine."""
        with self._lock:
            self.requests[status] += 1

    def render(self, stats: dict[str, Any]) -> str:
        p = PREFIX
        with self._lock:
            lines = [f"# HELP {p}_requests_total Chat completion requests answered, by HTTP status.",
                     f"# TYPE {p}_requests_total counter"]
            lines += [f'{p}_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.requests.items())]
            lines += [f"# TYPE {p}_requests_in_flight gauge", f"{p}_requests_in_flight {self.in_flight}",
                      f"# TYPE {p}_prompt_tokens_total counter", f"{p}_prompt_tokens_total {self.prompt_tokens}",
                      f"# TYPE {p}_generation_tokens_total counter",
                      f"{p}_generation_tokens_total {self.completion_tokens}"]
            gauges = {"queue_depth": ("waiting", "Requests waiting for the engine."),
                      "batch_size": ("running", "Rows the engine is decoding now."),
                      "kv_tokens": ("kv_tokens", "Tokens held in the engine's KV cache.")}
            for name, (key, text) in gauges.items():
                lines += [f"# HELP {p}_{name} {text}", f"# TYPE {p}_{name} gauge", f"{p}_{name} {stats.get(key, 0)}"]
            lines += [f"# HELP {p}_request_seconds Time from request to last token.",
                      f"# TYPE {p}_request_seconds histogram", *self.latency.lines(f"{p}_request_seconds"),
                      f"# HELP {p}_request_batch_size Rows decoding when a request finished.",
                      f"# TYPE {p}_request_batch_size histogram", *self.batch.lines(f"{p}_request_batch_size")]
        return "\n".join(lines) + "\n"
