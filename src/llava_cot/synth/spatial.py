"""Question families about where things are on the 4x4 grid. Each is
`(rng, scene, spec) -> Question | None`, registered in `questions.FAMILIES`:

    position   "What is in the top left corner?", "What colour is the object in row 2, column 3?",
               "Where is the red square?" (-> "row 1, column 2"), "Which row is the blue circle in?"
    rowcol     "How many objects are in the top row?", "Is there a red circle in column 2?",
               "What is the leftmost object in row 3?"
    relation   "Is the red square left of the blue circle?" (Yes/No: any column to its left;
               above: any row above; next to: one step apart in a row or a column), "What is
               directly above the small square?" (-> an object, or "nothing")

Rows and columns are numbered from 1, row 1 at the top. Not run directly.
"""

from __future__ import annotations

import random

from llava_cot.synth import phrasings as P
from llava_cot.synth import templates as T
from llava_cot.synth import wording as W
from llava_cot.synth.core import Filter, Question, ask_text, at, matches, noun, pick_filter, say, unique_refs
from llava_cot.synth.scene import GRID, Obj, Scene, Split

LINE_KINDS = ((), (), ("shape",), ("colour",), ("size",), ("colour", "shape"))


def _cell(r: int, c: int) -> str:
    return f"row {r}, column {c}"


def _cell_words(rng: random.Random, r: int, c: int) -> str:
    """A cell as a question may name it: a corner's name, "row 2, column 3", "the second row, ..."."""
    if (r, c) in P.CORNERS and rng.random() < 0.7:
        return rng.choice(P.CORNERS[(r, c)])
    return rng.choice(P.CELL).format(r=r, c=c, rth=P.ORDINALS[r - 1], cth=P.ORDINALS[c - 1])


def _translate(rng: random.Random, words: str, canonical: str, key: str = "cell_words") -> list[str]:
    """A first reasoning step that turns the question's name of a place into the canonical one."""
    if words == canonical:
        return []
    kind = "cell" if key == "cell_words" else "line"
    return [say(rng, T.REASON, key, words=words[0].upper() + words[1:], **{kind: canonical})]


def position(rng: random.Random, scene: Scene, spec: Split) -> Question | None:
    kind = rng.choice(("what", "what", "attr", "where", "row", "col"))
    if kind in ("what", "attr"):
        return _by_cell(rng, scene, spec, kind)
    return _where(rng, scene, spec, kind)


def _by_cell(rng: random.Random, scene: Scene, spec: Split, kind: str) -> Question | None:
    taken = {(o.row, o.col): o for o in scene.objects}
    cells = list(P.CORNERS) if rng.random() < 0.5 else [(r, c) for r in range(1, GRID + 1) for c in range(1, GRID + 1)]
    full = [x for x in cells if x in taken]
    if kind == "attr" or (full and rng.random() < 0.8):
        cells = full or list(taken)
    r, c = rng.choice(cells)
    target, cell, words = taken.get((r, c)), _cell(r, c), _cell_words(rng, r, c)
    here: Filter = (("row", r), ("col", c))
    out = _translate(rng, words, cell)
    attr = rng.choice(("colour", "colour", "shape", "size"))
    for o in scene.objects:
        if o is target and kind == "attr":
            out.append(say(rng, T.REASON, "cell_attr_hit", cell=cell, attr=attr, value=getattr(o, attr), **at(o, here)))
        else:
            out.append(say(rng, T.REASON, "cell_hit" if o is target else "cell_miss", cell=cell, **at(o, here)))
    if kind == "attr":
        value = getattr(target, attr)
        out.append(say(rng, T.REASON, "cell_attr_end", cell=cell, attr=attr, value=value))
        text = ask_text(rng, "position_attr", spec, attr=W.spell(rng, attr), cell=words)
        return Question("position", text, say(rng, T.PLAN, "position/attr", cell=cell, attr=attr), out, value, kind=attr)
    if target is None:
        out.append(say(rng, T.REASON, "cell_empty", cell=cell))
    else:
        out.append(say(rng, T.REASON, "cell_found", cell=cell, desc=target.describe()))
    answer = f"a {target.describe()}" if target else "nothing"
    text = ask_text(rng, "position_what", spec, cell=words)
    return Question("position", text, say(rng, T.PLAN, "position/what", cell=cell), out, answer, kind="text")


def _scan(rng: random.Random, scene: Scene, target: Obj, f: Filter) -> list[str]:
    ref = noun(f, False)
    return [say(rng, T.REASON, "ref_hit" if o is target else "ref_miss", ref=ref, **at(o, f)) for o in scene.objects]


