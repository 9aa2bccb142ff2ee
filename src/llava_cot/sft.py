"""Supervised fine-tuning examples: from a record to tensors with a loss mask, and into batches.

A record (one or more questions about an image and their answers, as in LLaVA-CoT-100k) becomes
one training example in three steps:

1. `targets(record, fmt)`: the assistant text to learn for each turn, in one of three formats
   (the paper's Table 2 ablation): "structured" (the four-stage response as-is), "untagged" (the
   same text without its stage tags) or "direct" (only the answer). Judge and verifier items (a
   "task" of "judge" or "verify") answer with a verdict ("1"/"2", "yes"/"no"), the same in
   every format.
2. `pieces(processor, turns)`: the conversation's text, cut where learning starts and stops, all
   derived from the model's own chat template: the first prompt is exactly what inference feeds
   the model (`models.prompt_text`), each turn's completion is what the rendered turn adds after
   its generation prompt, up to and including the end-of-turn token, and what follows is context
   for the next turn. A template that writes no end-of-turn token (llava-hf's Llava-1.5: the
   answer and a space) gets the tokenizer's EOS there: a model never shown the token it stops
   on never learns to stop. No token id is ever written down here.
3. `encode_conversation(...)`: the processor turns the first prompt and its image into tensors
   exactly as at inference (expanding image placeholders, computing pixel values and whatever
   else the architecture needs); each later piece is tokenised in context, as the tokenizer
   splits it after the text before it (a SentencePiece tokenizer given " answer" alone starts it
   with a lone "▁" the model never reads after a prompt); every token outside a completion gets
   the label -100, so the loss is on the answers only, each with the turns before it as context.

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


def targets(record: Record, fmt: str = "structured") -> list[tuple[str, str]]:
    """(question, assistant text to train on) for every turn of `record`, in format `fmt` (a key
    of FORMATS)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    turns = record.turns
    if record.extra.get("task") in VERDICTS:
        # A judge/verifier item's answer is its verdict whatever the format: there are no stages
        # to untag, and the verdict is also its "answer" (what `direct` would read).
        return [(q, a.strip()) for q, a in turns]
    if len(turns) == 1:
        return [(turns[0][0], FORMATS[fmt](record))]
    # A gold "answer" field answers one question: with several, each turn's own CONCLUSION is its answer.
    return [(q, FORMATS[fmt](Record.make(record.id, q, a))) for q, a in turns]


def target(record: Record, fmt: str = "structured") -> str:
    """The assistant text to train on for the first turn of `record`."""
    return targets(record, fmt)[0][1]


def texts(records: Sequence[Record], fmt: str = "structured") -> list[str]:
    """Every question and target text: what a tokenizer built from scratch must cover."""
    return [t for rec in records for turn in targets(rec, fmt) for t in turn]


# ---------------------------------------------------------------------------------------------
# Prompt / completion split and tokenisation


def end_turn(completion: str, eos: str | None) -> tuple[str, str]:
    """(what is learned of an assistant turn's completion, what follows it). The learned part ends
    with the end-of-turn token: the template's (anything after the last `eos` in it, a newline
    say, belongs to the next turn), or, for a template that writes none, `eos` put right after the
    text (before the template's trailing space, as Llava-1.5 was trained: "answer</s>")."""
    if not eos:
        return completion, ""
    at = completion.rfind(eos)
    if at >= 0:
        return completion[: at + len(eos)], completion[at + len(eos):]
    body = completion.rstrip()
    return body + eos, completion[len(body):]


