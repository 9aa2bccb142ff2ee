"""Question families that count: totals, counts and existence under any combination of
attributes, removal chains, and comparisons of two counts (Yes/No, or naming the larger side),
with "which is bigger" beside them. Each is `(rng, scene, spec) -> Question | None`, registered
in `questions.FAMILIES`:

    total      "How many objects are there?", "Count the shapes."
    count      "How many large blue objects are there?", "Count the squares that are red."
    exist      "Is there a green triangle?", "Do you see any small objects?"
    subtract   "Remove all red squares. How many objects remain?", "If you take away every blue
               object, how many are left?"
    compare    "Are there more circles than triangles?", "Are there as many red as blue objects?"
    which      "Are there more circles or squares?" (-> "circles"), "Which is bigger, the red
               square or the blue circle?" (-> "the red square")

Not run directly.
"""

from __future__ import annotations

import random

from llava_cot.synth import templates as T
from llava_cot.synth import wording as W
from llava_cot.synth.core import (
    Filter,
    Question,
    ask_text,
    at,
    matches,
    noun,
    pick_filter,
    plural,
    say,
    side,
    unique_refs,
)
from llava_cot.synth.scene import ATTRS, VALUES, Scene, Split

# Which attribute combinations a family filters on (each tuple in ATTRS order).
SUBTRACT_KINDS = (("shape",), ("colour",), ("colour", "shape"), ("size", "shape"), ("size", "colour"))
COUNT_KINDS = (*SUBTRACT_KINDS, ("size",), ("size", "colour", "shape"))
EXIST_KINDS = COUNT_KINDS


def total(rng: random.Random, scene: Scene, spec: Split) -> Question | None:
    out = [rng.choice(T.REASON["count_open"])]
    out += [say(rng, T.REASON, "total_step", desc=o.describe(), where=o.where(), k=k) for k, o in enumerate(scene.objects, 1)]
    out.append(say(rng, T.REASON, "total_end", k=len(scene.objects)))
    return Question("total", ask_text(rng, "total", spec), rng.choice(T.PLAN["total"]), out, str(len(scene.objects)))


def count(rng: random.Random, scene: Scene, spec: Split) -> Question | None:
    f = pick_filter(rng, scene.objects, COUNT_KINDS, present=0.85)
    sg, pl = noun(f, False), noun(f, True)
    out, k = [rng.choice(T.REASON["count_open"])], 0
    for o in scene.objects:
        hit = matches(o, f)
        k += hit
        out.append(say(rng, T.REASON, "count_hit" if hit else "count_miss", sg=sg, k=k, **at(o, f)))
    out.append(say(rng, T.REASON, "count_end", k=k, pl=pl, noun=sg if k == 1 else pl))
    return Question("count", ask_text(rng, "count", spec, **W.nouns(rng, f)), say(rng, T.PLAN, "count", sg=sg, pl=pl),
                    out, str(k))


def exist(rng: random.Random, scene: Scene, spec: Split) -> Question | None:
    """"Is there a green triangle?"; Yes and No drawn with equal odds, as in `compare`."""
    want = rng.random() < 0.5
    for _ in range(20):
        f = pick_filter(rng, scene.objects, EXIST_KINDS, present=1.0 if want else 0.0)
        if any(matches(o, f) for o in scene.objects) == want:
            break
    sg, pl = noun(f, False), noun(f, True)
    out = [say(rng, T.REASON, "exist_hit" if matches(o, f) else "exist_miss", sg=sg, **at(o, f)) for o in scene.objects]
    k = sum(matches(o, f) for o in scene.objects)
    out.append(say(rng, T.REASON, "exist_yes", k=k, noun=sg if k == 1 else pl) if k else say(rng, T.REASON, "exist_no", sg=sg))
    return Question("exist", ask_text(rng, "exist", spec, **W.nouns(rng, f)), say(rng, T.PLAN, "exist", sg=sg),
                    out, "Yes" if k else "No", kind="yesno")


def _removal(rng: random.Random, f: Filter) -> str:
    n = W.nouns(rng, f)
    return rng.choice([f"all {n['pl']}", f"all the {n['pl']}", f"every {n['sg']}", f"the {n['pl']}",
                       f"all {n['pl_rel']}"])


