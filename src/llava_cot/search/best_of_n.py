"""`best_of_n`: N whole answers sampled in one batch; the judge picks one, judging whole answers."""

from __future__ import annotations

from llava_cot import critique
from llava_cot.engines import Engine, Prompt
from llava_cot.judges import Judge
from llava_cot.search import Found, SearchConfig, distinct, sample, weigh


def best_of_n(engine: Engine, prompt: Prompt, cfg: SearchConfig, judge: Judge) -> Found:
    candidates = distinct(sample(engine, prompt, cfg, cfg.beam, (), cfg.max_new_tokens, cfg.seed))
    best, step = weigh(judge, engine, prompt, critique.WHOLE, candidates)
    return Found(prompt.partial + candidates[best].text, {"candidates": len(candidates)}, [step])
