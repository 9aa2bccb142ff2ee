"""The demo's images: what the page or the API was given, opened within limits, and the examples.

An upload reaches the demo as Gradio's file payload (a dict with the server-side `path` and the
user's `orig_name`) or, from Python, as a path. It is checked before it is decoded: its bytes, then
its size in pixels from the header alone (a 20000 x 20000 PNG of a few hundred kilobytes decodes
into over a gigabyte), then decoded in full so that a truncated file fails here, with a message
that names the user's file, not the server's temporary copy.

    image = load_image({"path": "/tmp/gradio/x/scene1.png", "orig_name": "scene1.png"}, Limits())
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llava_cot.errors import LlavaCotError

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 20 * 2**20  # an uploaded file
    max_pixels: int = 4096 * 4096  # width x height, read from the header before decoding


def where(payload: Any) -> tuple[str | None, str]:
    """The file's path on this machine and the name to show the user."""
    if payload is None:
        return None, ""
    if isinstance(payload, dict):
        path = payload.get("path")
        return path, payload.get("orig_name") or (Path(path).name if path else "")
    return str(payload), Path(str(payload)).name


def load_image(payload: Any, limits: Limits) -> Any:
    """The RGB PIL image `payload` names, or a LlavaCotError saying what is wrong with it."""
    from PIL import Image, UnidentifiedImageError

    path, name = where(payload)
    if not path:
        raise LlavaCotError("no image: upload one, paste one, or pick an example first")
    if not os.path.isfile(path):
        raise LlavaCotError(f"the image {name} is gone from the server; upload it again")
    size = os.path.getsize(path)
    if size > limits.max_bytes:
        raise LlavaCotError(f"the image {name} is too large: {size:,} bytes, more than the "
                            f"{limits.max_bytes:,} this demo accepts")
    try:
        with warnings.catch_warnings():
            # the pixel limit below is ours and stricter; PIL's own warning would only repeat it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                if width * height > limits.max_pixels:
                    raise LlavaCotError(f"the image {name} is too large: {width} x {height} pixels, more than the "
                                        f"{limits.max_pixels:,} pixels this demo accepts; scale it down")
                return im.convert("RGB")  # decodes it all: a truncated file fails here
    except Image.DecompressionBombError:
        raise LlavaCotError(f"the image {name} is too large to open; scale it down") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        reason = str(e).replace(path, name)
        raise LlavaCotError(f"the image {name} cannot be read ({reason}); upload a PNG or JPEG") from None


def examples(folder: str | os.PathLike[str] | None = None) -> list[str]:
    """The example images to offer: those of `folder`, or of the repository's examples/ (beside
    src/ in a checkout), or of ./examples; none when there is no such folder."""
    if folder is not None:
        candidates = [Path(folder)]
        if not candidates[0].is_dir():
            raise LlavaCotError(f"--examples {folder} is not a folder")
    else:
        candidates = [Path(__file__).resolve().parents[3] / "examples", Path.cwd() / "examples"]
    for place in candidates:
        if place.is_dir():
            return sorted(str(p.resolve()) for p in place.iterdir() if p.suffix.lower() in SUFFIXES)
    return []
