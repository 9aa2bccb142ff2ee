"""Tests of the synthetic world (`llava-cot data synth`): determinism, split disjointness, the
four-stage format, the gold answers, recomputed here from the saved scene ground truth by a
solver that reads the question text on its own (tests/synth_solver.py: it shares no code with
the generator), the many phrasings and the held-out ones, and the claims the reasoning makes.

    pytest -q tests/test_synth.py
"""

from __future__ import annotations

import io
import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from llava_cot import cli, stages
from llava_cot.errors import LlavaCotError
from llava_cot.synth import phrasings, questions, scene, wording
from llava_cot.synth.generate import SynthConfig, generate

# The solver reads questions with its own parser and vocabulary (tests/synth_solver.py), not
# the generator's; test_critiques.py uses it too.
from synth_solver import _fits, _phrase, read, solve  # noqa: F401 (_fits, _phrase: for test_critiques)

FAMILIES = {"subtract", "count", "total", "exist", "compare", "which", "attribute", "universal", "describe",
            "position", "rowcol", "relation", "choice"}


# ---------------------------------------------------------------------------------------------
# Data sets, generated once per module


def _load(out: Path, split: str) -> tuple[list[dict], dict[str, dict]]:
    recs = [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]
    scenes = [json.loads(line) for line in (out / f"{split}_scenes.jsonl").read_text().splitlines()]
    return recs, {s["id"]: s for s in scenes}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, tuple[Path, list[dict], dict[str, dict]]]:
    out = {}
    for name, split, seed, n, per_scene in [("train", "train", 7, 600, 1), ("test", "test", 8, 120, 2),
                                            ("hard", "hard", 7, 120, 1), ("heldout", "heldout", 7, 200, 1)]:
        d = tmp_path_factory.mktemp(name)
        summary = generate(SynthConfig(out=str(d), n=n, split=split, seed=seed, per_scene=per_scene))
        assert summary["records"] == n
        out[name] = (d, *_load(d, split))
    return out


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _key(s: dict) -> tuple:
    return tuple(sorted((o["row"], o["col"], o["shape"], o["colour"], o["size"]) for o in s["objects"]))


def test_same_seed_gives_identical_files_and_other_seeds_differ(tmp_path):
    for name, seed in [("a", 5), ("b", 5), ("c", 6)]:
        generate(SynthConfig(out=str(tmp_path / name), n=40, split="train", seed=seed))
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys() and a["train.jsonl"] != c["train.jsonl"]
    assert sum(a[k] != c[k] for k in a if k.endswith(".png")) > 30


def test_train_test_and_hard_never_share_a_scene(data, tmp_path):
    # another train set from a different seed: disjointness must not depend on seeds
    generate(SynthConfig(out=str(tmp_path), n=300, split="train", seed=99))
    _, more = _load(tmp_path, "train")
    keys = {name: {_key(s) for s in scenes.values()} for name, (_, _, scenes) in data.items()}
    train = keys["train"] | {_key(s) for s in more.values()}
    assert not train & keys["test"] and not train & keys["hard"] and not keys["test"] & keys["hard"]
    assert not train & keys["heldout"] and not keys["hard"] & keys["heldout"]
    assert all(len(k) == len(set(k)) for k in keys.values())  # no scene twice within a split


def _rebuilt(s: dict) -> scene.Scene:
    objs = (scene.Obj(o["shape"], o["colour"], o["size"], o["row"], o["col"]) for o in s["objects"])
    return scene.Scene("any id", tuple(objs))


