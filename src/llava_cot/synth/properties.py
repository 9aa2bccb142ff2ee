"""Question families about the objects' properties: one object's attribute, universal questions
over a group (all / any / none / the same), and a description of the whole image. Each is
`(rng, scene, spec) -> Question | None`, registered in `questions.FAMILIES`:

    attribute  "What colour is the large square?"          (only when the referent is unique)
    universal  "Are all the objects the same size?", "Are all the circles red?", "Is any square
               small?", "Are none of the triangles blue?"  (Yes/No)
    describe   "Describe the image.", "What do you see?"   (answered by the objects, listed)

Not run directly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from llava_cot.synth import templates as T
from llava_cot.synth import wording as W
from llava_cot.synth.core import Filter, Question, ask_text, at, matches, noun, plural, say
from llava_cot.synth.scene import ATTRS, VALUES, Obj, Scene, Split


def attribute(rng: random.Random, scene: Scene, spec: Split,
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
                return _attribute_question(rng, scene, spec, attr, ref, target)
    return None


def _attribute_question(rng: random.Random, scene: Scene, spec: Split, attr: str, f: Filter, target: Obj) -> Question:
    value, ref = getattr(target, attr), noun(f, False)
    out = [say(rng, T.REASON, "attribute_hit" if o is target else "attribute_miss",
               ref=ref, attr=attr, value=value, **at(o, f)) for o in scene.objects]
    article = "a " if attr == "shape" else ""
    out.append(say(rng, T.REASON, "attribute_end", ref=ref, attr=attr, value=value, article=article))
    heads = [h for h in W.HEADS if h != "shape" or attr != "shape"]  # not "what shape is the red shape?"
    text = ask_text(rng, "attribute", spec, attr=W.spell(rng, attr), **W.ref(rng, f, heads=heads))
    return Question("attribute", text, say(rng, T.PLAN, "attribute", attr=attr, ref=ref), out, value, kind=attr)


def _scope(rng: random.Random, scene: Scene, avoid: str) -> Filter:
    """What a universal question ranges over: all objects, or one class of an attribute other
    than `avoid` that has an object in the scene."""
    if rng.random() < 0.4:
        return ()
    attr = rng.choice([a for a in ATTRS if a != avoid])
    return ((attr, getattr(rng.choice(scene.objects), attr)),)


def universal(rng: random.Random, scene: Scene, spec: Split) -> Question | None:
    """Yes and No drawn with equal odds first; scope and predicate are then sampled to fit."""
    kind, want = rng.choice(("same", "same", "all", "any", "none")), rng.random() < 0.5
    for _ in range(30):
        attr = rng.choice(ATTRS)
        scope = _scope(rng, scene, attr)
        members = [o for o in scene.objects if matches(o, scope)]
        value = getattr(rng.choice(members), attr) if rng.random() < 0.7 else rng.choice(VALUES[attr])
        m = sum(getattr(o, attr) == value for o in members)
        yes = {"same": len({getattr(o, attr) for o in members}) == 1, "all": m == len(members),
               "any": m > 0, "none": m == 0}[kind]
        if yes == want and (kind != "same" or len(members) > 1):
            break
    n = W.nouns(rng, scope)
    slots = {"scope_pl": n["pl"], "scope_sg": n["sg"]}
    scope_pl = noun(scope, True)
    if kind == "same":
        out = _same(rng, members, scene, scope, attr)
        text = ask_text(rng, "same", spec, attr=W.spell(rng, attr), **slots)
        plan = say(rng, T.PLAN, "universal/same", attr=attr, scope=scope_pl)
    else:
        out = _quantified(rng, scene, scope, kind, ((attr, value),), yes)
        word = value if attr == "shape" else W.spell(rng, value)  # "big" for large, now and then
        text = ask_text(rng, kind, spec, **slots, **_predicate(attr, value, word))
        plan = say(rng, T.PLAN, "universal/quantifier", scope=scope_pl, pred=_predicate(attr, value)["pred_sg"],
                   quant=kind)
    return Question("universal", text, plan, out, "Yes" if yes else "No", kind="yesno")


def _predicate(attr: str, value: str, word: str = "") -> dict[str, str]:
    """What is asked of each object: "red" / "red", or "a square" / "squares" (`word`: the
    value as the question spells it, "big" for large)."""
    if attr == "shape":
        return {"pred_sg": f"a {value}", "pred_pl": f"{value}s"}
    return {"pred_sg": word or value, "pred_pl": word or value}


def _same(rng: random.Random, members: list[Obj], scene: Scene, scope: Filter, attr: str) -> list[str]:
    out = []
    for o in scene.objects:
        if not scope:
            out.append(say(rng, T.REASON, "same_all", desc=o.describe(), where=o.where(), attr=attr, value=getattr(o, attr)))
        elif matches(o, scope):
            out.append(say(rng, T.REASON, "same_hit", scope=noun(scope, False), attr=attr, value=getattr(o, attr), **at(o, scope)))
        else:
            out.append(say(rng, T.REASON, "quant_out", scope=noun(scope, False), **at(o, scope)))
    values = list(dict.fromkeys(getattr(o, attr) for o in members))
    one = len(values) == 1
    out.append(say(rng, T.REASON, "same_end", attrs=attr + "s", values=W.join_and(values) + (" only" if one else ""),
                   verdict="they are all the same" if one else "they are not all the same", answer="Yes" if one else "No"))
    return out


def _quantified(rng: random.Random, scene: Scene, scope: Filter, kind: str, pred: Filter, yes: bool) -> list[str]:
    attr, value = pred[0]
    words = _predicate(attr, value)
    out, n, m = [], 0, 0
    for o in scene.objects:
        inside, hit = matches(o, scope), matches(o, pred)
        n, m = n + inside, m + (inside and hit)
        if not scope:
            key = "quant_yes" if hit else "quant_no"
        else:
            key = ("quant_in_yes" if hit else "quant_in_no") if inside else "quant_out"
        filters = (scope, pred) if inside else (scope,)
        out.append(say(rng, T.REASON, key, scope=noun(scope, False), pred=words["pred_sg"], **at(o, *filters)))
    rule = {"all": f"{m} = {n}", "any": f"{m} > 0", "none": f"{m} = 0"}[kind]
    out.append(say(rng, T.REASON, "quant_end", n=n, scope_n=noun(scope, n != 1), m=m, be="is" if m == 1 else "are",
                   pred_m=words["pred_sg"] if m == 1 else words["pred_pl"], quant=kind.capitalize(), rule=rule,
                   truth="true" if yes else "false", answer="Yes" if yes else "No"))
    return out


def describe(rng: random.Random, scene: Scene, spec: Split) -> Question | None:
    """The whole image, object by object; the answer lists them in reading order."""
    objs = scene.objects
    out = [say(rng, T.REASON, "describe_step", k=k, desc=o.describe(), where=o.where()) for k, o in enumerate(objs, 1)]
    out.append(say(rng, T.REASON, "describe_end", n=len(objs)))
    answer = f"There are {plural(len(objs), 'object')}: " + W.join_and([f"a {o.describe()}" for o in objs]) + "."
    return Question("describe", ask_text(rng, "describe", spec), rng.choice(T.PLAN["describe"]), out, answer, kind="text")
