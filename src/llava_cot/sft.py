"""Supervised fine-tuning examples: from a record to tensors with a loss mask, and into batches.

A record (its first question and answer, as in LLaVA-CoT-100k) becomes one training example in
three steps:

1. `target(record, fmt)`: the assistant text to learn, in one of three formats (the paper's
   Table 2 ablation): "structured" (the four-stage response as-is), "untagged" (the same text
   without its stage tags) or "direct" (only the answer). Judge and verifier items (a "task" of
   "judge" or "verify") answer with a verdict ("1"/"2", "yes"/"no"), the same in every format.
2. `split(processor, question, response)`: the prompt and the completion, both derived from the
   model's own chat template: the conversation rendered with the generation prompt is the
   prompt, and what the full conversation adds after it is the completion (the response plus
   the template's end-of-turn tokens). No token id is ever written down here.
3. `encode(...)`: the processor turns the prompt and its image into tensors exactly as at
   inference (expanding image placeholders, computing pixel values and whatever else the
   architecture needs), the completion's tokens are appended, and every prompt token gets the
   label -100, so the loss is on the completion only.

`Collator` pads a list of examples into a batch (right padding) and concatenates the image
tensors, whatever their layout. `Examples` is the map-style data set the trainer reads, loading
images lazily so data loader workers do that work in parallel.

    python -c "from llava_cot import sft; help(sft)"
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llava_cot import models, stages
from llava_cot.critique import VERDICTS
from llava_cot.records import Record

IGNORE = -100  # the label value PyTorch's cross-entropy (and every HF model's loss) skips


# ---------------------------------------------------------------------------------------------
# What to learn: the three response formats


def structured(record: Record) -> str:
    """The four-stage response as it is in the data."""
    return record.response.strip()


def untagged(record: Record) -> str:
    """The same text without the stage tags."""
    return stages.untag(record.response)


def direct(record: Record) -> str:
    """Only the answer: the record's gold answer if it has one, else its CONCLUSION."""
    answer = record.extra.get("answer")
    if answer is not None and str(answer).strip():
        return str(answer).strip()
    return stages.answer_text(record.response)


FORMATS: dict[str, Callable[[Record], str]] = {"structured": structured, "untagged": untagged, "direct": direct}


def target(record: Record, fmt: str = "structured") -> str:
    """The assistant text to train on for `record`, in format `fmt` (a key of FORMATS)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if record.extra.get("task") in VERDICTS:
        # A judge/verifier item's answer is its verdict whatever the format: there are no stages
        # to untag, and the verdict is also its "answer" (what `direct` would read).
        return record.response.strip()
    return FORMATS[fmt](record)


def texts(records: Sequence[Record], fmt: str = "structured") -> list[str]:
    """Every question and target text: what a tokenizer built from scratch must cover."""
    return [t for rec in records for t in (rec.question, target(rec, fmt))]


# ---------------------------------------------------------------------------------------------
# Prompt / completion split and tokenisation


def split(processor: Any, question: str, response: str, image: bool = True) -> tuple[str, str]:
    """(prompt, completion) text. The prompt is exactly what inference feeds the model
    (`models.prompt_text`), so training and inference cannot disagree about it."""
    prompt = models.prompt_text(processor, question, image=image)
    full = processor.apply_chat_template(models.messages(question, response, image), tokenize=False)
    if not full.startswith(prompt):
        # A template that renders earlier turns differently once an answer follows them cannot
        # be split into a prompt and a completion by text; say so rather than mislabel tokens.
        raise ValueError("the chat template does not render the conversation as prompt + answer "
                         "(the generation prompt is not a prefix of the full conversation)")
    return prompt, full[len(prompt):]


def process(processor: Any, text: str, image: Any | None) -> dict[str, torch.Tensor]:
    """The processor's tensors for one text (and its image, if any), batch dimension 1."""
    images = [image] if image is not None else None
    out = processor(text=[text], images=images, return_tensors="pt",
                    add_special_tokens=models.add_special_tokens(processor, text))
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


def is_sequence(t: torch.Tensor, length: int) -> bool:
    """A tensor laid out along the token sequence (input ids, masks, Mllama's cross-attention
    mask): batch dimension 1, then one entry per token. Those are padded and truncated with the
    tokens; everything else (pixel values, grids, aspect ratios) is not."""
    return t.dim() >= 2 and t.shape[0] == 1 and t.shape[1] == length


def _extend(t: torch.Tensor, n: int) -> torch.Tensor:
    """A sequence tensor grown by `n` positions that repeat its last one."""
    return torch.cat([t, t[:, -1:].expand(-1, n, *t.shape[2:])], dim=1)


