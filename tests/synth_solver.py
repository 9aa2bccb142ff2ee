"""An independent reader and solver of the synthetic world's questions, for the tests: question
text + scene ground truth (the objects of {split}_scenes.jsonl) -> (family, gold answer).

It shares no code with the generator: the vocabulary is spelled out again, and every phrasing is
read back by the regular expressions below, written from what the questions mean, so that a
phrasing the generator produces and no reader here understands fails the tests, as does a gold
answer that this solver computes differently. `read` gives what a question asks (used by
test_critiques.py to check reasoning); `solve` answers it.
"""

from __future__ import annotations

import re

SIZES = ("small", "large")
COLOURS = ("red", "green", "blue", "yellow", "purple", "cyan")
SHAPES = ("square", "circle", "triangle", "diamond")
HEADS = ("object", "thing", "shape", "item")
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4}


def _norm(question: str) -> str:
    """Lower case, no final mark, one spelling: colour, large, image."""
    t = question.strip().lower().rstrip("?.")
    for a, b in (("color", "colour"), ("big", "large"), ("picture", "image")):
        t = re.sub(rf"\b{a}\b", b, t)
    return t


def _phrase(text: str) -> dict[str, str]:
    """'large blue objects' -> {'size': 'large', 'colour': 'blue'}; asserts it is a noun phrase."""
    f = np(text)
    assert f is not None, text
    return f


def np(text: str) -> dict[str, str] | None:
    """A noun phrase as a filter: "large red squares", "squares that are large and red",
    "red things", "objects"; None if it is not one."""
    if m := re.fullmatch(r"(\w+) that (?:is|are) ([a-z, ]+)", text):
        head, mods = m[1], re.split(r", | and ", m[2])
    else:
        *mods, head = text.split() or [""]
    head = head[:-1] if head.endswith("s") and head[:-1] in SHAPES + HEADS else head
    if head not in SHAPES + HEADS:
        return None
    f = {"shape": head} if head in SHAPES else {}
    for w in mods:
        key = "size" if w in SIZES else "colour" if w in COLOURS else None
        if key is None or key in f:
            return None
        f[key] = w
    return f


def _fits(obj: dict, f: dict) -> bool:
    return all(obj[k] == v for k, v in f.items())


def _count(objects: list[dict], text: str) -> int:
    return sum(_fits(o, _phrase(text)) for o in objects)


def _yes(b: bool) -> str:
    return "Yes" if b else "No"


def _desc(o: dict) -> str:
    return f"a {o['size']} {o['colour']} {o['shape']}"


def _canonical(f: dict, plural: bool) -> str:
    """The answer's own words for a class or a reference: "red objects", "large square"."""
    head = f.get("shape", "object") + ("s" if plural else "")
    return " ".join([*(f[k] for k in ("size", "colour") if k in f), head])


# ---------------------------------------------------------------------------------------------
# Places on the grid

CORNER = {"top left": (1, 1), "upper left": (1, 1), "top right": (1, 4), "upper right": (1, 4),
          "bottom left": (4, 1), "lower left": (4, 1), "bottom right": (4, 4), "lower right": (4, 4)}


def cell(text: str) -> tuple[int, int] | None:
    if m := re.fullmatch(r"the (top|upper|bottom|lower)[ -](left|right) corner", text):
        return CORNER[f"{m[1]} {m[2]}"]
    if m := re.fullmatch(r"(?:the cell in )?row (\d),? (?:and )?column (\d)", text):
        return int(m[1]), int(m[2])
    if m := re.fullmatch(r"the (\w+) row, (\w+) column", text):
        return ORDINALS[m[1]], ORDINALS[m[2]]
    return None


def line(text: str) -> tuple[str, int] | None:
    """("row" or "col", number) of "row 2", "the third column", "the top row", "the leftmost column"."""
    if m := re.fullmatch(r"(row|column) (\d)", text):
        return ("row" if m[1] == "row" else "col"), int(m[2])
    if m := re.fullmatch(r"the (\w+) (row|column)", text):
        axis = "row" if m[2] == "row" else "col"
        n = {"top": 1, "bottom": 4, "left": 1, "leftmost": 1, "right": 4, "rightmost": 4}.get(m[1]) or ORDINALS.get(m[1])
        return (axis, n) if n else None
    return None


# ---------------------------------------------------------------------------------------------
# Reading: the question's text -> what it asks, as a dict with its "family"

