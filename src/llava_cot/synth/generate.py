"""`llava-cot data synth`: write a synthetic visual-reasoning data set with four-stage answers.

    llava-cot data synth --out DIR --n N [--split train|test|hard|heldout] [--seed S] [--size 64] [--per-scene 1]
                         [--task reason|judge|mix]
    python -m llava_cot.synth.generate --out DIR --n N ...     (the same command)

Writes, under DIR:

    {split}.jsonl            N records in the LLaVA-CoT-100k layout (+ family, answer, options, split, scene)
    {split}_scenes.jsonl     each scene's ground truth: objects with shape, colour, size, row, col, box
    images/{split}/*.png     one image per scene; record image paths are relative to DIR

With --task judge the N records are judge and verifier items instead (see `critiques.py`);
with --task mix every third record is one, shuffled in among the four-stage records.

The same seed, split, n and options always give byte-identical files. train and test never share
a scene, whatever seeds made them (see `Scene.is_test`); hard has 8-12 objects per scene where
train and test have 3-6, and 3-4 subtraction steps where they have 1-2. heldout is drawn like test
but every question is worded in a phrasing that no other split uses (`wording.py`): a measure
of how far a model trained on train follows new wordings (the `synth-phrasings` bench).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava_cot import records
from llava_cot.errors import LlavaCotError
from llava_cot.records import Record
from llava_cot.synth import critiques
from llava_cot.synth.questions import FAMILIES, annotate, ask
from llava_cot.synth.scene import SPLITS, Scene, Split, png, render, sample, to_json

# zlib level 1: flat-colour images compress almost as well as at level 6, faster.
PNG_COMPRESS_LEVEL = 1
TASKS = ("reason", "judge", "mix")


@dataclass
class SynthConfig:
    """Render a synthetic visual-reasoning data set: CLEVR-Math-like scenes on a 4x4 grid,
    questions about them, and four-stage answers derived from the scene graph."""

    out: str = field(metadata={"help": "output directory (created if missing)"})
    n: int = field(metadata={"help": "number of records (questions) to write"})
    split: str = field(default="train", metadata={
        "help": "train or test (3-6 objects, 1-2 subtraction steps; never the same scene), "
                "hard (8-12 objects, 3-4 steps), or heldout (test scenes, questions worded only in "
                "phrasings never used in the other splits)"})
    seed: int = field(default=0, metadata={"help": "random seed; the same seed gives the same files"})
    size: int = field(default=64, metadata={
        "help": "image side in pixels, a multiple of 4; 64 puts one object in each 16x16 ViT patch"})
    per_scene: int = field(default=1, metadata={"help": "questions per scene (image), from distinct families"})
    task: str = field(default="reason", metadata={
        "help": "reason: four-stage answers; judge: judge/verifier items on corrupted stages only; "
                "mix: both, one critique item per two four-stage items, shuffled", "choices": list(TASKS)})


def _check(cfg: SynthConfig) -> None:
    if cfg.n < 1:
        raise LlavaCotError(f"--n must be at least 1 (got {cfg.n})")
    if cfg.split not in SPLITS:
        raise LlavaCotError(f"unknown split {cfg.split!r}: choose one of {', '.join(SPLITS)}")
    if cfg.size < 32 or cfg.size % 4:
        raise LlavaCotError(f"--size must be a multiple of 4 and at least 32 (got {cfg.size})")
    if not 1 <= cfg.per_scene <= len(FAMILIES):
        raise LlavaCotError(f"--per-scene must be between 1 and {len(FAMILIES)} (got {cfg.per_scene})")
    if cfg.task not in TASKS:
        raise LlavaCotError(f"unknown task {cfg.task!r}: choose one of {', '.join(TASKS)}")
    if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise LlavaCotError(f"--out {cfg.out} is a file; give a directory")


def scenes(rng: random.Random, split: str, spec: Split) -> Iterator[Scene]:
    """Endless distinct scenes of a split. train and test draw from the same distribution and
    keep only the scenes whose hash puts them on their side (rejection sampling)."""
    seen: set[str] = set()
    while True:
        scene = sample(rng, rng.randint(*spec.objects), f"{split}_{len(seen):06d}")
        if spec.test_bucket is not None and scene.is_test() != spec.test_bucket:
            continue
        if scene.key() in seen:
            continue
        seen.add(scene.key())
        yield scene


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Written beside the target and renamed, like records.write, so a crash leaves no half file."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    os.replace(partial, path)


def generate(cfg: SynthConfig) -> dict[str, Any]:
    """Write the data set described by cfg; return a summary (records, images, seconds, ...)."""
    _check(cfg)
    start = time.perf_counter()
    out = Path(cfg.out)
    try:
        (out / "images" / cfg.split).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LlavaCotError(f"cannot create {out / 'images' / cfg.split}: {e.strerror or e}") from None
    spec = SPLITS[cfg.split]
    # A string seed is hashed with SHA-512 by `random`, so the stream is stable across runs and
    # platforms (unlike hash(), which is salted per process). Scenes and questions draw from
    # streams of their own: a change to how questions are asked or answered leaves the scenes
    # (and the example images drawn from them) as they were.
    scene_rng = random.Random(f"llava-cot synth/{cfg.seed}/{cfg.split}")
    rng = random.Random(f"llava-cot synth/{cfg.seed}/{cfg.split}/questions")
    recs: list[Record] = []
    truth: list[dict[str, Any]] = []
    # Critique items draw from their own stream, so the four-stage records (and --task reason's
    # files) are the same whatever the task.
    critique_rng = random.Random(f"llava-cot synth/{cfg.seed}/{cfg.split}/critique")
    maker = None if cfg.task == "reason" else critiques.Maker(critique_rng)
    golds = 0
    for scene in scenes(scene_rng, cfg.split, spec):
        if len(recs) >= cfg.n:
            break
        image = f"images/{cfg.split}/{scene.id}.png"
        (out / image).write_bytes(png(render(scene, cfg.size), PNG_COMPRESS_LEVEL))
        truth.append(to_json(scene, image, cfg.size))
        for j, q in enumerate(ask(rng, scene, spec, min(cfg.per_scene, cfg.n - len(recs)))):
            extra = {"family": q.family, "answer": q.answer, "options": q.options,
                     "split": cfg.split, "scene": scene.id}
            if q.base:
                extra["base"] = q.base
            rec = Record.make(f"{scene.id}_{j}", q.text, annotate(rng, scene, q), image=image, **extra)
            golds += 1
            if cfg.task != "judge" and len(recs) < cfg.n:
                recs.append(rec)
            # judge: one item per four-stage record, which is not written; mix: one per two.
            if maker is not None and (cfg.task == "judge" or golds % 2 == 0) and len(recs) < cfg.n:
                recs.append(maker.make(rec, scene, f"{rec.id}_critique"))
    if maker is not None and cfg.task == "mix":
        maker.rng.shuffle(recs)
    records.write(out / f"{cfg.split}.jsonl", recs)
    _write_jsonl(out / f"{cfg.split}_scenes.jsonl", truth)
    seconds = time.perf_counter() - start
    return {"split": cfg.split, "records": len(recs), "images": len(truth), "out": str(out),
            "seconds": round(seconds, 3), "samples_per_s": round(len(recs) / seconds, 1),
            "critiques": sum("task" in r.extra for r in recs)}


def main(cfg: SynthConfig) -> int:
    s = generate(cfg)
    judged = f" ({s['critiques']} judge/verify items)" if s["critiques"] else ""
    print(f"synth {s['split']}: {s['records']} records{judged}, {s['images']} images in {s['out']} "
          f"({s['seconds']:.2f} s, {s['samples_per_s']:.0f} samples/s)")
    return 0


if __name__ == "__main__":
    from llava_cot import cli

    raise SystemExit(cli.main(["data", "synth", *sys.argv[1:]]))