def _where(rng: random.Random, scene: Scene, spec: Split, kind: str) -> Question | None:
    targets = [(o, refs) for o in scene.objects if (refs := unique_refs(scene, o))]
    if not targets:
        return None
    target, refs = rng.choice(targets)
    f = rng.choice(refs)
    ref = noun(f, False)
    out = _scan(rng, scene, target, f)
    if kind == "where":
        answer = _cell(target.row, target.col)
        out.append(say(rng, T.REASON, "where_end", ref=ref, cell=answer))
    else:
        answer = f"row {target.row}" if kind == "row" else f"column {target.col}"
        out.append(say(rng, T.REASON, "line_end", ref=ref, line=answer))
    place = {"where": "cell", "row": "row", "col": "column"}[kind]
    text = ask_text(rng, f"position_{kind}", spec, **W.ref(rng, f))
    return Question("position", text, say(rng, T.PLAN, "position/where", ref=ref, place=place), out, answer, kind="text")


def _line(rng: random.Random, scene: Scene, nonempty: bool) -> tuple[str, int, str]:
    """(axis "row" or "col", index, how the question names it)."""
    axis = rng.choice(("row", "col"))
    used = sorted({getattr(o, axis) for o in scene.objects})
    n = rng.choice(used) if nonempty else rng.randint(1, GRID)
    edges = (P.EDGE_ROWS if axis == "row" else P.EDGE_COLUMNS).get(n, ())
    if edges and rng.random() < 0.5:
        return axis, n, rng.choice(edges)
    styles = P.ROW if axis == "row" else P.COLUMN
    return axis, n, rng.choice(styles).format(n=n, nth=P.ORDINALS[n - 1])


def rowcol(rng: random.Random, scene: Scene, spec: Split) -> Question | None:
    kind = rng.choice(("count", "count", "exist", "extreme"))
    axis, n, words = _line(rng, scene, nonempty=kind == "extreme" or rng.random() < 0.8)
    line = f"{'row' if axis == 'row' else 'column'} {n}"
    here: Filter = ((axis, n),)
    out = _translate(rng, words, line, "line_words")
    if kind == "extreme":
        return _extreme(rng, scene, spec, axis, n, line, words, out)
    f = pick_filter(rng, scene.objects, LINE_KINDS if kind == "count" else LINE_KINDS[2:], present=0.8)
    sg, pl = noun(f, False), noun(f, True)
    k = 0
    for o in scene.objects:
        hit = matches(o, f + here)
        k += hit
        if kind == "count":
            what = f"a {sg} " if f else ""
            out.append(say(rng, T.REASON, "line_hit" if hit else "line_miss", what=what, line=line, k=k, **at(o, here, f)))
        else:
            out.append(say(rng, T.REASON, "line_exist_hit" if hit else "line_exist_miss", sg=sg, line=line, **at(o, here, f)))
    slots = {**W.nouns(rng, f), "line": words}
    if kind == "count":
        out.append(say(rng, T.REASON, "line_count_end", k=k, noun=sg if k == 1 else pl))
        text = ask_text(rng, "rowcol_count", spec, **slots)
        return Question("rowcol", text, say(rng, T.PLAN, "rowcol/count", pl=pl, line=line), out, str(k))
    out.append(say(rng, T.REASON, "line_exist_yes" if k else "line_exist_no", sg=sg, line=line))
    text = ask_text(rng, "rowcol_exist", spec, **slots)
    return Question("rowcol", text, say(rng, T.PLAN, "rowcol/exist", sg=sg, line=line), out, "Yes" if k else "No", kind="yesno")


def _extreme(rng: random.Random, scene: Scene, spec: Split, axis: str, n: int, line: str, words: str,
             out: list[str]) -> Question:
    here: Filter = ((axis, n),)
    inside = [o for o in scene.objects if matches(o, here)]
    if axis == "col":  # reading order is row by row: a column's objects come top to bottom already
        inside.sort(key=lambda o: o.row)
    end = rng.choice((0, -1))
    names = P.EXTREMES[("row" if axis == "row" else "column", end)]
    target, extreme = inside[end], names[0]
    out += [say(rng, T.REASON, "line_in" if o in inside else "line_out", line=line, **at(o, here)) for o in scene.objects]
    order = "from left to right" if axis == "row" else "from top to bottom"
    listed = W.join_and([f"the {o.describe()}" for o in inside])
    out.append(say(rng, T.REASON, "extreme_end", line=line, order=order, listed=listed, extreme=extreme,
                   desc=target.describe()))
    text = ask_text(rng, "rowcol_extreme", spec, extreme=rng.choice(names), line=words)
    return Question("rowcol", text, say(rng, T.PLAN, "rowcol/extreme", line=line, extreme=extreme), out,
                    f"a {target.describe()}", kind="text")


# Relations as grid arithmetic: (axis compared, operator) and the step to the neighbouring cell.
_ORDER = {"left": ("column", "<"), "right": ("column", ">"), "above": ("row", "<"), "below": ("row", ">")}
_STEP = {"left": (0, -1), "right": (0, 1), "above": (-1, 0), "below": (1, 0)}
_OPS = {"<": lambda x, y: x < y, ">": lambda x, y: x > y}


