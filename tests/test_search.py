"""Searches on the embedded tiny model: each returns a four-stage answer, its cost adds up, and
SWIRES retraces exactly as its threshold says."""

import json

import pytest

from llava_cot import models, stages
from llava_cot.engines import Prompt, Sampling
from llava_cot.engines.hf import HFEngine
from llava_cot.errors import LlavaCotError
from llava_cot.judges import LikelihoodJudge, PointwiseJudge
from llava_cot.search import SEARCHES, SearchConfig, run
from llava_cot.search.swires import CALIBRATION_FILE, best_split, threshold_for


class Spy:
    """Wraps a real engine and records what the search asked of it."""

    def __init__(self, engine):
        self.engine, self.completions, self.judged = engine, [], 0

    @property
    def cost(self):
        return self.engine.cost

    def generate(self, prompts, sampling):
        outs = self.engine.generate(prompts, sampling)
        self.completions.extend(c for group in outs for c in group)
        return outs

    def choice_logprobs(self, prompts, choices):
        self.judged += len(prompts)
        return self.engine.choice_logprobs(prompts, choices)


@pytest.fixture(scope="module")
def engine():
    return HFEngine(models.load(None, device="cpu", dtype="float32"))


@pytest.fixture(scope="module")
def prompt(root):
    from pathlib import Path

    image = models.open_image(Path(__file__).resolve().parents[1] / "examples" / "scene1.png")
    return Prompt(image, "How many circles are there?")


CFG = SearchConfig(beam=2, step_tokens=256, max_new_tokens=768)


@pytest.mark.parametrize("name", list(SEARCHES))
def test_each_search_returns_a_four_stage_answer_and_its_cost_adds_up(engine, prompt, name):
    spy = Spy(engine)
    before = engine.cost.copy()
    result = run(name, spy, prompt, CFG)
    assert result.format_ok, result.text
    assert list(result.stages) == list(stages.STAGES) and result.answer
    assert result.tokens_generated == sum(c.tokens for c in spy.completions) > 0
    assert result.judge_calls == spy.judged
    assert result.forward_passes == (engine.cost - before).forward_passes > 0
    assert result.seconds > 0
    cost = result.cost()
    assert cost["name"] == name and json.dumps(cost)
    if name in ("stage_beam", "swires"):
        assert result.judge_calls > 0


def test_greedy_search_is_plain_greedy_decoding(engine, prompt):
    result = run("greedy", engine, prompt, CFG)
    _, inputs = engine.encode(prompt)
    out = engine.model.generate(**inputs, max_new_tokens=768, do_sample=False)
    want = engine.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert result.text.strip() == want.strip()


def test_swires_retraces_as_often_as_its_threshold_says(engine, prompt):
    never = run("swires", engine, prompt, SearchConfig(beam=2, threshold=0.0, step_tokens=256))
    always = run("swires", engine, prompt, SearchConfig(beam=2, threshold=1.01, retraces=2, step_tokens=256))
    assert never.notes["retraces"] == 0 and always.notes["retraces"] == 2
    assert always.format_ok and always.judge_calls > never.judge_calls


class StageWriter:
    """An engine that writes stages whose provenance can be read back: candidate j of the d-th
    sampling of a stage says "STAGE d.j", and takes `tokens` tokens (fewer if the budget it is
    given is smaller). It records the budget of every sampling. Lets SWIRES's bookkeeping be
    checked against numbers known in advance."""

    def __init__(self, tokens):
        from collections import Counter

        from llava_cot.engines import Cost

        self.tokens, self.cost, self.budgets, self.draws = tokens, Cost(), [], Counter()

    def generate(self, prompts, sampling):
        from llava_cot.engines import Completion

        [stop] = sampling.stop
        [stage] = [s for s in stages.STAGES if stages.close_tag(s) == stop]
        draw, self.draws[stage] = self.draws[stage], self.draws[stage] + 1
        self.budgets.append((stage, sampling.max_new_tokens))
        n = min(self.tokens, sampling.max_new_tokens)
        self.cost.tokens_generated += n * sampling.n
        return [[Completion(stages.render_stage(stage, f"{stage} {draw}.{j}") + "\n\n", n, -1.0, "stop")
                 for j in range(sampling.n)] for _ in prompts]


class Verdicts:
    """A scoring judge whose score for each "STAGE d.j" candidate is given (0.9 otherwise)."""

    def __init__(self, scores):
        self.given, self.calls = scores, 0

    def scores(self, engine, prompt, stage, candidates):
        self.calls += len(candidates)
        return [self.given.get(stages.parse(c).stages[stage], 0.9) for c in candidates]

    def pick(self, engine, prompt, stage, candidates):
        raise AssertionError("swires ranks by scores")


def kept(result):
    return [result.stages[s] for s in stages.STAGES]


