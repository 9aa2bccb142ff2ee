"""Reading lmms-eval's parquet files (the Hugging Face data sets its tasks load) as TSV rows.

lmms-eval reads its benchmarks from Hugging Face data sets stored as parquet: `lmms-lab/MMBench`,
`Lin-Chen/MMStar`, `lmms-lab/ai2d`, `lmms-lab/HallusionBench`, `AI4Math/MathVista`,
`lmms-lab/MMVet`. Their columns differ from VLMEvalKit's TSVs (an image is a struct
{"bytes", "path"}, AI2D's options are a list and its answer a position, HallusionBench's answer
is "1"/"0", ...), so each benchmark gives an `adapt(record) -> fields` that renames a record into
VLMEvalKit's columns (`index`, `question`, `A`..., `answer`, `category`, ...), with the image
bytes under "image". Then every benchmark scores one layout.

    for row in iter_parquet(Path("MMStar/val-00000-of-00001.parquet"), adapt): ...

PATH may be one .parquet file or a folder of them (a downloaded data set's split, shards read in
name order). Records are read in batches: a whole file is never held in memory. Needs pyarrow.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from llava_cot.benches.tsv import Bad, Row
from llava_cot.errors import LlavaCotError

BATCH = 64  # records decoded at a time


def image_bytes(value: Any) -> bytes:
    """The encoded image of a parquet cell: a datasets Image struct {"bytes", "path"}, raw bytes,
    or a base64 string. ValueError if there is none."""
    if isinstance(value, dict):
        value = value.get("bytes")
    if isinstance(value, bytes | bytearray) and value:
        return bytes(value)
    if isinstance(value, str) and value:
        return base64.b64decode(value)
    raise ValueError("no image")


def iter_parquet(path: Path, adapt: Callable[[dict[str, Any]], dict[str, Any]]) -> Iterator[Row | Bad]:
    """Every record of the parquet file(s) at path as a Row in VLMEvalKit's columns, or the reason
    it cannot be one (row numbers count from 1 across the files)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise LlavaCotError("reading parquet files needs pyarrow: pip install pyarrow") from None
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise LlavaCotError(f"{path} holds no .parquet files")
    n = 0
    for file in files:
        try:
            batches = pq.ParquetFile(file).iter_batches(batch_size=BATCH)
            for batch in batches:
                for record in batch.to_pylist():
                    n += 1
                    yield _row(n, record, adapt)
        except (OSError, pa.ArrowException) as e:
            raise LlavaCotError(f"{file} is not a readable parquet file: {e}") from None


def _row(n: int, record: dict[str, Any], adapt: Callable[[dict[str, Any]], dict[str, Any]]) -> Row | Bad:
    try:
        fields = adapt(record)
        image = image_bytes(fields.pop("image", None))
    except KeyError as e:
        return Bad(n, f"no column {e}", unit="row")
    except (ValueError, TypeError, IndexError) as e:
        return Bad(n, str(e), unit="row")
    fields = {k: v for k, v in fields.items() if v is not None and v != ""}
    return Row(n, fields, image=image)