def test_split_is_a_function_of_scene_content(data):
    """Chance alone keeps two small random samples apart; what guarantees it for any seeds and
    sizes is that a scene's side is decided by its content only (not id, jitter or seed)."""
    assert not any(_rebuilt(s).is_test() for s in data["train"][2].values())
    assert all(_rebuilt(s).is_test() for s in data["test"][2].values())
    assert all(_rebuilt(s).is_test() for s in data["heldout"][2].values())
    rng = random.Random(0)
    sampled = [scene.sample(rng, 4, f"id{i}") for i in range(2000)]
    assert all(s.is_test() == _rebuilt(scene.to_json(s, "x", 64)).is_test() for s in sampled)
    assert 0.07 < sum(s.is_test() for s in sampled) / len(sampled) < 0.13


def test_layout_and_record_fields(data):
    for name, (d, recs, scenes) in data.items():
        assert len({r["id"] for r in recs}) == len(recs)
        assert set(scenes) == {r["scene"] for r in recs}
        for r in recs:
            assert r["split"] == name and r["image"] == scenes[r["scene"]]["image"] == f"images/{name}/{r['scene']}.png"
            assert (d / r["image"]).is_file()
            assert r["conversations"][0]["value"].startswith("<image>\n")
            assert isinstance(r["options"], dict) and isinstance(r["answer"], str)
        assert len(list((d / "images" / name).glob("*.png"))) == len(scenes)


@pytest.mark.parametrize("split", ["train", "test", "hard", "heldout"])
def test_gold_answers_recomputed_from_scene_ground_truth(data, split):
    _, recs, scenes = data[split]
    for r in recs:
        question = r["conversations"][0]["value"].removeprefix("<image>\n")
        family, gold = solve(question, scenes[r["scene"]]["objects"])
        assert (family, gold) == (r["family"], r["answer"]), r["id"]
        parsed = stages.parse(r["conversations"][1]["value"])
        assert parsed.ok, (r["id"], parsed.problems)
        assert parsed.stages["CONCLUSION"] == gold
    families = {r["family"] for r in recs}
    assert families == FAMILIES if split in ("train", "heldout") else len(families) >= 10


def test_caption_lists_every_object_in_reading_order(data):
    _, recs, scenes = data["train"]
    for r in recs:
        caption = stages.parse(r["conversations"][1]["value"]).stages["CAPTION"]
        objects = scenes[r["scene"]]["objects"]
        found = re.findall(r"[Rr]ow (\d), column (\d)(?::| there is) a (\w+) (\w+) (\w+)\.", caption)
        assert found == [(str(o["row"]), str(o["col"]), o["size"], o["colour"], o["shape"]) for o in objects]


def test_options_hold_the_gold_exactly_once(data):
    choice = [r for _, recs, _ in data.values() for r in recs if r["family"] == "choice"]
    assert len(choice) > 20
    for r in choice:
        assert sorted(r["options"]) == ["A", "B", "C", "D"]
        assert len(set(r["options"].values())) == 4 and r["answer"] in r["options"]
        assert r["base"] in ("count", "subtract", "attribute")
    for r in (r for _, recs, _ in data.values() for r in recs if r["family"] != "choice"):
        assert r["options"] == {}


def test_object_pixels_have_their_colour(data):
    for _, (d, _, scenes) in data.items():
        for s in list(scenes.values())[:60]:
            img = Image.open(d / s["image"]).convert("RGB")
            cell = img.width // 4
            assert img.size == (s["image_size"], s["image_size"]) == (64, 64)
            taken = {(o["row"], o["col"]): o for o in s["objects"]}
            for row in range(1, 5):
                for col in range(1, 5):
                    centre = img.getpixel(((col - 1) * cell + cell // 2, (row - 1) * cell + cell // 2))
                    o = taken.get((row, col))
                    assert centre == (scene.COLOURS[o["colour"]] if o else scene.BACKGROUND)


def test_each_object_stays_inside_its_cell_and_sizes_differ(data):
    _, _, scenes = data["hard"]
    for s in scenes.values():
        cell = s["image_size"] // 4
        for o in s["objects"]:
            x0, y0, x1, y1 = o["box"]
            assert (o["col"] - 1) * cell < x0 <= x1 < o["col"] * cell - 1
            assert (o["row"] - 1) * cell < y0 <= y1 < o["row"] * cell - 1
            assert (x1 - x0 + 1 >= 0.75 * cell) == (o["size"] == "large")


def test_hard_has_more_objects_and_longer_chains(data):
    def steps(recs):
        return [len(read(_question(r))["steps"]) for r in recs if r.get("base", r["family"]) == "subtract"]

    for split in ("train", "test", "heldout"):
        assert max(len(s["objects"]) for s in data[split][2].values()) <= 6
        assert set(steps(data[split][1])) == {1, 2}
    assert min(len(s["objects"]) for s in data["hard"][2].values()) >= 8
    assert set(steps(data["hard"][1])) <= {3, 4} and steps(data["hard"][1])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), split=st.sampled_from(["train", "hard", "heldout"]))
