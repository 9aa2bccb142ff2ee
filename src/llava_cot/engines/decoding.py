"""Decoding helpers of the `hf` engine: choosing the next token, and finding stop strings
incrementally, on the text of each new token only (never by decoding the whole sequence again)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Detokenizer:
    """Incremental decoding of one sequence: each new token costs one short decode."""

    def __init__(self, tokenizer: Any, context: Sequence[int]) -> None:
        self.tok = tokenizer
        self.ids = list(context)
        self.prefix = 0
        self.read = len(self.ids)
        self.text = ""

    def add(self, token: int) -> str:
        self.ids.append(token)
        before = self.tok.decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
        after = self.tok.decode(self.ids[self.prefix:], skip_special_tokens=True)
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""  # an incomplete character or a special token: nothing to show yet
        delta = after[len(before):]
        self.text += delta
        self.prefix, self.read = self.read, len(self.ids)
        return delta

    def final(self) -> str:
        """The whole text, including a last incomplete character held back so far."""
        before = self.tok.decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
        after = self.tok.decode(self.ids[self.prefix:], skip_special_tokens=True)
        return self.text + after[len(before):]


def first_stop(text: str, delta: str, stops: Sequence[str]) -> int | None:
    """End of the earliest stop string that ends inside the newest `delta`, or None."""
    longest = max(map(len, stops), default=0)
    start = max(0, len(text) - len(delta) - longest + 1)
    ends = [i + len(s) for s in stops if (i := text.find(s, start)) >= 0]
    return min(ends) if ends else None


def pick(logits: Any, rows: Sequence[Any]) -> list[int]:
    """The next token of each row, from its logits [rows, vocab]: the most likely one for a
    greedy row, else a sample at the row's temperature and top_p from the row's own generator
    (so that a row's sample never depends on which other rows share its batch)."""
    import torch

    best = logits.argmax(-1).tolist()
    for b, row in enumerate(rows):
        sampling = row.sampling
        if sampling.temperature == 0:
            continue
        probs = torch.softmax(logits[b] / sampling.temperature, dim=-1)
        if sampling.top_p < 1:
            sorted_p, order = probs.sort(descending=True)
            drop = sorted_p.cumsum(-1) - sorted_p > sampling.top_p  # keep the smallest set reaching top_p
            sorted_p[drop] = 0
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        best[b] = int(torch.multinomial(probs, 1, generator=row.generator))
    return best
