"""Judges pick by the verdict's log-probabilities: the preferred candidate wins a knockout,
position bias cancels when both orders are asked, and every question is counted."""

import math
import re

import pytest

from llava_cot import critique
from llava_cot.engines import Cost, Prompt
from llava_cot.errors import LlavaCotError
from llava_cot.judges import (
    LikelihoodJudge,
    MajorityJudge,
    PairwiseJudge,
    PointwiseJudge,
    answer_key,
    load_judge,
)


class ScriptedJudgeModel:
    """An engine whose verdicts follow a known rule: a candidate's quality is the number after
    "q=" in its text; "1" gets `bias` extra log-odds whatever the content. Lets the tests check
    the judges' logic against an answer known in advance."""

    def __init__(self, bias=0.0):
        self.bias, self.cost, self.prompts = bias, Cost(), []

    def generate(self, prompts, sampling):
        raise AssertionError("judges must not generate text")

    def choice_logprobs(self, prompts, choices):
        self.prompts.extend(prompts)
        out = []
        for p in prompts:
            if choices == list(critique.PAIR_CHOICES) or tuple(choices) == critique.PAIR_CHOICES:
                a, b = (float(x) for x in re.findall(r"Candidate \d: q=([\d.]+)", p.question))
                odds = a - b + self.bias
                out.append([-math.log1p(math.exp(-odds)), -math.log1p(math.exp(odds))])
            else:
                (q,) = (float(x) for x in re.findall(r"stage: q=([\d.]+)", p.question))
                out.append([math.log(q), math.log(1 - q)] if 0 < q < 1 else [float("-inf"), float("-inf")])
        return out


PROMPT = Prompt(None, "How many cubes?", "")
CANDIDATES = [f"q={q}" for q in (0.2, 0.9, 0.5, 0.1, 0.3)]


@pytest.mark.parametrize("bias", [0.0, 0.5])
def test_pairwise_knockout_picks_the_preferred_candidate(bias):
    model, judge = ScriptedJudgeModel(bias), PairwiseJudge()
    assert judge.pick(model, PROMPT, "CAPTION", CANDIDATES) == 1
    # 5 candidates: rounds of 2, 1 and 1 matches, each asked in both orders
    assert judge.calls == len(model.prompts) == 2 * (2 + 1 + 1)


def test_both_orders_cancel_position_bias():
    model = ScriptedJudgeModel(bias=3.0)  # "1" always looks far better
    judge = PairwiseJudge()
    assert judge.log_odds(model, PROMPT, "CAPTION", [("q=0.5", "q=0.5")]) == [pytest.approx(0.0)]
    assert judge.log_odds(model, PROMPT, "CAPTION", [("q=0.6", "q=0.5")])[0] == pytest.approx(0.2)
    one_order = PairwiseJudge(orders="random", seed=0)
    assert abs(one_order.log_odds(model, PROMPT, "CAPTION", [("q=0.5", "q=0.5")])[0]) == pytest.approx(3.0)
    assert one_order.calls == 1


class AlwaysOne:
    """A judge served remotely with total position bias: "1" is its only top answer, whatever the
    order ("2" is not among the server's top tokens: log-probability -inf)."""

    def __init__(self):
        self.cost = Cost()

    def choice_logprobs(self, prompts, choices):
        return [[-0.01, float("-inf")] for _ in prompts]


def test_a_tie_is_broken_by_a_seeded_coin_and_counted():
    # Certain of "1" in both orders: the log-odds are +inf for a, then -inf for b; they cancel,
    # they do not make a NaN that the second candidate wins.
    picks = []
    for seed in range(16):
        judge = PairwiseJudge(seed=seed)
        picks.append(judge.pick(AlwaysOne(), PROMPT, "CAPTION", ["a", "b"]))
        assert judge.ties == 1
    assert 3 <= picks.count(0) <= 13
    assert picks == [PairwiseJudge(seed=seed).pick(AlwaysOne(), PROMPT, "CAPTION", ["a", "b"]) for seed in range(16)]
    # equal candidates tie too (exactly cancelling log-odds), and the earlier is not always kept
    equal = [PairwiseJudge(seed=seed).pick(ScriptedJudgeModel(), PROMPT, "CAPTION", ["q=0.5", "q=0.5"])
             for seed in range(16)]
    assert set(equal) == {0, 1}
    # a preference is no tie
    judge = PairwiseJudge(seed=0)
    assert judge.pick(ScriptedJudgeModel(bias=3.0), PROMPT, "CAPTION", CANDIDATES) == 1 and judge.ties == 0


def test_a_judge_question_carries_the_stage_criteria_and_context():
    model = ScriptedJudgeModel()
    partial = "<SUMMARY> count the cubes </SUMMARY>"
    PairwiseJudge().pick(model, Prompt(None, "How many cubes?", partial), "CAPTION", ["q=0.1", "q=0.2"])
    text = model.prompts[0].question
    assert critique.CRITERIA["CAPTION"] in text and "count the cubes" in text and "How many cubes?" in text


def test_pointwise_scores_are_probabilities_and_the_best_wins():
    model, judge = ScriptedJudgeModel(), PointwiseJudge()
    texts = ["q=0.2", "q=0.9", "q=0.5"]
    prompt = Prompt(None, "How many cubes?")
    scores = judge.scores(model, prompt, "REASONING", texts)
    assert scores == pytest.approx([0.2, 0.9, 0.5])
    assert judge.pick(model, prompt, "REASONING", texts) == 1
    assert judge.calls == 6


def test_no_verdict_counts_for_nothing():
    model = ScriptedJudgeModel()
    assert PointwiseJudge().scores(model, PROMPT, "REASONING", ["q=1"]) == [0.5]


class ScoringModel:
    """An engine that scores text: each word "pN" of a candidate is a token of probability N/10."""

    def __init__(self):
        self.cost = Cost()

    def token_logprobs(self, prompt, texts):
        return [[math.log(int(w[1:]) / 10) for w in t.split()] for t in texts]


def test_likelihood_scores_the_least_likely_token_and_the_best_wins():
    judge = load_judge("likelihood")
    texts = ["p9 p9 p2 p9", "p6 p7 p6", "p9 p1", ""]
    scores = judge.scores(ScoringModel(), PROMPT, "CAPTION", texts)
    assert scores == pytest.approx([0.2, 0.6, 0.1, 0.0])
    assert judge.pick(ScoringModel(), PROMPT, "CAPTION", texts) == 1 and judge.calls == 8


def test_likelihood_needs_an_engine_that_scores_text():
    with pytest.raises(LlavaCotError, match="scores text"):
        LikelihoodJudge().scores(ScriptedJudgeModel(), PROMPT, "CAPTION", ["a"])


def test_majority_picks_the_most_common_answer():
    from llava_cot import stages

    def answer(a):
        return stages.render({"SUMMARY": "s", "CAPTION": "c", "REASONING": "r", "CONCLUSION": a})

    texts = [answer("2"), answer("three"), answer("There are 3 objects."), answer("2 objects"), answer("3")]
    judge = MajorityJudge()
    assert judge.pick(None, PROMPT, critique.WHOLE, texts) == 1
    assert judge.calls == 0


@pytest.mark.parametrize("text,key", [("B", "B"), ("(b)", "B"), ("3", "#3"), ("three objects", "#3"),
                                      ("2.50", "#2.5"), ("The cube.", "cube")])
def test_answer_keys(text, key):
    assert answer_key(text) == key


def test_unknown_judge_is_a_user_error():
    with pytest.raises(LlavaCotError, match="unknown judge"):
        load_judge("oracle")