def test_every_family_is_answered_right_on_random_scenes(seed, split):
    """In memory, no files: each family on random scenes, checked by the independent solver."""
    rng = random.Random(seed)
    spec = scene.SPLITS[split]
    s = scene.sample(rng, rng.randint(*spec.objects), "x")
    objects = scene.to_json(s, "x.png", 64)["objects"]
    for name, family in questions.FAMILIES.items():
        try:
            q = family(rng, s, spec)
        except wording.NoPhrasing:  # questions.ask then draws another family
            continue
        if q is None:
            continue
        assert solve(q.text, objects) == (name, q.answer)
        assert stages.parse(questions.annotate(rng, s, q)).stages["CONCLUSION"] == q.answer


def _question(r: dict) -> str:
    return r["conversations"][0]["value"].removeprefix("<image>\n")


# ---------------------------------------------------------------------------------------------
# Phrasings: many per family, and a held-out set that no other split uses

_MOD = "(?:small|large|big|red|green|blue|yellow|purple|cyan)"
_SHAPE, _HEAD = "(?:square|circle|triangle|diamond)s?", "(?:object|thing|shape|item)s?"
_NP = rf"(?:an? )?(?:{_MOD} ){{0,2}}(?:{_SHAPE}|{_HEAD})"  # "a large red square", "red objects", "things"
_REL = rf"(?:an? )?(?:{_SHAPE}|{_HEAD}) that (?:is|are) {_MOD}(?: and {_MOD})?"  # "squares that are large and red"
SLOTS = {**dict.fromkeys(("pl", "sg", "a_sg", "ref", "ref1", "ref2", "a", "b", "scope_pl", "scope_sg"), _NP),
         **dict.fromkeys(("pl_rel", "sg_rel", "a_sg_rel", "ref_rel", "ref1_rel", "ref2_rel"), _REL),
         "pred_pl": rf"{_MOD}(?: and {_MOD})*|{_NP}", "pred_sg": rf"{_MOD}|a {_SHAPE}", "attr": "colour|color|shape|size",
         "cell": r"the (?:top|upper|bottom|lower)[ -](?:left|right) corner|(?:the cell in )?row \d,? (?:and )?column \d"
                 r"|the \w+ row, \w+ column",
         "line": r"(?:row|column) \d|the \w+ (?:row|column)", "extreme": r"[a-z]+most|highest|lowest",
         "rel": r"(?:(?:directly|just|immediately|right) )?(?:(?:to the )?(?:left|right) of|above|below|under)"
                r"|beneath|next to|beside", "removals": ".+", "removed": ".+"}
UNIVERSAL = ("same", "all", "any", "none")


def _family_of(key: str) -> str | None:
    """The family a question key words: "compare_more" -> "compare" (removal steps: none)."""
    return None if key == "subtract_step" else "universal" if key in UNIVERSAL else key.split("_")[0]


def _pattern(phrasing: str) -> re.Pattern[str]:
    """A phrasing of wording.py ("How many {pl} are there?") as a pattern its questions match."""
    parts = re.split(r"\{(\w+)\}", phrasing.lower().rstrip("?."))
    return re.compile("".join(f"(?:{SLOTS[x]})" if i % 2 else re.escape(x) for i, x in enumerate(parts)))