def _subtract_text(rng: random.Random, filters: list[Filter], spec: Split) -> str:
    """Steps then a question ("Remove all red squares. How many objects remain?"), or one sentence
    ("If you take away every red square, how many are left?"). Held out: the question part."""
    if rng.random() < 0.5:
        steps = [W.phrase(rng, "subtract_step", "any" if spec.heldout else "train", W.nouns(rng, f)) for f in filters]
        return W.casual(rng, " ".join([*steps, W.phrase(rng, "subtract_end", side(spec), {})]))
    removals = " and ".join(_removal(rng, f) for f in filters)
    removed = " and ".join("the " + W.nouns(rng, f)["pl"] for f in filters)
    return ask_text(rng, "subtract_one", spec, removals=removals, removed=removed)


def subtract(rng: random.Random, scene: Scene, spec: Split) -> Question | None:
    left = list(scene.objects)
    filters: list[Filter] = []
    for _ in range(rng.randint(*spec.steps)):
        f = pick_filter(rng, left, SUBTRACT_KINDS, present=0.85)
        for _retry in range(10):  # the same instruction twice would be a wasted step
            if f not in filters:
                break
            f = pick_filter(rng, scene.objects, SUBTRACT_KINDS, present=0.5)
        filters.append(f)
        left = [o for o in left if not matches(o, f)]
    text = _subtract_text(rng, filters, spec)
    left = list(scene.objects)
    out = [say(rng, T.REASON, "subtract_open", n=len(left))]
    for i, f in enumerate(filters, 1):
        before, sg = len(left), noun(f, False)
        out.append(say(rng, T.REASON, "subtract_step", i=i, pl=noun(f, True)))
        tally = before  # the running total, one object decided at a time
        for o in left:
            hit = matches(o, f)
            tally -= hit
            out.append(say(rng, T.REASON, "subtract_hit" if hit else "subtract_miss", sg=sg, left=tally, **at(o, f)))
        left = [o for o in left if not matches(o, f)]
        out.append(say(rng, T.REASON, "subtract_total", before=before, removed=before - len(left), after=len(left)))
    after = len(left)
    out.append(say(rng, T.REASON, "subtract_end", objs=plural(after, "object"), be="is" if after == 1 else "are", after=after))
    return Question("subtract", text, rng.choice(T.PLAN["subtract"]), out, str(after))


def _classes(rng: random.Random, scene: Scene, accept) -> tuple[str, str, str, int, int]:
    """(attribute, value a, value b, count a, count b) of two classes of one attribute, drawn
    until `accept(ca, cb)` holds (the last draw if it never does)."""
    for _ in range(30):
        attr = rng.choice(ATTRS)
        va, vb = rng.sample(VALUES[attr], 2)
        ca = sum(getattr(o, attr) == va for o in scene.objects)
        cb = sum(getattr(o, attr) == vb for o in scene.objects)
        if accept(ca, cb):
            break
    return attr, va, vb, ca, cb


def _tally(rng: random.Random, scene: Scene, attr: str, va: str, vb: str) -> list[str]:
    """One sentence per object, with both running counts: the counting half of a comparison."""
    fa, fb = ((attr, va),), ((attr, vb),)
    a, b = noun(fa, True), noun(fb, True)
    out, counts = [], {va: 0, vb: 0}
    for o in scene.objects:
        value = getattr(o, attr)
        if value in counts:
            counts[value] += 1
            out.append(say(rng, T.REASON, "compare_hit", sg=noun(((attr, value),), False), a=a, b=b,
                           ca=counts[va], cb=counts[vb], **at(o, fa, fb)))
        else:
            out.append(say(rng, T.REASON, "compare_miss", a_sg=noun(fa, False), b_sg=noun(fb, False), **at(o, fa, fb)))
    return out


