"""`llava-cot data annotate`: four-stage annotations from a teacher, kept only when they are right.

    llava-cot data annotate --input runs/vqa/data.jsonl --images runs/vqa \\
        --teacher-url https://api.openai.com/v1 --teacher-model gpt-4o --out runs/cot.jsonl
    llava-cot data annotate ... --concurrency 64 --rpm 500 --max-tokens-total 2000000

The input is LLaVA-layout records whose gpt turns are plain answers (`data import` writes them).
Each record goes to the teacher (item.py; the prompt: prompt.py), and is kept only if every
answer is in the four stages, agrees with the gold one and does not let on that it was given it
(filters.py). Accepted records go to OUT.jsonl, rejected ids with their reason to
OUT.rejected.jsonl, one fsynced line each (journal.py): a rerun of the same command skips what
either file holds, so a killed run (even `kill -9`) resumes and loses nothing it had finished.

Up to --concurrency records are in flight. A request is retried with backoff (client.py); an item
whose request fails for good is reported, left out of both files, and done again by the next run.
--max-tokens-total stops the run cleanly: no new request once that many tokens are spent.
At the end a summary is printed; its last line is one JSON object (accepted, rejected by reason,
errors, tokens, seconds, remaining). Exit code 0 when every input item is accepted or rejected,
1 when some remain (failed, or not reached): run the same command again.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava_cot import records
from llava_cot.errors import LlavaCotError
from llava_cot.records import Record
from llava_cot.teacher.client import BudgetSpent, Teacher, TeacherError
from llava_cot.teacher.item import Annotator, pairs
from llava_cot.teacher.journal import Committer, Journal
from llava_cot.teacher.prompt import Template

ERRORS_SHOWN = 10  # failing items reported one by one; the rest are counted


@dataclass
class AnnotateConfig:
    """Annotate VQA records in the four stages with a teacher (any OpenAI-compatible server), keep
    the answers that agree with the gold ones; resumable."""

    input: str = field(metadata={"help": "LLaVA-layout records whose gpt turns are plain gold answers"})
    images: str = field(metadata={"help": "the folder the records' image paths start from"})
    teacher_url: str = field(metadata={"help": "the teacher's OpenAI-compatible base URL (.../v1)"})
    teacher_model: str = field(metadata={"help": "the teacher's model name"})
    out: str = field(metadata={"help": "accepted records are appended to OUT.jsonl, rejected ids to "
                                       "OUT.rejected.jsonl"})
    api_key: str | None = field(default=None, metadata={"help": "the teacher's key (default: $OPENAI_API_KEY)"})
    prompt: str | None = field(default=None, metadata={
        "help": "a prompt template file ({question}, {format}, {hint}, {answer}); default: the built-in one"})
    hint: bool = field(default=True, metadata={"help": "give the teacher the gold answer as a hint"})
    staged: bool = field(default=False, metadata={"help": "ask for one stage per request, each after the ones "
                                                          "written so far (default: all four in one)"})
    judge: bool = field(default=True, metadata={"help": "ask an LLM judge about free-text answers no rule matches"})
    judge_url: str | None = field(default=None, metadata={"help": "the judge's base URL (default: the teacher's)"})
    judge_model: str | None = field(default=None, metadata={"help": "the judge's model (default: the teacher's)"})
    retries: int = field(default=2, metadata={"help": "a rejected answer is asked again this many times, new seeds"})
    concurrency: int = field(default=16, metadata={"help": "records in flight at once"})
    rpm: float = field(default=0, metadata={"help": "at most this many requests a minute (0: no limit)"})
    max_tokens_total: int = field(default=0, metadata={
        "help": "stop cleanly once this many tokens (prompt + completion) are spent (0: no limit)"})
    max_tokens: int = field(default=2048, metadata={"help": "completion tokens per request"})
    temperature: float = field(default=0.7, metadata={"help": "the teacher's sampling temperature"})
    seed: int = field(default=0, metadata={"help": "the first attempt's seed; retry K uses seed + K"})
    timeout: float = field(default=120, metadata={"help": "seconds before a request is abandoned and retried"})
    request_retries: int = field(default=8, metadata={
        "help": "tries after the first for a request that fails (429, 5xx, timeouts, bad replies)"})
    backoff: float = field(default=1.0, metadata={"help": "seconds before the first retry; doubled each time"})
    limit: int = field(default=0, metadata={"help": "annotate at most the first N input records (0: all)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar on stderr"})


def _check(cfg: AnnotateConfig) -> None:
    for name in ("concurrency",):
        if getattr(cfg, name) < 1:
            raise LlavaCotError(f"--{name} must be at least 1")
    for name in ("retries", "request_retries", "max_tokens_total", "limit"):
        if getattr(cfg, name) < 0:
            raise LlavaCotError(f"--{name.replace('_', '-')} cannot be negative")
    if not Path(cfg.images).is_dir():
        raise LlavaCotError(f"--images {cfg.images} is not a folder")


def pending(cfg: AnnotateConfig, done: set[str], log: Any) -> tuple[list[Record], Counter]:
    """The input records still to do, in file order, and counts of those passed over."""
    todo, seen, passed = [], set(), Counter()
    for n, rec in enumerate(records.scan(cfg.input)):
        if cfg.limit and n >= cfg.limit:
            break
        if isinstance(rec, records.BadRecord):
            print(f"{cfg.input}: skipping bad record at {rec}", file=log)
            passed["bad_input_lines"] += 1
        elif rec.id in seen:
            print(f"{cfg.input}: skipping line {rec.line}: id {rec.id!r} repeats an earlier record", file=log)
            passed["repeated_ids"] += 1
        else:
            seen.add(rec.id)
            if rec.id in done:
                passed["done_before"] += 1
            elif not pairs(rec):
                print(f"{cfg.input}: skipping line {rec.line}: no human turn directly followed by a gpt turn",
                      file=log)
                passed["bad_input_lines"] += 1
            else:
                todo.append(rec)
    return todo, passed


class Run:
    def __init__(self, cfg: AnnotateConfig, annotator: Annotator, journal: Journal, todo: list[Record]):
        self.cfg, self.annotator, self.journal, self.todo = cfg, annotator, journal, todo
        self.accepted, self.rejected, self.errors = 0, Counter(), 0
        self.stopped: str | None = None
        self.seconds = 0.0  # the annotation itself: from the first request to the last line written

    async def go(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=len(self.todo), unit="item", file=sys.stderr, disable=not self.cfg.progress,
                        smoothing=0.05, mininterval=0.5)
        queue = iter(self.todo)  # shared by the workers: each takes the next record when it is free
        self.committer = Committer(self.journal)
        committing = self.committer.start()
        t0 = time.perf_counter()
        try:
            await asyncio.gather(*(self._worker(queue) for _ in range(min(self.cfg.concurrency, len(self.todo)))))
        finally:
            await self.committer.stop()
            await committing
            self.seconds = time.perf_counter() - t0
            self.bar.close()

    async def _worker(self, queue: Any) -> None:
        images = Path(self.cfg.images)
        for rec in queue:
            if self.stopped:
                return
            try:
                outcome = await self.annotator.annotate(rec, images)
            except BudgetSpent as e:
                self.stopped = str(e)
                return
            except TeacherError as e:
                self.errors += 1
                if self.errors <= ERRORS_SHOWN:
                    self.bar.write(f"{rec.id}: {e}; it will be tried again on the next run", file=sys.stderr)
                self._tick()
                continue
            if outcome.accepted is not None:
                await self.committer.write("accepted", outcome.accepted)
                self.accepted += 1
            else:
                await self.committer.write("rejected", outcome.rejected)
                self.rejected[outcome.rejected["reason"]] += 1
            self._tick()

    def _tick(self) -> None:
        t = self.annotator.teacher
        self.bar.set_postfix(accepted=self.accepted, rejected=sum(self.rejected.values()), errors=self.errors,
                             tokens=t.tokens, refresh=False)
        self.bar.update(1)


def _teachers(cfg: AnnotateConfig) -> tuple[Teacher, Teacher | None]:
    common = dict(api_key=cfg.api_key, timeout=cfg.timeout, retries=cfg.request_retries, backoff=cfg.backoff,
                  rpm=cfg.rpm, budget=cfg.max_tokens_total, max_tokens=cfg.max_tokens, concurrency=cfg.concurrency)
    teacher = Teacher(cfg.teacher_url, cfg.teacher_model, temperature=cfg.temperature, **common)
    if not cfg.judge:
        return teacher, None
    if cfg.judge_url is None and cfg.judge_model is None:
        return teacher, teacher
    judge = Teacher(cfg.judge_url or cfg.teacher_url, cfg.judge_model or cfg.teacher_model, temperature=0.0,
                    **common)
    return teacher, judge


async def _run(cfg: AnnotateConfig, journal: Journal, todo: list[Record]) -> tuple[Run, Teacher, Teacher | None]:
    teacher, judge = _teachers(cfg)
    annotator = Annotator(teacher, Template.load(cfg.prompt, cfg.hint), judge, cfg.retries, cfg.seed, cfg.staged)
    run = Run(cfg, annotator, journal, todo)
    try:
        await run.go()
    finally:
        await teacher.close()
        if judge is not None and judge is not teacher:
            await judge.close()
    return run, teacher, judge


def main(cfg: AnnotateConfig) -> int:
    _check(cfg)
    t0 = time.perf_counter()
    journal = Journal(cfg.out)
    done = journal.open(sys.stderr)
    try:
        todo, passed = pending(cfg, done, sys.stderr)
        run, teacher, judge = asyncio.run(_run(cfg, journal, todo))
    finally:
        journal.close()
    seconds = run.seconds
    finished = run.accepted + sum(run.rejected.values())
    used = [teacher] + ([judge] if judge is not None and judge is not teacher else [])
    summary = {
        "accepted": run.accepted, "rejected": dict(run.rejected), "errors": run.errors,
        "remaining": len(todo) - finished, "done_before": passed["done_before"],
        "bad_input_lines": passed["bad_input_lines"] + passed["repeated_ids"],
        "prompt_tokens": sum(t.prompt_tokens for t in used), "completion_tokens": sum(t.completion_tokens for t in used),
        "requests": sum(t.requests for t in used), "retried_requests": sum(t.retried for t in used),
        "seconds": round(seconds, 3), "wall_seconds": round(time.perf_counter() - t0, 3),
        "items_per_s": round(finished / seconds, 3) if seconds else 0.0,
        "stopped": run.stopped, "total_accepted": journal.counts["accepted"],
        "total_rejected": journal.counts["rejected"],
    }
    _report(cfg, summary, journal)
    return 0 if summary["remaining"] == 0 else 1


def _report(cfg: AnnotateConfig, s: dict[str, Any], journal: Journal) -> None:
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(s["rejected"].items()))
    print(f"annotate: {s['accepted']} accepted, {sum(s['rejected'].values())} rejected"
          + (f" ({reasons})" if reasons else "") + f", {s['errors']} failed, in {s['seconds']:.1f} s; "
          f"{s['prompt_tokens']} prompt + {s['completion_tokens']} completion tokens in {s['requests']} requests")
    if s["stopped"]:
        print(f"stopped: {s['stopped']} (--max-tokens-total)")
    if s["remaining"]:
        print(f"{s['remaining']} items not finished: run the same command again to resume")
    print(f"in all: {s['total_accepted']} accepted in {journal.accepted_path}, {s['total_rejected']} rejected in "
          f"{journal.rejected_path}")
    print(json.dumps(s))
