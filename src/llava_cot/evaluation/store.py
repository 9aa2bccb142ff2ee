"""An eval run's directory, so that a killed run resumes where it stopped.

    DIR/run.json            the settings the predictions were made with; a resume must match them
    DIR/predictions.jsonl   one scored row per item, appended (and flushed) as items finish

On start, rows already in predictions.jsonl are kept and their items skipped. A line a kill cut
short (or any other line that is not a row) is reported with its line number and dropped: the
file is rewritten with its complete rows only, through a temporary file and a rename, so that a
second kill during the repair cannot lose what was there.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from llava_cot.errors import LlavaCotError

PREDICTIONS, SETTINGS = "predictions.jsonl", "run.json"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def model_fingerprint(path: str) -> str | None:
    """A cheap content fingerprint of a local model directory (config, and the size, head and tail
    of each weights file), so that a run is not resumed on a model retrained in place. None for a
    hub id."""
    root = Path(path)
    if not root.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(root.iterdir()):
        if f.name == "config.json":
            h.update(f.read_bytes())
        elif f.suffix in (".safetensors", ".bin"):
            size = f.stat().st_size
            h.update(f"{f.name}:{size}".encode())
            with f.open("rb") as fh:  # a weights file can be tens of GB: read its two ends only
                h.update(fh.read(1 << 20))
                fh.seek(max(0, size - (1 << 20)))
                h.update(fh.read())
    return h.hexdigest()[:16]


# Settings added after runs were made: a run.json without them was made with these values.
LEGACY = {"match": "ours", "answer_from": "conclusion", "judge": None}


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Record the run's settings in a new directory, or refuse to resume one made otherwise."""
    path = out / SETTINGS
    if out.exists() and not out.is_dir():
        raise LlavaCotError(f"--out {out} is a file; give a directory")
    if not path.is_file():
        if (out / PREDICTIONS).exists():
            raise LlavaCotError(f"{out / PREDICTIONS} exists without {SETTINGS}: not an eval run this version can "
                                "resume; choose another --out")
        out.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, json.dumps(settings, indent=2) + "\n")
        return
    try:
        before = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LlavaCotError(f"{path} is not valid JSON ({e}); choose another --out") from None
    before = {**LEGACY, **before}
    changed = [f"{k} {before.get(k)!r} -> {v!r}" for k, v in settings.items() if before.get(k) != v]
    if changed:
        raise LlavaCotError(f"{out} holds a run with other settings ({'; '.join(changed)}): resume with the "
                            "same ones, or choose another --out")


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """(line number, row or None, why not) for every line of a predictions file."""
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith("\n"):
                yield n, None, "truncated (an interrupted write)"
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                yield n, None, f"not JSON ({e.msg})"
                continue
            if not isinstance(row, dict) or "index" not in row:
                yield n, None, "not an object with an 'index'"
                continue
            yield n, row, ""


def load_rows(out: Path, log: TextIO | None = None) -> list[dict[str, Any]]:
    """The complete rows of DIR/predictions.jsonl, in order, the file repaired if it had others."""
    path = out / PREDICTIONS
    if not path.is_file():
        return []
    log = log or sys.stderr
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    dropped = 0
    for n, row, why in _rows(path):
        if row is not None and str(row["index"]) in seen:
            row, why = None, f"index {row['index']!r} scored already"
        if row is None:
            print(f"{path}: line {n} {why}; ignored, its item will be scored again", file=log)
            dropped += 1
            continue
        seen.add(str(row["index"]))
        rows.append(row)
    if dropped:
        _write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return rows


class Appender:
    """Appends rows to DIR/predictions.jsonl, each batch flushed as soon as it is written."""

    def __init__(self, out: Path | None):
        self.f = (out / PREDICTIONS).open("a", encoding="utf-8") if out is not None else None

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        if self.f is not None:
            self.f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            self.f.flush()

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