def compare(rng: random.Random, scene: Scene, spec: Split) -> Question | None:
    """"Are there more/fewer A than B?", "as many A as B?" over two classes of one attribute;
    the answer is drawn Yes or No with equal odds first and the classes sampled to fit."""
    relation, want = rng.choice(("more", "fewer", "same")), rng.random() < 0.5
    holds = {"more": lambda x, y: x > y, "fewer": lambda x, y: x < y, "same": lambda x, y: x == y}[relation]
    attr, va, vb, ca, cb = _classes(rng, scene, lambda x, y: holds(x, y) == want and x + y > 0)
    yes = holds(ca, cb)
    a, b = noun(((attr, va),), True), noun(((attr, vb),), True)
    out = _tally(rng, scene, attr, va, vb)
    answer, truth = ("Yes" if yes else "No"), ("true" if yes else "false")
    if relation == "same":
        out.append(say(rng, T.REASON, "compare_same_end", a=a, b=b, ca=ca, cb=cb, truth=truth, answer=answer))
    else:
        out.append(say(rng, T.REASON, "compare_end", a=a, b=b, ca=ca, cb=cb, op=">" if relation == "more" else "<",
                       relation=relation.capitalize(), truth=truth, answer=answer))
    slots = {"a": W.nouns(rng, ((attr, va),))["pl"], "b": W.nouns(rng, ((attr, vb),))["pl"]}
    return Question("compare", ask_text(rng, f"compare_{relation}", spec, **slots), say(rng, T.PLAN, "compare", a=a, b=b),
                    out, answer, kind="yesno")


def which(rng: random.Random, scene: Scene, spec: Split) -> Question | None:
    """Name the side of a comparison: the class with more (fewer) objects, or the bigger
    (smaller) of two objects."""
    if rng.random() < 0.6:
        return _which_count(rng, scene, spec)
    return _which_size(rng, scene, spec)


def _which_count(rng: random.Random, scene: Scene, spec: Split) -> Question | None:
    relation = rng.choice(("more", "fewer"))
    attr, va, vb, ca, cb = _classes(rng, scene, lambda x, y: x != y)
    if ca == cb:
        return None
    a, b = noun(((attr, va),), True), noun(((attr, vb),), True)
    first = (ca > cb) == (relation == "more")
    (winner, cw), (loser, cl) = ((a, ca), (b, cb)) if first else ((b, cb), (a, ca))
    out = [*_tally(rng, scene, attr, va, vb),
           say(rng, T.REASON, "which_end", a=a, b=b, ca=ca, cb=cb, cw=cw, cl=cl, op=">" if relation == "more" else "<",
               relation=relation, winner=winner, loser=loser)]
    slots = {"a": W.nouns(rng, ((attr, va),))["pl"], "b": W.nouns(rng, ((attr, vb),))["pl"]}
    return Question("which", ask_text(rng, f"which_{relation}", spec, **slots),
                    say(rng, T.PLAN, "which/count", a=a, b=b, relation=relation), out, winner, kind="text")


def _which_size(rng: random.Random, scene: Scene, spec: Split) -> Question | None:
    pairs = [(x, y) for x in scene.objects for y in scene.objects if x.size == "large" and y.size == "small"]
    rng.shuffle(pairs)
    for big, small in pairs:
        r_big, r_small = unique_refs(scene, big, avoid=("size",)), unique_refs(scene, small, avoid=("size",))
        if r_big and r_small:
            break
    else:
        return None
    comparative = rng.choice(("bigger", "smaller"))
    (o1, f1), (o2, f2) = rng.sample([(big, rng.choice(r_big)), (small, rng.choice(r_small))], 2)
    ref1, ref2 = noun(f1, False), noun(f2, False)
    out = []
    for o in scene.objects:
        if o in (o1, o2):
            ref = ref1 if o is o1 else ref2
            out.append(say(rng, T.REASON, "attribute_hit", ref=ref, attr="size", value=o.size, **at(o, f1, f2)))
        else:
            out.append(say(rng, T.REASON, "which_miss", ref1=ref1, ref2=ref2, **at(o, f1, f2)))
    winner = ref1 if (o1 is big) == (comparative == "bigger") else ref2
    out.append(say(rng, T.REASON, "which_size_end", ref1=ref1, ref2=ref2, s1=o1.size, s2=o2.size,
                   comparative=comparative, winner=winner))
    slots = {**W.ref(rng, f1, "ref1"), **W.ref(rng, f2, "ref2")}
    key = "which_bigger" if comparative == "bigger" else "which_smaller"
    return Question("which", ask_text(rng, key, spec, **slots),
                    say(rng, T.PLAN, "which/size", ref1=ref1, ref2=ref2, comparative=comparative), out,
                    f"the {winner}", kind="text")
