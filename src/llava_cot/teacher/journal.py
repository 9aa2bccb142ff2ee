"""The output of `data annotate`: two append-only JSONL files that a rerun resumes from.

    OUT.jsonl            the accepted records, ready for `llava-cot train`
    OUT.rejected.jsonl   {"id", "reason", "detail", ...} for each rejected item

Each finished item is one line, written with one `write`, flushed and fsynced before the next, so
that a kill (even `kill -9`) loses at most the item being written, and a power cut at most the
lines the disk had not yet confirmed. On start, `open` reads the ids already in both files: those
items are done and skipped. A last line a kill cut short is cut off (the file truncated to its
last complete line) and reported; a complete line that is not a record with an id (a file edited
by hand) is reported and dropped, the file rewritten through a temporary file and a rename. An id
is never written twice: the same `Journal` refuses a second line for it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TextIO

from llava_cot.errors import LlavaCotError


def rejected_path(out: Path) -> Path:
    """OUT.rejected.jsonl beside OUT.jsonl (OUT.jsonl -> OUT.rejected.jsonl)."""
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(stem + ".rejected.jsonl")


def _ids(path: Path, log: TextIO) -> set[str]:
    """The ids of the complete, valid lines of `path`, the file repaired where it has others."""
    if not path.exists():
        return set()
    ids: set[str] = set()
    keep_until, dropped = 0, []  # byte offset after the last complete line; bad complete lines
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                print(f"{path}: line {n} was cut short by an interrupted write; removed, its item will "
                      "be done again", file=log)
                break
            keep_until += len(line)
            rid = _line_id(line)
            if rid is None or rid in ids:
                why = "not a JSON object with an id" if rid is None else f"repeats id {rid!r}"
                print(f"{path}: line {n} is {why}; removed", file=log)
                dropped.append(n)
            else:
                ids.add(rid)
    if dropped:
        _rewrite(path, set(dropped))
    elif keep_until < path.stat().st_size:
        os.truncate(path, keep_until)
    return ids


def _line_id(line: bytes) -> str | None:
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str | int) or isinstance(obj["id"], bool):
        return None
    return str(obj["id"])


def _rewrite(path: Path, drop: set[int]) -> None:
    """Rewrite `path` without the lines numbered in `drop`, nor a cut-short last line."""
    tmp = path.with_name(path.name + ".tmp")
    with path.open("rb") as src, tmp.open("wb") as dst:
        for n, line in enumerate(src, 1):
            if not line.endswith(b"\n"):
                break
            if n not in drop:
                dst.write(line)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, path)


class Journal:
    """Where finished items go; see the module docstring."""

    def __init__(self, out: str | os.PathLike[str]):
        self.accepted_path = Path(out)
        self.rejected_path = rejected_path(self.accepted_path)
        self.done: set[str] = set()
        self._files: dict[str, IO[bytes]] = {}

    def open(self, log: TextIO | None = None) -> set[str]:
        """Repair both files, open them for appending; return the ids already done."""
        log = log or sys.stderr
        if self.accepted_path.is_dir():
            raise LlavaCotError(f"--out {self.accepted_path} is a directory; give a file such as OUT.jsonl")
        self.accepted_path.parent.mkdir(parents=True, exist_ok=True)
        accepted = _ids(self.accepted_path, log)
        rejected = _ids(self.rejected_path, log)
        self.done = accepted | rejected
        self.counts = {"accepted": len(accepted), "rejected": len(rejected)}
        for name, path in (("accepted", self.accepted_path), ("rejected", self.rejected_path)):
            self._files[name] = path.open("ab")
        _fsync_dir(self.accepted_path.parent)  # the new files' names survive a crash too
        return set(self.done)

    def accept(self, obj: dict[str, Any]) -> None:
        self.write([("accepted", obj)])

    def reject(self, obj: dict[str, Any]) -> None:
        self.write([("rejected", obj)])

    def write(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        """Append ("accepted" | "rejected", object) lines, one `write` each, then fsync the files
        written to: the lines are done once this returns."""
        touched = {}
        for name, obj in batch:
            rid = str(obj["id"])
            if rid in self.done:
                raise RuntimeError(f"id {rid!r} is written already")  # a bug, never a user's doing
            f = self._files[name]
            f.write((json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8"))
            self.done.add(rid)
            touched[name] = f
        for f in touched.values():
            f.flush()
            os.fsync(f.fileno())
        for name, _ in batch:
            self.counts[name] += 1

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform (Windows); the files themselves are fsynced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Committer:
    """Lines from many coroutines written by one thread, fsynced together (a group commit).

    An fsync takes milliseconds (10 on our test machine) and blocks: done on the event loop, one
    per line, it would cap a run at about 100 items/s and stall every request in flight. Here a
    coroutine's `await write(...)` returns once its line is on disk; lines that arrive while an
    fsync runs are written and fsynced together after it.

        committer = Committer(journal); task = committer.start()
        await committer.write("accepted", record)
        await committer.stop(); await task
    """

    def __init__(self, journal: Journal):
        self.journal = journal
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")

    def start(self) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(self._run())

    async def write(self, name: str, obj: dict[str, Any]) -> None:
        done = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((name, obj, done))
        await done

    async def stop(self) -> None:
        self.queue.put_nowait(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        try:
            while not stopping:
                batch, item = [], await self.queue.get()
                while True:  # everything waiting now goes in this batch
                    if item is None:
                        stopping = True
                        break
                    batch.append(item)
                    if self.queue.empty():
                        break
                    item = self.queue.get_nowait()
                if batch:
                    await self._commit(loop, batch)
        finally:
            self.thread.shutdown(wait=True)

    async def _commit(self, loop: asyncio.AbstractEventLoop, batch: list[Any]) -> None:
        try:
            await loop.run_in_executor(self.thread, self.journal.write, [(n, o) for n, o, _ in batch])
        except Exception as e:  # a full disk, say: every waiting item learns of it
            for *_, done in batch:
                done.set_exception(e)
        else:
            for *_, done in batch:
                done.set_result(None)