@pytest.fixture(scope="module")
def trained() -> list[tuple[str, re.Pattern[str]]]:
    """Every phrasing the training splits may use, as (family, pattern)."""
    return [(_family_of(key), _pattern(p)) for key in phrasings.QUESTIONS for p in wording.phrasings(key, "train")
            if _family_of(key)]


def _asked(r: dict) -> str:
    """The part of a question that carries its phrasing: the stem, or a removal chain's question."""
    stem = _question(r).partition("\nOptions:")[0].lower().rstrip("?.")
    return stem.split(". ")[-1]


def _readers(r: dict, trained: list[tuple[str, re.Pattern[str]]]) -> list[int]:
    """Which trained phrasings of the record's family read its question."""
    family = r.get("base") or r["family"]
    return [i for i, (f, p) in enumerate(trained) if f == family and p.fullmatch(_asked(r))]


def test_heldout_questions_are_worded_as_no_training_question_is(data, trained):
    for split in ("train", "test", "hard"):  # the patterns do read the training splits' questions
        assert all(_readers(r, trained) for r in data[split][1]), split
    for r in data["heldout"][1]:
        assert not _readers(r, trained), _question(r)


def test_every_question_key_has_trained_and_heldout_phrasings():
    held = [len(wording.phrasings(k, "heldout")) for k in phrasings.QUESTIONS]
    every = [len(wording.phrasings(k, "any")) for k in phrasings.QUESTIONS]
    assert all(held) and all(h < n for h, n in zip(held, every, strict=True))
    assert 0.15 < sum(held) / sum(every) < 0.35
    assert wording.expand("[How many|What number of] {pl} [are there|can you see]?") == [
        "How many {pl} are there?", "How many {pl} can you see?", "What number of {pl} are there?",
        "What number of {pl} can you see?"]


# What issue 18 reports new users asking: each must be a trained phrasing, read as this family.
FIRST_QUESTIONS = [("How many objects are there?", "total"), ("How many shapes are there?", "total"),
                   ("Count the objects.", "total"), ("What is the total number of objects?", "total"),
                   ("Are all the objects the same size?", "universal"), ("What is in the top left corner?", "position"),
                   ("If you take away every blue object, how many are left?", "subtract"),
                   ("Describe the image.", "describe")]


@pytest.mark.parametrize("question, family", FIRST_QUESTIONS)
def test_what_new_users_ask_first_is_trained(trained, question, family):
    assert read(question)["family"] == family
    assert any(f == family and p.fullmatch(question.lower().rstrip("?.")) for f, p in trained)


def test_questions_vary_in_wording(data, trained):
    recs = data["train"][1]
    text = " ".join(_question(r) for r in recs)
    for word in ("colour", "color", "big", "large", "Count the", "Is there a", "Are there any", "that are",
                 "Remove", "Take away", "how many are left", "the top left corner", "to the left of", "the same"):
        assert word in text, word
    by_family: dict[str, set[int]] = {}
    for r in recs:
        by_family.setdefault(r["family"], set()).update(_readers(r, trained))
    assert all(len(used) >= 8 for used in by_family.values()), {f: len(u) for f, u in by_family.items()}


# ---------------------------------------------------------------------------------------------
# The reasoning: every claim about an object is true of the scene, the plan restates the question

OBJECT = re.compile(r"The (\w+) (\w+) (\w+) at row (\d), column (\d) \(([^)]*)\)")


