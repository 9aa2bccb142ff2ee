"""The `hf` engine's model runner: the only code that calls the model.

Three kinds of call:

- `prefill(ids, inputs, image)`: a prompt run once, its keys and values kept in a small prefix
  cache keyed by its token ids and image. A later prompt that extends a cached one (the next stage
  of a search, a judge's question about the same image) runs only its new tokens.
- `decode(batch, tokens)`: one token for every running row (engines/kv.py's BatchCache).
- `teacher_forced(...)`: log-probabilities of given tokens (judges, the likelihood judge).

Positions belong to each row: Qwen2-VL's multimodal rotary positions are offset after an image
(`rope_deltas`), which transformers keeps on the model object between calls; the runner reads the
offset right after a prompt's prefill, keeps it with the prompt, clears the model's copy, and
passes every later call its positions explicitly. The vocabulary head runs only at the positions
read (`logits_to_keep`): a float32 [batch, length, vocab] tensor is never made.
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# processor outputs with one entry per token (cut with the tokens); the rest are per image
PER_TOKEN = ("input_ids", "attention_mask", "cross_attention_mask", "token_type_ids", "mm_token_type_ids")


@dataclass
class Entry:
    """A prompt run through the model: its ids, keys and values, and the next-token logits."""

    ids: tuple[int, ...]
    image: str  # a digest of the image (ids alone do not tell two images apart)
    cache: Any  # a DynamicCache of batch 1
    logits: Any  # [vocab], float32
    delta: int = 0  # multimodal rotary offset: a token at index i has position i + delta
    xmask: Any = None  # Mllama: the cross-attention mask row for text after the prompt, [1, 1, images, tiles]


def image_key(image: Any) -> str:
    if image is None:
        return ""
    return f"{image.size}:{image.mode}:" + hashlib.sha1(image.tobytes()).hexdigest()


def fork(cache: Any) -> Any:
    """A copy of a DynamicCache that can grow without touching the original (its layers grow by
    torch.cat into new tensors; the shared tensors are never written)."""
    new = copy.copy(cache)
    new.layers = [copy.copy(layer) for layer in cache.layers]
    return new


def on(inputs: Any, device: Any) -> Any:
    """A processor's output on `device` (a plain dict from a processor-like callable included)."""
    from transformers import BatchFeature

    return (inputs if isinstance(inputs, BatchFeature) else BatchFeature(dict(inputs))).to(device)


