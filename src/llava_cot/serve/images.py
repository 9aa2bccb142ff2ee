"""Images sent to the server: `image_url` parts turned into PIL images, within limits.

A `data:image/...;base64,` URL is decoded here; an http(s) URL is fetched only when the server
was started with `--allow-remote-images`, with a byte limit and a timeout; every other scheme
(`file:` above all: a client must not read the server's disk) is refused. Every image is checked
before it is decoded: its bytes against `max_bytes` (413), its size in pixels against
`max_pixels` from the header alone (413: a 20000x20000 PNG of a few hundred kilobytes would
decode into over a gigabyte), and then decoded in full so that a truncated file fails here
(400), not inside the model.

    image = load_image("data:image/png;base64,iVBOR...", ImageLimits())
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from typing import Any

from llava_cot.serve.errors import ApiError, bad, too_large


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * 2**20  # an encoded image
    max_pixels: int = 4096 * 4096  # width x height, read from the header before decoding
    allow_remote: bool = False  # fetch http(s) URLs
    fetch_timeout: float = 10.0  # seconds for one remote image


def load_image(url: str, limits: ImageLimits, param: str = "image_url") -> Any:
    """The RGB image an `image_url` names, or an ApiError saying what is wrong with it."""
    url = url.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        data = _data_url_bytes(url, limits, param)
    elif scheme in ("http", "https"):
        if not limits.allow_remote:
            raise bad("remote image URLs are off on this server (start it with --allow-remote-images); "
                      "send the image as a data: URL", param, "remote_images_disabled")
        data = _fetch(url, limits, param)
    elif scheme:
        raise bad(f"image URLs with the {scheme}: scheme are not accepted; send a data:image/...;base64 URL",
                  param, "unsupported_url")
    else:
        raise bad(f"the image_url is not a URL ({_preview(url)}); send a data:image/...;base64 URL",
                  param, "invalid_url")
    return decode(data, limits, param)


def decode(data: bytes, limits: ImageLimits, param: str = "image_url") -> Any:
    """Encoded image bytes as an RGB PIL image, within the limits."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > limits.max_bytes:
        raise too_large(f"the image is {len(data)} bytes, over this server's limit of {limits.max_bytes}", param)
    try:
        with warnings.catch_warnings():  # PIL warns of large images: our own limit decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        # PIL refuses far larger images than our limit before telling their size; it is in its message
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise too_large(f"the image is {size}, over this server's limit of {limits.max_pixels:,} pixels", param) from None
    except UnidentifiedImageError:
        raise bad("the image data is not an image PIL can read (PNG, JPEG, WebP, GIF, ...)", param,
                  "invalid_image") from None
    except (OSError, ValueError) as e:
        raise bad(f"the image cannot be read: {e}", param, "invalid_image") from None
    width, height = image.size
    if width * height > limits.max_pixels:
        raise too_large(f"the image is {width}x{height} = {width * height:,} pixels, over this server's limit of "
                        f"{limits.max_pixels:,} pixels", param)
    try:
        image.load()  # the whole file: a truncated one fails now
        return image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise bad(f"the image is damaged or truncated: {e}", param, "invalid_image") from None


def _data_url_bytes(url: str, limits: ImageLimits, param: str) -> bytes:
    head, sep, payload = url.partition(",")
    if not sep:
        raise bad("the data: URL has no ',' before its data", param, "invalid_url")
    media = head[len("data:"):].split(";")
    if not media[0].lower().startswith("image/"):
        raise bad(f"the data: URL is {media[0] or 'text/plain'}, not an image (data:image/png;base64,...)",
                  param, "invalid_image")
    if "base64" not in (m.strip().lower() for m in media[1:]):
        raise bad("the image data: URL must be base64-encoded (data:image/png;base64,...)", param, "invalid_url")
    # base64 is 4/3 of the bytes: refuse an oversized image before decoding it
    if len(payload) > limits.max_bytes * 4 // 3 + 4:
        raise too_large(f"the image is over this server's limit of {limits.max_bytes} bytes", param)
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise bad(f"the image's base64 data is malformed ({e})", param, "invalid_base64") from None


class _HttpOnly(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s): a remote server must not point us at ftp: or file:."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if not newurl.lower().startswith(("http://", "https://")):
            raise urllib.error.URLError(f"redirect to a non-http URL ({_preview(newurl)})")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(url: str, limits: ImageLimits, param: str) -> bytes:
    """A remote image's bytes, reading at most one byte past the limit. Blocking: the service
    calls it on a worker thread."""
    opener = urllib.request.build_opener(_HttpOnly)
    request = urllib.request.Request(url, headers={"User-Agent": "llava-cot-serve"})
    try:
        with opener.open(request, timeout=limits.fetch_timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limits.max_bytes:
                raise too_large(f"the remote image is {length} bytes, over this server's limit of "
                                f"{limits.max_bytes}", param)
            data = response.read(limits.max_bytes + 1)
    except ApiError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise bad(f"the image at {_preview(url)} cannot be fetched: {reason}", param, "fetch_failed") from None
    if len(data) > limits.max_bytes:
        raise too_large(f"the remote image is over this server's limit of {limits.max_bytes} bytes", param)
    return data


def _preview(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."
