"""`llava-cot data check FILE [--images DIR]`: report every bad record of a LLaVA-CoT data file.

A record is bad when its line is not UTF-8 text or not valid JSON, a required field is missing
or of the wrong type, it has no human turn followed by a gpt turn, its id repeats an earlier one,
its gpt turn is not in the four-stage format, or (with --images) its image is missing,
unreadable, too large to open, or outside the image root. Judge and verifier items (records whose "task" is "judge" or "verify", from
`llava-cot data synth --task judge|mix`) answer with a verdict instead of four stages: their gpt
turn must be one of the task's verdicts ("1"/"2", "yes"/"no"). In a multi-turn record (several
questions about one image, as in LLaVA-CoT-100k) every gpt turn is checked, since training learns
every one. Each bad record is printed with its line number and reason; a summary follows, with
how many of the good records are multi-turn.
The exit code is 1 when anything is bad. Records are streamed and images opened one at a time.

    llava-cot data check data/train.jsonl --images data/
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from llava_cot import records, stages
from llava_cot.critique import VERDICTS
from llava_cot.errors import LlavaCotError
from llava_cot.records import BadRecord, Record


@dataclass
class CheckConfig:
    """Report every bad record of a LLaVA-CoT data file (JSONL or JSON list), with its line number."""

    file: str = field(metadata={"help": "the data file to check", "positional": True})
    images: str | None = field(
        default=None, metadata={"help": "root directory of the images; without it images are not checked"}
    )
    stages: bool = field(
        default=True, metadata={"help": "require the gpt turn to be in the four-stage format"}
    )
    max_shown: int = field(default=1000, metadata={"help": "print at most this many bad records"})


def check(path: str | os.PathLike[str], images: str | os.PathLike[str] | None = None,
          require_stages: bool = True) -> Iterator[Record | BadRecord]:
    """Every record of `path`, or a BadRecord saying what is wrong with it, in file order."""
    root = Path(images).resolve() if images is not None else None
    if root is not None and not root.is_dir():
        raise LlavaCotError(f"image root {images} is not a directory")
    seen: dict[str, int] = {}
    for item in records.scan(path):
        if isinstance(item, BadRecord):
            yield item
            continue
        reason = _duplicate(item, seen) or _format_problem(item, require_stages) or _image_problem(item, root)
        yield BadRecord(item.line, reason, item.id) if reason else item


def _duplicate(rec: Record, seen: dict[str, int]) -> str | None:
    first = seen.setdefault(rec.id, rec.line)
    return f"duplicate id, first seen at line {first}" if first != rec.line else None


def _format_problem(rec: Record, require_stages: bool) -> str | None:
    task = rec.extra.get("task")
    if isinstance(task, str) and task in VERDICTS:
        if rec.response.strip() in VERDICTS[task]:
            return None
        return f"gpt turn of a {task} record is not a verdict ({' or '.join(VERDICTS[task])}): {rec.response[:40]!r}"
    if not require_stages:
        return None
    turns = rec.turns  # every turn is trained on (sft), so every one must be in the format
    for k, (_, answer) in enumerate(turns, 1):
        parsed = stages.parse(answer)
        if not parsed.ok:
            which = f"gpt turn {k}" if len(turns) > 1 else "gpt turn"
            return f"{which} not in the four-stage format: " + "; ".join(str(p) for p in parsed.problems[:4])
    return None


def _image_problem(rec: Record, root: Path | None) -> str | None:
    if root is None or rec.image is None:
        return None
    path = (root / rec.image).resolve()
    if not path.is_relative_to(root):
        return f"image path {rec.image!r} escapes the image root"
    if not path.is_file():
        return f"image {rec.image!r} not found under {root}"
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()  # checks the file's structure without decoding all the pixels
    except Image.DecompressionBombError as e:  # what `ask` and `train` would refuse too
        from llava_cot.models import too_large

        return f"image {rec.image!r} is too large: {too_large(e)}"
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        return f"image {rec.image!r} is unreadable: {e}"
    return None


def _kind(reason: str) -> str:
    """A short category of a reason, for the summary."""
    for key in ("not UTF-8", "malformed JSON", "missing field", "duplicate id", "four-stage", "not a verdict", "escapes",
                "not found", "unreadable", "too large", "no human turn"):
        if key in reason:
            return key
    return "invalid field"


def main(cfg: CheckConfig) -> int:
    good, bad, multi, kinds = 0, 0, 0, Counter()
    for item in check(cfg.file, cfg.images, cfg.stages):
        if isinstance(item, Record):
            good += 1
            multi += len(item.turns) > 1
            continue
        bad += 1
        kinds[_kind(item.reason)] += 1
        if bad <= cfg.max_shown:
            print(f"{cfg.file}:{item}")
    if bad > cfg.max_shown:
        print(f"... {bad - cfg.max_shown} more bad records not shown (--max-shown)")
    detail = f" ({', '.join(f'{k}: {n}' for k, n in kinds.most_common())})" if bad else ""
    images = "" if cfg.images else "; images not checked (pass --images DIR)"
    print(f"checked {good + bad} records: {good} good, {bad} bad{detail}; {multi} multi-turn{images}", file=sys.stdout)
    return 1 if bad else 0
