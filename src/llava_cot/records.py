"""Data records in the LLaVA-CoT-100k layout: read them as a stream, write them safely.

One record per sample, as JSONL (one object a line) or as one JSON list:

    {"id": "clevr_0001", "image": "images/clevr_0001.png",
     "conversations": [{"from": "human", "value": "<image>\\nHow many ...?"},
                       {"from": "gpt", "value": "<SUMMARY> ... </CONCLUSION>"}]}

A record may hold several questions about its image, each answered in turn (`Record.turns`; LLaVA-CoT-100k
has such records). Other keys (a gold "answer", a question "family", ...) are kept in
`Record.extra` and written back unchanged. `scan` yields every record or the reason it is bad, with its line number;
`read` yields only good records and reports (or refuses) the bad ones, never dropping them
silently. Neither holds the file in memory. A line that is not UTF-8 is a bad record like any
other: the records around it are still read.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from llava_cot.errors import LlavaCotError

IMAGE_TOKEN = "<image>"
HUMAN, GPT = "human", "gpt"
_CHUNK = 1 << 20
# Files are read with errors="surrogateescape": a byte that is not UTF-8 becomes a lone surrogate
# U+DC80..U+DCFF, which no UTF-8 text can hold, so a bad line is found (and reported with its
# number) without a UnicodeDecodeError ending the whole read.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


@dataclass
class Record:
    """One sample. `line` is where it starts in its file (1-based; 0 if not read from one)."""

    id: str
    conversations: list[dict[str, str]]
    image: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    line: int = 0

    @classmethod
    def make(cls, id: str, question: str, response: str, image: str | None = None, **extra: Any) -> Record:
        """A single-turn record; the image token is put before the question when there is an image."""
        human = f"{IMAGE_TOKEN}\n{question}" if image is not None else question
        turns = [{"from": HUMAN, "value": human}, {"from": GPT, "value": response}]
        return cls(id=id, conversations=turns, image=image, extra=extra)

    @property
    def question(self) -> str:
        """The first human turn without its image token."""
        value = _first(self.conversations, HUMAN)
        return value.replace(IMAGE_TOKEN, "").strip()

    @property
    def response(self) -> str:
        """The first gpt turn."""
        return _first(self.conversations, GPT)

    @property
    def turns(self) -> list[tuple[str, str]]:
        """Every (question, answer) exchange, in order: each gpt turn with the human turn(s) just
        before it, without the image token. LLaVA-CoT-100k has records of several; `question`
        and `response` are the first."""
        out: list[tuple[str, str]] = []
        asked: list[str] = []
        for t in self.conversations:
            if t["from"] == HUMAN:
                asked.append(t["value"].replace(IMAGE_TOKEN, "").strip())
            elif t["from"] == GPT and asked:
                out.append(("\n".join(asked), t["value"]))
                asked = []
        return out

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"id": self.id}
        if self.image is not None:
            obj["image"] = self.image
        obj["conversations"] = self.conversations
        obj.update(self.extra)
        return obj

    @classmethod
    def from_json(cls, obj: Any, line: int = 0) -> Record:
        """Validate the structure of one decoded object; raise ValueError with the reason."""
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        for key in ("id", "conversations"):
            if key not in obj:
                raise ValueError(f"missing field {key!r}")
        rid, image, turns = obj["id"], obj.get("image"), obj["conversations"]
        if not isinstance(rid, (str, int)) or isinstance(rid, bool):
            raise ValueError("field 'id' must be a string or an integer")
        if image is not None and not isinstance(image, str):
            raise ValueError("field 'image' must be a string (a path relative to the image root)")
        if not isinstance(turns, list) or not all(_is_turn(t) for t in turns):
            raise ValueError("field 'conversations' must be a list of {'from': ..., 'value': ...} objects")
        roles = [t["from"] for t in turns]
        if HUMAN not in roles or GPT not in roles[roles.index(HUMAN) + 1 :]:
            raise ValueError("no human turn followed by a gpt turn in 'conversations'")
        extra = {k: v for k, v in obj.items() if k not in ("id", "image", "conversations")}
        return cls(id=str(rid), conversations=turns, image=image, extra=extra, line=line)


@dataclass(frozen=True)
class BadRecord:
    """A record that could not be read, and why."""

    line: int
    reason: str
    id: str | None = None

    def __str__(self) -> str:
        who = f" (id {self.id})" if self.id is not None else ""
        return f"line {self.line}{who}: {self.reason}"


def _is_turn(t: Any) -> bool:
    return isinstance(t, dict) and isinstance(t.get("from"), str) and isinstance(t.get("value"), str)


def _first(turns: list[dict[str, str]], role: str) -> str:
    return next((t["value"] for t in turns if t["from"] == role), "")


def _decode(obj: Any, line: int) -> Record | BadRecord:
    try:
        return Record.from_json(obj, line)
    except ValueError as e:
        rid = obj.get("id") if isinstance(obj, dict) and isinstance(obj.get("id"), (str, int)) else None
        return BadRecord(line, str(e), None if rid is None else str(rid))


def scan(path: str | os.PathLike[str]) -> Iterator[Record | BadRecord]:
    """Every record of a JSONL or JSON-list file, or the reason it is bad, in file order."""
    path = Path(path)
    try:
        # utf-8-sig: a leading byte-order mark (Windows editors write one) is not part of the text
        f = path.open(encoding="utf-8-sig", errors="surrogateescape")
    except OSError as e:
        raise LlavaCotError(f"cannot read {path}: {e.strerror or e}") from None
    with f:
        first = _first_char(f)
        yield from (_scan_json_list(f) if first == "[" else _scan_jsonl(f))


def _first_char(f: TextIO) -> str:
    while True:
        c = f.read(1)
        if not c or not c.isspace():
            f.seek(0)
            return c


def _not_utf8(bad: re.Match[str], column: bool = True) -> str:
    """The reason for a record holding the undecodable byte that `bad` matched (in a line of its
    own when `column`: a JSON list's buffer may not start where the line does)."""
    at = f" at column {bad.start() + 1}" if column else ""
    return f"not UTF-8 text: byte 0x{ord(bad.group()) - 0xDC00:02x}{at} (save the file as UTF-8)"


def _scan_jsonl(f: TextIO) -> Iterator[Record | BadRecord]:
    for lineno, line in enumerate(f, 1):
        if not line.strip():
            continue
        if bad := _NOT_UTF8.search(line):
            yield BadRecord(lineno, _not_utf8(bad))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield BadRecord(lineno, f"malformed JSON: {e.msg} (column {e.colno})")
            continue
        yield _decode(obj, lineno)


def _scan_json_list(f: TextIO) -> Iterator[Record | BadRecord]:
    """Decode the elements of a top-level JSON list one at a time, reading the file in chunks."""
    decoder = json.JSONDecoder()
    buf, pos, line, eof = f.read(_CHUNK), 0, 1, False
    pos = buf.index("[") + 1
    line += buf.count("\n", 0, pos)
    while True:
        # skip whitespace and the separating comma, counting lines
        while True:
            while pos < len(buf) and (buf[pos].isspace() or buf[pos] == ","):
                line += buf[pos] == "\n"
                pos += 1
            if pos < len(buf) or eof:
                break
            buf, pos = f.read(_CHUNK), 0
            eof = not buf
        if pos >= len(buf):
            yield BadRecord(line, "malformed JSON: the list is not closed with ']'")
            return
        if buf[pos] == "]":
            return
        try:
            obj, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as e:
            more = "" if eof else f.read(_CHUNK)
            if more:  # the element may just be cut by the chunk boundary
                buf, pos = buf[pos:] + more, 0
                continue
            eof = True
            bad = _NOT_UTF8.search(buf, pos, e.pos + 1)  # a bad byte outside a string breaks the list
            at = line + buf.count("\n", pos, bad.start() if bad else e.pos)
            why = _not_utf8(bad, column=False) if bad else f"malformed JSON: {e.msg}"
            yield BadRecord(at, f"{why}; the rest of the list cannot be read")
            return
        if bad := _NOT_UTF8.search(buf, pos, end):  # inside a string: only this element is bad
            yield BadRecord(line + buf.count("\n", pos, bad.start()), _not_utf8(bad, column=False))
        else:
            yield _decode(obj, line)
        line += buf.count("\n", pos, end)
        pos = end


def read(path: str | os.PathLike[str], on_error: str = "raise", log: TextIO | None = None) -> Iterator[Record]:
    """The good records of a file. A bad one raises LlavaCotError naming its line
    (on_error="raise"), or is reported on `log` (stderr by default) and skipped ("skip")."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    for item in scan(path):
        if isinstance(item, Record):
            yield item
        elif on_error == "raise":
            raise LlavaCotError(f"{path}: bad record at {item} (run `llava-cot data check {path}`)")
        else:
            print(f"{path}: skipping bad record at {item}", file=log or sys.stderr)


def write(path: str | os.PathLike[str], records: Iterable[Record], append: bool = False) -> int:
    """Write records as JSONL and return how many. A new file is written beside the target and
    renamed into place at the end, so an interrupted write never clobbers an existing file;
    with append=True each line is added to the end of the file as it comes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path if append else path.with_name(path.name + ".partial")
    n = 0
    with target.open("a" if append else "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec.to_json(), ensure_ascii=False) + "\n")
            n += 1
    if not append:
        os.replace(target, path)
    return n
