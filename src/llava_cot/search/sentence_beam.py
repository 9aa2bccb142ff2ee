"""`sentence_beam`: the paper's sentence-level baseline. N candidates for the next sentence are
sampled in one batch (each stops at a sentence end or a stage's closing tag); the judge keeps one,
on the criteria of the stage the sentence belongs to; repeat until the answer is over."""

from __future__ import annotations

from dataclasses import replace

from llava_cot import stages
from llava_cot.engines import Engine, Prompt
from llava_cot.judges import Judge
from llava_cot.search import Found, SearchConfig, distinct, finished, sample, weigh

# A step ends at the end mark itself: stopping after the following space would leave the prompt
# ending in a bare space, a token boundary the model never saw in training.
SENTENCE_ENDS = (".", "?", "!")


def _stage_of(text: str) -> str:
    """The stage a continuation of `text` is in (the first one before any tag is written)."""
    parsed = stages.parse(text).stages
    if not parsed:
        return stages.STAGES[0]
    last = list(parsed)[-1]
    return last if not stages.parse(text).complete else (stages.next_stage(last) or last)


def sentence_beam(engine: Engine, prompt: Prompt, cfg: SearchConfig, judge: Judge) -> Found:
    stops = SENTENCE_ENDS + tuple(stages.close_tag(s) for s in stages.STAGES)
    text, used, step, trace = prompt.partial, 0, 0, []
    while used < cfg.max_new_tokens and not finished(text):
        here = replace(prompt, partial=text)
        budget = min(cfg.step_tokens, cfg.max_new_tokens - used)
        candidates = distinct(sample(engine, here, cfg, cfg.beam, stops, budget, cfg.seed + step))
        stage = _stage_of(text + candidates[0].text)
        best, weighed = weigh(judge, engine, here, stage, candidates)
        trace.append({"step": step, **weighed})
        text += candidates[best].text
        used += candidates[best].tokens
        step += 1
        if candidates[best].finish == "end":
            break
    return Found(text, {"steps": step}, trace)