IMG = r"(?: in the image)?"
QUANT = r"(?:all the |all |every |the )"
REMOVE = r"(?:subtract|remove|take away|delete|get rid of|throw out)"


def _steps(listed: str) -> list[dict] | None:
    """"all red squares and every small circle" -> two filters."""
    out = []
    for part in re.split(r" and (?=(?:all|every|the)\b)", listed):
        m = re.fullmatch(QUANT + r"(.+)", part)
        if not m or (f := np(m[1])) is None:
            return None
        out.append(f)
    return out


END = (r"how many (?:(?:objects|shapes|things) )?(?:are left|remain|are there now|are still there)"
       r"|what is the number of (?:objects|shapes) (?:left|remaining|that remain)"
       r"|count the (?:objects|shapes) that (?:are left|remain)|how many (?:objects|shapes) do you have left")
ONE = [r"if you (?:take away|remove|subtract) (?P<l>.+), how many (?:(?:objects|shapes) )?(?:are left|remain)",
       r"how many objects (?:are left|remain) after (?:removing|taking away|subtracting) (?P<l>.+)",
       r"after (?:removing|taking away|you remove) (?P<l>.+), how many objects (?:are left|remain)",
       r"how many objects (?:remain|are left) (?:once|when|if) (?P<l>.+) (?:are|have been) (?:removed|taken away)"]


def _read_subtract(t: str) -> dict | None:
    *steps, end = re.split(r"\. ", t)
    if steps and re.fullmatch(END, end):
        found = [re.fullmatch(REMOVE + " " + QUANT + r"(.+)", s) for s in steps]
        filters = [np(m[1]) if m else None for m in found]
        if all(f is not None for f in filters):
            return {"family": "subtract", "steps": filters}
    for pattern in ONE:
        if (m := re.fullmatch(pattern, t)) and (filters := _steps(m["l"])):
            return {"family": "subtract", "steps": filters}
    return None


COUNT = [r"how many (?P<np>.+) are (?:there|in the image|there in the image|shown|visible|there in total)",
         r"how many (?P<np>.+) (?:can you see|do you see|does the image show|does the image contain)",
         rf"what is the (?:total )?number of (?P<np>.+?){IMG}", rf"count (?:all )?(?:the )?(?P<np>.+?){IMG}",
         rf"(?:tell me|say) how many (?P<np>.+) there are{IMG}", r"in the image, how many (?P<np>.+) are there",
         r"what number of (?P<np>.+) (?:are there|can you see)", r"number of (?P<np>.+)",
         r"how many (?P<np>objects) (?:does the grid (?:have|hold)|are on the grid)"]
EXIST = [rf"is there (?:an?|any) (?P<np>.+?){IMG}", rf"are there (?:any )?(?P<np>.+?){IMG}",
         r"(?:do|can) you see (?:an?|any) (?P<np>.+)", r"does the image (?:contain|show|have) (?:an?|any) (?P<np>.+)",
         rf"is there an? (?P<np>.+) (?:present|visible){IMG}", r"is there at least one (?P<np>.+)",
         rf"(?:tell me|say) whether there is an? (?P<np>.+?){IMG}", r"are any (?P<np>.+) (?:present|visible|shown)",
         r"can you find an? (?P<np>.+)"]


def _predicate(text: str) -> dict | None:
    """"large and red" or a noun phrase ("large red squares") as a filter."""
    f = np(text)
    if f is None:
        f = np("objects that are " + text)
    return f


def _read_count(t: str) -> dict | None:
    if m := re.fullmatch(r"how many of the (?:objects|shapes) are (.+)", t):
        f = _predicate(m[1])
        return {"family": "count", "filter": f} if f else None
    for pattern in COUNT:
        if (m := re.fullmatch(pattern, t)) and (f := np(m["np"])) is not None:
            return {"family": "count" if f else "total", "filter": f}
    for pattern in EXIST:
        if (m := re.fullmatch(pattern, t)) and (f := np(m["np"])):
            return {"family": "exist", "filter": f}
    return None


