"""Reading a benchmark file: VLMEvalKit's TSV layout, or lmms-eval's parquet (see parquet.py).

A VLMEvalKit TSV (what `vlmeval` downloads into ~/LMUData: MMStar.tsv, MMBench_DEV_EN.tsv, ...)
has a header line and one question a row, tab-separated, fields with tabs or newlines quoted
("..."), as pandas writes them. The columns that matter here:

    index        unique id of the row (an integer in most benchmarks)
    image        the image, base64-encoded; or, to save space, the `index` of another row
                 whose image this row shares (any value of 64 characters or fewer)
    image_path   instead of `image`: a path (relative to the TSV's folder)
    question, hint, A, B, C, ... (options), answer, category, l2-category, split, ...

    items, bad = read_items("~/LMUData/MMStar.tsv", make_item, limit=100, missing="download it from ...")
    # make_item(row) -> Item: row.fields (column -> text), row.image_loader() (-> RGB PIL image)

Rows are read one at a time and only the kept rows' images are held (as bytes). An empty cell is
a missing value. A row that cannot be used (wrong number of fields, no image, bad base64, an
image reference to a row that has no image, a duplicate index) is reported on `log` (stderr by
default) with its line number and skipped: never dropped silently. Benchmarks add their own
checks (a gold letter that is not an option, ...) through `Bad`.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

from llava_cot.errors import LlavaCotError

T = TypeVar("T")
REFERENCE_MAX = 64  # VLMEvalKit: an `image` value this short is the index of another row


@dataclass
class Row:
    """One question: its fields (column -> text; empty cells absent) and its image."""

    line: int  # where the row starts in its file (1-based); the row number in a parquet file
    fields: dict[str, Any]
    image: bytes | Path | None = None  # encoded image bytes, or a path to an image file
    where: str = ""  # "FILE line N", for messages
    unit: str = "line"  # "row" in parquet files

    @property
    def index(self) -> str:
        return str(self.fields.get("index", self.line))

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def image_loader(self) -> Callable[[], Any] | None:
        """A function opening the row's image; it reads `self.image` when called, so an image
        reference resolved after the item was made is followed."""
        if self.image is None:
            return None
        return lambda: image_loader(self.image, self.where)()  # type: ignore[arg-type]


@dataclass(frozen=True)
class Bad:
    """A row that was skipped, and why."""

    line: int
    reason: str
    index: str | None = None
    unit: str = "line"  # "row" in parquet files, which have no lines

    def __str__(self) -> str:
        who = f" (index {self.index})" if self.index is not None else ""
        return f"{self.unit} {self.line}{who}: {self.reason}"


def image_loader(image: bytes | Path, where: str) -> Callable[[], Any]:
    """A function that opens the image as an RGB PIL image, or raises a one-line error."""

    def load() -> Any:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(image if isinstance(image, Path) else io.BytesIO(image)) as im:
                return im.convert("RGB")
        except (OSError, UnidentifiedImageError) as e:
            raise LlavaCotError(f"{where}: the image cannot be read: {e}") from None

    return load


def decode_image(value: str) -> bytes:
    """Base64 (as VLMEvalKit writes it) to bytes; ValueError with the reason if it is not."""
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the image is not valid base64") from None


def iter_tsv(path: Path) -> Iterator[Row | Bad]:
    """The rows of a TSV file in order (images still as raw text in fields["image"])."""
    _allow_big_fields()
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        start = 1
        try:
            header = next(reader, None)
            if not header:
                return
            start = reader.line_num + 1
            for cells in reader:
                line, start = start, reader.line_num + 1
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    yield Bad(line, f"{len(cells)} fields where the header has {len(header)}")
                    continue
                yield Row(line, {h: c for h, c in zip(header, cells, strict=True) if c != ""})
        except (csv.Error, UnicodeDecodeError) as e:
            # the rest of the file cannot be split into rows reliably
            raise LlavaCotError(f"{path} line {start}: not a readable TSV file ({e})") from None


def _allow_big_fields() -> None:
    # A base64 image is far over csv's default 128 KiB field limit.
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 2


def read_items(path: str | Path, make: Callable[[Row], T], limit: int = 0,
               keep: Callable[[Row], bool] | None = None,
               adapt: Callable[[dict[str, Any]], dict[str, Any]] | None = None, missing: str = "",
               log: TextIO | None = None) -> tuple[list[T], list[Bad]]:
    """`make(row)` for the rows of a TSV file, or of lmms-eval parquet (a .parquet file or a folder
    of them, each record turned into VLMEvalKit's columns by `adapt`): at most `limit` (0: all) of
    the rows `keep` accepts. A row that cannot be read, or that `make` rejects with ValueError, is
    reported on `log` and returned among the skipped rows. A missing file raises LlavaCotError,
    with `missing` (where to get it) appended; so does a file with no usable row."""
    p = Path(path).expanduser()
    if not p.exists():
        raise LlavaCotError(f"{p} does not exist" + (f"; {missing}" if missing else ""))
    parquet = p.is_dir() or p.suffix == ".parquet"
    if parquet:
        from llava_cot.benches import parquet as pq

        if adapt is None:
            raise LlavaCotError(f"{p}: this benchmark reads only VLMEvalKit TSV files")
        source: Iterator[Row | Bad] = pq.iter_parquet(p, adapt)
    else:
        source = iter_tsv(p)
    made, bad = _collect(source, p, "row" if parquet else "line", limit, keep, make)
    if not parquet:
        bad += _resolve_references([row for row, _ in made], p)
    for b in sorted(bad, key=lambda b: b.line):
        print(f"{p}: skipping bad row at {b}", file=log or sys.stderr)
    items = [item for row, item in made if not isinstance(row.image, str)]
    if not items:
        raise LlavaCotError(f"{p}: no usable rows")
    return items, bad


def _collect(source: Iterator[Row | Bad], path: Path, unit: str, limit: int, keep: Callable[[Row], bool] | None,
             make: Callable[[Row], T]) -> tuple[list[tuple[Row, T]], list[Bad]]:
    made: list[tuple[Row, T]] = []
    bad: list[Bad] = []
    seen: dict[str, int] = {}
    for row in source:
        if isinstance(row, Bad):
            bad.append(row)
            continue
        row.where, row.unit = f"{path} {unit} {row.line}", unit
        if row.index in seen:
            bad.append(Bad(row.line, f"duplicate index (first at {unit} {seen[row.index]})", row.index, unit))
            continue
        seen[row.index] = row.line
        if keep is not None and not keep(row):
            continue
        try:
            _take_image(row, path)
            made.append((row, make(row)))
        except ValueError as e:
            bad.append(Bad(row.line, str(e), row.index, unit))
            continue
        if limit and len(made) >= limit:
            break
    return made, bad


def _take_image(row: Row, path: Path) -> None:
    """Move a TSV row's image out of its fields: bytes, a path, or (still a str) a reference."""
    if isinstance(row.image, bytes | Path):  # parquet rows come decoded
        return
    value = row.fields.pop("image", None)
    if value is None and "image_path" in row.fields:
        row.image = path.parent / str(row.fields["image_path"])
        return
    if value is None:
        raise ValueError("no image")
    if value.startswith("[") and value.endswith("]"):
        raise ValueError("several images in one row: not supported")
    row.image = value if len(value) <= REFERENCE_MAX else decode_image(value)


def _resolve_references(rows: list[Row], path: Path) -> list[Bad]:
    """Give rows whose image is another row's index that row's image. Targets among the kept rows
    are used directly; the others are fetched in a second pass over the file."""
    images = {r.index: r.image for r in rows if isinstance(r.image, bytes)}
    wanted = {r.image for r in rows if isinstance(r.image, str) and r.image not in images}
    if wanted:
        images.update(_fetch_images(path, wanted))
    bad = []
    for r in rows:
        if isinstance(r.image, str):
            target = images.get(r.image)
            if target is None:
                bad.append(Bad(r.line, f"the image refers to index {r.image}, which has no image", r.index))
            else:
                r.image = target
    return bad


def _fetch_images(path: Path, wanted: set[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for row in iter_tsv(path):
        if isinstance(row, Row) and row.index in wanted and len(row.get("image", "")) > REFERENCE_MAX:
            try:
                found[row.index] = decode_image(row.fields["image"])
            except ValueError:
                continue  # reported as the referring row's problem
    return found


@dataclass
class Source:
    """Where users get a benchmark's file, for the message when it is missing."""

    files: str  # "MMStar.tsv"
    url: str
    lmms: str = ""  # lmms-eval's Hugging Face dataset, when it can be read too

    def hint(self) -> str:
        also = f", or lmms-eval's parquet files from the Hugging Face dataset {self.lmms}" if self.lmms else ""
        return f"download {self.files} from {self.url} (VLMEvalKit's LMUData){also}, and pass its path"

