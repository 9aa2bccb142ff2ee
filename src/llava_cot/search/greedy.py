"""`greedy`: one answer, the most likely token at every step; the baseline every search beats."""

from __future__ import annotations

from typing import Any

from llava_cot.engines import Engine, Prompt, Sampling
from llava_cot.search import Found, SearchConfig


def greedy(engine: Engine, prompt: Prompt, cfg: SearchConfig, judge: Any = None) -> Found:
    [[out]] = engine.generate([prompt], Sampling(n=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens))
    return Found(prompt.partial + out.text)
