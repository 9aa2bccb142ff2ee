"""Pieces shared by the question families of the synthetic world: the `Question` a family returns,
filters and their canonical noun phrases, the value-by-value checks of one object, the caption,
and the question text drawn from `phrasings.py` on the split's side (trained or held out).

A filter is a tuple of (attribute, value) pairs in ATTRS order; ("row", 2) and ("col", 3) may
follow, for the families that pick objects by position. Used by `questions.py`, `counting.py`,
`logic.py` and `spatial.py`; not run directly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from llava_cot.synth import templates as T
from llava_cot.synth import wording
from llava_cot.synth.scene import GRID, VALUES, Obj, Scene, Split

Filter = tuple[tuple[str, object], ...]


@dataclass
class Question:
    family: str
    text: str
    plan: str
    steps: list[str]
    answer: str  # the CONCLUSION and the gold answer
    kind: str = "number"  # "number", "yesno", "letter", "text", or the attribute asked for
    options: dict[str, str] = field(default_factory=dict)
    base: str = ""  # for choice: the family the options were built on


def noun(f: Filter, plural: bool) -> str:
    """A filter as the canonical noun phrase of plans and reasoning: "large blue objects"."""
    named = dict(f)
    head = str(named.get("shape", "object")) + ("s" if plural else "")
    return " ".join([*(str(v) for a, v in f if a in ("size", "colour")), head])


def matches(obj: Obj, f: Filter) -> bool:
    return all(getattr(obj, a) == v for a, v in f)


def say(rng: random.Random, table: dict[str, list[str]], key: str, **kw: object) -> str:
    return rng.choice(table[key]).format(**kw)


def _check(obj: Obj, a: str, v: object) -> str:
    name = {"row": f"row {v}", "col": f"column {v}"}.get(a, str(v))
    return f"{name} {'yes' if getattr(obj, a) == v else 'no'}"


def checks(obj: Obj, *filters: Filter) -> str:
    """The object against each value of the filters, in order: "(red yes, square no)"."""
    return "(" + ", ".join(_check(obj, a, v) for f in filters for a, v in f) + ")"


def at(obj: Obj, *filters: Filter) -> dict[str, str]:
    return {"desc": obj.describe(), "where": obj.where(), "checks": checks(obj, *filters)}


def pick_filter(rng: random.Random, objects: Sequence[Obj], kinds: Sequence[tuple[str, ...]], present: float) -> Filter:
    """A filter of one of `kinds`, taken from an object of the scene with probability `present`
    (so it usually matches something) and otherwise from the whole vocabulary."""
    attrs = rng.choice(kinds)
    if objects and rng.random() < present:
        obj = rng.choice(objects)
        return tuple((a, getattr(obj, a)) for a in attrs)
    return tuple((a, rng.choice(VALUES[a])) for a in attrs)


def unique_refs(scene: Scene, obj: Obj, avoid: Sequence[str] = ()) -> list[Filter]:
    """The filters of attributes (not in `avoid`) that fit `obj` and no other object."""
    attrs = [a for a in ("size", "colour", "shape") if a not in avoid]
    kinds = [k for n in (1, 2, 3) for k in _subsets(attrs, n)]
    refs = [tuple((a, getattr(obj, a)) for a in k) for k in kinds]
    return [f for f in refs if sum(matches(o, f) for o in scene.objects) == 1]


def _subsets(items: Sequence[str], n: int) -> list[tuple[str, ...]]:
    if n == 0:
        return [()]
    return [(x, *rest) for i, x in enumerate(items) for rest in _subsets(items[i + 1 :], n - 1)]


def caption(rng: random.Random, scene: Scene) -> str:
    """Every object, cell by cell in reading order, with all its attributes."""
    line = rng.choice(T.CAPTION_LINE)
    parts = [rng.choice(T.CAPTION_INTRO).format(n=len(scene.objects), grid=f"{GRID} by {GRID}")]
    parts += [line.format(row=o.row, col=o.col, desc=o.describe()) for o in scene.objects]
    return " ".join(parts)


def side(spec: Split) -> str:
    return "heldout" if spec.heldout else "train"


def ask_text(rng: random.Random, key: str, spec: Split, **slots: str) -> str:
    """The question text of `key` in one of the split's phrasings, typed casually now and then."""
    return wording.casual(rng, wording.phrase(rng, key, side(spec), slots))


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
