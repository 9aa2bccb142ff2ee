"""`llava-cot calibrate`: the verifier threshold SWIRES retraces under, measured rather than guessed.

Renders synthetic verifier items (`llava-cot data synth --task judge`, a fixed seed, the test
split: scenes the model never trained on): correct stages and stages with one planted mistake,
each asked as "is it correct? yes or no". The model's P(yes) on both groups gives the threshold
that best tells them apart (the highest balanced accuracy); it is written beside the model as
search.json, where `swires` finds it. Beside it go the pairwise judge's figures on as many judge
items (a correct and a corrupted candidate, "which is better?"): its accuracy, per stage, and how
often it answers "1"; and the likelihood judge's threshold, found the same way on half as many
four-stage records, each with one stage scored as written and with one planted mistake. Every
score and verdict is the judge's own (`llava_cot.judges`), read as a search reads it.

    llava-cot calibrate --model runs/tiny [--limit 400] [--out runs/tiny/search.json]
"""

from __future__ import annotations

import itertools
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava_cot.errors import LlavaCotError

CALIBRATION_SEED = 4321  # fixed, so a model's threshold is reproducible


@dataclass
class CalibrateConfig:
    """Measure the verifier score threshold of SWIRES on synthetic correct and corrupted stages."""

    model: str | None = field(default=None, metadata={"help": "model directory (default: the embedded model)"})
    limit: int = field(default=400, metadata={"help": "verifier items to score"})
    out: str | None = field(default=None, metadata={"help": "where to write the result (default: MODEL/search.json)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, or auto"})

    def __post_init__(self) -> None:
        if self.limit < 2:
            raise LlavaCotError("--limit must be at least 2 (some correct and some wrong stages)")


def calibrate(engine: Any, items: list[Any], root: Path) -> dict[str, Any]:
    """Threshold, balanced accuracy and the score groups' means for verify `items`, scored by the
    pointwise judge as SWIRES scores its candidates."""
    from llava_cot import critique, models
    from llava_cot.engines import Prompt
    from llava_cot.judges import PointwiseJudge
    from llava_cot.search.swires import best_split

    prompts = [Prompt(models.open_image(root / r.image), r.question) for r in items]
    good, bad = [], []
    for rec, score in zip(items, PointwiseJudge().ask(engine, prompts), strict=True):
        (good if rec.response.strip() == critique.VERDICT_CHOICES[0] else bad).append(score)
    threshold, accuracy = best_split(good, bad)
    return {"swires_threshold": round(threshold, 4), "balanced_accuracy": round(accuracy, 4), "correct": len(good),
            "wrong": len(bad), "mean_score_correct": round(sum(good) / len(good), 4),
            "mean_score_wrong": round(sum(bad) / len(bad), 4)}


def pairwise(engine: Any, items: list[Any], root: Path) -> dict[str, Any]:
    """How often the pairwise judge prefers the right one of a correct and a corrupted candidate
    (`items`: judge items, one order each, the right one first or second at random), overall and
    per stage, and how often it says "1" (position bias: 1.0 or 0.0 for a judge that always picks
    one place). Each verdict is the judge's, as in a search: a tie (no verdict at all) is decided
    by its seeded coin, and counted."""
    from collections import defaultdict

    from llava_cot import critique, models
    from llava_cot.engines import Prompt
    from llava_cot.judges import PairwiseJudge

    judge = PairwiseJudge(seed=CALIBRATION_SEED)
    prompts = [Prompt(models.open_image(root / r.image), r.question) for r in items]
    by_stage: dict[str, list[bool]] = defaultdict(list)
    firsts = 0
    for rec, odds in zip(items, judge.ask(engine, prompts), strict=True):
        says_first = judge.prefers_first(odds)
        firsts += says_first
        by_stage[rec.extra["stage"]].append(says_first == (rec.response.strip() == critique.PAIR_CHOICES[0]))
    right = [r for rs in by_stage.values() for r in rs]
    return {"pairwise_items": len(items), "pairwise_accuracy": round(sum(right) / len(right), 4),
            "pairwise_says_first": round(firsts / len(items), 4), "pairwise_ties": judge.ties,
            "pairwise_accuracy_by_stage": {s: round(sum(rs) / len(rs), 4) for s, rs in sorted(by_stage.items())}}


