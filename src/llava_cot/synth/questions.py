"""Question families of the synthetic world, answered and explained from the scene graph.

Each family is one function `(rng, scene, spec) -> Question | None` in `FAMILIES` (None when
the scene cannot support it, e.g. no object is uniquely named); `spec` is the split's
`scene.Split`, which says how long a removal chain is and whether the question is worded in the
trained or the held-out phrasings. A `Question` carries the question text, the plan (SUMMARY),
the reasoning sentences (REASONING) and the gold answer (CONCLUSION); `annotate` adds the
CAPTION and renders the four stages. The families, after CLEVR, CLEVR-Math, the LLaVA-CoT
examples and what people ask about such scenes:

    total, count, exist, subtract, compare, which      counting.py
    attribute, universal, describe                     properties.py
    position, rowcol, relation                         spatial.py
    choice     one of count/subtract/attribute with options A-D; the answer is the letter

Every reasoning sentence decides one object next to its attributes, after comparing them with
what the question names one value at a time, and carries the running tally, so each step is
local enough for a small model to learn; a multiple-choice answer is found by going through the
options in turn. Used by `generate.py`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from llava_cot import stages
from llava_cot.synth import counting, properties, spatial, wording
from llava_cot.synth import templates as T
from llava_cot.synth.core import Question, caption, noun, say
from llava_cot.synth.scene import VALUES, Scene, Split

LETTERS = "ABCD"
__all__ = ["FAMILIES", "WEIGHTS", "Question", "annotate", "ask", "noun"]


def choice(rng: random.Random, scene: Scene, spec: Split) -> Question | None:
    """A count, subtract or attribute question with four options; the answer is the letter."""
    base_name = rng.choice(("count", "subtract", "attribute"))
    if base_name == "attribute":  # size has only two values: too few for four options
        q = properties.attribute(rng, scene, spec, attrs=("colour", "shape"))
    else:
        q = FAMILIES[base_name](rng, scene, spec)
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
    steps_out = [*q.steps, say(rng, T.REASON, "choice_scan", scan=scan),
                 say(rng, T.REASON, "choice_end", value=q.answer, letter=letter)]
    return Question("choice", text, plan, steps_out, letter, kind="letter", options=options, base=q.family)


Family = Callable[[random.Random, Scene, Split], Question | None]
FAMILIES: dict[str, Family] = {
    "subtract": counting.subtract, "count": counting.count, "total": counting.total, "exist": counting.exist,
    "compare": counting.compare, "which": counting.which, "attribute": properties.attribute,
    "universal": properties.universal, "describe": properties.describe, "position": spatial.position,
    "rowcol": spatial.rowcol, "relation": spatial.relation, "choice": choice,
}
# How often each family is drawn: subtraction chains carry the most reasoning; yes/no questions
# are cheap to guess, so they get less weight; a description is long and easy.
WEIGHTS: dict[str, float] = {"subtract": 3, "count": 2, "total": 1, "exist": 1, "compare": 1, "which": 1,
                             "attribute": 2, "universal": 1.5, "describe": 0.5, "position": 2, "rowcol": 1.5,
                             "relation": 1.5, "choice": 2}


def ask(rng: random.Random, scene: Scene, spec: Split, k: int) -> list[Question]:
    """Up to k questions about a scene, from distinct families drawn by WEIGHTS."""
    names = list(FAMILIES)
    out: list[Question] = []
    while names and len(out) < k:
        name = rng.choices(names, weights=[WEIGHTS[n] for n in names])[0]
        names.remove(name)
        try:
            q = FAMILIES[name](rng, scene, spec)
        except wording.NoPhrasing:  # e.g. only "{pl_rel}" phrasings held out, and a bare "shapes"
            q = None
        if q is not None:
            out.append(q)
    return out


def annotate(rng: random.Random, scene: Scene, q: Question) -> str:
    """The four-stage gpt turn: plan, caption of the whole scene, reasoning, answer."""
    texts = (q.plan, caption(rng, scene), " ".join(q.steps), q.answer)
    return stages.render(dict(zip(stages.STAGES, texts, strict=True)))
