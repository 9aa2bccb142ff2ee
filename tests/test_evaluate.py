"""Evaluation entry point: scoring rules on the synthetic world, metrics, and a run end to end."""

import json

import pytest

from llava_cot import evaluate, records, stages
from llava_cot.synth.generate import SynthConfig, generate


@pytest.fixture(scope="module")
def synth_items(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    for split in ("test", "hard"):
        generate(SynthConfig(out=str(out), n=300, split=split, seed=3))
    return [r for split in ("test", "hard") for r in records.read(out / f"{split}.jsonl")]


def test_gold_annotations_score_as_correct(synth_items):
    # The generator's own four-stage answers must be judged correct by the scorer, every family.
    rows = [evaluate.score(r, r.response) for r in synth_items]
    wrong = [(r["family"], r["answer"], r["prediction"]) for r in rows if not r["correct"]]
    assert not wrong
    assert all(r["format_ok"] for r in rows)


def test_wrong_conclusion_scores_as_wrong(synth_items):
    flipped = 0
    for rec in synth_items[:100]:
        parsed = stages.parse(rec.response)
        options = rec.extra.get("options") or {}
        wrong = next(k for k in (*options, "Yes", "No", "7", "11", "purple", "square") if k != rec.extra["answer"])
        bad = stages.render({**parsed.stages, "CONCLUSION": wrong})
        flipped += not evaluate.score(rec, bad)["correct"]
    assert flipped == 100


def test_summarise_per_family():
    rows = [
        {"family": "count", "correct": True, "format_ok": True},
        {"family": "count", "correct": False, "format_ok": True},
        {"family": "exist", "correct": True, "format_ok": False},
    ]
    m = evaluate.summarise(rows)
    assert m["n"] == 3 and m["accuracy"] == pytest.approx(2 / 3) and m["format_valid"] == pytest.approx(2 / 3)
    assert m["families"]["count"] == {"n": 2, "accuracy": 0.5, "format_valid": 1.0}
    assert "| **all** | 3 | 66.7% | 66.7% |" in evaluate.table(m)


def test_bench_file_needs_gold_answers(tmp_path):
    path = tmp_path / "d.jsonl"
    records.write(path, [records.Record.make("a", "q?", "r")])
    from llava_cot.errors import LlavaCotError

    with pytest.raises(LlavaCotError, match="no gold 'answer'"):
        evaluate.load_items(str(path), 0, str(tmp_path))
    with pytest.raises(LlavaCotError, match="neither a data file"):
        evaluate.load_items(str(tmp_path / "nope.jsonl"), 0, str(tmp_path))


def test_synth_bench_is_fixed(tmp_path):
    a, _ = evaluate.load_items("synth-test", 20, str(tmp_path / "a"))
    b, _ = evaluate.load_items("synth-test", 20, str(tmp_path / "b"))
    assert [json.dumps(r.to_json()) for r in a] == [json.dumps(r.to_json()) for r in b]


def test_eval_with_a_search_reports_its_cost(capsys):
    from llava_cot.cli import main

    rc = main(["eval", "--bench", "synth-test", "--limit", "2", "--search", "best_of_n", "--beam", "2",
               "--device", "cpu", "--max-new-tokens", "512"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["search"] == "best_of_n" and summary["n"] == 2
    assert summary["tokens_per_item"] > 0 and summary["judge_calls_per_item"] > 0 and summary["seconds_per_item"] > 0
