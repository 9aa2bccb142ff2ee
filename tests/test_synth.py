"""Tests of the synthetic world (`llava-cot data synth`): determinism, split disjointness, the
four-stage format, and the gold answers, recomputed here from the saved scene ground truth by a
solver that reads the question text on its own (it shares no code with the generator).

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
from llava_cot.synth import questions, scene
from llava_cot.synth.generate import SynthConfig, generate

# The vocabulary, spelled out again on purpose: the solver must not lean on generator code.
SIZES = ("small", "large")
COLOURS = ("red", "green", "blue", "yellow", "purple", "cyan")
SHAPES = ("square", "circle", "triangle", "diamond")


# ---------------------------------------------------------------------------------------------
# An independent solver: question text + scene ground truth -> gold answer


def _phrase(text: str) -> dict[str, str]:
    """'large blue objects' -> {'size': 'large', 'colour': 'blue'}; 'red square' -> ..."""
    *mods, head = text.split()
    head = head[:-1] if head.endswith("s") else head
    f = {} if head == "object" else {"shape": head}
    assert head == "object" or head in SHAPES, text
    for word in mods:
        key = "size" if word in SIZES else "colour"
        assert word in SIZES + COLOURS and key not in f, text
        f[key] = word
    return f


def _fits(obj: dict, f: dict[str, str]) -> bool:
    return all(obj[k] == v for k, v in f.items())


def _count(objects: list[dict], text: str) -> int:
    return sum(_fits(o, _phrase(text)) for o in objects)


def _solve_subtract(objects: list[dict], question: str) -> str:
    left = objects
    for text in re.findall(r"Subtract all ([a-z ]+)\.", question):
        left = [o for o in left if not _fits(o, _phrase(text))]
    return str(len(left))


def _solve_attribute(objects: list[dict], attr: str, ref: str) -> str:
    hits = [o for o in objects if _fits(o, _phrase(ref))]
    assert len(hits) == 1, f"'{ref}' does not name exactly one object"
    return hits[0][attr]


def _yes(b: bool) -> str:
    return "Yes" if b else "No"


# (family, pattern, answer from the objects and the match)
RULES = [
    ("subtract", r"(?:Subtract all [a-z ]+\. )+How many objects (?:are left|remain)\?", lambda o, m: _solve_subtract(o, m.group(0))),
    ("count", r"How many ([a-z ]+) are (?:there|in the image)\?", lambda o, m: str(_count(o, m.group(1)))),
    ("attribute", r"What (colour|shape|size) is the ([a-z ]+)\?", lambda o, m: _solve_attribute(o, m.group(1), m.group(2))),
    ("attribute", r"What is the (colour|shape|size) of the ([a-z ]+)\?", lambda o, m: _solve_attribute(o, m.group(1), m.group(2))),
    ("compare", r"Are there more ([a-z ]+) than ([a-z ]+)\?", lambda o, m: _yes(_count(o, m.group(1)) > _count(o, m.group(2)))),
    ("compare", r"Is the number of ([a-z ]+) greater than the number of ([a-z ]+)\?",
     lambda o, m: _yes(_count(o, m.group(1)) > _count(o, m.group(2)))),
    ("compare", r"Are there fewer ([a-z ]+) than ([a-z ]+)\?", lambda o, m: _yes(_count(o, m.group(1)) < _count(o, m.group(2)))),
    ("compare", r"Is the number of ([a-z ]+) smaller than the number of ([a-z ]+)\?",
     lambda o, m: _yes(_count(o, m.group(1)) < _count(o, m.group(2)))),
    ("exist", r"(?:Is there an?|Are there any) ([a-z ]+)\?", lambda o, m: _yes(_count(o, m.group(1)) > 0)),
]


def solve(question: str, objects: list[dict]) -> tuple[str, str]:
    """(family, gold answer) of a question; multiple choice gives ("choice", letter)."""
    stem, _, opts = question.partition("\nOptions:\n")
    read = [(family, m, answer) for family, pattern, answer in RULES if (m := re.fullmatch(pattern, stem))]
    assert len(read) == 1, f"{len(read)} rules read {stem!r}"
    family, m, answer = read[0]
    value = answer(objects, m)
    if not opts:
        return family, value
    options = dict(re.fullmatch(r"([A-D])\. (.+)", line).groups() for line in opts.split("\n"))
    letters = [k for k, v in options.items() if v == value]
    assert sorted(options) == ["A", "B", "C", "D"] and len(letters) == 1, (options, value)
    return "choice", letters[0]


# ---------------------------------------------------------------------------------------------
# Data sets, generated once per module


def _load(out: Path, split: str) -> tuple[list[dict], dict[str, dict]]:
    recs = [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]
    scenes = [json.loads(line) for line in (out / f"{split}_scenes.jsonl").read_text().splitlines()]
    return recs, {s["id"]: s for s in scenes}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, tuple[Path, list[dict], dict[str, dict]]]:
    out = {}
    for name, split, seed, n, per_scene in [("train", "train", 7, 300, 1), ("test", "test", 8, 120, 2),
                                            ("hard", "hard", 7, 120, 1)]:
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
    assert all(len(k) == len(set(k)) for k in keys.values())  # no scene twice within a split


def _rebuilt(s: dict) -> scene.Scene:
    objs = (scene.Obj(o["shape"], o["colour"], o["size"], o["row"], o["col"]) for o in s["objects"])
    return scene.Scene("any id", tuple(objs))


def test_split_is_a_function_of_scene_content(data):
    """Chance alone keeps two small random samples apart; what guarantees it for any seeds and
    sizes is that a scene's side is decided by its content only (not id, jitter or seed)."""
    assert not any(_rebuilt(s).is_test() for s in data["train"][2].values())
    assert all(_rebuilt(s).is_test() for s in data["test"][2].values())
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


@pytest.mark.parametrize("split", ["train", "test", "hard"])
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
    assert families == {"subtract", "count", "attribute", "compare", "exist", "choice"}


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
        return [r["conversations"][0]["value"].count("Subtract all") for r in recs if "Subtract all" in r["conversations"][0]["value"]]

    for split in ("train", "test"):
        assert max(len(s["objects"]) for s in data[split][2].values()) <= 6
        assert set(steps(data[split][1])) <= {1, 2}
    assert min(len(s["objects"]) for s in data["hard"][2].values()) >= 8
    assert set(steps(data["hard"][1])) <= {3, 4} and steps(data["hard"][1])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), split=st.sampled_from(["train", "hard"]))
def test_every_family_is_answered_right_on_random_scenes(seed, split):
    """In memory, no files: each family on random scenes, checked by the independent solver."""
    rng = random.Random(seed)
    spec = scene.SPLITS[split]
    s = scene.sample(rng, rng.randint(*spec.objects), "x")
    objects = scene.to_json(s, "x.png", 64)["objects"]
    for name, family in questions.FAMILIES.items():
        q = family(rng, s, spec.steps)
        if q is None:
            continue
        assert solve(q.text, objects) == (name, q.answer)
        assert stages.parse(questions.annotate(rng, s, q)).stages["CONCLUSION"] == q.answer


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
