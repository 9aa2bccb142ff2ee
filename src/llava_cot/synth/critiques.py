"""Judge and verifier training items from the synthetic world: one stage of a gold answer made wrong.

The tiny model learns to act as its own judge (which of two candidates for a stage is better?)
and verifier (is this candidate correct?) from pairs that differ in one place: the gold response
that `questions.py` derives from the scene graph, and a copy with one stage corrupted so that
only the image or the question can tell which is right. Corruption kinds:

    SUMMARY     other_plan       the plan of another question family
    CAPTION     colour, shape, size   one object's attribute replaced by another value
                drop_object      one object left out (the stated count lowered to match)
                object_count     the stated number of objects off by one or two
    REASONING   arithmetic       a running tally or a final number off by one or two
                decision         one object's decision flipped (removed <-> stays, is <-> is not)
    CONCLUSION  wrong_answer     another number, option letter, Yes/No or attribute value; in a
                                 free-text answer one attribute word or grid number swapped

Every corruption is checked against the scene graph and must change the text. A record whose
chosen stage no kind applies to (reasoning without a tally or a known decision) has another
stage corrupted instead. Items use the
prompts of `llava_cot.critique` with the gold earlier stages as context: pointwise ("verify",
answer yes/no) and pairwise ("judge", answer 1/2), a tenth of them on the WHOLE response.

    llava-cot data synth --out DIR --n N --task judge   # critique items only
    llava-cot data synth --out DIR --n N --task mix     # four-stage items, every third a critique

`corrupt` and `Maker` also work on records read from disk (`scene_from_json` for the scene).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from typing import Any

from llava_cot import critique, stages
from llava_cot.critique import VERDICTS
from llava_cot.records import Record
from llava_cot.synth import templates as T
from llava_cot.synth.scene import ATTRS, VALUES, Obj, Scene

WHOLE_SHARE = 0.1  # share of items on the whole response (best-of-N) rather than one stage
_ATTR_OF = {v: a for a, vs in VALUES.items() for v in vs}  # "red" -> "colour"
# PLAN keys by the family they plan for ("which/size" -> "which"); choice only adds a tail.
_PLANS = {key: key.split("/")[0] for key in T.PLAN if key != "choice"}

Corrupter = Callable[[random.Random, dict[str, str], Mapping[str, Any], Scene], str | None]


def scene_from_json(s: Mapping[str, Any]) -> Scene:
    """A scene back from its line in {split}_scenes.jsonl (jitter is drawing noise: dropped)."""
    return Scene(s["id"], tuple(Obj(o["shape"], o["colour"], o["size"], o["row"], o["col"]) for o in s["objects"]))


def _holds(obj: Obj, phrase: str) -> bool:
    """Whether a noun phrase of the templates ("large blue object", "red squares") fits obj."""
    *mods, head = phrase.split()
    head = head[:-1] if head.endswith("s") else head
    return all(getattr(obj, _ATTR_OF[w]) == w for w in mods) and head in ("object", obj.shape)


def _at(scene: Scene, row: int | str, col: int | str) -> Obj:
    return next(o for o in scene.objects if (o.row, o.col) == (int(row), int(col)))


# ---------------------------------------------------------------------------------------------
# CAPTION: the object lines of templates.CAPTION_LINE and the count in CAPTION_INTRO

_LINE = re.compile(r"(?:Row|At row) (\d+), column (\d+)(?::| there is) a (\w+) (\w+) (\w+)\.")
_INTRO_N = re.compile(r"\d+(?= objects)")  # the intro is the only place "N objects" occurs


def _wrong_attribute(attr: str) -> Corrupter:
    group = 3 + ATTRS.index(attr)  # lines say size, colour, shape in ATTRS order

    def corrupt(rng: random.Random, gold: dict[str, str], rec: Mapping[str, Any], scene: Scene) -> str | None:
        text = gold["CAPTION"]
        m = rng.choice(list(_LINE.finditer(text)))
        # Another value than the scene's truth (not merely the caption's word): really wrong.
        value = rng.choice([v for v in VALUES[attr] if v != getattr(_at(scene, m[1], m[2]), attr)])
        return text[: m.start(group)] + value + text[m.end(group):]
    return corrupt


def _drop_object(rng: random.Random, gold: dict[str, str], rec: Mapping[str, Any], scene: Scene) -> str | None:
    text = gold["CAPTION"]
    m = rng.choice(list(_LINE.finditer(text)))
    text = (text[: m.start()] + text[m.end():].lstrip()).strip()
    # The count goes down too: a caption consistent with itself, wrong only against the image.
    return _INTRO_N.sub(str(len(scene.objects) - 1), text, count=1)


def _object_count(rng: random.Random, gold: dict[str, str], rec: Mapping[str, Any], scene: Scene) -> str | None:
    n = len(scene.objects)
    wrong = rng.choice([v for v in (n - 2, n - 1, n + 1, n + 2) if v >= 2])  # >= 2: "objects" stays plural
    return _INTRO_N.sub(str(wrong), gold["CAPTION"], count=1)


# ---------------------------------------------------------------------------------------------
# REASONING: the sentences of templates.REASON

_OBJ = r"The (?P<desc>\w+ \w+ \w+) at row (?P<row>\d+), column (?P<col>\d+) \((?P<checks>[a-z, ]+)\) "
_CHECK = re.compile(r"(\w+) (yes|no)")
# Each decision sentence of templates.REASON: its pattern after the object, and the same
# sentence with the decision flipped. The flip keeps the template, carries the tally the flip
# would give and rewrites the value checks to agree with it, so only the object's attributes
# (the image) show that the decision is wrong.
_DECISIONS = {name: (re.compile(_OBJ + tail), flip) for name, (tail, flip) in {
    "subtract_hit": (r"is a (?P<sg>[a-z ]+), so it is removed; (?P<k>\d+) left\.", "is not a {sg}, so it stays."),
    "subtract_miss": (r"is not a (?P<sg>[a-z ]+), so it stays\.", "is a {sg}, so it is removed; {tally_1} left."),
    "count_hit": (r"is a (?P<sg>[a-z ]+), so the count is (?P<k>\d+)\.", "is not a {sg}, so the count stays at {k_1}."),
    "count_miss": (r"is not a (?P<sg>[a-z ]+), so the count stays at (?P<k>\d+)\.", "is a {sg}, so the count is {k1}."),
    "attribute_hit": (r"is the (?P<ref>[a-z ]+); its (?P<attr>\w+) is (?P<value>\w+)\.", "is not the {ref}."),
    "attribute_miss": (r"is not the (?P<ref>[a-z ]+)\.", "is the {ref}; its {attr} is {true}."),
    "compare_hit": (r"is a (?P<sg>[a-z ]+); (?P<a>[a-z ]+)s: (?P<ca>\d+), (?P<b>[a-z ]+)s: (?P<cb>\d+)\.",
                    "is neither a {a} nor a {b}."),
    "compare_miss": (r"is neither a (?P<a>[a-z ]+) nor a (?P<b>[a-z ]+)\.", "is a {pick}; {a}s: {ca1}, {b}s: {cb1}."),
    "exist_hit": (r"is a (?P<sg>[a-z ]+)\.", "is not a {sg}."),
    "exist_miss": (r"is not a (?P<sg>[a-z ]+)\.", "is a {sg}."),
}.items()}
# Where a subtraction's running total is stated: the start, each removal, each step's total.
_TALLY = re.compile(r"(?:I start with |There are |; |= )(\d+)(?: objects| left|\.)")
# Numbers that a slip can change: (pattern with the number as group 1, a noun agrees with it).
_NUMBERS = [(re.compile(p), agrees) for p, agrees in [
    (r"; (\d+) left\.", False), (r" = (\d+)\.", False),
    (r"the count is (\d+)\.", False), (r"the count stays at (\d+)\.", False),
    (r"I counted (\d+) ", True), (r"So the number of [a-z ]+ is (\d+)\.", False),
    (r"the number of objects left is (\d+)\.", False), (r"So (\d+) objects? (?:is|are) left\.", True),
    (r"[a-z]s: (\d+)", False), (r"I found (\d+) ", True),
    (r"The answer (\d+) is option", False), (r"This matches option [A-D], (\d+)\.", False),
]]


def _decision_of(sentence: str) -> tuple[str, re.Match[str]] | None:
    return next(((n, m) for n, (p, _) in _DECISIONS.items() if (m := p.fullmatch(sentence))), None)


def claim_holds(sentence: str, scene: Scene) -> bool | None:
    """Whether a decision sentence tells the truth about its object (None: not one)."""
    if (found := _decision_of(sentence)) is None:
        return None
    name, m = found
    obj, g = _at(scene, m["row"], m["col"]), m.groupdict()
    if obj.describe() != g["desc"]:
        return False
    if any((getattr(obj, _ATTR_OF[v]) == v) != (said == "yes") for v, said in _CHECK.findall(g["checks"])):
        return False
    if name == "compare_miss":
        return not _holds(obj, g["a"]) and not _holds(obj, g["b"])
    if name == "attribute_hit":
        return _holds(obj, g["ref"]) and getattr(obj, g["attr"]) == g["value"]
    return _holds(obj, g.get("sg") or g["ref"]) == name.endswith("_hit")


# A sentence ends at ". " before a capital or a digit, except inside an option scan ("\nA. 3, no").
SENTENCE = re.compile(r"(?<=\.)(?<!\n[A-D]\.) (?=[A-Z0-9])")


def sentences(text: str) -> list[str]:
    """REASONING split into the template sentences it was joined from."""
    out = SENTENCE.split(text)
    assert " ".join(out) == text
    return out


def _flip_checks(rng: random.Random, checks: str, name: str, pick: int) -> str:
    """Value checks that agree with the flipped decision: a miss becomes all "yes" (for a
    comparison, the picked class's value), a hit gets one "no" (a comparison, all "no")."""
    values = [v for v, _ in _CHECK.findall(checks)]
    if name == "compare_miss":
        said = [i == pick for i in range(len(values))]  # the checks are (class a, class b)
    elif name.endswith("_miss"):
        said = [True] * len(values)
    elif name == "compare_hit":
        said = [False] * len(values)
    else:
        said = [True] * len(values)
        said[rng.randrange(len(values))] = False
    return ", ".join(f"{v} {'yes' if y else 'no'}" for v, y in zip(values, said, strict=True))


def _decision(rng: random.Random, gold: dict[str, str], rec: Mapping[str, Any], scene: Scene) -> str | None:
    sents = sentences(gold["REASONING"])
    attr = next((m[1] for s in sents if (m := re.search(r"; its (\w+) is", s))), "colour")
    tally, counts, flips = 0, (0, 0), []  # running totals as stated before each sentence
    for i, s in enumerate(sents):
        if (found := _decision_of(s)) is None:
            if t := _TALLY.search(s):
                tally = int(t[1])
            continue
        name, m = found
        g, obj, pick = m.groupdict(), _at(scene, m["row"], m["col"]), rng.randrange(2)
        k = int(g.get("k") or 0)
        new = _DECISIONS[name][1].format_map({
            **g, "tally_1": tally - 1, "k_1": k - 1, "k1": k + 1, "attr": attr, "true": getattr(obj, attr),
            "pick": g.get("b" if pick else "a"), "ca1": counts[0] + (not pick), "cb1": counts[1] + pick})
        flips.append((i, s[: m.end("col") + 1] + f"({_flip_checks(rng, g['checks'], name, pick)}) " + new))
        if name == "subtract_hit":
            tally = k
        elif name == "compare_hit":
            counts = (int(g["ca"]), int(g["cb"]))
    flips = [(i, s) for i, s in flips if claim_holds(s, scene) is False]  # really wrong, checked
    if not flips:
        return None
    i, s = rng.choice(flips)
    return " ".join([*sents[:i], s, *sents[i + 1:]])


def _arithmetic(rng: random.Random, gold: dict[str, str], rec: Mapping[str, Any], scene: Scene) -> str | None:
    text, slots = gold["REASONING"], []
    for pattern, agrees in _NUMBERS:
        for m in pattern.finditer(text):
            old = int(m[1])
            # A slip keeps singular/plural agreement ("1 object" never becomes "3 object"),
            # so grammar gives nothing away.
            new = [old + d for d in (-2, -1, 1, 2) if old + d >= 0 and (not agrees or (old + d == 1) == (old == 1))]
            if new:
                slots.append((m.start(1), m.end(1), new))
    if not slots:
        return None  # attribute questions have no numbers, "I found 1 ..." none that can change
    start, end, new = rng.choice(sorted(slots))
    return text[:start] + str(rng.choice(new)) + text[end:]


# ---------------------------------------------------------------------------------------------
# CONCLUSION and SUMMARY


def _wrong_answer(rng: random.Random, gold: dict[str, str], rec: Mapping[str, Any], scene: Scene) -> str | None:
    answer = str(rec.get("answer") or gold["CONCLUSION"])  # the gold answer, computed from the scene
    if rec.get("options"):
        pool = [k for k in rec["options"] if k != answer]
    elif answer.isdigit():
        n = int(answer)
        pool = [str(v) for v in range(max(0, n - 2), n + 3) if v != n]
    elif answer in ("Yes", "No"):
        pool = ["No" if answer == "Yes" else "Yes"]
    elif answer in _ATTR_OF:
        pool = [v for v in VALUES[_ATTR_OF[answer]] if v != answer]
    else:
        return _wrong_text(rng, answer, scene)
    return rng.choice(pool)


def _swaps(words: list[str], i: int) -> list[str]:
    """What word i of an answer may become: another value of its attribute ("red" -> "blue",
    "circles" -> "squares"), or another grid number after "row"/"column"."""
    core = words[i].rstrip(".,:")
    tail = words[i][len(core):]
    if core.isdigit():
        return [f"{v}{tail}" for v in range(1, 5) if str(v) != core] if i and words[i - 1] in ("row", "column") else []
    base, s = (core[:-1], "s") if core not in _ATTR_OF and core[:-1] in _ATTR_OF else (core, "")
    return [v + s + tail for v in VALUES[_ATTR_OF[base]] if v != base] if base in _ATTR_OF else []


def _wrong_text(rng: random.Random, answer: str, scene: Scene) -> str:
    """A free-text answer (an object, a cell, a class, a description) with one attribute word or
    grid number replaced; "nothing" becomes an object of the scene."""
    words = answer.split()
    slots = [(i, swaps) for i in range(len(words)) if (swaps := _swaps(words, i))]
    if not slots:
        return f"a {rng.choice(scene.objects).describe()}"
    i, swaps = rng.choice(slots)
    return " ".join([*words[:i], rng.choice(swaps), *words[i + 1:]])


def _other_plan(rng: random.Random, gold: dict[str, str], rec: Mapping[str, Any], scene: Scene) -> str | None:
    family = rec.get("base") or rec.get("family")
    if family not in _PLANS.values():
        return None
    o = rng.choice(scene.objects)
    c1, c2 = rng.sample(VALUES["colour"], 2)
    fill = {"sg": f"{o.colour} {o.shape}", "pl": f"{o.colour} {o.shape}s", "ref": f"{o.size} {o.shape}",
            "attr": rng.choice(ATTRS), "a": f"{c1} objects", "b": f"{c2} objects", "relation": "more",
            "ref1": f"{c1} {o.shape}", "ref2": f"{c2} {o.shape}", "comparative": "bigger", "scope": f"{o.shape}s",
            "pred": c1, "quant": "all", "cell": "the top left corner", "line": "the top row", "place": "row",
            "extreme": "leftmost", "rel": "to the left of"}
    key = rng.choice([k for k, f in _PLANS.items() if f != family])
    plan = rng.choice(T.PLAN[key]).format(**fill)
    # A multiple-choice plan keeps its last sentence: only the part that fits the question changes.
    tail = next((t for t in T.PLAN["choice"] if gold["SUMMARY"].endswith(" " + t)), None)
    return f"{plan} {tail}" if tail else plan


KINDS: dict[str, dict[str, Corrupter]] = {
    "SUMMARY": {"other_plan": _other_plan},
    "CAPTION": {"colour": _wrong_attribute("colour"), "shape": _wrong_attribute("shape"),
                "size": _wrong_attribute("size"), "drop_object": _drop_object, "object_count": _object_count},
    "REASONING": {"arithmetic": _arithmetic, "decision": _decision},
    "CONCLUSION": {"wrong_answer": _wrong_answer},
}


def corrupt(rng: random.Random, rec: Mapping[str, Any], scene: Scene, stage: str, kind: str) -> str | None:
    """The text of `stage` of a gold record (its JSON form) corrupted by `kind`, or None when
    that kind does not apply to it or would leave the text unchanged."""
    gold = stages.parse(rec["conversations"][1]["value"]).stages
    text = KINDS[stage][kind](rng, gold, rec, scene)
    return None if text is None or text == gold[stage] else text


# ---------------------------------------------------------------------------------------------
# Items


class Maker:
    """Turns gold records into critique items, one per call. Forms come in shuffled blocks of
    four (verify gold, verify corrupted, judge gold first, judge gold second), so yes/no labels
    and the position of the gold are exactly balanced across every four items."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self._forms: list[tuple[str, int]] = []

    def make(self, rec: Record, scene: Scene, id: str) -> Record:
        """One critique item on a four-stage record (`rec.question` has no image token)."""
        rng, gold_rec = self.rng, rec.to_json()
        if not self._forms:
            self._forms = [("verify", 0), ("verify", 1), ("judge", 0), ("judge", 1)]
            rng.shuffle(self._forms)
        task, flag = self._forms.pop()  # verify: 1 = the candidate is corrupted; judge: gold's position
        stage = critique.WHOLE if rng.random() < WHOLE_SHARE else rng.choice(stages.STAGES)
        spoilt, kind, bad = self._corruption(gold_rec, scene, stage)
        stage = stage if stage == critique.WHOLE else spoilt
        gold = stages.parse(rec.response).stages
        if stage == critique.WHOLE:
            previous, good, bad = {}, rec.response, stages.render({**gold, spoilt: bad})
        else:
            previous, good = {s: gold[s] for s in stages.STAGES[: stages.STAGES.index(stage)]}, gold[stage]
        if task == "verify":
            prompt = critique.pointwise(rec.question, previous, stage, bad if flag else good)
            kind = kind if flag else "none"
        else:
            first, second = (bad, good) if flag else (good, bad)
            prompt = critique.pairwise(rec.question, previous, stage, first, second)
        verdict = VERDICTS[task][flag]  # the verdicts `data check` and `sft` recognise
        # "answer" is the verdict, so `sft.direct` and `eval` read the same target as the gpt turn.
        return Record.make(id, prompt, verdict, image=rec.image, task=task, stage=stage, corruption=kind,
                           answer=verdict, family=task, split=rec.extra.get("split"), scene=scene.id,
                           source=rec.id)

    def _corruption(self, rec: dict[str, Any], scene: Scene, stage: str) -> tuple[str, str, str]:
        """(corrupted stage, kind, text): a kind of `stage` (any stage for WHOLE) that applies; if
        none of that stage does (a family whose reasoning has no tally or decision a slip can
        change), a kind of another stage."""
        targets = stages.STAGES if stage == critique.WHOLE else (stage,)
        others = [s for s in stages.STAGES if s not in targets]
        for s in [*self.rng.sample(targets, len(targets)), *self.rng.sample(others, len(others))]:
            for k in self.rng.sample(list(KINDS[s]), len(KINDS[s])):
                if (text := corrupt(self.rng, rec, scene, s, k)) is not None:
                    return s, k, text
        raise ValueError(f"no corruption of {stage} applies to record {rec['id']}")
