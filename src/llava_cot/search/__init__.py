"""Searches: spending more inference compute for a better answer.

Every search is one function with one signature, chosen by name from SEARCHES:

    search(engine, prompt, config, judge) -> Found

`engine` continues prompts (llava_cot.engines), `prompt` is the image and question, `config` a
SearchConfig, `judge` picks among candidates (llava_cot.judges). `run` wraps a search with the
cost accounting every caller wants:

    from llava_cot.search import SearchConfig, run
    result = run("stage_beam", engine, Prompt(image, question), SearchConfig(beam=4))
    result.answer, result.cost   # tokens generated, forward passes, judge calls, seconds
    result.trace                 # what it weighed: candidates, scores or verdicts, choices, retraces

| name | what it does |
| --- | --- |
| greedy | one greedy answer |
| best_of_n | N sampled answers, the judge picks one |
| sentence_beam | sentence by sentence: N sampled sentences, the judge keeps one (the paper's baseline) |
| stage_beam | stage by stage: N sampled stages, a pairwise knockout keeps one (the paper) |
| swires | stage by stage with verifier scores, retracing to the previous stage when a stage's best score is too low |
| self_consistency | N sampled answers, the most common conclusion wins |

The trace (`Found.trace`, `Result.trace`; "trace" in `ask --json`, the server's response and the
demo) is a list of plain dicts, one per choice the search made, in the order it made them:

    {"stage": "CAPTION",                    # the stage chosen for; RESPONSE for a whole answer
     "step": 3,                             # sentence_beam only: which sentence
     "candidates": [{"text": ..., "score": 0.91 | "wins": 2 | "votes": 3, "chosen": True}, ...],
     "matches": [{"pair": [0, 1], "log_odds": 1.2, "winner": 0, "tie": False}],  # pairwise
     "retrace": False}                      # SWIRES went back from here (its best scored too low)

A candidate carries what the judge weighed it by (a verifier's or likelihood score, its wins in a
pairwise knockout, the votes for its answer); none of them when there was nothing to choose
between. A step with no chosen candidate was rejected (SWIRES: under the threshold). greedy
makes no choice: its trace is empty.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Any

from llava_cot import stages
from llava_cot.engines import Completion, Engine, Prompt, Sampling
from llava_cot.errors import LlavaCotError

SEARCHES: dict[str, str] = {
    "greedy": "llava_cot.search.greedy:greedy",
    "best_of_n": "llava_cot.search.best_of_n:best_of_n",
    "sentence_beam": "llava_cot.search.sentence_beam:sentence_beam",
    "stage_beam": "llava_cot.search.stage_beam:stage_beam",
    "swires": "llava_cot.search.swires:swires",
    "self_consistency": "llava_cot.search.self_consistency:self_consistency",
}
# The judge each search uses unless told otherwise.
DEFAULT_JUDGE: dict[str, str | None] = {
    "greedy": None, "best_of_n": "pairwise", "sentence_beam": "pairwise", "stage_beam": "pairwise",
    "swires": "pointwise", "self_consistency": "majority",
}


@dataclass
class SearchConfig:
    beam: int = 4  # candidates sampled per step (N)
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 1536  # the whole answer's budget
    step_tokens: int = 768  # one step's budget (a stage, a sentence)
    seed: int = 0
    # SWIRES: candidates sampled per stage (default: beam for each), kept per stage, the verifier
    # score under which it retraces (None: the model's calibrated value), and how often at most
    widths: tuple[int, ...] | None = None
    keep: int = 2
    threshold: float | None = None
    retraces: int = 2
    judge: str | None = None  # the judge's name (llava_cot.judges); None: the search's own (DEFAULT_JUDGE)

    def __post_init__(self) -> None:
        if self.beam < 1 or self.keep < 1 or self.max_new_tokens < 1 or self.step_tokens < 1:
            raise LlavaCotError("--beam, keep and token budgets must be at least 1")
        if self.widths is not None and (len(self.widths) != len(stages.STAGES) or min(self.widths) < 1):
            raise LlavaCotError(f"widths need one positive number per stage ({len(stages.STAGES)})")


@dataclass
class Found:
    text: str
    notes: dict[str, Any] = field(default_factory=dict)  # search-specific facts (retraces, ...)
    trace: list[dict[str, Any]] = field(default_factory=list)  # what it weighed (the module docstring)


@dataclass
class Result:
    name: str
    text: str
    tokens_generated: int
    forward_passes: int
    judge_calls: int
    seconds: float
    notes: dict[str, Any] = field(default_factory=dict)
    trace: list[dict[str, Any]] = field(default_factory=list)  # Found.trace

    @property
    def answer(self) -> str:
        return stages.answer_text(self.text)

    @property
    def stages(self) -> dict[str, str]:
        parsed = stages.parse(self.text).stages
        return {s: parsed.get(s, "") for s in stages.STAGES}

    @property
    def format_ok(self) -> bool:
        return stages.parse(self.text).ok

    def cost(self) -> dict[str, Any]:
        return {"name": self.name, "tokens_generated": self.tokens_generated, "forward_passes": self.forward_passes,
                "judge_calls": self.judge_calls, "seconds": round(self.seconds, 3), **self.notes}


def sample(engine: Engine, prompt: Prompt, cfg: SearchConfig, n: int, stop: tuple[str, ...],
           budget: int, seed: int) -> list[Completion]:
    """N candidate continuations of `prompt` for one step, sampled at the config's temperature."""
    sampling = Sampling(n=n, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=max(1, budget),
                        stop=stop, seed=seed)
    return engine.generate([prompt], sampling)[0]


