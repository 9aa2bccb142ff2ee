"""`llava-cot data import`: VQA data users have, as LLaVA-layout records whose gpt turns are the
plain gold answers: the input of `llava-cot data annotate`.

    llava-cot data import --from ~/LMUData/MMStar.tsv --out runs/mmstar
    llava-cot data import --from lmms-lab/ai2d/data --out runs/ai2d --options-column options
    llava-cot data import --from train.csv --out runs/mine --image-column file --answer-column label

Writes DIR/data.jsonl and DIR/images/ (each image once, named by a hash of its bytes, so rows that
share an image share its file). Record ids are stable: a LLaVA record keeps its id (with "-K"
added for its K-th human/gpt pair when it has several); a table row's id is the file's stem and
its id column (or row number): "MMStar-1234". Each record keeps the gold `answer`, its `options`
(letter -> text) when it has any, and the columns category, l2-category and split. The formats
and their columns: sources.py. A row that cannot be imported (no question, no answer, an image
missing or unreadable, a repeated id, ...) is reported with its line and skipped; the rest are
written. `llava-cot data check DIR/data.jsonl --no-stages --images DIR` passes on the result.
"""

from __future__ import annotations

import hashlib
import io
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from llava_cot import records
from llava_cot.errors import LlavaCotError
from llava_cot.records import Record
from llava_cot.teacher import sources
from llava_cot.teacher.sources import Columns, Item, Skip

_SIGNATURES = ((b"\x89PNG", ".png"), (b"\xff\xd8", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp"))


@dataclass
class ImportConfig:
    """Turn VQA data (VLMEvalKit TSV, parquet, save_to_disk folders, LLaVA JSONL, CSV/JSONL tables)
    into LLaVA-layout records with plain gold answers, images written beside them."""

    source: str = field(metadata={"help": "the file or folder to import", "aliases": ["--from"]})
    out: str = field(metadata={"help": "output folder: data.jsonl and images/ are written there"})
    format: str = field(default="auto", metadata={"help": "the input's layout", "choices": list(sources.FORMATS)})
    images: str | None = field(default=None, metadata={
        "help": "where image paths of LLaVA and table files start (default: the input file's folder)"})
    split: str | None = field(default=None, metadata={"help": "the split of a save_to_disk DatasetDict"})
    id_column: str | None = field(default=None, metadata={
        "help": "column of the row id (default: id, index, question_id or qid, else the row number)"})
    image_column: str = field(default="image", metadata={"help": "column of the image (bytes, or a path)"})
    question_column: str = field(default="question", metadata={"help": "column of the question"})
    answer_column: str = field(default="answer", metadata={"help": "column of the gold answer"})
    options_column: str | None = field(default=None, metadata={
        "help": "column holding the options as a list or {letter: text} (default: options or choices "
                "when present, else columns A, B, ...)"})
    limit: int = field(default=0, metadata={"help": "import at most this many items (0: all)"})


def items(cfg: ImportConfig) -> Iterator[Item | Skip]:
    path = Path(cfg.source).expanduser()
    if not path.exists():
        raise LlavaCotError(f"{path} does not exist")
    fmt = sources.detect(path) if cfg.format == "auto" else cfg.format
    cols = Columns(cfg.id_column, cfg.image_column, cfg.question_column, cfg.answer_column, cfg.options_column)
    images = Path(cfg.images).expanduser() if cfg.images else (path if path.is_dir() else path.parent)
    if fmt == "tsv":
        return sources.read_tsv(path, cols)
    if fmt == "parquet":
        return sources.read_parquet(path, cols)
    if fmt == "arrow":
        return sources.read_arrow(path, cols, cfg.split)
    if fmt == "llava":
        return sources.read_llava(path, images)
    return sources.read_table(path, cols, images)


def _extension(data: bytes) -> str | None:
    """The file extension of encoded image bytes, or None when Pillow cannot read them."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
            kind = (im.format or "").lower()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None
    for magic, ext in _SIGNATURES:
        if data.startswith(magic):
            return ext
    return f".{kind or 'img'}"


def write_image(image: bytes | Path, out: Path) -> str:
    """Store the image under out/images/ (once per content) and return its path relative to out;
    ValueError when it cannot be read."""
    if isinstance(image, Path):
        try:
            data = image.read_bytes()
        except OSError as e:
            raise ValueError(f"image {image} cannot be read: {e.strerror or e}") from None
    else:
        data = image
    ext = _extension(data)
    if ext is None:
        raise ValueError("the image cannot be read (not an image Pillow knows)")
    rel = f"images/{hashlib.sha1(data).hexdigest()[:20]}{ext}"
    target = out / rel
    if not target.exists():
        tmp = target.with_name(target.name + ".partial")
        tmp.write_bytes(data)
        tmp.replace(target)  # a kill mid-write leaves no half image under the final name
    return rel


def _prefix(cfg: ImportConfig) -> str:
    """The id prefix of table rows: the input's name without its suffix."""
    path = Path(cfg.source).expanduser()
    return path.stem if path.is_file() else path.name


def convert(cfg: ImportConfig, out: Path, skipped: list[Skip]) -> Iterator[Record]:
    """The records of the import, in input order; skipped rows are appended to `skipped`."""
    fmt = cfg.format if cfg.format != "auto" else sources.detect(Path(cfg.source).expanduser())
    prefix = "" if fmt == "llava" else f"{_prefix(cfg)}-"
    seen: dict[str, str] = {}
    made = 0
    for item in items(cfg):
        if isinstance(item, Skip):
            skipped.append(item)
            continue
        rid = prefix + item.id
        if rid in seen:
            skipped.append(Skip(item.where, f"repeats the id {rid!r} of {seen[rid]}"))
            continue
        try:
            image = write_image(item.image, out) if item.image is not None else None
        except ValueError as e:
            skipped.append(Skip(item.where, str(e)))
            continue
        seen[rid] = item.where
        extra = {**item.extra, "answer": item.answer}
        if item.options:
            extra["options"] = item.options
        yield Record.make(rid, item.question, item.answer, image, **extra)
        made += 1
        if cfg.limit and made >= cfg.limit:
            return


def main(cfg: ImportConfig) -> int:
    t0 = time.perf_counter()
    out = Path(cfg.out).expanduser()
    if out.exists() and not out.is_dir():
        raise LlavaCotError(f"--out {out} is a file; give a folder")
    (out / "images").mkdir(parents=True, exist_ok=True)
    skipped: list[Skip] = []
    n = records.write(out / "data.jsonl", convert(cfg, out, skipped))
    for s in skipped:
        print(f"skipped {s}", file=sys.stderr)
    if n == 0:
        raise LlavaCotError(f"{cfg.source}: no row could be imported ({len(skipped)} skipped)")
    print(f"import: {n} records in {out / 'data.jsonl'}, images in {out / 'images'}; {len(skipped)} rows "
          f"skipped ({time.perf_counter() - t0:.1f} s)")
    return 0
