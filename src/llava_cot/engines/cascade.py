"""Shared-prefix ("cascade") attention for the `hf` engine's sampling loop.

N candidates sampled from one prompt all attend to the same prompt keys and values. The plain way
(`batch_repeat_interleave`) copies them N ways and reads each copy once per step. Here the prompt's
keys and values stay a single [1, heads, P, dim] tensor that every row reads in one matrix product
per step, and only what the rows generate is kept per row; the two parts are combined in one
softmax. The N-fold copy of the prompt's cache (image tokens included) is never made.

transformers lets a model's attention be a registered function (`AttentionInterface`). A
`PrefixLayer` returns from `update` only its rows' own keys and values, carrying the shared prefix
as an attribute; `attention` (registered as ATTENTION) sees the attribute and combines the two,
and hands every other call (the vision tower, prompt prefill, judges) to transformers' `sdpa`.
A model's attention code could in principle transform the keys between the cache and the attention
function, so the engine checks the result against the plain path on a model's first sampling step
(`HFEngine._check_cascade`) and falls back to it when they disagree.
"""

from __future__ import annotations

from typing import Any

from llava_cot.engines.kv import GrowingLayer

ATTENTION = "llava_cot_cascade"
_PREFIX = "_llava_cot_prefix"  # the attribute carrying (prefix keys, prefix values)


class PrefixLayer(GrowingLayer):
    """A cache layer of N rows over one shared prefix: `prefix` is [1, heads, P, dim], the
    rows' own tokens grow in place as in GrowingLayer."""

    @classmethod
    def over(cls, layer: GrowingLayer, rows: int) -> PrefixLayer:
        import torch

        new = cls.__new__(cls)
        new.__dict__.update(layer.__dict__)
        new.prefix = (layer.keys, layer.values)
        shape = (rows, *layer.keys.shape[1:-2], 0, layer.keys.shape[-1])
        new.keys = torch.empty(shape, dtype=layer.keys.dtype, device=layer.keys.device)
        new.values = torch.empty(shape, dtype=layer.values.dtype, device=layer.values.device)
        new.owned = False
        return new

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        keys, values = super().update(key_states, value_states, *args, **kwargs)
        setattr(keys, _PREFIX, self.prefix)
        return keys, values

    def get_seq_length(self, *args: Any, **kwargs: Any) -> int:
        return self.prefix[0].shape[-2] + self.keys.shape[-2]

    def get_mask_sizes(self, query_length: int, *args: Any, **kwargs: Any) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError("a PrefixLayer's rows are fixed when it is made")


def attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
              scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    """The registered attention function: cascade when `key` carries a shared prefix, else sdpa."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    prefix = getattr(key, _PREFIX, None)
    if prefix is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    pk, pv = prefix
    rows, heads, steps, dim = query.shape
    if steps != 1:
        raise RuntimeError("shared-prefix attention decodes one token per row at a time")
    kv_heads = pk.shape[1]
    group = heads // kv_heads
    scale = dim ** -0.5 if scaling is None else scaling
    q = query[:, :, 0].reshape(rows, kv_heads, group, dim) * scale  # [B, Hkv, g, d]
    # the prefix: every row and group of a kv head in one product, [Hkv, B*g, P]
    qh = q.permute(1, 0, 2, 3).reshape(kv_heads, rows * group, dim)
    head = torch.matmul(qh, pk[0].transpose(-1, -2))
    own = torch.matmul(q, key.transpose(-1, -2))  # the rows' own tokens, [B, Hkv, g, S]
    size = head.shape[-1]
    scores = torch.cat([head.reshape(kv_heads, rows, group, size).permute(1, 0, 2, 3), own], -1)
    if attention_mask is not None:
        mask = attention_mask[..., -1:, :] if attention_mask.dim() == 4 else attention_mask
        mask = mask.reshape(mask.shape[0], -1, 1, mask.shape[-1])  # [B or 1, 1 or Hkv, 1, P+S]
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = torch.softmax(scores.float(), -1).to(query.dtype)
    wh = weights[..., :size].permute(1, 0, 2, 3).reshape(kv_heads, rows * group, size)
    out = torch.matmul(wh, pv[0]).reshape(kv_heads, rows, group, dim).permute(1, 0, 2, 3)
    out = out + torch.matmul(weights[..., size:], value)
    return out.reshape(rows, heads, dim)[:, None], None  # [B, 1, heads, d], as sdpa returns it


def enable(model: Any) -> bool:
    """Switch a model that runs sdpa to ATTENTION (the same sdpa for everything but shared-prefix
    rows); False, the model untouched, for any other attention implementation."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    current = getattr(model.config, "_attn_implementation", None)
    if current == ATTENTION:
        return True
    if current != "sdpa":
        return False
    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    try:
        model.set_attn_implementation(ATTENTION)
    except (ValueError, TypeError, AttributeError, KeyError):
        model.set_attn_implementation("sdpa")
        return False
    return True


def agree(shared: Any, plain: Any) -> bool:
    """Whether next-token logits from the shared-prefix path match the plain path's (up to the
    rounding of a different summation order, in the model's dtype)."""
    shared, plain = shared.float(), plain.float()
    return bool((shared - plain).abs().max() <= 0.05 * (1.0 + plain.abs().max()))


def split(cache: Any, rows: int, length: int) -> bool:
    """Give a forked cache `rows` rows, in place: its layers over the prompt's `length` tokens
    become PrefixLayers; any other layer (Mllama's cross-attention keys over the image, say)
    is repeated as usual. False when no layer could be shared."""
    shared = False
    for i, layer in enumerate(cache.layers):
        if isinstance(layer, GrowingLayer) and layer.is_initialized and layer.keys.shape[-2] == length:
            cache.layers[i], shared = PrefixLayer.over(layer, rows), True
        else:
            layer.batch_repeat_interleave(rows)
    return shared
