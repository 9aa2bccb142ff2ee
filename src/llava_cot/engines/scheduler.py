"""Continuous batching for the `hf` engine: one thread decodes every submitted request.

Requests wait in a queue (`submit`, from any thread). Each step of the loop

1. drops the rows of cancelled requests;
2. admits waiting requests while the batch has room (a row limit and a KV-token budget: a row
   counts its prompt plus its max_new_tokens): each prompt is prefilled (through the prefix
   cache), and its n rows take slots in the batch's KV memory with a copy of the prompt's keys;
3. picks one token for every running row, from its own logits and generator;
4. finishes rows at their stop string, end of turn or length: they leave the batch at once;
5. runs one decoding step for the rows left.

Rows of any length decode together (engines/kv.py). A prompt's n samples share its prefill and
its cached prefix; their keys are copied per row rather than read from one shared copy:
measured on the embedded model (benchmarks/search_speed.py), a shared-prefix attention kernel
saved nothing a copy costs at these sizes, while it made the attention path model-specific.
Mllama rows with and without an image cannot share a step (a text-only row skips the
cross-attention layers), so each kind has its own batch, and both step in turn.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections import deque
from typing import Any

from llava_cot.engines import QueueFull
from llava_cot.engines.decoding import pick
from llava_cot.engines.kv import BatchCache
from llava_cot.engines.sequence import Request, Row

IDLE = 2.0  # seconds without work after which the scheduler thread ends (the next submit restarts it)


def _close(ref: weakref.ref[Scheduler]) -> None:
    scheduler = ref()
    if scheduler is not None:
        scheduler.close()


class _Batch:
    def __init__(self, runner: Any) -> None:
        self.rows: list[Row] = []
        self.cache = BatchCache(runner.num_layers, runner.cross)
        self.kv_tokens = 0

    def add(self, row: Row) -> None:
        row.slot = self.cache.add(row.entry.cache, row.need)
        self.rows.append(row)
        self.kv_tokens += row.need

    def remove(self, row: Row) -> None:
        moved = self.cache.remove(row.slot)
        last = self.rows.pop()
        if moved is not None:  # the last row now lives in the freed slot
            last.slot = row.slot
            self.rows[row.slot] = last
        self.kv_tokens -= row.need


class Scheduler:
    def __init__(self, engine: Any, max_batch: int = 32, max_kv_tokens: int = 1 << 20,
                 max_queue: int = 1024) -> None:
        self.engine = engine
        self.max_batch, self.max_kv_tokens, self.max_queue = max_batch, max_kv_tokens, max_queue
        self.waiting: deque[Request] = deque()
        self.batches: dict[bool, _Batch] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._hooked = False

    # -- from any thread ------------------------------------------------------------------

    def submit(self, request: Request) -> Request:
        with self._wake:
            if len(self.waiting) >= self.max_queue:
                raise QueueFull(f"{len(self.waiting)} requests are waiting, the most this engine queues")
            self.waiting.append(request)
            if self._closed:
                raise RuntimeError("the engine is closed")
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="llava-cot-scheduler", daemon=True)
                self._thread.start()
                if not self._hooked:  # stopped before the interpreter exits: a thread inside
                    # torch when it is torn down aborts the process
                    atexit.register(_close, weakref.ref(self))
                    self._hooked = True
            self._wake.notify()
        return request

    def close(self) -> None:
        """Stop the scheduler thread; what is still waiting or running is cancelled."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        for request in self.waiting:
            request.close()
        self.waiting.clear()
        for batch in self.batches.values():
            for row in list(batch.rows):
                row.cancel()
        self.batches.clear()

    def stats(self) -> dict[str, int]:
        batches = list(self.batches.values())
        return {"running": sum(len(b.rows) for b in batches), "waiting": len(self.waiting),
                "kv_tokens": sum(b.kv_tokens for b in batches)}

    # -- the scheduler thread -------------------------------------------------------------

    def _loop(self) -> None:
        import torch

        with torch.inference_mode():
            while True:
                with self._wake:
                    if not self._closed and not self.waiting and not any(b.rows for b in self.batches.values()):
                        self._wake.wait(IDLE)
                    if self._closed or (not self.waiting and not any(b.rows for b in self.batches.values())):
                        self._thread = None  # idle: the next submit starts another
                        return
                try:
                    with self.engine.lock:
                        self._step()
                except BaseException as e:  # a bug or an out-of-memory: fail what is running, keep serving
                    self._fail_all(e)

    def _step(self) -> None:
        for batch in self.batches.values():
            for row in [r for r in batch.rows if r.request.cancelled]:
                row.cancel()
                batch.remove(row)
        self._admit()
        for batch in list(self.batches.values()):
            if batch.rows:
                self._decode(batch)

    def _admit(self) -> None:
        engine = self.engine
        while True:
            with self._wake:
                if not self.waiting:
                    return
                request = self.waiting[0]
                if request.cancelled:
                    self.waiting.popleft().close()
                    continue
                running = sum(len(b.rows) for b in self.batches.values())
                used = sum(b.kv_tokens for b in self.batches.values())
                n = request.sampling.n
                # what it will hold, estimated before encoding: checked exactly below
                if running and (running + n > self.max_batch or used > self.max_kv_tokens):
                    return
                self.waiting.popleft()
            try:
                entry = engine.prefill(request)
            except BaseException as e:  # a bad image or prompt fails its own request only
                request.fail(e)
                continue
            rows = [Row(request, i, entry, engine.tokenizer, entry.logits.device) for i in range(n)]
            if running and used + sum(r.need for r in rows) > self.max_kv_tokens:
                with self._wake:
                    self.waiting.appendleft(request)  # first in line once rows have left
                return
            batch = self.batches.setdefault(entry.xmask is not None, _Batch(engine.runner))
            for row in rows:
                batch.add(row)

    def _decode(self, batch: _Batch) -> None:
        import torch

        rows = list(batch.rows)
        logits = torch.stack([r.logits for r in rows])
        logp = torch.log_softmax(logits, -1)
        tokens = pick(logits, rows)
        chosen = logp[torch.arange(len(rows)), torch.tensor(tokens)].tolist()  # one gather, not one per row
        engine = self.engine
        for row in rows:
            row.request.cost.tokens_generated += 1
        for b, (row, token) in enumerate(zip(rows, tokens, strict=True)):
            if row.take(token, chosen[b], logp[b] if row.token_logprobs is not None else None, engine.eos):
                batch.remove(row)
        if not batch.rows:
            return
        for request in {id(r.request): r.request for r in batch.rows}.values():
            request.cost.forward_passes += 1  # the step's one forward pass serves it, however many rows
        by_slot = {id(r): t for r, t in zip(rows, tokens, strict=True)}
        step = torch.tensor([by_slot[id(r)] for r in batch.rows], device=logits.device)
        out = engine.runner.decode(batch.cache, step, [r.entry.delta for r in batch.rows],
                                   [r.entry.xmask for r in batch.rows])
        for row, row_logits in zip(batch.rows, out, strict=True):
            row.logits = row_logits

    def _fail_all(self, error: BaseException) -> None:
        for batch in self.batches.values():
            for row in list(batch.rows):
                row.request.fail(error)
        self.batches.clear()