@pytest.mark.parametrize("split", ["train", "hard", "heldout"])
def test_every_object_named_in_the_reasoning_is_as_the_scene_has_it(data, split):
    _, recs, scenes = data[split]
    claims = 0
    for r in recs:
        at = {(o["row"], o["col"]): o for o in scenes[r["scene"]]["objects"]}
        reasoning = stages.parse(r["conversations"][1]["value"]).stages["REASONING"]
        for m in OBJECT.finditer(reasoning):
            o = at[(int(m[4]), int(m[5]))]
            assert (o["size"], o["colour"], o["shape"]) == m.group(1, 2, 3), (r["id"], m[0])
            for what, said in re.findall(r"([a-z]+(?: \d)?) (yes|no)", m[6]):
                if what.startswith(("row ", "column ")):
                    truth = o["row" if what.startswith("row") else "col"] == int(what[-1])
                else:
                    truth = what in (o["size"], o["colour"], o["shape"])
                assert truth == (said == "yes"), (r["id"], m[0])
                claims += 1
    assert claims > 3 * len(recs)


def _names(f: dict, plural: bool) -> str:
    head = f.get("shape", "object") + ("s" if plural else "")
    return " ".join([*(f[k] for k in ("size", "colour") if k in f), head])


def _restated(family: str, m: dict) -> list[str]:
    """What the plan of a question must say, whatever the wording: its canonical noun phrases."""
    if family in ("count", "exist"):
        return [_names(m["filter"], True), _names(m["filter"], False)]
    if family == "attribute":
        return [f"the {_names(m['ref'], False)}"]
    if family == "which":  # both sides named, in the question's order
        a, b = (_names(f, "refs" not in m) for f in m.get("refs") or m["compared"])
        return [f"{a} and {b}", f"{a} and the {b}", f"{a} and one for {b}"]
    return [""]


def test_the_plan_restates_the_question_in_canonical_words(data):
    checked = 0
    for r in data["train"][1] + data["heldout"][1]:
        plan = stages.parse(r["conversations"][1]["value"]).stages["SUMMARY"]
        wanted = _restated(r["family"], read(_question(r)))
        assert any(w in plan for w in wanted), (plan, _question(r))
        checked += wanted != [""]
    assert checked > 100


def test_phrasings_bench_scores_its_heldout_items_and_never_the_tests():
    from llava_cot.benches import load_bench

    bench, test = load_bench("synth-phrasings"), load_bench("synth-test")
    items = bench.load(None, limit=60)
    assert [i.index for i in items] == [i.index for i in load_bench("synth-phrasings").load(None, limit=60)]
    assert all(i.index.startswith("heldout_") and i.image().size == (64, 64) for i in items)
    assert len({i.category for i in items}) >= 10 and {i.category for i in items} <= FAMILIES
    assert not {i.question for i in items} & {i.question for i in test.load(None, limit=200)}
    assert all(bench.score(i, stages.render({**dict.fromkeys(stages.STAGES, "."), "CONCLUSION": str(i.extra["gold"])}))
               ["correct"] for i in items)


def test_png_writer_round_trips():
    rng = random.Random(1)
    for size in (64, 128):
        img = scene.render(scene.sample(rng, 10, "x"), size)
        back = Image.open(io.BytesIO(scene.png(img)))
        assert back.mode == "RGB" and back.tobytes() == img.tobytes()


@pytest.mark.parametrize("args, message", [
    (["--n", "0"], "--n must be at least 1"),
    (["--n", "5", "--split", "val"], "unknown split 'val'"),
    (["--n", "5", "--size", "50"], "--size must be a multiple of 4"),
])
def test_cli_rejects_bad_arguments_in_one_line(tmp_path, capsys, args, message):
    assert cli.main(["data", "synth", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    with pytest.raises(LlavaCotError):
        generate(SynthConfig(out=str(tmp_path), n=0))


def test_cli_prints_a_summary_line(tmp_path, capsys):
    assert cli.main(["data", "synth", "--out", str(tmp_path), "--n", "7", "--split", "hard", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "7 records" in out and "7 images" in out and "samples/s" in out
    assert len((tmp_path / "hard.jsonl").read_text().splitlines()) == 7
