"""A teacher that knows the answers: an OpenAI-compatible chat server answering from a data file's
gold answers, in the four stages, with the faults real teachers have.

For dry runs of `data annotate` (an input, a prompt template, the filters, resuming: no tokens
spent), for its fault tests and for benchmarks/annotate_speed.py:

    python -m llava_cot.teacher.oracle --input runs/vqa/data.jsonl --images runs/vqa --port 8001 \\
        [--latency 0.2] [--faults 0.3] [--wrong 0.2] [--seed 0]
    llava-cot data annotate ... --teacher-url http://127.0.0.1:8001/v1 --teacher-model oracle

It finds the item a request is about by its image (the bytes' hash) and the question (the longest
of that image's questions that the prompt contains), whatever the template. Each item has a fate,
drawn from --seed and its id, so the same on every run: answered right (the gold answer, for
a multiple-choice item sometimes by the option's text), `wrong` (another answer, every time),
`bad_format` (no CAPTION), `leak` (right, but saying it was hinted), `refuse` (OpenAI's
`message.refusal`), or `second_try` (wrong the first time the item is asked, right after). A
stage request (its stop string a closing tag) gets that stage only. A judge request (filters.py's
layout) is answered yes when the candidate holds the reference answer's words. Independently,
each request fails with probability --faults: a 429 with Retry-After, a 500, a reply delayed by
--slow seconds, a body that is not JSON, or empty content. `good` holds the ids it has answered
acceptably at least once: after a complete run, exactly the accepted ones.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from llava_cot import answers, records, stages
from llava_cot.teacher import filters
from llava_cot.teacher.item import golds, pairs

FATES = ("wrong", "bad_format", "leak", "refuse", "second_try")
FAULTS = ("429", "500", "slow", "malformed", "empty")


@dataclass(frozen=True)
class Entry:
    id: str
    question: str
    gold: str
    options: dict[str, str] | None


class Oracle:
    def __init__(self, data: str | Path, images: str | Path, latency: float = 0.0, faults: float = 0.0,
                 slow: float = 1.0, retry_after: float = 0.05, seed: int = 0, **fates: float):
        unknown = set(fates) - set(FATES)
        if unknown:
            raise ValueError(f"unknown fates {sorted(unknown)}: choose among {FATES}")
        self.latency, self.faults, self.slow, self.retry_after = latency, faults, slow, retry_after
        self.seed, self.fates = seed, fates
        self.index: dict[str | None, list[Entry]] = {}
        for rec in records.read(data):
            try:
                key = _digest((Path(images) / rec.image).read_bytes()) if rec.image else None
                gold_answers = golds(rec)
            except (OSError, ValueError):
                continue  # `data annotate` rejects it as bad input without asking
            for (h, _), (gold, options) in zip(pairs(rec), gold_answers, strict=True):
                question = " ".join(rec.conversations[h]["value"].replace(records.IMAGE_TOKEN, "").split())
                self.index.setdefault(key, []).append(Entry(rec.id, question, gold, options))
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.asked: dict[str, int] = {}  # content requests per id
        self.good: set[str] = set()
        self.requests = 0

    def fate(self, rid: str) -> str:
        """What this item gets, the same on every run (see the module docstring)."""
        x = random.Random(f"{self.seed}/{rid}").random()
        for name in FATES:
            x -= self.fates.get(name, 0.0)
            if x < 0:
                return name
        return "right"

    # ------------------------------------------------------------------ answering

    def respond(self, request: dict[str, Any]) -> tuple[int, dict[str, str], bytes, float]:
        """(status, headers, body, seconds to wait first) for one chat-completions request."""
        with self.lock:
            self.requests += 1
            fault = self.rng.choice(FAULTS) if self.rng.random() < self.faults else None
        delay = self.latency + (self.slow if fault == "slow" else 0.0)
        if fault == "429":
            return 429, {"Retry-After": f"{self.retry_after:g}"}, _error("rate limited, slow down"), delay
        if fault == "500":
            return 500, {}, _error("internal error"), delay
        if fault == "malformed":
            return 200, {}, b'{"id": "chatcmpl-oracle", "choices": [{"index": 0, "mess', delay
        text, refusal = ("", None) if fault == "empty" else self._answer(request)
        return 200, {}, _completion(request, text, refusal), delay

    def _answer(self, request: dict[str, Any]) -> tuple[str | None, str | None]:
        prompt, image = _last_user(request["messages"])
        if filters.REFERENCE_LABEL in prompt and filters.CANDIDATE_LABEL in prompt:
            return self._judge(prompt), None
        entry = self._find(prompt, image)
        if entry is None:
            return "I cannot tell which question this is.", None
        fate = self.fate(entry.id)
        with self.lock:
            asked = self.asked.get(entry.id, 0)
            self.asked[entry.id] = asked + 1
        if fate == "refuse":
            return None, "I'm sorry, I can't help with that."
        right = fate in ("right", "leak") or (fate == "second_try" and asked > 0)
        acceptable = right and fate != "leak"  # what the pipeline should keep
        parts = self._stages(entry, right, fate)
        stage = _asked_stage(request)
        if stage is not None and stage not in parts:  # a bad-format item writes another stage instead
            return stages.render_stage(stages.STAGES[0], parts[stages.STAGES[0]]), None
        if acceptable and stage in (None, stages.STAGES[-1]):
            with self.lock:
                self.good.add(entry.id)
        if stage is not None:
            return f"{stages.open_tag(stage)} {parts[stage]}", None  # the stop string is left out
        return stages.render(parts), None

    def _stages(self, entry: Entry, right: bool, fate: str) -> dict[str, str]:
        said = self._said(entry) if right else _wrong(entry)
        parts = {
            "SUMMARY": "I will look at the image, find what the question asks about, and answer.",
            "CAPTION": "The image shows the objects the question is about.",
            "REASONING": f"Looking at the image carefully, the answer is {said}.",
            "CONCLUSION": said,
        }
        if fate == "leak":
            parts["REASONING"] = f"As the hint says, the answer is {said}."
        if fate == "bad_format":
            del parts["CAPTION"]
        return parts

    def _said(self, entry: Entry) -> str:
        """The gold answer; for a multiple-choice item, half the time by the option's text."""
        if entry.options and entry.gold in entry.options and _digest(entry.id.encode())[0] in "01234567":
            return entry.options[entry.gold]
        return entry.gold

    def _find(self, prompt: str, image: str | None) -> Entry | None:
        text = " ".join(prompt.split())
        found = [e for e in self.index.get(image, []) if e.question in text]
        return max(found, key=lambda e: len(e.question), default=None)

    @staticmethod
    def _judge(prompt: str) -> str:
        reference = _field(prompt, filters.REFERENCE_LABEL)
        candidate = _field(prompt, filters.CANDIDATE_LABEL)
        same = answers.normalize_text(reference) in answers.normalize_text(candidate)
        return "yes" if same and reference.strip() else "no"