def _holds(rel: str, a: Obj, b: Obj) -> bool:
    if rel == "next":
        return abs(a.row - b.row) + abs(a.col - b.col) == 1
    axis, op = _ORDER[rel]
    attr = "row" if axis == "row" else "col"
    return _OPS[op](getattr(a, attr), getattr(b, attr))


def relation(rng: random.Random, scene: Scene, spec: Split) -> Question | None:
    named = [(o, refs) for o in scene.objects if (refs := unique_refs(scene, o))]
    if rng.random() < 0.5:
        return _relation_what(rng, scene, spec, named)
    if len(named) < 2:
        return None
    rel, want = rng.choice(tuple(P.RELATIONS)), rng.random() < 0.5
    for _ in range(20):
        (a, ra), (b, rb) = rng.sample(named, 2)
        if _holds(rel, a, b) == want:
            break
    yes = _holds(rel, a, b)
    f1, f2 = rng.choice(ra), rng.choice(rb)
    ref1, ref2 = noun(f1, False), noun(f2, False)
    out = [say(rng, T.REASON, "ref_hit", ref=ref1 if o is a else ref2, **at(o, f1, f2)) if o in (a, b)
           else say(rng, T.REASON, "which_miss", ref1=ref1, ref2=ref2, **at(o, f1, f2)) for o in scene.objects]
    answer, truth = ("Yes" if yes else "No"), ("true" if yes else "false")
    canonical = P.RELATIONS[rel][-1] if rel in ("left", "right") else P.RELATIONS[rel][0]
    if rel == "next":
        out.append(say(rng, T.REASON, "relation_next_end", ref1=ref1, ref2=ref2, cell1=_cell(a.row, a.col),
                       cell2=_cell(b.row, b.col), truth=truth, answer=answer))
    else:
        axis, op = _ORDER[rel]
        attr = "row" if axis == "row" else "col"
        out.append(say(rng, T.REASON, "relation_end", ref1=ref1, ref2=ref2, axis=axis, v1=getattr(a, attr),
                       v2=getattr(b, attr), rel=canonical[0].upper() + canonical[1:], op=op, truth=truth, answer=answer))
    slots = {**W.ref(rng, f1, "ref1"), **W.ref(rng, f2, "ref2"), "rel": rng.choice(P.RELATIONS[rel])}
    plan = say(rng, T.PLAN, "relation/yes", ref1=ref1, ref2=ref2, rel=canonical)
    return Question("relation", ask_text(rng, "relation_yes", spec, **slots), plan, out, answer, kind="yesno")


def _neighbours(o: Obj) -> list[tuple[int, int]]:
    cells = [(o.row + dr, o.col + dc) for dr, dc in _STEP.values()]
    return sorted((r, c) for r, c in cells if 1 <= r <= GRID and 1 <= c <= GRID)


def _relation_what(rng: random.Random, scene: Scene, spec: Split, named: list) -> Question | None:
    taken = {(o.row, o.col): o for o in scene.objects}
    options = []
    for o, refs in named:
        for rel, (dr, dc) in _STEP.items():
            if 1 <= o.row + dr <= GRID and 1 <= o.col + dc <= GRID:
                options.append((o, refs, rel, (o.row + dr, o.col + dc)))
        if sum(x in taken for x in _neighbours(o)) == 1:
            options.append((o, refs, "next", next(x for x in _neighbours(o) if x in taken)))
    full = [x for x in options if x[3] in taken]
    if not options:
        return None
    o, refs, rel, (r, c) = rng.choice(full if full and rng.random() < 0.8 else options)
    f, cell, target = rng.choice(refs), _cell(o.row, o.col), _cell(r, c)
    ref, found = noun(f, False), taken.get((r, c))
    out = [*_scan(rng, scene, o, f), T.REASON["where_end"][0].format(ref=ref, cell=cell)]
    if rel == "next":
        cells = "; ".join(_cell(*x) for x in _neighbours(o))  # semicolons: each cell has a comma
        out.append(say(rng, T.REASON, "relation_next", cell=cell, cells=cells))
    else:
        out.append(say(rng, T.REASON, "relation_cell", rel=P.DIRECTLY[rel][0], cell=cell, target=target))
    if found is None:
        out.append(say(rng, T.REASON, "relation_empty", target=target))
    else:
        out.append(say(rng, T.REASON, "relation_found", desc=found.describe(), target=target))
    answer = f"a {found.describe()}" if found else "nothing"
    text = ask_text(rng, "relation_what", spec, rel=rng.choice(P.DIRECTLY[rel]), **W.ref(rng, f))
    plan = say(rng, T.PLAN, "relation/what", ref=ref, rel=P.DIRECTLY[rel][0])
    return Question("relation", text, plan, out, answer, kind="text")