def distinct(candidates: list[Completion]) -> list[Completion]:
    """The candidates with duplicate texts removed (a judge need not compare a text with itself)."""
    seen: dict[str, Completion] = {}
    for c in candidates:
        seen.setdefault(c.text, c)
    return list(seen.values())


def weigh(judge: Any, engine: Engine, prompt: Prompt, stage: str,
          candidates: list[Completion]) -> tuple[int, dict[str, Any]]:
    """The judge's pick among `candidates` for `stage`, and the trace step that shows it."""
    best, weighed = 0, [{} for _ in candidates]
    last: dict[str, Any] = {}
    if len(candidates) > 1:  # one candidate: nothing to judge, no judge call
        best = judge.pick(engine, prompt, stage, [c.text for c in candidates])
        last = getattr(judge, "last", None) or {}
        weighed = last.get("candidates") or weighed
    step = {"stage": stage, "candidates": [{"text": c.text, **w, "chosen": k == best}
                                           for k, (c, w) in enumerate(zip(candidates, weighed, strict=True))],
            "retrace": False}
    if last.get("matches"):
        step["matches"] = last["matches"]
    return best, step


def finished(text: str) -> bool:
    """Whether an answer is over: its last stage is closed."""
    parsed = stages.parse(text)
    return stages.STAGES[-1] in parsed.stages and parsed.complete


def load_search(name: str) -> Any:
    try:
        module, fn = SEARCHES[name].split(":")
    except KeyError:
        raise LlavaCotError(f"unknown search {name!r}; choose one of {', '.join(SEARCHES)}") from None
    return getattr(importlib.import_module(module), fn)


def run(name: str, engine: Engine, prompt: Prompt, cfg: SearchConfig | None = None, judge: Any = None,
        judge_engine: Engine | None = None) -> Result:
    """Run the search `name` and account for what it cost. Its judge asks `judge_engine` when
    one is given (another model than the one answering), else `engine`."""
    from llava_cot.judges import load_judge

    search = load_search(name)
    cfg = cfg or SearchConfig()
    if judge is None and DEFAULT_JUDGE[name] is not None:
        judge = load_judge(cfg.judge or DEFAULT_JUDGE[name], engine=judge_engine)
    before, calls, ties = engine.cost.copy(), getattr(judge, "calls", 0), getattr(judge, "ties", None)
    t0 = time.perf_counter()
    found = search(engine, prompt, cfg, judge)
    seconds = time.perf_counter() - t0
    spent = engine.cost - before
    notes = found.notes if ties is None else {**found.notes, "ties": judge.ties - ties}  # decided by the judge's coin
    return Result(name, found.text, spent.tokens_generated, spent.forward_passes,
                  getattr(judge, "calls", 0) - calls, seconds, notes, found.trace)
