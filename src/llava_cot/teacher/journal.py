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

import json
import os
import sys
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
        self._append("accepted", obj)

    def reject(self, obj: dict[str, Any]) -> None:
        self._append("rejected", obj)

    def _append(self, name: str, obj: dict[str, Any]) -> None:
        rid = str(obj["id"])
        if rid in self.done:
            raise RuntimeError(f"id {rid!r} is written already")  # a bug, never a user's doing
        f = self._files[name]
        f.write((json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
        self.done.add(rid)
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