SWIRES = SearchConfig(beam=2, keep=2, threshold=0.5, retraces=2, step_tokens=1000, max_new_tokens=1000)


def test_swires_budget_after_a_retrace_is_what_the_kept_stages_used():
    # every stage takes 200 tokens; REASONING fails once, so CAPTION is redone: the CONCLUSION
    # then has 1000 - 3 x 200 tokens left (the dropped CAPTION and REASONING spent nothing of it)
    engine = StageWriter(tokens=200)
    result = run("swires", engine, Prompt(None, "How many?"), SWIRES,
                 Verdicts({"REASONING 0.0": 0.1, "REASONING 0.1": 0.1}))
    assert kept(result) == ["SUMMARY 0.0", "CAPTION 0.1", "REASONING 1.0", "CONCLUSION 0.0"]
    assert result.notes["retraces"] == 1
    assert engine.budgets == [("SUMMARY", 1000), ("CAPTION", 800), ("REASONING", 600), ("REASONING", 600),
                              ("CONCLUSION", 400)]


def test_swires_retrace_redoes_the_previous_stage_and_does_not_cascade():
    # REASONING fails: back to CAPTION, whose runner-up is weak too. That calls for a fresh
    # CAPTION, not for giving up the good SUMMARY (its runner-up taken) and the last retrace.
    engine = StageWriter(tokens=50)
    weak = {"REASONING 0.0": 0.1, "REASONING 0.1": 0.1, "CAPTION 0.1": 0.2}
    result = run("swires", engine, Prompt(None, "How many?"), SWIRES, Verdicts(weak))
    assert kept(result) == ["SUMMARY 0.0", "CAPTION 1.0", "REASONING 1.0", "CONCLUSION 0.0"]
    assert result.notes["retraces"] == 1
    # ... unless the fresh CAPTION fails too: then it walks back to SUMMARY's runner-up
    worse = {**weak, "CAPTION 1.0": 0.3, "CAPTION 1.1": 0.3}
    result = run("swires", StageWriter(tokens=50), Prompt(None, "How many?"), SWIRES, Verdicts(worse))
    assert kept(result) == ["SUMMARY 0.1", "CAPTION 2.0", "REASONING 1.0", "CONCLUSION 0.0"]
    assert result.notes["retraces"] == 2


class SureOfOne(StageWriter):
    """... judged by a server that only ever answers "1" ("2" not among its top tokens)."""

    def choice_logprobs(self, prompts, choices):
        return [[-0.01, float("-inf")] for _ in prompts]


def test_pairwise_ties_are_counted_in_the_trace():
    result = run("stage_beam", SureOfOne(tokens=20), Prompt(None, "How many?"), SearchConfig(beam=2))
    # one match per stage, each a tie (the two orders' certainties cancel), each asked twice
    assert result.notes["ties"] == len(stages.STAGES) == result.judge_calls / 2
    assert run("stage_beam", SureOfOne(tokens=20), Prompt(None, "How many?"), SearchConfig(beam=2)).text == result.text


def test_swires_threshold_comes_from_the_calibration_file(engine, tmp_path):
    class Local:
        model_dir = str(tmp_path)

    assert threshold_for(Local(), SearchConfig()) == (0.5, "uncalibrated")
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"swires_threshold": 0.3}))
    assert threshold_for(Local(), SearchConfig()) == (0.3, str(tmp_path / CALIBRATION_FILE))
    assert threshold_for(Local(), SearchConfig(threshold=0.7)) == (0.7, "config")
    # each judge's scores have their own threshold, and their own default
    likely = LikelihoodJudge()
    assert threshold_for(Local(), SearchConfig(), likely) == (likely.uncalibrated, "uncalibrated")
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"swires_threshold": 0.3, "likelihood_threshold": 0.02}))
    assert threshold_for(Local(), SearchConfig(), likely) == (0.02, str(tmp_path / CALIBRATION_FILE))
    assert threshold_for(Local(), SearchConfig(), PointwiseJudge())[0] == 0.3


def test_token_logprobs_of_samples_are_what_the_sampling_loop_said(engine, prompt):
    # The embedded model's text round-trips through its tokenizer, so teacher-forcing a sample
    # again gives the log-probabilities it was sampled with.
    [outs] = engine.generate([prompt], Sampling(n=3, temperature=1.0, max_new_tokens=40, seed=3, stop=("</SUMMARY>",)))
    again = engine.token_logprobs(prompt, [o.text for o in outs])
    assert [len(r) for r in again] == [o.tokens for o in outs]
    assert [sum(r) for r in again] == pytest.approx([o.logprob for o in outs], abs=1e-3)


def test_any_search_takes_another_judge_by_name(engine, prompt):
    cfg = SearchConfig(beam=2, step_tokens=256, max_new_tokens=768, judge="likelihood")
    for name in ("stage_beam", "swires", "best_of_n"):
        result = run(name, engine, prompt, cfg)
        assert result.format_ok and result.judge_calls > 0
    with pytest.raises(LlavaCotError, match="swires needs a judge that scores"):
        run("swires", engine, prompt, SearchConfig(beam=2, step_tokens=256, judge="pairwise"))


