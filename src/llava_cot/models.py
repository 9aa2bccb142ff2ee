"""Loading a vision-language model, and talking to it through its own chat template.

Any Hugging Face image-text-to-text checkpoint works: a local directory or a hub id, loaded with
`AutoModelForImageTextToText` and `AutoProcessor` (no custom code, no patched library). With no
name, the embedded model shipped in this package is used, so everything works offline.

Prompts are always built by the processor's chat template from `messages(...)`, in training and
in inference alike, so the two can never disagree. A partial assistant turn (a search continuing
stage by stage) is passed as the final message with `continue_final_message=True`.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llava_cot.errors import LlavaCotError

EMBEDDED_DIR = Path(__file__).parent / "embedded"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


@dataclass
class Loaded:
    model: Any
    processor: Any
    name: str

    @property
    def device(self) -> Any:
        return self.model.device


def resolve(name: str | os.PathLike[str] | None) -> str:
    """A model name as from_pretrained takes it: the embedded model's directory for None."""
    if name is None or str(name) == "embedded":
        if not (EMBEDDED_DIR / "config.json").is_file():
            raise LlavaCotError(
                f"no embedded model in {EMBEDDED_DIR}: pass --model DIR_OR_ID, or build it with "
                "scripts/train_embedded.sh"
            )
        return str(EMBEDDED_DIR)
    local = Path(name).expanduser()
    if local.is_dir():
        return str(local)
    if local.exists() or not _HUB_ID.fullmatch(str(name)):
        raise LlavaCotError(f"model {name} is neither a model directory nor a hub id (owner/name)")
    return str(name)


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LlavaCotError("--device cuda was asked for but no CUDA device is available")
    return device


def pick_dtype(dtype: str, device: str) -> Any:
    """'auto': bf16 on a GPU that has it, else float32 (CPU bf16 is slow for small models)."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise LlavaCotError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16") from None


def load(name: str | os.PathLike[str] | None = None, device: str = "auto", dtype: str = "auto") -> Loaded:
    """Load a model and its processor for inference (eval mode)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.utils import logging as hf_logging

    path = resolve(name)
    device = pick_device(device)
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # loading bars and notes are noise in a CLI
    hf_logging.disable_progress_bar()
    try:
        processor = AutoProcessor.from_pretrained(path)
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=pick_dtype(dtype, device))
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LlavaCotError(
            f"cannot load model {name!r}: {first} (a local directory, or a hub id already in the cache when offline)"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    model.to(device).eval()
    return Loaded(model, processor, path)


def messages(question: str, response: str | None = None, image: bool = True,
             history: Sequence[tuple[str, str]] = (), system: str | None = None) -> list[dict[str, Any]]:
    """A conversation in the content-list form every VLM chat template accepts: an optional
    system message, earlier (user, assistant) turns, then `question` (and `response`, if given).
    The image placeholder goes with the first user turn."""
    def text(t: str) -> dict[str, Any]:
        return {"type": "text", "text": t}

    msgs: list[dict[str, Any]] = [{"role": "system", "content": [text(system)]}] if system is not None else []
    for user, assistant in [*history, (question, response)]:
        first = not any(m["role"] == "user" for m in msgs)
        msgs.append({"role": "user", "content": ([{"type": "image"}] if image and first else []) + [text(user)]})
        if assistant is not None:
            msgs.append({"role": "assistant", "content": [text(assistant)]})
    return msgs


# The date a chat template writes into a prompt. Llama-3.2-Vision's writes "Today Date: ..." for
# a prompt without an image, from the clock (`strftime_now`) unless given `date_string`: left to
# the clock, a model would be trained on one prompt and evaluated on another the next day, and a
# search's prompts would change at midnight. This is the template's own fallback date.
DATE_STRING = "26 Jul 2024"


def render(processor: Any, msgs: list[dict[str, Any]], **options: Any) -> str:
    """A conversation as text, by the processor's chat template, on the fixed DATE_STRING.
    Every prompt, in training and inference, is rendered here."""
    template = getattr(processor, "chat_template", None)
    if isinstance(template, str) and "date_string" in template:
        # only to a template that reads it: transformers warns of any variable a template does not use
        options = {**options, "date_string": DATE_STRING}
    return processor.apply_chat_template(msgs, tokenize=False, **options)


def prompt_text(processor: Any, question: str, partial: str | None = None, image: bool = True,
                history: Sequence[tuple[str, str]] = (), system: str | None = None) -> str:
    """The text the model sees before generating: the chat template with the generation prompt,
    or, when `partial` assistant text is given, continuing that message."""
    msgs = messages(question, partial or None, image, history, system)
    if partial:
        return render(processor, msgs, continue_final_message=True)
    return render(processor, msgs, add_generation_prompt=True)


def add_special_tokens(processor: Any, text: str) -> bool:
    """Whether the tokenizer should add its special tokens to a rendered chat `text`: not when
    the template already wrote the BOS token (Llama 3 templates do; a second one would be a
    token the model never saw in training). Training and inference both follow this rule."""
    bos = getattr(processor.tokenizer, "bos_token", None)
    return not (bos and text.startswith(bos))


def open_image(path: str | os.PathLike[str]) -> Any:
    """An RGB PIL image, or a one-line error the user can act on."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path).expanduser()
    if not p.is_file():
        raise LlavaCotError(f"image {path} does not exist")
    try:
        with warnings.catch_warnings():
            # Between PIL's limit and twice it, PIL only warns that the image may be a
            # decompression bomb: the user named this file and the processor resizes it, so it is
            # read without a scary note. Beyond twice the limit PIL refuses it (below).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                return im.convert("RGB")
    except Image.DecompressionBombError as e:
        raise LlavaCotError(f"image {path} is too large: {too_large(e)}") from None
    except (OSError, UnidentifiedImageError) as e:
        raise LlavaCotError(f"image {path} cannot be read: {e}") from None


def too_large(error: Exception) -> str:
    """Why PIL refused an image as a possible decompression bomb, in words a user can act on."""
    from PIL import Image

    found = re.search(r"\((\d+) pixels\)", str(error))  # PIL gives the size only in its message
    size = f"{int(found.group(1)):,} pixels, " if found else ""
    return (f"{size}more than the {2 * Image.MAX_IMAGE_PIXELS:,} pixels PIL opens "
            "(2 x PIL.Image.MAX_IMAGE_PIXELS); scale it down")
