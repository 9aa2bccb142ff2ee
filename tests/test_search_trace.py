"""Searches return what they weighed beside the answer (the trace of llava_cot.search): each step's
candidates with the judge's scores, wins or votes, the chosen one marked, the retraces where they
happened; `ask --json` carries it. On the embedded model."""

import json
from pathlib import Path

import pytest

from llava_cot import models, stages
from llava_cot.ask import ask
from llava_cot.cli import main
from llava_cot.critique import WHOLE
from llava_cot.engines import Prompt
from llava_cot.engines.hf import HFEngine
from llava_cot.search import SearchConfig, run

SCENE = Path(__file__).resolve().parents[1] / "examples" / "scene1.png"
QUESTION = "How many circles are there?"
CFG = SearchConfig(beam=2, step_tokens=256, max_new_tokens=768)


@pytest.fixture(scope="module")
def engine():
    return HFEngine(models.load(None, device="cpu", dtype="float32"))


@pytest.fixture(scope="module")
def prompt():
    return Prompt(models.open_image(SCENE), QUESTION)


def chosen(step):
    [c] = [c for c in step["candidates"] if c["chosen"]]
    return c


def test_stage_beam_trace_shows_each_stage_its_candidates_wins_and_choice(engine, prompt):
    result = run("stage_beam", engine, prompt, CFG)
    trace = result.trace
    assert [s["stage"] for s in trace] == list(stages.STAGES)
    # the answer is the chosen candidates, in order
    assert "".join(chosen(s)["text"] for s in trace) == result.text
    assert sum(len(s["candidates"]) for s in trace) == result.notes["candidates"]
    judged = [s for s in trace if len(s["candidates"]) > 1]
    assert judged, "beam 2 gave one distinct candidate at every stage: nothing was weighed"
    for s in judged:
        wins = [c["wins"] for c in s["candidates"]]
        assert chosen(s)["wins"] == max(wins) >= 1  # a knockout's champion
        assert all(m["winner"] in m["pair"] for m in s["matches"])
        assert s["candidates"][s["matches"][-1]["winner"]]["chosen"]
        assert not s["retrace"]
    # each match asked in both orders: the judge calls are the matches, twice
    assert result.judge_calls == 2 * sum(len(s["matches"]) for s in judged)
    json.dumps(trace, allow_nan=False)  # plain data, valid JSON


def test_swires_trace_marks_where_it_retraced_and_ranks_by_score(engine, prompt):
    result = run("swires", engine, prompt, SearchConfig(beam=2, threshold=1.01, retraces=2, step_tokens=256))
    trace = result.trace
    assert sum(s["retrace"] for s in trace) == result.notes["retraces"] == 2
    for s in trace:
        scores = [c["score"] for c in s["candidates"]]
        assert scores == sorted(scores, reverse=True) and all(0 <= x <= 1 for x in scores)
        assert not (s["retrace"] and any(c["chosen"] for c in s["candidates"]))  # a retraced step keeps nothing
    # what was kept in the end: for each stage, its last chosen candidate
    last = {s["stage"]: chosen(s)["text"] for s in trace if any(c["chosen"] for c in s["candidates"])}
    assert "".join(last[s] for s in stages.STAGES) == result.text
    never = run("swires", engine, prompt, SearchConfig(beam=2, threshold=0.0, step_tokens=256))
    assert [s["stage"] for s in never.trace] == list(stages.STAGES)
    assert not any(s["retrace"] for s in never.trace)
    assert all(s["candidates"][0]["chosen"] for s in never.trace)  # the best score is chosen


@pytest.mark.parametrize(("name", "weight"), [("best_of_n", "wins"), ("self_consistency", "votes")])
def test_whole_answer_searches_trace_one_step_of_whole_answers(engine, prompt, name, weight):
    result = run(name, engine, prompt, SearchConfig(beam=3, max_new_tokens=768))
    [step] = result.trace
    assert step["stage"] == WHOLE and len(step["candidates"]) == result.notes["candidates"]
    assert chosen(step)["text"] == result.text
    if len(step["candidates"]) > 1:
        assert chosen(step)[weight] == max(c[weight] for c in step["candidates"])


def test_sentence_beam_trace_numbers_its_steps(engine, prompt):
    result = run("sentence_beam", engine, prompt, SearchConfig(beam=2, step_tokens=64, max_new_tokens=768))
    assert [s["step"] for s in result.trace] == list(range(result.notes["steps"]))
    assert "".join(chosen(s)["text"] for s in result.trace) == result.text
    assert {s["stage"] for s in result.trace} <= set(stages.STAGES)


def test_greedy_weighs_nothing(engine, prompt):
    assert run("greedy", engine, prompt, CFG).trace == []


def test_ask_json_carries_the_trace(engine, prompt, capsys):
    result = ask(prompt.image, QUESTION, engine, 768, search="stage_beam", beam=2)
    assert [s["stage"] for s in result["trace"]] == list(stages.STAGES)
    assert ask(prompt.image, QUESTION, engine, 768)["trace"] == []
    assert main(["ask", "--image", str(SCENE), QUESTION, "--json", "--search", "stage_beam", "--beam", "2",
                 "--max-new-tokens", "768", "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["trace"] == json.loads(json.dumps(result["trace"]))  # the same search, seeded alike