CLASS = r"(?P<a>[a-z ]+?)"
COMPARE = [("more", r"are there more {a} than (?:there are )?{b}"), ("more", r"do the {a} outnumber the {b}"),
           ("more", r"is the number of {a} (?:greater|larger|bigger|higher) than the number of {b}"),
           ("more", r"does the image (?:show|contain|have) more {a} than {b}"), ("more", r"are {a} more (?:numerous|common) than {b}"),
           ("fewer", r"are there (?:fewer|less) {a} than (?:there are )?{b}"),
           ("fewer", r"is the number of {a} (?:smaller|less|lower) than the number of {b}"),
           ("fewer", r"does the image (?:show|contain|have) fewer {a} than {b}"), ("fewer", r"are {a} less (?:numerous|common) than {b}"),
           ("same", r"are there as many {a} as {b}"), ("same", r"is the number of {a} (?:the same as|equal to) the number of {b}"),
           ("same", r"are there (?:the same number of|equally many) {a} and {b}"),
           ("same", r"do the {a} and the {b} (?:have the same count|appear equally often)")]
WHICH = [("more", r"are there more {a} or (?:more )?{b}"), ("more", r"which are there more of, {a} or {b}"),
         ("more", r"which is more common, {a} or {b}"), ("more", r"what is there more of, {a} or {b}"),
         ("more", r"are {a} or {b} more (?:common|numerous)"), ("more", r"which (?:group|kind) is larger, the {a} or the {b}"),
         ("fewer", r"are there fewer {a} or (?:fewer )?{b}"), ("fewer", r"which are there fewer of, {a} or {b}"),
         ("fewer", r"which is less common, {a} or {b}"), ("fewer", r"what is there less of, {a} or {b}"),
         ("fewer", r"are {a} or {b} less (?:common|numerous)"), ("fewer", r"which (?:group|kind) is smaller, the {a} or the {b}")]
SIZE = [r"which is {c}, the {a} or the {b}", r"is the {a} or the {b} {c}", r"which of the two is {c}, the {a} or the {b}",
        r"which object is {c}: the {a} or the {b}"]


def _fill(p: str) -> str:
    return p.format(a=CLASS, b=CLASS.replace("<a>", "<b>"), c=r"(?P<c>larger|bigger|smaller)")


def _read_compare(t: str) -> dict | None:
    for family, table in (("compare", COMPARE), ("which", WHICH)):
        for relation, pattern in table:
            m = re.fullmatch(_fill(pattern), t)
            if m and (a := np(m["a"])) is not None and (b := np(m["b"])) is not None:
                return {"family": family, "relation": relation, "compared": [a, b]}
    for pattern in SIZE:
        m = re.fullmatch(_fill(pattern), t)
        if m and (a := np(m["a"])) is not None and (b := np(m["b"])) is not None:
            return {"family": "which", "relation": "smaller" if m["c"] == "smaller" else "bigger", "refs": [a, b]}
    return None


PRED = r"(?P<p>a \w+|\w+s?)"
SAME = [r"are all (?:of )?the {s} (?:of )?the same {x}", r"do all the {s} have the same {x}", r"are the {s} all the same {x}",
        r"is every {s} the same {x}", r"do the {s} all share one {x}", r"is there only one {x} among the {s}"]
QUANTIFIED = [("all", r"are all (?:the |of the )?{s} {p}"), ("all", r"is (?:every|each) {s} {p}"), ("all", r"are the {s} all {p}"),
              ("all", r"is it true that all (?:the )?{s} are {p}"), ("any", r"are any (?:of the )?{s} {p}"),
              ("any", r"is (?:any|at least one) {s} {p}"), ("any", r"is at least one of the {s} {p}"),
              ("none", r"are none of the {s} {p}"), ("none", r"is no {s} {p}"), ("none", r"is it true that none of the {s} are {p}"),
              ("none", r"is it true that no {s} is {p}")]


def _pred(text: str) -> tuple[str, str] | None:
    """What a universal question asks of each object: "red", "a square", "squares"."""
    word = text.removeprefix("a ")
    word = word[:-1] if word.endswith("s") and word[:-1] in SHAPES else word
    for attr, values in (("size", SIZES), ("colour", COLOURS), ("shape", SHAPES)):
        if word in values:
            return attr, word
    return None


def _read_universal(t: str) -> dict | None:
    for pattern in SAME:
        m = re.fullmatch(pattern.format(s=r"(?P<s>[a-z ]+?)", x=r"(?P<x>colour|shape|size)"), t)
        if m and (scope := np(m["s"])) is not None:
            return {"family": "universal", "kind": "same", "scope": scope, "attr": m["x"]}
    for kind, pattern in QUANTIFIED:
        m = re.fullmatch(pattern.format(s=r"(?P<s>[a-z ]+?)", p=PRED), t)
        if m and (scope := np(m["s"])) is not None and (pred := _pred(m["p"])):
            return {"family": "universal", "kind": kind, "scope": scope, "pred": pred}
    return None