def pieces(processor: Any, turns: Sequence[tuple[str, str]], image: bool = True) -> list[tuple[str, bool]]:
    """The conversation `turns` ((question, answer) pairs) as text pieces, each with whether it
    is learned: the first prompt, then each turn's completion (learned) and the text up to the
    next turn's generation prompt. Each prompt is `models.prompt_text` with the turns before it as
    history, so every turn is learned after exactly what inference would feed the model (but for
    the EOS put after an earlier turn whose template wrote none). What follows the last end of
    turn is dropped: nothing after it is ever read."""
    eos = processor.tokenizer.eos_token
    out: list[tuple[str, bool]] = []
    done, carry = "", ""  # the template's rendering so far; what followed the last end of turn
    for k, (question, answer) in enumerate(turns):
        history = list(turns[:k])
        prompt = models.prompt_text(processor, question, image=image, history=history)
        full = models.render(processor, models.messages(question, answer, image, history))
        if not (prompt.startswith(done) and full.startswith(prompt)):
            # A template that renders a turn differently once more follows it cannot be cut into
            # prompts and completions by text; say so rather than mislabel tokens.
            raise ValueError("the chat template does not render the conversation as prompt + answer, turn "
                             "after turn (a generation prompt is not a prefix of the conversation that follows)")
        learned, carry_next = end_turn(full[len(prompt):], eos)
        out += [(carry + prompt[len(done):], False), (learned, True)]
        done, carry = full, carry_next
    return out


def split(processor: Any, question: str, response: str, image: bool = True) -> tuple[str, str]:
    """(prompt, completion) text of a single turn. The prompt is exactly what inference feeds
    the model (`models.prompt_text`), so training and inference cannot disagree about it."""
    (prompt, _), (completion, _) = pieces(processor, [(question, response)], image)
    return prompt, completion


def in_context(tokenizer: Any, parts: Sequence[tuple[str, bool]]) -> tuple[list[int], list[bool]]:
    """The token ids of every piece after the first, each as the tokenizer splits it after all
    the text before it, and whether each id is learned. Where a piece would merge with the end of
    the text before it (a prompt ending in a space, say) it is tokenised on its own instead: the
    model is given the prompt's own tokens at inference and must continue them."""
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    text = parts[0][0]
    before, out, learned = ids(text), [], []
    for piece, learn in parts[1:]:
        text += piece
        after = ids(text)
        new = after[len(before):] if after[: len(before)] == before else ids(piece)
        out += new
        learned += [learn] * len(new)
        before = after
    return out, learned


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
    """One training example of a single turn (see `encode_conversation`)."""
    return encode_conversation(processor, [(question, response)], image, max_length)


def encode_conversation(processor: Any, turns: Sequence[tuple[str, str]], image: Any | None = None,
                        max_length: int | None = None) -> dict[str, torch.Tensor]:
    """One training example: the processor's tensors for the first prompt, extended by the
    tokens of the rest of the conversation, plus `labels` (the token id on every token of an
    assistant turn's completion, IGNORE everywhere else).

    The first prompt goes through the processor exactly as at inference (image placeholders
    expanded, pixel values and the rest computed); the rest is tokenised in context (`in_context`)
    and appended. The other sequence tensors are extended by repeating the prompt's last
    position, a text token after the image: attention mask 1, text modality, and (Mllama) a
    cross-attention row that sees the image.

    With max_length, the end of a longer conversation is cut; the first prompt (which holds the
    image tokens) never is, and an example whose prompt alone is too long keeps its prompt and
    one more token, with a warning."""
    parts = pieces(processor, turns, image=image is not None)
    enc = process(processor, parts[0][0], image)
    n_prompt = enc["input_ids"].shape[1]
    rest, learned = in_context(processor.tokenizer, parts)
    if max_length is not None and n_prompt + len(rest) > max_length:
        if n_prompt >= max_length:
            warnings.warn(f"a prompt of {n_prompt} tokens exceeds max_length={max_length}; "
                          "kept whole (raise --max-length)", stacklevel=2)
        keep = max(max_length - n_prompt, 1)
        rest, learned = rest[:keep], learned[:keep]
    ids = torch.tensor([rest], dtype=enc["input_ids"].dtype)
    labels = torch.tensor([[t if learn else IGNORE for t, learn in zip(rest, learned, strict=True)]],
                          dtype=enc["input_ids"].dtype)
    out = {k: _extend(v, ids.shape[1]) if is_sequence(v, n_prompt) else v for k, v in enc.items()}
    out["input_ids"] = torch.cat([enc["input_ids"], ids], dim=1)
    out["labels"] = torch.cat([torch.full_like(enc["input_ids"], IGNORE), labels], dim=1)
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
        return encode_conversation(self.processor, targets(rec, self.fmt), self.image(rec), self.max_length)

