"""Question families of the synthetic world, answered and explained from the scene graph.

Each family is one function `(rng, scene, steps) -> Question | None` in `FAMILIES` (None when
the scene cannot support it, e.g. no object is uniquely named). A `Question` carries the
question text, the plan (SUMMARY), the reasoning sentences (REASONING) and the gold answer
(CONCLUSION); `annotate` adds the CAPTION and renders the four stages. Families, after CLEVR,
CLEVR-Math and the LLaVA-CoT examples:

    subtract   "Subtract all red squares. Subtract all small circles. How many objects are left?"
    count      "How many large blue objects are there?"
    attribute  "What colour is the large square?"          (only when the referent is unique)
    compare    "Are there more circles than triangles?"    (Yes/No)
    exist      "Is there a green triangle?"                (Yes/No)
    choice     one of count/subtract/attribute with options A-D; the answer is the letter

Every reasoning sentence decides one object next to its attributes, after comparing them with
the filter one value at a time, and carries the running tally, so each step is local enough for
a small model to learn; a multiple-choice answer is found by going through the options in turn.
Used by `generate.py`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llava_cot import stages
from llava_cot.synth import templates as T
from llava_cot.synth.scene import ATTRS, GRID, VALUES, Obj, Scene

Filter = tuple[tuple[str, str], ...]  # (attribute, value) pairs in ATTRS order

# Which attribute combinations a family filters on (each tuple in ATTRS order).
SUBTRACT_KINDS = (("shape",), ("colour",), ("colour", "shape"), ("size", "shape"), ("size", "colour"))
COUNT_KINDS = (*SUBTRACT_KINDS, ("size",), ("size", "colour", "shape"))
EXIST_KINDS = (("colour", "shape"), ("size", "shape"), ("size", "colour", "shape"), ("size", "colour"))
LETTERS = "ABCD"


@dataclass
class Question:
    family: str
    text: str
    plan: str
    steps: list[str]
    answer: str  # the CONCLUSION and the gold answer
    kind: str = "number"  # what the answer is: "number", "yesno", or the attribute asked for
    options: dict[str, str] = field(default_factory=dict)
    base: str = ""  # for choice: the family the options were built on


def noun(f: Filter, plural: bool) -> str:
    """A filter as a noun phrase: (("size","large"),("colour","blue")) -> "large blue objects"."""
    named = dict(f)
    head = named.get("shape", "object") + ("s" if plural else "")
    return " ".join([*(v for a, v in f if a != "shape"), head])


def matches(obj: Obj, f: Filter) -> bool:
    return all(getattr(obj, a) == v for a, v in f)


def _say(rng: random.Random, table: dict[str, list[str]], key: str, **kw: object) -> str:
    return rng.choice(table[key]).format(**kw)


def checks(obj: Obj, *filters: Filter) -> str:
    """The object against each value of the filters, in order: "(red yes, square no)"."""
    return "(" + ", ".join(f"{v} {'yes' if getattr(obj, a) == v else 'no'}" for f in filters for a, v in f) + ")"


def _at(obj: Obj, *filters: Filter) -> dict[str, str]:
    return {"desc": obj.describe(), "where": obj.where(), "checks": checks(obj, *filters)}


def _filter(rng: random.Random, objects: Sequence[Obj], kinds: Sequence[tuple[str, ...]], present: float) -> Filter:
    """A filter of one of `kinds`, taken from an object of the scene with probability `present`
    (so it usually matches something) and otherwise from the whole vocabulary."""
    attrs = rng.choice(kinds)
    if objects and rng.random() < present:
        obj = rng.choice(objects)
        return tuple((a, getattr(obj, a)) for a in attrs)
    return tuple((a, rng.choice(VALUES[a])) for a in attrs)


def caption(rng: random.Random, scene: Scene) -> str:
    """Every object, cell by cell in reading order, with all its attributes."""
    line = rng.choice(T.CAPTION_LINE)
    parts = [rng.choice(T.CAPTION_INTRO).format(n=len(scene.objects), grid=f"{GRID} by {GRID}")]
    parts += [line.format(row=o.row, col=o.col, desc=o.describe()) for o in scene.objects]
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# Families


def subtract(rng: random.Random, scene: Scene, steps: tuple[int, int]) -> Question | None:
    left = list(scene.objects)
    filters: list[Filter] = []
    for _ in range(rng.randint(*steps)):
        f = _filter(rng, left, SUBTRACT_KINDS, present=0.85)
        for _retry in range(10):  # the same instruction twice would be a wasted step
            if f not in filters:
                break
            f = _filter(rng, scene.objects, SUBTRACT_KINDS, present=0.5)
        filters.append(f)
        left = [o for o in left if not matches(o, f)]
    text = " ".join(_say(rng, T.QUESTION, "subtract_step", pl=noun(f, True)) for f in filters)
    text += " " + rng.choice(T.QUESTION["subtract_end"])
    left = list(scene.objects)
    out = [_say(rng, T.REASON, "subtract_open", n=len(left))]
    for i, f in enumerate(filters, 1):
        before, sg = len(left), noun(f, False)
        out.append(_say(rng, T.REASON, "subtract_step", i=i, pl=noun(f, True)))
        tally = before  # the running total, one object decided at a time
        for o in left:
            hit = matches(o, f)
            tally -= hit
            out.append(_say(rng, T.REASON, "subtract_hit" if hit else "subtract_miss", sg=sg, left=tally, **_at(o, f)))
        left = [o for o in left if not matches(o, f)]
        out.append(_say(rng, T.REASON, "subtract_total", before=before, removed=before - len(left), after=len(left)))
    after = len(left)
    objs = f"{after} object" + ("" if after == 1 else "s")
    out.append(_say(rng, T.REASON, "subtract_end", objs=objs, be="is" if after == 1 else "are", after=after))
    plan = rng.choice(T.PLAN["subtract"])
    return Question("subtract", text, plan, out, str(after))


def count(rng: random.Random, scene: Scene, steps: tuple[int, int]) -> Question | None:
    f = _filter(rng, scene.objects, COUNT_KINDS, present=0.85)
    sg, pl = noun(f, False), noun(f, True)
    out, k = [rng.choice(T.REASON["count_open"])], 0
    for o in scene.objects:
        hit = matches(o, f)
        k += hit
        out.append(_say(rng, T.REASON, "count_hit" if hit else "count_miss", sg=sg, k=k, **_at(o, f)))
    out.append(_say(rng, T.REASON, "count_end", k=k, pl=pl, noun=sg if k == 1 else pl))
    return Question("count", _say(rng, T.QUESTION, "count", pl=pl), _say(rng, T.PLAN, "count", sg=sg, pl=pl),
                    out, str(k))


def attribute(rng: random.Random, scene: Scene, steps: tuple[int, int],
              attrs: Sequence[str] = ("colour", "colour", "shape", "size")) -> Question | None:
    """Ask one attribute of an object named by a subset of its other attributes that fits no
    other object ("the large square"). Colour is asked twice as often: it is the CLEVR classic."""
    attr = rng.choice(attrs)
    others = [a for a in ATTRS if a != attr]
    kinds = [(others[0],), (others[1],), tuple(others)]
    targets = list(scene.objects)
    rng.shuffle(targets)
    for target in targets:
        for kind in rng.sample(kinds, len(kinds)):
            ref = tuple((a, getattr(target, a)) for a in kind)
            if sum(matches(o, ref) for o in scene.objects) == 1:
                return _attribute_question(rng, scene, attr, ref, target)
    return None


def _attribute_question(rng: random.Random, scene: Scene, attr: str, f: Filter, target: Obj) -> Question:
    value, ref = getattr(target, attr), noun(f, False)
    out = [_say(rng, T.REASON, "attribute_hit" if o is target else "attribute_miss",
                ref=ref, attr=attr, value=value, **_at(o, f)) for o in scene.objects]
    article = "a " if attr == "shape" else ""
    out.append(_say(rng, T.REASON, "attribute_end", ref=ref, attr=attr, value=value, article=article))
    return Question("attribute", _say(rng, T.QUESTION, "attribute", attr=attr, ref=ref),
                    _say(rng, T.PLAN, "attribute", attr=attr, ref=ref), out, value, kind=attr)


def compare(rng: random.Random, scene: Scene, steps: tuple[int, int]) -> Question | None:
    """"Are there more/fewer A than B?" over two shapes or two colours; the answer is drawn Yes
    or No with equal odds first and the classes are then sampled to fit, when they can."""
    attr, relation, want = rng.choice(("shape", "colour")), rng.choice(("more", "fewer")), rng.random() < 0.5
    for _ in range(20):
        va, vb = rng.sample(VALUES[attr], 2)
        ca = sum(getattr(o, attr) == va for o in scene.objects)
        cb = sum(getattr(o, attr) == vb for o in scene.objects)
        yes = ca > cb if relation == "more" else ca < cb
        if yes == want and ca + cb > 0:
            break
    fa, fb = ((attr, va),), ((attr, vb),)
    a, b = noun(fa, True), noun(fb, True)
    out, counts = [], {va: 0, vb: 0}
    for o in scene.objects:
        value = getattr(o, attr)
        if value in counts:
            counts[value] += 1
            sg = noun(((attr, value),), False)
            out.append(_say(rng, T.REASON, "compare_hit", sg=sg, a=a, b=b, ca=counts[va], cb=counts[vb], **_at(o, fa, fb)))
        else:
            out.append(_say(rng, T.REASON, "compare_miss", a_sg=noun(fa, False), b_sg=noun(fb, False), **_at(o, fa, fb)))
    answer, op = "Yes" if yes else "No", ">" if relation == "more" else "<"
    out.append(_say(rng, T.REASON, "compare_end", a=a, b=b, ca=ca, cb=cb, op=op, relation=relation.capitalize(),
                    truth="true" if yes else "false", answer=answer))
    return Question("compare", _say(rng, T.QUESTION, relation, a=a, b=b), _say(rng, T.PLAN, "compare", a=a, b=b),
                    out, answer, kind="yesno")


def exist(rng: random.Random, scene: Scene, steps: tuple[int, int]) -> Question | None:
    """"Is there a green triangle?"; Yes and No drawn with equal odds, as in `compare`."""
    want = rng.random() < 0.5
    for _ in range(20):
        f = _filter(rng, scene.objects, EXIST_KINDS, present=1.0 if want else 0.0)
        if any(matches(o, f) for o in scene.objects) == want:
            break
    sg, pl = noun(f, False), noun(f, True)
    out = [_say(rng, T.REASON, "exist_hit" if matches(o, f) else "exist_miss", sg=sg, **_at(o, f)) for o in scene.objects]
    k = sum(matches(o, f) for o in scene.objects)
    out.append(_say(rng, T.REASON, "exist_yes", k=k, noun=sg if k == 1 else pl) if k else _say(rng, T.REASON, "exist_no", sg=sg))
    return Question("exist", _say(rng, T.QUESTION, "exist", sg=sg, pl=pl), _say(rng, T.PLAN, "exist", sg=sg),
                    out, "Yes" if k else "No", kind="yesno")


def choice(rng: random.Random, scene: Scene, steps: tuple[int, int]) -> Question | None:
    """A count, subtract or attribute question with four options; the answer is the letter."""
    base_name = rng.choice(("count", "subtract", "attribute"))
    if base_name == "attribute":  # size has only two values: too few for four options
        q = attribute(rng, scene, steps, attrs=("colour", "shape"))
    else:
        q = FAMILIES[base_name](rng, scene, steps)
    if q is None:
        return None
    if q.kind == "number":
        n = int(q.answer)
        pool = [str(v) for v in range(max(0, n - 3), n + 4) if v != n]
    else:
        pool = [v for v in VALUES[q.kind] if v != q.answer]
    values = [q.answer, *rng.sample(pool, 3)]
    rng.shuffle(values)
    options = dict(zip(LETTERS, values, strict=True))
    letter = LETTERS[values.index(q.answer)]
    text = "\n".join([q.text, T.OPTIONS_HEADER, *(f"{k}. {v}" for k, v in options.items())])
    plan = q.plan + " " + rng.choice(T.PLAN["choice"])
    # One option a line, as the question lists them: the letter is then the same token in both
    # places (a byte-level BPE reads "\nA" and " A" as different tokens), so the copy is exact.
    scan = "\n".join(f"{k}. {v}, {'yes' if v == q.answer else 'no'}" for k, v in options.items() if k <= letter)
    steps_out = [*q.steps, _say(rng, T.REASON, "choice_scan", scan=scan),
                 _say(rng, T.REASON, "choice_end", value=q.answer, letter=letter)]
    return Question("choice", text, plan, steps_out, letter, kind="letter", options=options, base=q.family)


Family = Callable[[random.Random, Scene, tuple[int, int]], Question | None]
FAMILIES: dict[str, Family] = {
    "subtract": subtract, "count": count, "attribute": attribute,
    "compare": compare, "exist": exist, "choice": choice,
}
# How often each family is drawn: subtraction chains carry the most reasoning; yes/no questions
# are cheap to guess, so they get less weight.
WEIGHTS: dict[str, float] = {"subtract": 3, "count": 2, "attribute": 2, "compare": 1, "exist": 1, "choice": 2}


def ask(rng: random.Random, scene: Scene, steps: tuple[int, int], k: int) -> list[Question]:
    """Up to k questions about a scene, from distinct families drawn by WEIGHTS."""
    names = list(FAMILIES)
    out: list[Question] = []
    while names and len(out) < k:
        name = rng.choices(names, weights=[WEIGHTS[n] for n in names])[0]
        names.remove(name)
        q = FAMILIES[name](rng, scene, steps)
        if q is not None:
            out.append(q)
    return out


def annotate(rng: random.Random, scene: Scene, q: Question) -> str:
    """The four-stage gpt turn: plan, caption of the whole scene, reasoning, answer."""
    texts = (q.plan, caption(rng, scene), " ".join(q.steps), q.answer)
    return stages.render(dict(zip(stages.STAGES, texts, strict=True)))