def _wrong(entry: Entry) -> str:
    """An answer that is not the gold one, of the same kind."""
    kind = answers.answer_kind(entry.gold, entry.options)
    if kind == "choice":
        letters = sorted(entry.options) if entry.options else list("ABCD")
        return letters[(letters.index(entry.gold) + 1) % len(letters)] if entry.gold in letters else "A"
    if kind == "number":
        value = answers.extract_number(entry.gold)
        return f"{(value or 0) + 1:g}"
    if kind == "yes_no":
        return "No" if answers.normalize_text(entry.gold) == "yes" else "Yes"
    return "something else entirely"


def _field(prompt: str, label: str) -> str:
    m = re.search(re.escape(label) + r"[ \t]*(.*)", prompt)
    return m.group(1) if m else ""


def _asked_stage(request: dict[str, Any]) -> str | None:
    for stop in request.get("stop") or []:
        for stage in stages.STAGES:
            if stop == stages.close_tag(stage):
                return stage
    return None


def _last_user(messages: list[dict[str, Any]]) -> tuple[str, str | None]:
    """The last user message's text, and the hash of the first image in the conversation."""
    image, text = None, ""
    for m in messages:
        content = m.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        for p in parts:
            if p.get("type") == "image_url" and image is None:
                image = _digest(base64.b64decode(p["image_url"]["url"].split(",", 1)[1]))
        if m.get("role") == "user":
            text = " ".join(p.get("text", "") for p in parts if p.get("type") == "text")
    return text, image


def _digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _error(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "oracle_error"}}).encode()


def _completion(request: dict[str, Any], text: str | None, refusal: str | None) -> bytes:
    prompt, _ = _last_user(request["messages"])
    message = {"role": "assistant", "content": text, "refusal": refusal}
    usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": max(1, len(text or "") // 4)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return json.dumps({"id": "chatcmpl-oracle", "object": "chat.completion", "created": int(time.time()),
                       "model": request.get("model", "oracle"), "usage": usage,
                       "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}).encode()


# ---------------------------------------------------------------------- the HTTP server


_MODELS = json.dumps({"object": "list", "data": [{"id": "oracle", "object": "model"}]}).encode()


async def _connection(oracle: Oracle, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer the HTTP/1.1 requests of one kept-alive connection, one after the other."""
    try:
        while request_line := await reader.readline():
            method = request_line.split(b" ", 1)[0]
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                key, _, value = line.decode("latin-1").partition(":")
                headers[key.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", 0)))
            if method == b"POST":
                status, extra, data, delay = oracle.respond(json.loads(body or b"{}"))
                await asyncio.sleep(delay)  # thousands may wait at once: timers, not threads
            else:
                status, extra, data = 200, {}, _MODELS
            head = {"Content-Type": "application/json", "Content-Length": str(len(data)), **extra}
            lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", *(f"{k}: {v}" for k, v in head.items())]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)  # one write: no Nagle stall
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # a client that timed out and left
    finally:
        writer.close()


@contextlib.contextmanager
def serve(oracle: Oracle, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `oracle` from an event loop in a thread; yields its base URL (http://HOST:PORT/v1)."""
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(
        lambda r, w: _connection(oracle, r, w), host, port, backlog=1024))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.sockets[0].getsockname()[1]}/v1"
    finally:
        asyncio.run_coroutine_threadsafe(_close(server), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


async def _close(server: asyncio.Server) -> None:
    """Stop listening and end the open connections (clients keep theirs alive)."""
    server.close()
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True, help="the records `data annotate` will read")
    ap.add_argument("--images", required=True, help="their image folder")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8001)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds each reply takes")
    ap.add_argument("--faults", type=float, default=0.0, help="probability that a request fails")
    ap.add_argument("--slow", type=float, default=1.0, help="extra seconds of a slow reply")
    ap.add_argument("--retry-after", type=float, default=1.0, help="seconds a 429 asks the client to wait")
    ap.add_argument("--seed", type=int, default=0)
    for fate in FATES:
        ap.add_argument(f"--{fate.replace('_', '-')}", type=float, default=0.0, help=f"share of items: {fate}")
    a = ap.parse_args()
    fates = {f: getattr(a, f) for f in FATES if getattr(a, f)}
    oracle = Oracle(a.input, a.images, a.latency, a.faults, a.slow, a.retry_after, a.seed, **fates)
    with serve(oracle, a.host, a.port) as url:
        print(f"oracle teacher at {url} (model name: any)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
