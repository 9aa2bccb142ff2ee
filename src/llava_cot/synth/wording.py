"""How the synthetic world words its questions: a small grammar, its held-out phrasings, noun phrases.

A question frame in `phrasings.py` is a string with alternatives in brackets and content slots
in braces, e.g. "How many {PL} [can you see|are there]?". `expand` lists every phrasing a frame
can give ("How many {pl} can you see?", "How many {pl_rel} can you see?", ...), first
alternatives first; macros such as {PL} stand for a bracket of slot styles. The phrasings of
each question key are split once, by a hash of their text, into those used for training (every
split but heldout) and those held out (`--split heldout`, the `synth-phrasings` bench), so that
a model can be scored on wordings it never saw: new combinations of known parts, and now and
then a whole construction never trained. The first phrasing of a key's first frame and the
PINNED ones (what new users try first) are always on the training side. A slot is filled from the scene at the end, with `str.format`.

    from llava_cot.synth import wording
    wording.phrase(rng, "count", "train", wording.nouns(rng, (("colour", "red"),)))

Not run directly.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Mapping, Sequence

from llava_cot.synth import phrasings as P

# A held-out phrasing is one in HELD_OUT_EVERY of a key's non-pinned phrasings, by hash rank.
HELD_OUT_EVERY = 4
SIDES = ("train", "heldout", "any")
# Slot styles: {PL} is either the plain plural ("large red squares") or the relative one
# ("squares that are large and red"); the same for singulars and definite references.
MACROS = {"{PL}": "[{pl}|{pl_rel}]", "{SG}": "[{sg}|{sg_rel}]", "{A_SG}": "[{a_sg}|{a_sg_rel}]",
          "{REF}": "[{ref}|{ref_rel}]", "{REF1}": "[{ref1}|{ref1_rel}]", "{REF2}": "[{ref2}|{ref2_rel}]",
          "{IMAGE}": "[image|picture]"}
HEADS = ("object", "thing", "shape", "item")  # what a noun phrase without a shape is headed by
SPELLING = {"colour": ("colour", "color"), "large": ("large", "big")}


def _close(text: str, i: int) -> int:
    """Index of the bracket closing the one opened at text[i]."""
    depth = 0
    for j in range(i, len(text)):
        depth += {"[": 1, "]": -1}.get(text[j], 0)
        if depth == 0:
            return j
    raise ValueError(f"unclosed bracket in {text!r}")


def _split_top(text: str) -> list[str]:
    """Alternatives of a bracket's body, split at the '|' not inside a nested bracket."""
    parts, depth, start = [], 0, 0
    for j, ch in enumerate(text):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "|" and depth == 0:
            parts.append(text[start:j])
            start = j + 1
    return [*parts, text[start:]]


def _expand(text: str) -> list[str]:
    out, i = [""], 0
    while i < len(text):
        if text[i] == "[":
            j = _close(text, i)
            options = [e for alt in _split_top(text[i + 1 : j]) for e in _expand(alt)]
            out, i = [o + e for o in out for e in options], j + 1
        else:
            j = text.find("[", i)
            j = len(text) if j < 0 else j
            out, i = [o + text[i:j] for o in out], j
    return out


def _tidy(text: str) -> str:
    """An empty alternative leaves a double space or a space before punctuation: remove them."""
    text = " ".join(text.split())
    for p in "?.,:;":
        text = text.replace(" " + p, p)
    return text


def expand(frame: str) -> list[str]:
    """Every phrasing of a frame, first alternatives first, without duplicates."""
    for macro, body in MACROS.items():
        frame = frame.replace(macro, body)
    return list(dict.fromkeys(_tidy(e) for e in _expand(frame)))


def _rank(key: str, text: str) -> bytes:
    return hashlib.blake2b(f"{key}\0{text}".encode(), digest_size=8).digest()