class Runner:
    def __init__(self, model: Any, cache_size: int = 16) -> None:
        self.model = model
        self.cache_size = cache_size
        self.entries: OrderedDict[tuple[str, tuple[int, ...]], Entry] = OrderedDict()
        text = model.config.get_text_config()
        self.num_layers = text.num_hidden_layers
        # Mllama: cross-attention layers hold keys over the image, never a prefix of the text
        self.cross = frozenset(getattr(text, "cross_attention_layers", None) or ())
        base = getattr(model, "model", None)
        self.mrope = base is not None and hasattr(base, "rope_deltas")

    @property
    def device(self) -> Any:
        return self.model.device

    # -- positions --------------------------------------------------------------------------

    def positions(self, starts: Sequence[int], width: int, deltas: Sequence[int]) -> Any:
        """Position ids of `width` tokens per row from index `starts[b]` (plus its offset)."""
        import torch

        pos = torch.tensor([[s + d + k for k in range(width)] for s, d in zip(starts, deltas, strict=True)],
                           device=self.device)
        return pos[None].expand(3, -1, -1) if self.mrope else pos

    def _take_delta(self) -> int:
        """The model's stored rotary offset of the prompt just run, cleared from the model."""
        if not self.mrope:
            return 0
        deltas = self.model.model.rope_deltas
        self.model.model.rope_deltas = None
        return 0 if deltas is None else int(deltas.reshape(-1)[0])

    # -- prompts and the prefix cache -------------------------------------------------------

    def lookup(self, ids: tuple[int, ...], image: str) -> Entry | None:
        best = None
        for (img, key), entry in self.entries.items():
            if img == image and ids[:len(key)] == key and (best is None or len(key) > len(best.ids)):
                best = entry
        if best is not None:
            self.entries.move_to_end((image, best.ids))
        return best

    def prefill(self, ids: tuple[int, ...], inputs: Any, image: str, image_token: int | None, cost: Any) -> Entry:
        """Run a prompt through the model, reusing the longest cached prefix; its entry."""
        import torch

        base = self.lookup(ids, image)
        if base is not None and len(base.ids) == len(ids):
            cost.cached_tokens += len(ids)
            return base
        if base is not None and (image_token is None or image_token not in ids[len(base.ids):]):
            start = len(base.ids)
            extra = {"cross_attention_mask": base.xmask.expand(1, len(ids) - start, *base.xmask.shape[2:])} \
                if base.xmask is not None else {}
            out = self.model(input_ids=torch.tensor([ids[start:]], device=self.device), cache=fork(base.cache),
                             position_ids=self.positions([start], len(ids) - start, [base.delta]),
                             use_cache=True, logits_to_keep=1, **extra)
            delta, xmask = base.delta, base.xmask
            cost.cached_tokens += start
        else:
            start = 0
            if self.mrope:
                self.model.model.rope_deltas = None  # never another prompt's offset
            out = self.model(**inputs, use_cache=True, logits_to_keep=1)
            delta = self._take_delta()
            xmask = inputs["cross_attention_mask"][:, -1:] if "cross_attention_mask" in inputs else None
        cost.forward_passes += 1
        cost.prompt_tokens += len(ids) - start
        entry = Entry(ids, image, out.cache, out.logits[0, -1].float(), delta, xmask)
        self.entries[(image, ids)] = entry
        while len(self.entries) > self.cache_size:
            self.entries.popitem(last=False)
        return entry

    # -- decoding -----------------------------------------------------------------------------

    def decode(self, batch: Any, tokens: Any, deltas: Sequence[int], xmasks: Sequence[Any]) -> Any:
        """Next-token logits [rows, vocab] (float32) after each row's `tokens` (one each)."""
        import torch

        mask = batch.step()
        extra = {}
        if xmasks and xmasks[0] is not None:
            extra["cross_attention_mask"] = torch.cat(list(xmasks))
        out = self.model(input_ids=tokens[:, None], attention_mask=mask, cache=batch, use_cache=True,
                         position_ids=self.positions(batch.lengths, 1, deltas), logits_to_keep=1, **extra)
        batch.advance()
        return out.logits[:, -1].float()

    # -- scoring ------------------------------------------------------------------------------

    def teacher_forced(self, entry: Entry, rows: Sequence[Sequence[int]], common: int,
                       reads: Sequence[range], cost: Any) -> list[Any]:
        """Rows of token ids sharing their first `common` tokens, whose prefix is `entry`: the
        rest of each row runs in one right-padded batch (causal attention: no real token sees
        the padding after it). For each row, the log-softmax [len(reads[b]), vocab] (float32)
        predicting tokens `reads[b]` (indices into the row, each >= common)."""
        import torch

        n = len(rows)
        width = max(len(r) for r in rows) - common
        cache = fork(entry.cache)
        cache.batch_repeat_interleave(n)
        suffix = torch.tensor([list(r[common:]) + [0] * (width - len(r) + common) for r in rows], device=self.device)
        # logits at suffix position k predict token common + k + 1: keep only those read
        keep = torch.zeros(n, width, dtype=torch.bool, device=self.device)
        for b, read in enumerate(reads):
            for t in read:
                if t > common:
                    keep[b, t - common - 1] = True
        extra = {}
        if entry.xmask is not None:
            extra["cross_attention_mask"] = entry.xmask.expand(n, width, *entry.xmask.shape[2:])
        out = self.model(input_ids=suffix, cache=cache, use_cache=True, logits_to_keep=keep,
                         position_ids=self.positions([common] * n, width, [entry.delta] * n), **extra)
        cost.forward_passes += 1
        cost.prompt_tokens += sum(len(r) - common for r in rows)
        flat = out.logits.reshape(-1, out.logits.shape[-1])
        result, at = [], 0
        for read in reads:
            own = [t for t in read if t > common]
            scores = flat[at:at + len(own)].float()
            at += len(own)
            if len(own) < len(read):  # the first token read is predicted by the prefix itself
                scores = torch.cat([entry.logits[None], scores])
            result.append(torch.log_softmax(scores, -1))
        return result
