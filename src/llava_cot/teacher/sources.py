"""Reading the VQA layouts users have, as plain question-answer items for `data import`.

    FORMATS     what each is, and how `detect` knows it
    tsv         VLMEvalKit TSVs: base64 images (or references to another row's), options in
                columns A, B, ...; read with llava_cot.benches.tsv
    parquet     lmms-eval / Hugging Face parquet files, one file or a folder of them
    arrow       a Hugging Face data set saved with `save_to_disk` (a folder with state.json, or a
                DatasetDict folder with dataset_dict.json: --split picks the split)
    llava       LLaVA-style conversation JSONL or JSON list: each human/gpt pair one item
    table       CSV, or JSONL of objects without "conversations": image path, question, answer

In table-like rows the columns are named by `Columns` (--id-column, --image-column, ...). Options
are columns A, B, ... (VLMEvalKit's), or one column holding a list or a {letter: text} object
(`options` or `choices` unless named); with a list, a whole-number answer is a position in it (as
AI2D and ScienceQA store theirs) and any other answer may be an option's text. Each item is
(`Item`) or why its row was skipped (`Skip`), in file order.
"""

from __future__ import annotations

import csv
import itertools
import json
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava_cot import records, stages
from llava_cot.benches import parquet as pq
from llava_cot.benches import tsv
from llava_cot.benches.choice import INSTRUCTION
from llava_cot.errors import LlavaCotError

FORMATS = ("auto", "tsv", "parquet", "arrow", "llava", "table")
LETTERS = string.ascii_uppercase
_ID_COLUMNS = ("id", "index", "question_id", "qid")
_KEPT = ("category", "l2-category", "split", "hint")  # columns carried into the records


@dataclass
class Item:
    id: str  # unique in the source; the record's id (importer.py prefixes table rows' ids)
    question: str  # as the human turn asks it: hint and options included
    answer: str  # the gold answer (an option letter when there are options)
    image: bytes | Path | None
    where: str  # "FILE line N", for messages
    options: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skip:
    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class Columns:
    id: str | None = None  # None: the first of _ID_COLUMNS present, else the row number
    image: str = "image"
    question: str = "question"
    answer: str = "answer"
    options: str | None = None  # None: "options" or "choices" when present, else columns A, B, ...


def detect(path: Path) -> str:
    if path.is_dir():
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            return "arrow"
        if any(path.glob("*.parquet")):
            return "parquet"
        raise LlavaCotError(f"{path} is a folder with no parquet files and no save_to_disk data set")
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".parquet", ".csv"):
        return {".tsv": "tsv", ".parquet": "parquet", ".csv": "table"}[suffix]
    if suffix in (".json", ".jsonl"):
        first = next(iter(records.scan(path)), None)
        return "llava" if isinstance(first, records.Record) else "table"
    raise LlavaCotError(f"cannot tell the format of {path}: pass --format ({', '.join(FORMATS[1:])})")


def question_text(question: str, options: dict[str, str], hint: str | None = None) -> str:
    """The question as VLMEvalKit presents a multiple-choice one: hint, question, options, instruction."""
    if not options and not hint:
        return question
    lines = [f"Hint: {hint}"] if hint else []
    lines.append(f"Question: {question}" if options or hint else question)
    if options:
        lines += ["Options:", *(f"{k}. {v}" for k, v in options.items()), INSTRUCTION]
    return "\n".join(lines)


def _options(fields: dict[str, Any], cols: Columns) -> tuple[dict[str, str], bool]:
    """(letter -> text, whether they came from a list) of a row."""
    name = cols.options or next((c for c in ("options", "choices") if c in fields), None)
    value = fields.get(name) if name else None
    if isinstance(value, str) and value.strip().startswith(("[", "{")):
        value = json.loads(value)  # CSV cells hold lists as JSON text
    if isinstance(value, dict):
        return {str(k).strip().upper(): str(v) for k, v in value.items() if v is not None}, False
    if isinstance(value, list | tuple):
        return dict(zip(LETTERS, map(str, value), strict=False)), True
    return {k: str(fields[k]) for k in LETTERS if fields.get(k) not in (None, "")}, False


def _gold(answer: Any, options: dict[str, str], listed: bool) -> str:
    text = str(answer).strip()
    if not options or (len(text) == 1 and text.upper() in options):
        return text.upper() if options else text
    if listed and (isinstance(answer, int) or text.isdigit()) and int(text) < len(options):
        return LETTERS[int(text)]
    named = [k for k, v in options.items() if v.strip().lower() == text.lower()]
    return named[0] if len(named) == 1 else text


def _item(rid: str, fields: dict[str, Any], cols: Columns, image: bytes | Path | None, where: str) -> Item:
    """An item from a row's fields; ValueError with the reason when it cannot be one."""
    question, answer = fields.get(cols.question), fields.get(cols.answer)
    if question in (None, "") or not str(question).strip():
        raise ValueError(f"no question (column {cols.question!r})")
    if answer is None or not str(answer).strip():
        raise ValueError(f"no answer (column {cols.answer!r})")
    options, listed = _options(fields, cols)
    hint = fields.get("hint")
    extra = {k: fields[k] for k in _KEPT if fields.get(k) not in (None, "") and k != "hint"}
    gold = _gold(answer, options, listed)
    if options and len(gold) == 1 and gold.isalpha() and gold not in options:
        raise ValueError(f"the answer {gold!r} is not one of the options {''.join(options)}")
    text = question_text(str(question).strip(), options, str(hint) if hint else None)
    return Item(rid, text, gold, image, where, options, extra)


