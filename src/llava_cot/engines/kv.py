"""A key/value cache layer that grows in place, for the `hf` engine's decoding loop.

transformers' DynamicLayer grows by `torch.cat`, copying the whole cache at every new token: with
N sampled rows over a long shared prefix that copy is most of a decoding step on a CPU. A
`GrowingLayer` keeps spare room and writes each new token into it, reallocating (doubling) only
when full, so a step costs what the attention reads.

Forks share tensors: the engine copies a cached prompt's layers to sample from it (see hf._fork).
A layer therefore writes in place only into a buffer it allocated itself (`owned`); a fork's
first update copies the shared prefix into a buffer of its own. Anything that replaces the
tensors (batch_repeat_interleave, batch_select_indices) gives up ownership the same way.
"""

from __future__ import annotations

from typing import Any

from transformers.cache_utils import DynamicLayer

SPARE = 256  # room for this many more tokens when a buffer is (re)allocated, at least


class GrowingLayer(DynamicLayer):
    """A DynamicLayer whose keys and values are views into larger, owned buffers."""

    def adopt(self) -> GrowingLayer:
        self.owned = False  # the current tensors may be shared: copy before writing
        return self

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        import torch

        if not self.is_initialized or self.keys.numel() == 0:
            self.lazy_initialization(key_states, value_states)
            self.keys, self.values, self.owned = key_states, value_states, False
            return self.keys, self.values
        length, new = self.keys.shape[-2], key_states.shape[-2]
        if not getattr(self, "owned", False) or length + new > self._kbuf.shape[-2]:
            room = max(2 * length, length + new + SPARE)
            shape = (*self.keys.shape[:-2], room, self.keys.shape[-1])
            self._kbuf = torch.empty(shape, dtype=self.keys.dtype, device=self.keys.device)
            self._vbuf = torch.empty(shape, dtype=self.values.dtype, device=self.values.device)
            self._kbuf[..., :length, :] = self.keys
            self._vbuf[..., :length, :] = self.values
            self.owned = True
        self._kbuf[..., length:length + new, :] = key_states
        self._vbuf[..., length:length + new, :] = value_states
        self.keys = self._kbuf[..., :length + new, :]
        self.values = self._vbuf[..., :length + new, :]
        return self.keys, self.values

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        self.owned = False

    def batch_select_indices(self, indices: Any) -> None:
        super().batch_select_indices(indices)
        self.owned = False


def grow_in_place(cache: Any) -> Any:
    """Make the plain DynamicLayers of `cache` GrowingLayers (others, such as sliding-window
    layers, are left as they are). Returns the cache."""
    for layer in cache.layers:
        if type(layer) is DynamicLayer:
            layer.__class__ = GrowingLayer
            layer.adopt()
    return cache