AT = r"(?:in|at) (?P<cell>.+)"
WHAT_CELL = [r"what is " + AT, r"what object is " + AT, r"what do you see " + AT, r"what is (?:located|placed) " + AT,
             r"which object is " + AT, r"(?:tell me|say) what is " + AT]
ATTR = r"(?P<x>colour|shape|size)"
ATTR_CELL = [rf"what {ATTR} is the (?:object|shape|thing) " + AT, rf"what is the {ATTR} of the (?:object|shape) " + AT,
             rf"what {ATTR} is " + AT, rf"which {ATTR} does the (?:object|shape) (?:in|at) (?P<cell>.+) have",
             rf"(?:tell me|name) the {ATTR} of the (?:object|shape) " + AT]
REF = r"(?P<r>[a-z ]+?)"
ATTRIBUTE = [rf"what {ATTR} is the {REF}", rf"what is the {ATTR} of the {REF}", rf"which {ATTR} is the {REF}",
             rf"what {ATTR} does the {REF} have", rf"(?:tell me|name) the {ATTR} of the {REF}", rf"the {REF} is what {ATTR}",
             rf"what is the {REF}'s {ATTR}", rf"(?:can you tell me|do you know) what {ATTR} the {REF} is"]
WHERE = [("where", rf"where is the {REF}(?: located| placed)?"), ("where", rf"in which (?:cell|position) is the {REF}"),
         ("where", rf"what (?:cell|position) is the {REF} in"), ("where", rf"(?:tell me|say) where the {REF} is"),
         ("where", rf"where in the image is the {REF}")]
WHERE += [(axis, p.replace("AXIS", axis)) for axis in ("row", "column") for p in
          (rf"which AXIS is the {REF} in", rf"in which AXIS is the {REF}", rf"what AXIS is the {REF} (?:in|on)",
           rf"(?:tell me|say) which AXIS the {REF} is in")]


def _read_position(t: str) -> dict | None:
    for pattern in WHAT_CELL:
        if (m := re.fullmatch(pattern, t)) and (c := cell(m["cell"])):
            return {"family": "position", "kind": "what", "cell": c}
    for pattern in ATTR_CELL:
        if (m := re.fullmatch(pattern, t)) and (c := cell(m["cell"])):
            return {"family": "position", "kind": "attr", "cell": c, "attr": m["x"]}
    for pattern in ATTRIBUTE:
        if (m := re.fullmatch(pattern, t)) and (f := np(m["r"])) is not None:
            return {"family": "attribute", "attr": m["x"], "ref": f}
    for kind, pattern in WHERE:
        if (m := re.fullmatch(pattern, t)) and (f := np(m["r"])) is not None:
            return {"family": "position", "kind": kind, "ref": f}
    return None


IN_LINE = [("count", r"how many (?P<np>.+) are (?:in|there in) (?P<l>.+)"),
           ("count", r"how many (?P<np>.+) (?:can you see|do you see) in (?P<l>.+)"), ("count", r"count the (?P<np>.+) in (?P<l>.+)"),
           ("count", r"what is the number of (?P<np>.+) in (?P<l>.+)"), ("count", r"in (?P<l>.+), how many (?P<np>.+) are there"),
           ("count", r"how many (?P<np>.+) does (?P<l>.+) (?:contain|have|hold)"),
           ("exist", r"is there an? (?P<np>.+) in (?P<l>.+)"), ("exist", r"are there any (?P<np>.+) in (?P<l>.+)"),
           ("exist", r"does (?P<l>.+) (?:contain|have) an? (?P<np>.+)"), ("exist", r"(?:can|do) you see an? (?P<np>.+) in (?P<l>.+)"),
           ("exist", r"is there an? (?P<np>.+) (?:present|visible) in (?P<l>.+)")]
EXT = r"(?P<e>leftmost|rightmost|topmost|highest|bottommost|lowest)"
EXTREME = [rf"what is the {EXT} (?:object|shape) in (?P<l>.+)", rf"which (?:object|shape) is {EXT} in (?P<l>.+)",
           rf"(?:tell me|name) the {EXT} (?:object|shape) in (?P<l>.+)", rf"in (?P<l>.+), what is the {EXT} (?:object|shape)"]