def _row_id(fields: dict[str, Any], cols: Columns, n: int) -> str:
    if cols.id is not None:
        if fields.get(cols.id) in (None, ""):
            raise ValueError(f"no id (column {cols.id!r})")
        return str(fields[cols.id])
    return next((str(fields[c]) for c in _ID_COLUMNS if fields.get(c) not in (None, "")), str(n))


def read_tsv(path: Path, cols: Columns) -> Iterator[Item | Skip]:
    """A VLMEvalKit TSV (images decoded, references to other rows' images followed)."""
    rows, bad = tsv.read_items(path, lambda row: row, log=_Quiet())
    for b in bad:
        yield Skip(f"{path} line {b.line}" + (f" (index {b.index})" if b.index else ""), b.reason)
    for row in rows:
        yield from _safe(row.where, _item, row.index, row.fields, Columns(), row.image, row.where)


def read_parquet(path: Path, cols: Columns) -> Iterator[Item | Skip]:
    """lmms-eval / Hugging Face parquet: a file, or a folder of them read in name order."""
    for row in pq.iter_parquet(path, lambda record: {**record, "image": record[cols.image]}):
        where = f"{path} row {row.line}"
        if isinstance(row, tsv.Bad):
            yield Skip(where, row.reason)
            continue
        yield from _safe(where, _row_item, row.fields, cols, row.line, row.image, where)


def read_arrow(path: Path, cols: Columns, split: str | None) -> Iterator[Item | Skip]:
    """A `save_to_disk` folder, read with pyarrow alone (its files are Arrow IPC streams)."""
    import pyarrow as pa

    folder = _split_folder(path, split)
    state = json.loads((folder / "state.json").read_text())
    files = [folder / f["filename"] for f in state.get("_data_files", [])] or sorted(folder.glob("*.arrow"))
    n = 0
    for file in files:
        with pa.memory_map(str(file)) as source:
            for batch in pa.ipc.open_stream(source):
                for record in batch.to_pylist():
                    n += 1
                    yield from _table_row(record, n, f"{file} row {n}", cols, None)


def _split_folder(path: Path, split: str | None) -> Path:
    if not (path / "dataset_dict.json").is_file():
        return path
    splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
    if split is None and len(splits) == 1:
        split = splits[0]
    if split not in splits:
        raise LlavaCotError(f"{path} holds the splits {', '.join(splits)}: choose one with --split")
    return path / split


def read_table(path: Path, cols: Columns, images: Path) -> Iterator[Item | Skip]:
    """CSV with a header line, or JSONL of flat objects; image paths relative to `images`."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(f)
            rows = ((reader.line_num, row) for row in reader)
        else:
            rows = ((n, _json_line(line)) for n, line in enumerate(f, 1) if line.strip())
        for row, (n, fields) in enumerate(rows, 1):  # ids count the rows, messages name the lines
            yield from _table_row(fields, row, f"{path} line {n}", cols, images)


def _json_line(line: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _table_row(fields: dict[str, Any] | None, n: int, where: str, cols: Columns,
               images: Path | None) -> Iterator[Item | Skip]:
    """The item of row number `n` (its id when the row has none), found at `where`."""
    if fields is None:
        yield Skip(where, "not a JSON object")
        return
    yield from _safe(where, _table_item, fields, n, cols, images, where)


def _table_item(fields: dict[str, Any], n: int, cols: Columns, images: Path | None, where: str) -> Item:
    value = fields.get(cols.image)
    if images is None:  # parquet and arrow hold the image itself
        image: bytes | Path | None = pq.image_bytes(value) if value is not None else None
    else:
        image = images / str(value) if value not in (None, "") else None
    return _row_item(fields, cols, n, image, where)


def _row_item(fields: dict[str, Any], cols: Columns, n: int, image: bytes | Path | None, where: str) -> Item:
    return _item(_row_id(fields, cols, n), fields, cols, image, where)


def read_llava(path: Path, images: Path) -> Iterator[Item | Skip]:
    """Each human/gpt pair of each record; the gold answer is the gpt turn's (its CONCLUSION, if
    it is already in the four stages)."""
    for rec in records.scan(path):
        if isinstance(rec, records.BadRecord):
            yield Skip(f"{path} line {rec.line}", rec.reason)
            continue
        turns = rec.conversations
        pairs = [(h, g) for h, g in itertools.pairwise(turns) if h["from"] == records.HUMAN and g["from"] == records.GPT]
        options = rec.extra.get("options") if len(pairs) == 1 else None
        extra = {k: v for k, v in rec.extra.items() if k not in ("options", "answer")}
        image = images / rec.image if rec.image is not None else None
        for k, (human, gpt) in enumerate(pairs):
            rid = rec.id if len(pairs) == 1 else f"{rec.id}-{k}"
            question = human["value"].replace(records.IMAGE_TOKEN, "").strip()
            answer = stages.answer_text(gpt["value"])
            item = Item(rid, question, answer, image, f"{path} line {rec.line}",
                        dict(options) if isinstance(options, dict) else {}, dict(extra))
            yield item if question and answer else Skip(item.where, "an empty question or answer")


def _safe(where: str, make: Any, *args: Any) -> Iterator[Item | Skip]:
    """make(*args), or the reason it could not be made."""
    try:
        yield make(*args)
    except (ValueError, KeyError, TypeError) as e:
        yield Skip(where, str(e) if not isinstance(e, KeyError) else f"no column {e}")


class _Quiet:
    """A log that drops what tsv.read_items prints: its skipped rows are reported by the importer."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