@functools.cache
def sides(key: str) -> tuple[tuple[tuple[str, ...], ...], frozenset[str]]:
    """(the phrasings of each frame of `key`, the set of them held out). Fixed by the frames'
    text alone: no seed changes which phrasings are held out."""
    frames = tuple(tuple(expand(f)) for f in P.QUESTIONS[key])
    pinned = {frames[0][0]} | {_tidy(p) for p in P.PINNED.get(key, ())}
    rest = sorted({e for es in frames for e in es} - pinned, key=lambda e: _rank(key, e))
    held = frozenset(e for r, e in enumerate(rest) if r % HELD_OUT_EVERY == 1)
    return frames, held


def phrasings(key: str, side: str) -> list[str]:
    """All phrasings of a key on one side ("train", "heldout" or "any")."""
    frames, held = sides(key)
    every = list(dict.fromkeys(e for es in frames for e in es))
    return [e for e in every if side == "any" or (e in held) == (side == "heldout")]


class NoPhrasing(ValueError):
    """No phrasing of the side fits these slots (`questions.ask` then draws another family)."""


def phrase(rng: random.Random, key: str, side: str, slots: Mapping[str, str]) -> str:
    """A question of `key` on `side`, its slots filled: a frame drawn uniformly among those with
    a phrasing on that side, then one of its phrasings. A question never reads the same as a
    phrasing of the other side filled with the same slots would ("How many {pl_rel} ...?" of a
    bare shape is "How many {pl} ...?"), so no held-out wording is ever trained."""
    frames, held = sides(key)
    other = {"train": "heldout", "heldout": "train"}.get(side)
    taken = {e.format_map(slots) for e in phrasings(key, other)} if other else set()
    pools = [[t for e in es if side == "any" or (e in held) == (side == "heldout")
              if (t := e.format_map(slots)) not in taken] for es in frames]
    pools = [p for p in pools if p]
    if not pools:
        raise NoPhrasing(f"no {side} phrasing of {key!r} reads unlike the other side's with {dict(slots)}")
    return rng.choice(rng.choice(pools))


def casual(rng: random.Random, text: str, p: float = 0.08) -> str:
    """Typed as people type: now and then no capital letter, or no final mark."""
    if rng.random() < p:
        text = text[0].lower() + text[1:]
    if rng.random() < p and text[-1] in "?.":
        text = text[:-1]
    return text


# ---------------------------------------------------------------------------------------------
# Noun phrases of a filter, in every style a frame may ask for


def _plural(head: str) -> str:
    return head + "s"


def join_and(words: Sequence[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def spell(rng: random.Random, word: str) -> str:
    """A word as people spell or say it: "colour" or "color", "large" or "big"."""
    return rng.choice(SPELLING.get(word, (word,)))


def nouns(rng: random.Random, f: Sequence[tuple[str, str]], prefix: str = "",
          heads: Sequence[str] = HEADS) -> dict[str, str]:
    """The slots naming a filter: {prefix}sg ("large red square"), pl, sg_rel ("square that is
    large and red"), pl_rel, a_sg, a_sg_rel, ref / ref_rel (the same as sg / sg_rel, for "the
    ..."), pred_pl ("large and red", or "large red squares" with a shape), for "are {pred_pl}"."""
    named = dict(f)
    mods = [spell(rng, v) for a, v in f if a != "shape"]
    head = named.get("shape") or rng.choice(list(heads))
    sg, pl = " ".join([*mods, head]), " ".join([*mods, _plural(head)])
    sg_rel = f"{head} that is {join_and(mods)}" if mods else sg
    pl_rel = f"{_plural(head)} that are {join_and(mods)}" if mods else pl
    out = {"sg": sg, "pl": pl, "sg_rel": sg_rel, "pl_rel": pl_rel, "a_sg": _article(sg),
           "a_sg_rel": _article(sg_rel), "ref": sg, "ref_rel": sg_rel,
           "pred_pl": pl if "shape" in named or not mods else join_and(mods)}
    return {prefix + k: v for k, v in out.items()}


def ref(rng: random.Random, f: Sequence[tuple[str, str]], name: str = "ref",
        heads: Sequence[str] = HEADS) -> dict[str, str]:
    """The slots {name} and {name}_rel of a definite reference: "large square", "square that is large"."""
    n = nouns(rng, f, heads=heads)
    return {name: n["sg"], f"{name}_rel": n["sg_rel"]}