def encode(processor: Any, question: str, response: str, image: Any | None = None,
           max_length: int | None = None) -> dict[str, torch.Tensor]:
    """One training example: the processor's tensors for the prompt, extended by the completion's
    tokens, plus `labels` (IGNORE on every prompt token, the token id on every completion token).

    The prompt goes through the processor exactly as at inference (image placeholders expanded,
    pixel values and the rest computed), and the completion is tokenised on its own and
    appended: the model learns to continue the very token sequence it will be given, even where
    a template ends its generation prompt in a way that merges with the answer's first token
    when tokenised together (a trailing space, say). The other sequence tensors are extended by
    repeating the prompt's last position, a text token after the image: attention mask 1, text
    modality, and (Mllama) a cross-attention row that sees the image.

    With max_length, the end of a longer completion is cut; the prompt (which holds the image
    tokens) never is, and an example whose prompt alone is too long keeps its prompt and one
    completion token, with a warning."""
    prompt, completion = split(processor, question, response, image=image is not None)
    enc = process(processor, prompt, image)
    n_prompt = enc["input_ids"].shape[1]
    ids = processor.tokenizer(completion, add_special_tokens=False, return_tensors="pt")["input_ids"]
    ids = ids.to(enc["input_ids"].dtype)
    if max_length is not None and n_prompt + ids.shape[1] > max_length:
        if n_prompt >= max_length:
            warnings.warn(f"a prompt of {n_prompt} tokens exceeds max_length={max_length}; "
                          "kept whole (raise --max-length)", stacklevel=2)
        ids = ids[:, : max(max_length - n_prompt, 1)]
    out = {k: _extend(v, ids.shape[1]) if is_sequence(v, n_prompt) else v for k, v in enc.items()}
    out["input_ids"] = torch.cat([enc["input_ids"], ids], dim=1)
    out["labels"] = torch.cat([torch.full_like(enc["input_ids"], IGNORE), ids], dim=1)
    return out


# ---------------------------------------------------------------------------------------------
# Batching


def _pad_value(key: str, pad_token_id: int) -> int:
    return {"input_ids": pad_token_id, "labels": IGNORE}.get(key, 0)


def _pad_to(t: torch.Tensor, shape: Sequence[int], value: int) -> torch.Tensor:
    """`t` padded at the end of every dimension after the first up to `shape` (right padding)."""
    if list(t.shape[1:]) == list(shape):
        return t
    out = t.new_full((t.shape[0], *shape), value)
    out[tuple(slice(0, n) for n in t.shape)] = t
    return out


@dataclass
class Collator:
    """Pads examples from `encode` into one batch.

    Every tensor is concatenated along its first dimension: for per-example tensors (batch
    dimension 1) that stacks them; for tensors that list image patches or grids across the
    batch (Qwen2-VL's pixel_values and image_grid_thw, whose patch counts vary with image size)
    it concatenates them, which is the layout those models expect. Other dimensions are padded
    to the longest in the batch: sequence tensors with the pad id (input ids), IGNORE (labels)
    or 0 (masks), image tensors with 0 (an absent image or tile)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        longest = max(ex["input_ids"].shape[1] for ex in examples)
        if self.pad_to_multiple_of:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch: dict[str, torch.Tensor] = {}
        for key in examples[0]:
            pairs = [(ex[key], ex["input_ids"].shape[1]) for ex in examples if key in ex]
            parts = [p for p, _ in pairs]
            if parts[0].dim() == 0:
                batch[key] = torch.stack(parts)
                continue
            shape = [max(p.shape[d] for p in parts) for d in range(1, parts[0].dim())]
            if all(is_sequence(p, n) for p, n in pairs):
                shape[0] = longest
            value = _pad_value(key, self.pad_token_id)
            batch[key] = torch.cat([_pad_to(p, shape, value) for p in parts])
        return batch


def pad_token_id(processor: Any) -> int:
    """The id to pad with: the tokenizer's pad token, else its end-of-sequence token (padding
    is masked out of attention and loss, so which token fills it does not matter)."""
    tok = processor.tokenizer
    pid = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    if pid is None:
        raise ValueError("the tokenizer has neither a pad nor an end-of-sequence token to pad with")
    return int(pid)


# ---------------------------------------------------------------------------------------------
# The data set


class Examples:
    """A map-style data set of encoded examples, encoded when read: images are opened and
    processed in the data loader's workers, and the whole data set is never held as tensors."""

    def __init__(self, records: Sequence[Record], processor: Any, fmt: str = "structured",
                 images: str | os.PathLike[str] | None = None, max_length: int | None = None):
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        self.records = list(records)
        self.processor = processor
        self.fmt = fmt
        self.images = Path(images) if images is not None else None
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.records)

    def image(self, record: Record) -> Any | None:
        if record.image is None:
            return None
        return models.open_image(self.images / record.image if self.images else record.image)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rec = self.records[i]
        return encode(self.processor, rec.question, target(rec, self.fmt), self.image(rec), self.max_length)

