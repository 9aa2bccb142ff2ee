"""The KV memory of the `hf` engine's running batch: one buffer per layer, allocated for the
batch and written in place.

Each running row owns a slot: row `i` of every layer's [slots, kv_heads, capacity, head_dim]
buffer. Its prompt's keys and values are copied in when it joins (from the prefix cache's entry,
`engines/runner.py`), each decoding step writes one token per row at that row's own length, and
attention reads `[:rows, :, :longest]` with a mask of each row's length: rows of any length
decode together, and nothing is re-allocated or concatenated per step (transformers'
DynamicCache grows by `torch.cat`, a copy of the whole cache per token). When a row leaves, the
last row moves into its slot, so the running rows always fill slots 0..rows-1.

Mllama's cross-attention layers hold keys over the image, fixed once computed: their batch
tensor is the rows' image keys stacked, rebuilt only when the batch's rows change.

The object is a transformers `Cache` whose layers implement `update`, so the model's own
attention code writes into it (passed as `cache=`, the argument transformers now asks for).
"""

from __future__ import annotations

from typing import Any

from transformers.cache_utils import Cache, DynamicLayer

GROW = 256  # tokens of room added beyond what a row needs, when the buffers grow


class _SelfLayer(DynamicLayer):
    """A self-attention layer over the batch's slots (see the module docstring)."""

    def __init__(self, owner: BatchCache) -> None:
        super().__init__()
        self.owner = owner
        self.kbuf = self.vbuf = None

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        o = self.owner
        rows = key_states.shape[0]
        self.kbuf[o.row_index, :, o.write_at] = key_states[:, :, 0]
        self.vbuf[o.row_index, :, o.write_at] = value_states[:, :, 0]
        self.keys, self.values = self.kbuf[:rows, :, :o.span], self.vbuf[:rows, :, :o.span]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.owner.span

    def get_mask_sizes(self, query_length: int, *args: Any, **kwargs: Any) -> tuple[int, int]:
        return self.owner.span, 0


class _CrossLayer(DynamicLayer):
    """Mllama's cross-attention keys and values over each row's image; read, never written."""

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        raise RuntimeError("a running batch's cross-attention keys are fixed when its rows join")


class BatchCache(Cache):
    """Slots for up to `max_rows` rows; `layers[i]` is a self- or cross-attention layer."""

    def __init__(self, num_layers: int, cross: frozenset[int] = frozenset()) -> None:
        super().__init__(layers=[_CrossLayer() if i in cross else _SelfLayer(self) for i in range(num_layers)])
        self.cross = cross
        self.rows = 0
        self.capacity = 0  # tokens per slot
        self.slots = 0
        self.lengths: list[int] = []  # tokens held by each row
        self.images: list[tuple[tuple[Any, Any], ...]] = []  # each row's cross keys/values, by cross layer
        self._stale = True  # the cross layers' stacked tensors need rebuilding
        self.row_index = self.write_at = None
        self.span = 0

    # -- rows joining and leaving -----------------------------------------------------------

    def add(self, prompt: Any, need: int) -> int:
        """A new row whose prompt's keys and values are `prompt` (a DynamicCache of batch 1) and
        which may hold `need` tokens in all; its slot."""
        self._reserve(self.rows + 1, need, prompt.layers)
        slot = self.rows
        images = []
        for i, (mine, theirs) in enumerate(zip(self.layers, prompt.layers, strict=True)):
            if i in self.cross:
                images.append((theirs.keys, theirs.values) if theirs.is_initialized and theirs.keys.numel() else None)
                continue
            length = theirs.keys.shape[-2]
            mine.kbuf[slot, :, :length] = theirs.keys[0]
            mine.vbuf[slot, :, :length] = theirs.values[0]
        self.rows += 1
        self.lengths.append(prompt.layers[self._first_self()].keys.shape[-2])
        self.images.append(tuple(images))
        self._stale = True
        return slot

    def remove(self, slot: int) -> int | None:
        """Free `slot`; the last row moves into it. The slot the moved row came from, or None."""
        last = self.rows - 1
        moved = None
        if slot != last:
            for i, layer in enumerate(self.layers):
                if i not in self.cross:
                    n = self.lengths[last]
                    layer.kbuf[slot, :, :n] = layer.kbuf[last, :, :n]
                    layer.vbuf[slot, :, :n] = layer.vbuf[last, :, :n]
            self.lengths[slot], self.images[slot] = self.lengths[last], self.images[last]
            moved = last
        self.lengths.pop()
        self.images.pop()
        self.rows -= 1
        self._stale = True
        return moved

    def _first_self(self) -> int:
        return next(i for i in range(len(self.layers)) if i not in self.cross)

    def _reserve(self, rows: int, need: int, like: Any) -> None:
        """Buffers with room for `rows` slots of `need` tokens (kept rows copied over)."""
        import torch

        if rows <= self.slots and need <= self.capacity:
            return
        slots = max(rows, self.slots, min(2 * self.slots, rows + 8))
        capacity = max(self.capacity, need + GROW)
        template = like[self._first_self()].keys
        for i, layer in enumerate(self.layers):
            if i in self.cross:
                continue
            src = like[i].keys
            shape = (slots, src.shape[1], capacity, src.shape[-1])
            # zeros, not empty: a row's attention reads the whole span of the batch, its own unused
            # positions masked out, but a masked weight of 0 times a NaN left in memory is NaN
            kbuf = torch.zeros(shape, dtype=src.dtype, device=src.device)
            vbuf = torch.zeros(shape, dtype=like[i].values.dtype, device=src.device)
            if layer.kbuf is not None and self.rows:
                kbuf[:self.rows, :, :self.capacity] = layer.kbuf[:self.rows]
                vbuf[:self.rows, :, :self.capacity] = layer.vbuf[:self.rows]
            layer.kbuf, layer.vbuf = kbuf, vbuf
            layer.keys, layer.values = kbuf[:0], vbuf[:0]
            layer.is_initialized, layer.device = True, template.device
            layer.dtype = template.dtype
        self.slots, self.capacity = slots, capacity

    # -- one decoding step ----------------------------------------------------------------

    def step(self) -> Any:
        """Prepare a step in which every row writes one token at its length; the attention
        mask [rows, 1, 1, span] (True where a row has a token) for it."""
        import torch

        device = next(layer.kbuf.device for i, layer in enumerate(self.layers) if i not in self.cross)
        lengths = torch.tensor(self.lengths, device=device)
        self.row_index = torch.arange(self.rows, device=device)
        self.write_at = lengths
        self.span = max(self.lengths) + 1
        if self._stale:
            self._stack_images()
        return (torch.arange(self.span, device=device)[None] <= lengths[:, None])[:, None, None]

    def advance(self) -> None:
        self.lengths = [n + 1 for n in self.lengths]

    def _stack_images(self) -> None:
        import torch

        for k, i in enumerate(sorted(self.cross)):
            layer = self.layers[i]
            have = [img[k] for img in self.images if img and img[k] is not None]
            if len(have) != self.rows or not have:
                layer.keys = layer.values = torch.empty(0)
                layer.is_initialized = False
                continue
            layer.keys = torch.cat([kv[0] for kv in have])
            layer.values = torch.cat([kv[1] for kv in have])
            layer.is_initialized = True
        self._stale = False

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.span