def likelihood(engine: Any, root: Path, limit: int, seed: int = CALIBRATION_SEED) -> dict[str, Any]:
    """The likelihood judge's threshold: on the four-stage records in root/test.jsonl (at most
    `limit`), one stage each (chosen at random, seeded) scored as written and with one planted
    mistake (`synth.critiques.corrupt`), with the earlier stages as the answer so far."""
    import random

    from llava_cot import models, records, stages
    from llava_cot.engines import Prompt
    from llava_cot.judges import LikelihoodJudge
    from llava_cot.search.swires import best_split
    from llava_cot.synth import critiques

    rng, judge = random.Random(seed), LikelihoodJudge()
    scenes = {}
    with (root / "test_scenes.jsonl").open() as f:
        for line in f:
            scene = critiques.scene_from_json(json.loads(line))
            scenes[scene.id] = scene
    good, bad = [], []
    for rec in itertools.islice(records.read(root / "test.jsonl"), limit):
        gold = stages.parse(rec.response).stages
        stage = rng.choice(stages.STAGES)
        kinds = rng.sample(list(critiques.KINDS[stage]), len(critiques.KINDS[stage]))
        scene = scenes[rec.extra["scene"]]
        spoilt = next((t for k in kinds if (t := critiques.corrupt(rng, rec.to_json(), scene, stage, k))), None)
        if spoilt is None:
            continue
        before = stages.render({s: gold[s] for s in stages.STAGES[: stages.STAGES.index(stage)]})
        here = Prompt(models.open_image(root / rec.image), rec.question, before + "\n\n" if before else "")
        right, wrong = judge.scores(engine, here, stage, [stages.render({stage: t}) for t in (gold[stage], spoilt)])
        good.append(right)
        bad.append(wrong)
    if not good:
        return {}  # no record of so few had a stage that one of the corruptions applies to
    threshold, accuracy = best_split(good, bad)
    return {"likelihood_threshold": round(threshold, 6), "likelihood_balanced_accuracy": round(accuracy, 4),
            "likelihood_items": len(good), "likelihood_mean_correct": round(sum(good) / len(good), 4),
            "likelihood_mean_wrong": round(sum(bad) / len(bad), 4)}


def main(cfg: CalibrateConfig) -> int:
    from llava_cot import models, records
    from llava_cot.engines.hf import HFEngine
    from llava_cot.synth.generate import SynthConfig, generate

    loaded = models.load(cfg.model, device=cfg.device)
    with tempfile.TemporaryDirectory() as tmp:
        # about 40% of critique items are pointwise stage items: render enough of them
        generate(SynthConfig(out=tmp, n=3 * cfg.limit, split="test", seed=CALIBRATION_SEED, task="judge"))
        critiques = list(records.read(Path(tmp) / "test.jsonl"))
        items = [r for r in critiques if r.extra.get("task") == "verify" and r.extra.get("stage") != "RESPONSE"][: cfg.limit]
        pairs = [r for r in critiques if r.extra.get("task") == "judge"][: cfg.limit]
        engine = HFEngine(loaded)
        result = calibrate(engine, items, Path(tmp))
        if pairs:
            result.update(pairwise(engine, pairs, Path(tmp)))
    with tempfile.TemporaryDirectory() as tmp:  # four-stage records of the same split and seed
        generate(SynthConfig(out=tmp, n=cfg.limit // 2, split="test", seed=CALIBRATION_SEED))
        result.update(likelihood(engine, Path(tmp), cfg.limit // 2))
    out = Path(cfg.out) if cfg.out else Path(loaded.name) / "search.json"
    if not cfg.out and not Path(loaded.name).is_dir():
        raise LlavaCotError(f"{loaded.name} is not a local directory: pass --out for the calibration file")
    result = {"model": loaded.name, "items": len(items), "seed": CALIBRATION_SEED, **result}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0