def test_best_split_separates_good_from_bad_scores():
    t, acc = best_split([0.9, 0.8, 0.7, 0.4], [0.1, 0.2, 0.5])
    assert 0.5 < t <= 0.7 and acc == pytest.approx((3 / 4 + 1) / 2)
    assert best_split([0.9], [0.1])[1] == 1.0


def test_bad_names_and_settings_are_user_errors(engine, prompt):
    with pytest.raises(LlavaCotError, match="unknown search"):
        run("monte_carlo", engine, prompt)
    with pytest.raises(LlavaCotError):
        SearchConfig(beam=0)
    with pytest.raises(LlavaCotError):
        SearchConfig(widths=(1, 2))


def test_ask_cli_runs_a_search_and_reports_its_cost(capsys):
    from pathlib import Path

    from llava_cot.cli import main

    image = str(Path(__file__).resolve().parents[1] / "examples" / "scene1.png")
    rc = main(["ask", "--image", image, "How many circles are there?", "--search", "stage_beam", "--beam", "2",
               "--json", "--device", "cpu", "--max-new-tokens", "768"])
    assert rc == 0
    obj = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert obj["search"]["name"] == "stage_beam" and obj["search"]["judge_calls"] > 0
    assert obj["format_ok"] and obj["answer"] == stages.answer_text(obj["text"])


def test_pairwise_calibration_counts_right_verdicts_and_position_bias(tmp_path):
    from PIL import Image

    from llava_cot.records import Record
    from llava_cot.search.calibrate import pairwise

    class SaysFirst:  # an engine whose judge always prefers candidate 1
        def choice_logprobs(self, prompts, choices):
            return [[-0.1, -2.0] for _ in prompts]

    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    gold = ["1", "1", "2", "1", "2", "2", "2", "2"]
    items = [Record.make(f"j{i}", "which?", g, image="x.png", task="judge", stage=stages.STAGES[i % 2])
             for i, g in enumerate(gold)]
    got = pairwise(SaysFirst(), items, tmp_path)
    assert got["pairwise_items"] == 8 and got["pairwise_says_first"] == 1.0
    assert got["pairwise_accuracy"] == 3 / 8
    assert got["pairwise_accuracy_by_stage"] == {"SUMMARY": 0.25, "CAPTION": 0.5}
    assert got["pairwise_ties"] == 0


def test_calibration_reads_verdicts_as_the_judges_do(tmp_path):
    """No verdict at all (neither answer among a server's top tokens) is no vote for "1" and a
    verifier score of 0.5, in calibration as in search: the judges read it, not a copy of them."""
    from PIL import Image

    from llava_cot.records import Record
    from llava_cot.search.calibrate import calibrate, pairwise

    class Silent:
        def choice_logprobs(self, prompts, choices):
            return [[float("-inf"), float("-inf")] for _ in prompts]

    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    judged = [Record.make(f"j{i}", "which?", "12"[i % 2], image="x.png", task="judge", stage="CAPTION") for i in range(8)]
    got = pairwise(Silent(), judged, tmp_path)
    assert got["pairwise_says_first"] < 1 and got["pairwise_ties"] == 8
    verified = [Record.make(f"v{i}", "correct?", ["yes", "no"][i % 2], image="x.png", task="verify") for i in range(4)]
    assert calibrate(Silent(), verified, tmp_path)["mean_score_correct"] == 0.5


def test_calibrate_writes_a_threshold_swires_then_uses(tiny_dir, tmp_path, capsys):
    import shutil

    from llava_cot.cli import main

    model = tmp_path / "model"
    shutil.copytree(tiny_dir, model)
    assert main(["calibrate", "--model", str(model), "--limit", "12", "--device", "cpu"]) == 0
    saved = json.loads((model / CALIBRATION_FILE).read_text())
    assert saved["correct"] + saved["wrong"] == saved["items"] <= 12 and saved["correct"] and saved["wrong"]
    assert 0.5 <= saved["balanced_accuracy"] <= 1
    assert 0 < saved["pairwise_items"] <= 12 and 0 <= saved["pairwise_accuracy"] <= 1
    assert 0 < saved["likelihood_items"] <= 6 and 0.5 <= saved["likelihood_balanced_accuracy"] <= 1
    assert 0 <= saved["pairwise_says_first"] <= 1 and set(saved["pairwise_accuracy_by_stage"]) <= {*stages.STAGES, "RESPONSE"}
    engine = HFEngine(models.load(str(model), device="cpu"))
    assert threshold_for(engine, SearchConfig()) == (saved["swires_threshold"], str(model / CALIBRATION_FILE))