def _read_rowcol(t: str) -> dict | None:
    for kind, pattern in IN_LINE:
        m = re.fullmatch(pattern, t)
        if m and (where := line(m["l"])) and (f := np(m["np"])) is not None:
            return {"family": "rowcol", "kind": kind, "line": where, "filter": f}
    for pattern in EXTREME:
        if (m := re.fullmatch(pattern, t)) and (where := line(m["l"])):
            return {"family": "rowcol", "kind": "extreme", "line": where, "extreme": m["e"]}
    return None


REL = r"(?P<rel>left of|to the left of|right of|to the right of|above|below|under|beneath|next to|beside)"
RELATION = [rf"is the (?P<a>.+?) {REL} the (?P<b>.+)", rf"is the (?P<a>.+?) (?:located|placed) {REL} the (?P<b>.+)",
            rf"does the (?P<a>.+?) (?:sit|lie) {REL} the (?P<b>.+)", rf"is it true that the (?P<a>.+?) is {REL} the (?P<b>.+)"]
DREL = (r"(?P<rel>(?:directly|just|immediately) (?:to the )?(?:left|right) of|(?:directly|just|right|immediately) "
        r"(?:above|below|under)|next to|beside)")
NEXT_TO = [rf"what is {DREL} the (?P<a>.+)", rf"what object is {DREL} the (?P<a>.+)", rf"which object is {DREL} the (?P<a>.+)",
           rf"(?:tell me|say) what is {DREL} the (?P<a>.+)", rf"what do you see {DREL} the (?P<a>.+)"]
DESCRIBE = [r"describe the image", r"what is in the image", r"what do you see(?: in the image)?",
            r"(?:give|write) a (?:short )?description of the image", r"tell me what the image shows", r"what does the image show",
            r"what objects are in the image", r"list the objects(?: in the image)?", r"can you describe the image"]


def _read_relation(t: str) -> dict | None:
    if any(re.fullmatch(p, t) for p in DESCRIBE):
        return {"family": "describe"}
    for pattern in RELATION:
        m = re.fullmatch(pattern, t)
        if m and (a := np(m["a"])) is not None and (b := np(m["b"])) is not None:
            return {"family": "relation", "kind": "yes", "rel": m["rel"], "refs": [a, b]}
    for pattern in NEXT_TO:
        if (m := re.fullmatch(pattern, t)) and (a := np(m["a"])) is not None:
            return {"family": "relation", "kind": "what", "rel": m["rel"], "refs": [a]}
    return None


READERS = (_read_subtract, _read_count, _read_compare, _read_universal, _read_position, _read_rowcol, _read_relation)


def read(question: str) -> dict:
    """What a question asks; multiple choice adds "options" (the stem is read alone)."""
    stem, _, listed = question.partition("\nOptions:\n")
    found = [m for reader in READERS if (m := reader(_norm(stem)))]
    assert len(found) == 1, f"{len(found)} readings of {stem!r}: {found}"
    meaning = found[0]
    if listed:
        meaning["options"] = dict(re.fullmatch(r"([A-D])\. (.+)", x).groups() for x in listed.split("\n"))
    return meaning


# ---------------------------------------------------------------------------------------------
# Solving: what a question asks + the objects -> the gold answer


def _unique(objects: list[dict], f: dict) -> dict:
    hits = [o for o in objects if _fits(o, f)]
    assert len(hits) == 1, f"{f} does not name exactly one object"
    return hits[0]


def _at(objects: list[dict], r: int, c: int) -> dict | None:
    return next((o for o in objects if (o["row"], o["col"]) == (r, c)), None)


def _relation(rel: str, a: dict, b: dict) -> bool:
    if rel in ("next to", "beside"):
        return abs(a["row"] - b["row"]) + abs(a["col"] - b["col"]) == 1
    key, sign = {"left": ("col", -1), "right": ("col", 1), "above": ("row", -1), "below": ("row", 1),
                 "under": ("row", 1), "beneath": ("row", 1)}[rel.split()[-2 if rel.endswith(" of") else -1]]
    return (a[key] - b[key]) * sign > 0


