"""Judges: which of several candidates for a stage (or a whole answer) is best.

    judge = load_judge("pairwise")          # or "pointwise", "majority"
    best = judge.pick(engine, prompt, "CAPTION", candidates)

`prompt` is the search's prompt (image, question, the answer so far); `candidates` are texts that
would continue it. Model judges ask the same engine (a model can be its own judge) the questions
of `llava_cot.critique`, with the image, and read the verdict from the log-probabilities of the
answer words: nothing is parsed from generated text, so there is no unparseable verdict to
miscount.

- `pairwise`: the paper's judge. Candidates meet in a knockout; each match asks "which is better,
  1 or 2?" in both orders (or one random order) and sums the log-odds, cancelling position bias.
  A tie (no preference, or certainties in the two orders that cancel) is broken by a seeded coin
  and counted in `ties`, which a search reports in its trace.
- `pointwise`: a verifier. Each candidate's score is P("yes") / (P("yes") + P("no")) for "is it
  correct?"; the highest wins. Its scores are what SWIRES thresholds.
- `likelihood`: no judge prompt; each candidate's score is the model's probability of its least
  likely token (teacher-forced). The highest wins; SWIRES thresholds these scores too.
- `majority`: no model; the candidate whose answer is most common (self-consistency).

Every judge counts its model calls in `calls`, and after each `pick` keeps in `last` what it
weighed each candidate by, for a search's trace: {"candidates": [{"score": s} | {"wins": n} |
{"votes": n}, ...]} in the candidates' order, and for pairwise the matches too. A model judge
built with `engine=` asks that engine instead of the search's: the judge is then another model
than the one answering (the reference SWIRES scored with a separate reward model).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from llava_cot import answers, critique, stages
from llava_cot.engines import Engine, Prompt
from llava_cot.errors import LlavaCotError


def stage_text(candidate: str, stage: str) -> str:
    """What a judge reads of a candidate: the stage's own text (the whole answer for WHOLE)."""
    if stage == critique.WHOLE:
        return candidate.strip()
    return stages.parse(candidate).stages.get(stage) or stages.untag(candidate).strip()


def _previous(prompt: Prompt, stage: str) -> dict[str, str]:
    if stage == critique.WHOLE:
        return {}
    return {s: t for s, t in stages.parse(prompt.partial).stages.items() if s != stage}


def answer_key(answer: str) -> str:
    """What two answers share when they agree: an option letter, a number, or normalised text."""
    bare = answer.strip().strip(".()")
    if len(bare) == 1 and bare.isalpha():
        return bare.upper()
    number = answers.extract_number(answer)
    return f"#{number:g}" if number is not None else answers.normalize_text(answer)


class Judge(Protocol):
    calls: int

    def pick(self, engine: Engine, prompt: Prompt, stage: str, candidates: Sequence[str]) -> int: ...


