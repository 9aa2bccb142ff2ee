"""`swires`: stage-wise retracing search (the later LLaVA-CoT paper's SWIRES).

Stage by stage: sample `widths[stage]` candidates in one batch, score each with a pointwise
verifier (P(correct)), keep the best `keep`. Continue from the best kept candidate, unless its
score is under the threshold: then retrace, dropping the previous stage's choice and redoing
that stage with its next kept candidate, at most `retraces` times in all. A redone stage whose
kept runner-up scores under the threshold too is sampled afresh; only if the fresh sample fails
as well does the search walk further back (otherwise one bad stage would trade every good one
before it for its runner-up, and spend the retraces doing so). At the first stage a low score
means resampling it. Each stage's token budget is what the stages kept so far left of
`max_new_tokens`: dropped candidates spent nothing of it.

The threshold is calibrated, not guessed: `calibrate` finds the verifier score that best tells
correct stages from corrupted ones on synthetic items, and writes it beside the model
(`search.json`); SearchConfig(threshold=...) overrides it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llava_cot import stages
from llava_cot.engines import Completion, Engine, Prompt
from llava_cot.errors import LlavaCotError
from llava_cot.search import Found, SearchConfig, distinct, sample

CALIBRATION_FILE = "search.json"
UNCALIBRATED = 0.5  # the verifier's own boundary (yes as likely as no), when nothing better is known


def threshold_for(engine: Engine, cfg: SearchConfig, judge: Any = None) -> tuple[float, str]:
    """The threshold to use for `judge`'s scores (default: the verifier's) and where it came from."""
    if cfg.threshold is not None:
        return cfg.threshold, "config"
    key = getattr(judge, "threshold_key", "swires_threshold")
    # the judge's own model's calibration when it has one (another model than the one answering)
    model_dir = getattr(getattr(judge, "engine", None) or engine, "model_dir", None)
    path = Path(model_dir) / CALIBRATION_FILE if model_dir else None
    if path is not None and path.is_file() and key in (saved := json.loads(path.read_text())):
        return float(saved[key]), str(path)
    return getattr(judge, "uncalibrated", UNCALIBRATED), "uncalibrated"


def swires(engine: Engine, prompt: Prompt, cfg: SearchConfig, judge: Any) -> Found:
    if not hasattr(judge, "scores"):
        raise LlavaCotError(f"swires needs a judge that scores each candidate (pointwise, likelihood), "
                            f"not {type(judge).__name__}")
    threshold, source = threshold_for(engine, cfg, judge)
    todo = [s for s in stages.STAGES if s not in stages.parse(prompt.partial).stages]
    widths = cfg.widths or (cfg.beam,) * len(stages.STAGES)
    pools: list[list[tuple[float, Completion]] | None] = [None] * len(todo)
    draws = [0] * len(todo)
    redo = [False] * len(todo)  # the stage is being redone because the one after it failed
    chosen: list[Completion] = []
    i, retraces, trace = 0, 0, []
    while i < len(todo):
        stage = todo[i]
        del chosen[i:]
        text = prompt.partial + "".join(c.text for c in chosen)
        here = dataclasses.replace(prompt, partial=text)  # the earlier turns and system message kept
        fresh = not pools[i]
        if fresh:
            k = stages.STAGES.index(stage)
            budget = min(cfg.step_tokens, cfg.max_new_tokens - sum(c.tokens for c in chosen))
            seed = cfg.seed + 1000 * draws[i] + k
            draws[i] += 1
            candidates = distinct(sample(engine, here, cfg, widths[k], (stages.close_tag(stage),), budget, seed))
            scores = judge.scores(engine, here, stage, [c.text for c in candidates])
            ranked = sorted(zip(scores, candidates, strict=True), key=lambda sc: -sc[0])
            pools[i] = ranked[:cfg.keep]
        # the trace: every candidate of a fresh sample, best first, or the kept ones left on a revisit
        trace.append({"stage": stage, "candidates": [{"text": c.text, "score": float(f"{sc:.4g}"), "chosen": False}
                                                     for sc, c in (ranked if fresh else pools[i])], "retrace": False})
        score, best = pools[i][0]
        if score < threshold and retraces < cfg.retraces:
            pools[i] = None
            if redo[i] and not fresh:
                continue  # a weak runner-up of a stage being redone: sample it afresh, not walk back
            retraces += 1
            trace[-1]["retrace"] = True
            if i > 0:  # back to the previous stage: its next kept candidate, or a new sample
                i -= 1
                pools[i] = pools[i][1:] or None
                redo[i] = True
            continue
        chosen.append(best)
        trace[-1]["candidates"][0]["chosen"] = True
        redo[i] = False
        i += 1
        if best.finish == "end" or sum(c.tokens for c in chosen) >= cfg.max_new_tokens:
            break
    text = prompt.partial + "".join(c.text for c in chosen)
    return Found(text, {"retraces": retraces, "threshold": round(threshold, 4), "threshold_from": source}, trace)


def best_split(good: Sequence[float], bad: Sequence[float]) -> tuple[float, float]:
    """The threshold that best separates scores of correct (`good`) from wrong (`bad`) stages:
    maximises balanced accuracy (a score >= threshold counts as correct). Returns (threshold,
    balanced accuracy)."""
    if not good or not bad:
        raise ValueError("calibration needs scores of both correct and wrong stages")
    values = sorted(set(good) | set(bad))
    cuts = [values[0]] + [(a + b) / 2 for a, b in itertools.pairwise(values)] + [values[-1] + 1e-9]
    best = (0.0, UNCALIBRATED)
    for t in cuts:
        acc = (sum(g >= t for g in good) / len(good) + sum(b < t for b in bad) / len(bad)) / 2
        if acc > best[0]:
            best = (acc, t)
    return best[1], best[0]
