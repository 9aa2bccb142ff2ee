"""`self_consistency`: N whole answers sampled in one batch; the most common conclusion wins
(the first answer that gives it is returned). Needs no judge model."""

from __future__ import annotations

from typing import Any

from llava_cot import critique
from llava_cot.engines import Engine, Prompt
from llava_cot.judges import MajorityJudge
from llava_cot.search import Found, SearchConfig, sample, weigh


def self_consistency(engine: Engine, prompt: Prompt, cfg: SearchConfig, judge: Any = None) -> Found:
    judge = judge or MajorityJudge()
    candidates = sample(engine, prompt, cfg, cfg.beam, (), cfg.max_new_tokens, cfg.seed)
    best, step = weigh(judge, engine, prompt, critique.WHOLE, candidates)
    return Found(prompt.partial + candidates[best].text, {"candidates": len(candidates)}, [step])