class PairwiseJudge:
    def __init__(self, orders: str = "both", seed: int = 0, engine: Engine | None = None) -> None:
        if orders not in ("both", "random"):
            raise LlavaCotError(f"pairwise judge orders must be 'both' or 'random', not {orders!r}")
        self.orders = orders
        self.rng = random.Random(seed)
        self.coin = random.Random(seed)  # apart from the orders' draws, so ties do not shift them
        self.engine = engine  # its own model, or None: the search's
        self.calls = 0
        self.ties = 0

    def ask(self, engine: Engine, questions: Sequence[Prompt]) -> list[float]:
        """The log-odds of "1" over "2" as the answer to each pairwise question, all in one call:
        0 when neither is among the answers at all (a vote for neither), infinite when only one is."""
        verdicts = (engine if self.engine is None else self.engine).choice_logprobs(questions, critique.PAIR_CHOICES)
        self.calls += len(questions)
        return [0.0 if math.isinf(one) and math.isinf(two) else one - two for one, two in verdicts]

    def log_odds(self, engine: Engine, prompt: Prompt, stage: str, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """For each pair (a, b), the log-odds that a is better than b (positive: a). All the
        questions go to the engine in one call. NaN when the orders are certain both ways (a
        server whose top tokens hold "1" only, whatever the order): see `prefers_first`."""
        previous = _previous(prompt, stage)
        questions, owners = [], []
        for k, (a, b) in enumerate(pairs):
            ta, tb = stage_text(a, stage), stage_text(b, stage)
            orders = [(ta, tb, 1.0), (tb, ta, -1.0)]
            for first, second, sign in orders if self.orders == "both" else [self.rng.choice(orders)]:
                questions.append(Prompt(prompt.image, critique.pairwise(prompt.question, previous, stage, first, second)))
                owners.append((k, sign))
        totals = [0.0] * len(pairs)
        for odds, (k, sign) in zip(self.ask(engine, questions), owners, strict=True):
            totals[k] += sign * odds
        return totals

    def prefers_first(self, odds: float) -> bool:
        """Whether log-odds `odds` make the first of two candidates the winner. A tie (0, or NaN:
        +inf in one order and -inf in the other, which says only which place the judge favours)
        is decided by a seeded coin, not by who came first, and counted in `ties`."""
        if odds > 0 or odds < 0:
            return odds > 0
        self.ties += 1
        return self.coin.random() < 0.5

    def pick(self, engine: Engine, prompt: Prompt, stage: str, candidates: Sequence[str]) -> int:
        """A knockout: winners advance in pairs, each round's matches judged in one batch; an
        odd one out gets a bye; a tie is decided by the coin. `last` keeps each candidate's wins
        and every match (its log-odds for the first, None when not finite; the winner; a tie)."""
        pool = list(range(len(candidates)))
        wins, matches = [0] * len(candidates), []
        while len(pool) > 1:
            pairs = [(pool[i], pool[i + 1]) for i in range(0, len(pool) - 1, 2)]
            odds = self.log_odds(engine, prompt, stage, [(candidates[a], candidates[b]) for a, b in pairs])
            winners = []
            for (a, b), o in zip(pairs, odds, strict=True):
                tie = not (o > 0 or o < 0)
                winners.append(a if self.prefers_first(o) else b)
                wins[winners[-1]] += 1
                matches.append({"pair": [a, b], "log_odds": round(o, 3) if math.isfinite(o) else None,
                                "winner": winners[-1], "tie": tie})
            pool = winners + pool[2 * len(pairs):]
        self.last = {"candidates": [{"wins": w} for w in wins], "matches": matches}
        return pool[0]


class _Scoring:
    """A judge that scores each candidate on its own (`scores`): the highest wins, a tie the earlier."""

    def scores(self, engine: Engine, prompt: Prompt, stage: str, candidates: Sequence[str]) -> list[float]:
        raise NotImplementedError

    def pick(self, engine: Engine, prompt: Prompt, stage: str, candidates: Sequence[str]) -> int:
        scores = self.scores(engine, prompt, stage, candidates)
        self.last = {"candidates": [{"score": float(f"{s:.4g}")} for s in scores]}  # 4 figures: likelihoods are tiny
        return max(range(len(candidates)), key=lambda i: (scores[i], -i))


class PointwiseJudge(_Scoring):
    threshold_key = "swires_threshold"  # in search.json
    uncalibrated = 0.5  # the verifier's own boundary (yes as likely as no)

    def __init__(self, engine: Engine | None = None) -> None:
        self.calls = 0
        self.engine = engine  # its own model, or None: the search's

    def scores(self, engine: Engine, prompt: Prompt, stage: str, candidates: Sequence[str]) -> list[float]:
        """P(correct) for each candidate, from the verifier's yes/no log-probabilities."""
        previous = _previous(prompt, stage)
        return self.ask(engine, [Prompt(prompt.image, critique.pointwise(prompt.question, previous, stage,
                                                                         stage_text(c, stage))) for c in candidates])

    def ask(self, engine: Engine, questions: Sequence[Prompt]) -> list[float]:
        """P("yes") / (P("yes") + P("no")) as the answer to each verifier question, in one call."""
        verdicts = (engine if self.engine is None else self.engine).choice_logprobs(questions, critique.VERDICT_CHOICES)
        self.calls += len(questions)
        # no verdict at all (neither word among a server's top tokens) says nothing either way
        return [0.5 if math.isinf(yes) and math.isinf(no) else 1.0 / (1.0 + math.exp(no - yes)) for yes, no in verdicts]


class LikelihoodJudge(_Scoring):
    """The model's own confidence, with no judge prompt: a candidate's score is the probability
    of its least likely token, given the image, the question and the answer so far (teacher-
    forced, every candidate in one batched pass; `Engine.token_logprobs`). A stage with a wrong
    colour or an arithmetic slip has a token the model would not have written; a model that
    perceives and counts well when it writes can then check by the same skill. Its scores are
    what SWIRES thresholds, calibrated apart from the verifier's (`llava-cot calibrate`)."""

    threshold_key = "likelihood_threshold"  # in search.json
    uncalibrated = 0.05  # a token the model gives less than 5% counts as a doubt, when nothing better is known

    def __init__(self, engine: Engine | None = None) -> None:
        self.calls = 0
        self.engine = engine  # its own model, or None: the search's

    def scores(self, engine: Engine, prompt: Prompt, stage: str, candidates: Sequence[str]) -> list[float]:
        engine = engine if self.engine is None else self.engine
        score = getattr(engine, "token_logprobs", None)
        if score is None:
            raise LlavaCotError(f"the likelihood judge needs an engine that scores text; {type(engine).__name__} "
                                "does not (use the hf engine)")
        logps = score(prompt, candidates)
        self.calls += len(candidates)
        return [math.exp(min(lp)) if lp else 0.0 for lp in logps]


class MajorityJudge:
    """The most common answer wins (the first candidate giving it); for a stage other than the
    conclusion, the most common text."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.calls = 0  # it asks no model: an engine given is not used
        self.engine = engine

    def pick(self, engine: Engine, prompt: Prompt, stage: str, candidates: Sequence[str]) -> int:
        def key(c: str) -> str:
            if stage in (critique.WHOLE, "CONCLUSION"):
                return answer_key(stages.answer_text(c if stage == critique.WHOLE else prompt.partial + c))
            return " ".join(stage_text(c, stage).split())

        keys = [key(c) for c in candidates]
        votes = Counter(keys)
        self.last = {"candidates": [{"votes": votes[k]} for k in keys]}
        return keys.index(votes.most_common(1)[0][0])


JUDGES: dict[str, Any] = {"pairwise": PairwiseJudge, "pointwise": PointwiseJudge, "likelihood": LikelihoodJudge,
                          "majority": MajorityJudge}


def load_judge(name: str, **options: Any) -> Judge:
    try:
        return JUDGES[name](**options)
    except KeyError:
        raise LlavaCotError(f"unknown judge {name!r}; choose one of {', '.join(JUDGES)}") from None