def _beside(objects: list[dict], o: dict, rel: str) -> str:
    """The answer to "what is directly left of / above / next to" an object."""
    if rel in ("next to", "beside"):
        near = [p for p in objects if abs(p["row"] - o["row"]) + abs(p["col"] - o["col"]) == 1]
        assert len(near) == 1, "next to: not exactly one neighbour"
        return _desc(near[0])
    word = rel.split()[-2 if rel.endswith(" of") else -1]
    dr, dc = {"left": (0, -1), "right": (0, 1), "above": (-1, 0), "below": (1, 0), "under": (1, 0)}[word]
    found = _at(objects, o["row"] + dr, o["col"] + dc)
    return _desc(found) if found else "nothing"


def _universal(m: dict, objects: list[dict]) -> str:
    members = [o for o in objects if _fits(o, m["scope"])]
    assert members, "a universal question over nothing"
    if m["kind"] == "same":
        return _yes(len({o[m["attr"]] for o in members}) == 1)
    attr, value = m["pred"]
    k = sum(o[attr] == value for o in members)
    return _yes({"all": k == len(members), "any": k > 0, "none": k == 0}[m["kind"]])


def _rowcol(m: dict, objects: list[dict]) -> str:
    axis, n = m["line"]
    inside = sorted((o for o in objects if o[axis] == n), key=lambda o: o["col" if axis == "row" else "row"])
    if m["kind"] == "extreme":
        first = m["extreme"] in ("leftmost", "topmost", "highest")
        return _desc(inside[0] if first else inside[-1])
    k = sum(_fits(o, m["filter"]) for o in inside)
    return str(k) if m["kind"] == "count" else _yes(k > 0)


def _which(m: dict, objects: list[dict]) -> str:
    if "refs" in m:
        a, b = (_unique(objects, f) for f in m["refs"])
        assert a["size"] != b["size"], "two objects of one size"
        big = a if a["size"] == "large" else b
        pick = big if m["relation"] == "bigger" else (b if big is a else a)
        return "the " + _canonical(m["refs"][0 if pick is a else 1], False)
    ca, cb = (sum(_fits(o, f) for o in objects) for f in m["compared"])
    assert ca != cb, "a tie"
    first = (ca > cb) == (m["relation"] == "more")
    return _canonical(m["compared"][0 if first else 1], True)


def _position(m: dict, objects: list[dict]) -> str:
    if m["kind"] in ("what", "attr"):
        o = _at(objects, *m["cell"])
        if m["kind"] == "attr":
            return o[m["attr"]]
        return _desc(o) if o else "nothing"
    o = _unique(objects, m["ref"])
    return {"where": f"row {o['row']}, column {o['col']}", "row": f"row {o['row']}", "column": f"column {o['col']}"}[m["kind"]]


def answer(m: dict, objects: list[dict]) -> str:
    family = m["family"]
    if family == "subtract":
        left = objects
        for f in m["steps"]:
            left = [o for o in left if not _fits(o, f)]
        return str(len(left))
    if family in ("total", "count"):
        return str(sum(_fits(o, m["filter"]) for o in objects))
    if family == "exist":
        return _yes(any(_fits(o, m["filter"]) for o in objects))
    if family == "compare":
        ca, cb = (sum(_fits(o, f) for o in objects) for f in m["compared"])
        return _yes({"more": ca > cb, "fewer": ca < cb, "same": ca == cb}[m["relation"]])
    if family == "attribute":
        return _unique(objects, m["ref"])[m["attr"]]
    if family == "relation":
        found = [_unique(objects, f) for f in m["refs"]]
        return _yes(_relation(m["rel"], *found)) if m["kind"] == "yes" else _beside(objects, found[0], m["rel"])
    if family == "describe":
        descs = [_desc(o) for o in objects]
        listed = descs[0] if len(descs) == 1 else ", ".join(descs[:-1]) + " and " + descs[-1]
        return f"There are {len(objects)} object{'s' * (len(objects) != 1)}: {listed}."
    solvers = {"universal": _universal, "rowcol": _rowcol, "which": _which, "position": _position}
    return solvers[family](m, objects)


def solve(question: str, objects: list[dict]) -> tuple[str, str]:
    """(family, gold answer) of a question; multiple choice gives ("choice", letter)."""
    m = read(question)
    value = answer(m, objects)
    if "options" not in m:
        return m["family"], value
    options = m["options"]
    letters = [k for k, v in options.items() if v == value]
    assert sorted(options) == ["A", "B", "C", "D"] and len(letters) == 1, (options, value)
    return "choice", letters[0]
