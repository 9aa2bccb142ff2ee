"""`stage_beam`: the paper's stage-level beam search. For each stage in turn, N candidates for that
stage are sampled in one batch (each stops at the stage's closing tag), the judge keeps one
(by default a pairwise knockout on that stage's criteria), and the next stage continues it.

The prompt's prefix (image, question, the stages kept so far) is encoded once per stage and
shared by the N candidates and, through the engine's prefix cache, by the next stage.
"""

from __future__ import annotations

from dataclasses import replace

from llava_cot import stages
from llava_cot.engines import Engine, Prompt
from llava_cot.judges import Judge
from llava_cot.search import Found, SearchConfig, distinct, finished, sample, weigh


def stage_beam(engine: Engine, prompt: Prompt, cfg: SearchConfig, judge: Judge) -> Found:
    text, used, sampled, trace = prompt.partial, 0, 0, []
    for k, stage in enumerate(stages.STAGES):
        if stage in stages.parse(text).stages or used >= cfg.max_new_tokens:
            continue  # given in the prompt already, or out of budget
        here = replace(prompt, partial=text)
        budget = min(cfg.step_tokens, cfg.max_new_tokens - used)
        candidates = distinct(sample(engine, here, cfg, cfg.beam, (stages.close_tag(stage),), budget, cfg.seed + k))
        sampled += len(candidates)
        best, step = weigh(judge, engine, here, stage, candidates)
        trace.append(step)
        text += candidates[best].text
        used += candidates[best].tokens
        if candidates[best].finish == "end" or finished(text):
            break
    return Found(text, {"candidates": sampled}, trace)
