"""Evaluation: scoring rules on the synthetic world, metrics, resumable runs, `eval score`, plots."""

import json

import pytest

from llava_cot import records, stages
from llava_cot.benches import Item, accuracy_by
from llava_cot.cli import main
from llava_cot.errors import LlavaCotError
from llava_cot.evaluation import data, metrics, store
from llava_cot.synth.generate import SynthConfig, generate


@pytest.fixture(scope="module")
def synth_items(tmp_path_factory):
    """(item, the generator's own four-stage answer) for the test and hard splits."""
    out = tmp_path_factory.mktemp("synth")
    pairs = []
    for split in ("test", "hard"):
        generate(SynthConfig(out=str(out), n=300, split=split, seed=3))
        path = out / f"{split}.jsonl"
        _, items = data.load(str(path))
        pairs += list(zip(items, (r.response for r in records.read(path)), strict=True))
    return pairs


def test_gold_annotations_score_as_correct(synth_items):
    # The generator's own four-stage answers must be judged correct by the scorer, every family.
    bench, _ = data.resolve("synth-test")
    rows = [bench.score(item, response) for item, response in synth_items]
    wrong = [(r["category"], r["answer"], r["prediction"]) for r in rows if not r["correct"]]
    assert not wrong


def test_untagged_gold_scores_as_correct_from_its_last_paragraph(synth_items):
    # Table 2's untagged variant: the same text without tags, its conclusion the last paragraph.
    # Read whole, the reasoning's numbers and colours get in the way (that is why the option exists).
    bench, _ = data.resolve("synth-test")
    last = data.LastParagraph(bench)
    untagged = [(item, stages.untag(response)) for item, response in synth_items]
    assert all(last.score(item, text)["correct"] for item, text in untagged)
    assert not all(bench.score(item, text)["correct"] for item, text in untagged)
    assert last.name == bench.name and last.summarise is not None  # the rest is the bench's own


def test_last_paragraph_wrong_conclusion_scores_as_wrong(synth_items):
    last = data.LastParagraph(data.resolve("synth-test")[0])
    for item, response in synth_items[:50]:
        wrong = next(k for k in (*item.options, "Yes", "No", "7", "11", "purple", "square") if k != item.answer)
        body = stages.untag(response).rsplit("\n\n", 1)[0]
        assert not last.score(item, f"{body}\n\n{wrong}")["correct"]


def test_wrong_conclusion_scores_as_wrong(synth_items):
    bench, _ = data.resolve("synth-test")
    flipped = 0
    for item, response in synth_items[:100]:
        parsed = stages.parse(response)
        wrong = next(k for k in (*item.options, "Yes", "No", "7", "11", "purple", "square") if k != item.answer)
        bad = stages.render({**parsed.stages, "CONCLUSION": wrong})
        flipped += not bench.score(item, bad)["correct"]
    assert flipped == 100


def test_metrics_per_category_with_format_and_cost():
    rows = [
        {"category": "count", "correct": True, "format_ok": True, "tokens_generated": 10},
        {"category": "count", "correct": False, "format_ok": True, "tokens_generated": 20},
        {"category": "exist", "correct": True, "format_ok": False, "tokens_generated": 30},
    ]
    m = metrics.summarise(data.resolve("synth-test")[0], rows)
    assert m["n"] == 3 and m["accuracy"] == pytest.approx(2 / 3) and m["format_valid"] == pytest.approx(2 / 3)
    assert m["categories"]["count"] == {"n": 2, "accuracy": 0.5, "format_valid": 1.0}
    assert m["tokens_per_item"] == 20
    assert "| **all** | 3 | 66.7% | 66.7% |" in metrics.table(m)
    assert "retraced_items" not in m  # no retracing search, no retrace figures


def test_metrics_count_the_items_a_search_retraced_and_score_them_apart():
    bench = data.resolve("synth-test")[0]
    rows = [{"category": "count", "correct": c, "notes": {"retraces": n}}
            for c, n in [(True, 0), (True, 0), (False, 2), (True, 1), (False, 0)]]
    m = metrics.summarise(bench, rows)
    assert m["retraced_items"] == 2 and m["accuracy_when_retraced"] == 0.5
    assert "| retraced_items | 2 |" in metrics.table(m) and "| accuracy_when_retraced | 50.0% |" in metrics.table(m)
    none = metrics.summarise(bench, [{**r, "notes": {"retraces": 0}} for r in rows])
    assert none["retraced_items"] == 0 and "accuracy_when_retraced" not in none


def test_bench_file_needs_gold_answers(tmp_path):
    path = tmp_path / "d.jsonl"
    records.write(path, [records.Record.make("a", "q?", "r")])
    with pytest.raises(LlavaCotError, match="no gold 'answer'"):
        data.load(str(path))
    with pytest.raises(LlavaCotError, match="neither a data file"):
        data.load(str(tmp_path / "nope.jsonl"))


def test_bench_file_ids_must_be_unique(tmp_path):
    path = tmp_path / "d.jsonl"
    records.write(path, [records.Record.make("a", "q?", "r", answer="1"), records.Record.make("a", "q2?", "r", answer="2")])
    with pytest.raises(LlavaCotError, match="share the index 'a'"):
        data.load(str(path))


def test_synth_bench_is_fixed():
    _, a = data.load("synth-test", limit=20)
    _, b = data.load("synth-test", limit=20)
    assert [(i.index, i.question, i.answer) for i in a] == [(i.index, i.question, i.answer) for i in b]
    assert a[0].image().tobytes() == b[0].image().tobytes()


# ---------------------------------------------------------------------------------------------
# Runs: a toy bench registered for the test, answered by the tiny untrained model


class ToyBench:
    """Six items in two categories, scored by a toy rule on the response's length (so that the
    figures change if any response does, whatever the model knows); it logs what it scores."""

    name = "toy"
    scored: list[str] = []  # noqa: RUF012 (shared by the instances load_bench makes)
    fail_after: int | None = None  # raise KeyboardInterrupt at this score call (a simulated kill)

    def __init__(self, **options):
        self.options = options  # the scoring options eval passes every bench (match, judge, ...)

    def load(self, source=None, limit=0):
        from PIL import Image

        colours = ["red", "green", "blue", "yellow", "purple", "orange", "gray", "white"]
        items = [Item(index=f"toy-{i}", question=f"How many {c} objects are there?", answer="1",
                      image=lambda c=c: Image.new("RGB", (64, 64), c), category=("odd", "even")[i % 2 == 0])
                 for i, c in enumerate(colours[:6])]
        return items[:limit] if limit else items

    def prompt(self, item):
        return item.question

    def score(self, item, response):
        if ToyBench.fail_after is not None and len(ToyBench.scored) >= ToyBench.fail_after:
            raise KeyboardInterrupt
        ToyBench.scored.append(item.index)
        return {"index": item.index, "prediction": response,
                "correct": (len(response) + int(item.index[-1])) % 3 == 0}

    def summarise(self, rows):
        return accuracy_by(rows)


@pytest.fixture
def toy(monkeypatch):
    from llava_cot import benches

    monkeypatch.setitem(benches.BENCHES, "toy", f"{__name__}:ToyBench")
    monkeypatch.setattr(ToyBench, "scored", [])
    monkeypatch.setattr(ToyBench, "fail_after", None)
    return ToyBench


def _eval(model, out, *extra, tokens=6):
    model_args = ["--model", str(model)] if model else []  # None: the embedded model
    return main(["eval", *model_args, "--bench", "toy", "--batch-size", "2", "--max-new-tokens", str(tokens),
                 "--device", "cpu", "--out", str(out), *extra])


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _figures(out):
    """An eval's metrics.json without the wall times, which no two runs share."""
    m = json.loads((out / "metrics.json").read_text())
    assert m.pop("seconds_per_item") > 0
    return m


def test_killed_and_resumed_eval_matches_an_uninterrupted_one(tmp_path, toy, capsys):
    # The embedded model: the untrained tiny one writes nothing but special tokens (empty text).
    def run(out):
        return _eval(None, out, tokens=20)

    assert run(tmp_path / "clean") == 0
    clean = _figures(tmp_path / "clean")
    assert sorted(toy.scored) == sorted(f"toy-{i}" for i in range(6))

    # Killed while scoring the sixth item to finish: the five before it are on disk.
    toy.scored.clear()
    toy.fail_after = 5
    assert run(tmp_path / "run") == 130
    preds = tmp_path / "run" / "predictions.jsonl"
    rows = _lines(preds)
    assert [r["index"] for r in rows] == toy.scored  # each row is written as it is scored
    # ... and drop a row (its item is then batched with other ones) and cut the last one off
    # mid-line, as a kill during a write would.
    text = preds.read_text().splitlines(keepends=True)
    preds.write_text(text[0] + text[2] + text[3][: len(text[3]) // 2])
    capsys.readouterr()

    toy.scored.clear()
    toy.fail_after = None
    assert run(tmp_path / "run") == 0
    assert "line 3 truncated" in capsys.readouterr().err
    kept = {rows[0]["index"], rows[2]["index"]}
    assert sorted(toy.scored) == sorted({f"toy-{i}" for i in range(6)} - kept)  # the kept rows were not scored again
    assert _figures(tmp_path / "run") == clean
    assert 0 < clean["accuracy"] < 1
    rows = _lines(preds)
    assert sorted(r["index"] for r in rows) == sorted(f"toy-{i}" for i in range(6))
    by_index = {r["index"]: r for r in _lines(tmp_path / "clean" / "predictions.jsonl")}
    assert all(r["response"] == by_index[r["index"]]["response"] != "" for r in rows)

    # A rerun of a finished run scores nothing and reports the same figures.
    toy.scored.clear()
    assert run(tmp_path / "run") == 0
    assert toy.scored == []
    assert _figures(tmp_path / "run") == clean


def test_prediction_rows_hold_stages_answer_and_cost(tiny_dir, tmp_path, toy):
    assert _eval(tiny_dir, tmp_path, "--limit", "2") == 0
    for r in _lines(tmp_path / "predictions.jsonl"):
        assert set(r["stages"]) == set(stages.STAGES)
        assert {"index", "response", "answer", "correct", "prediction", "category", "format_ok"} <= set(r)
        assert r["tokens_generated"] > 0 and r["forward_passes"] > 0 and r["judge_calls"] == 0 and r["seconds"] > 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n"] == 2 and set(m["categories"]) == {"even", "odd"} and m["search"] == "greedy"
    assert "| **all** | 2 |" in (tmp_path / "metrics.md").read_text()
    png = (tmp_path / "accuracy_by_category.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_resume_with_other_settings_is_refused(tiny_dir, tmp_path, toy, capsys):
    assert _eval(tiny_dir, tmp_path, "--limit", "2") == 0
    capsys.readouterr()
    assert _eval(tiny_dir, tmp_path, "--limit", "2", "--max-new-tokens", "7") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "max_new_tokens 6 -> 7" in err and "--out" in err
    # --limit is not a setting: a larger one extends the run.
    toy.scored.clear()
    assert _eval(tiny_dir, tmp_path, "--limit", "3") == 0
    assert toy.scored == ["toy-2"]


def test_resume_reads_answers_the_same_way(tiny_dir, tmp_path, toy, capsys):
    # Rows are scored as they are written, so how answers are read is a setting of the run.
    assert _eval(tiny_dir, tmp_path, "--limit", "2") == 0
    capsys.readouterr()
    assert _eval(tiny_dir, tmp_path, "--limit", "2", "--answer-from", "last-paragraph") == 2
    assert "answer_from 'conclusion' -> 'last-paragraph'" in capsys.readouterr().err
    # a run.json written before these settings existed was scored with their defaults
    settings = json.loads((tmp_path / store.SETTINGS).read_text())
    for key in ("match", "answer_from"):
        del settings[key]
    (tmp_path / store.SETTINGS).write_text(json.dumps(settings))
    assert _eval(tiny_dir, tmp_path, "--limit", "2") == 0
    assert _eval(tiny_dir, tmp_path, "--limit", "2", "--match", "vlmeval") == 2


def test_truncated_last_line_is_reported_and_repaired(tmp_path):
    preds = tmp_path / store.PREDICTIONS
    good = [json.dumps({"index": f"i{k}", "correct": True}) + "\n" for k in range(3)]
    preds.write_text("".join(good) + '{"index": "i3", "resp')
    log = tmp_path / "log"
    with log.open("w") as f:
        rows = store.load_rows(tmp_path, log=f)
    assert [r["index"] for r in rows] == ["i0", "i1", "i2"]
    assert "line 4 truncated" in log.read_text()
    assert preds.read_text() == "".join(good)


def test_eval_with_a_search_reports_its_cost(capsys, tmp_path):
    rc = main(["eval", "--bench", "synth-test", "--limit", "2", "--search", "best_of_n", "--beam", "2",
               "--device", "cpu", "--max-new-tokens", "512", "--out", str(tmp_path)])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["search"] == "best_of_n" and summary["beam"] == 2 and summary["n"] == 2
    assert summary["tokens_per_item"] > 0 and summary["judge_calls_per_item"] > 0 and summary["seconds_per_item"] > 0
    rows = _lines(tmp_path / "predictions.jsonl")
    assert len(rows) == 2 and all(r["judge_calls"] > 0 and r["forward_passes"] > 0 for r in rows)


# ---------------------------------------------------------------------------------------------
# eval score and eval plot


def test_eval_score_on_a_hand_written_predictions_file(synth_dir, tmp_path, capsys):
    bench = synth_dir / "test.jsonl"
    recs = list(records.read(bench))
    lines = [json.dumps({"index": r.id, "response": r.response}) for r in recs[:4]]  # gold: correct
    lines.append(json.dumps({"index": recs[4].id, "response": "<CONCLUSION> I cannot tell </CONCLUSION>"}))
    lines.append('{"index": "broken", "respo')  # line 6
    lines.append(json.dumps({"index": "nope", "response": "x"}))  # line 7: not an item
    lines.append(json.dumps({"index": recs[0].id, "response": "again"}))  # line 8: scored already
    lines.append(json.dumps({"response": "no index"}))  # line 9
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(lines) + "\n")
    rc = main(["eval", "score", "--bench", str(bench), "--predictions", str(preds), "--json", "--out", str(tmp_path / "o")])
    assert rc == 0
    cap = capsys.readouterr()
    m = json.loads(cap.out.strip().splitlines()[-1])
    assert m["n"] == 5 and m["accuracy"] == pytest.approx(4 / 5) and m["missing"] == len(recs) - 5
    for text in ("line 6", "line 7: 'nope'", "line 8", "line 9"):
        assert text in cap.err
    assert (tmp_path / "o" / "metrics.json").is_file() and (tmp_path / "o" / "accuracy_by_category.png").stat().st_size > 0


def test_eval_score_reads_untagged_answers_from_the_last_paragraph(synth_dir, tmp_path, capsys):
    bench = synth_dir / "test.jsonl"
    recs = [r for r in records.read(bench) if r.extra["family"] in ("attribute", "count", "total", "rowcol", "position", "which")][:6]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"index": r.id, "response": stages.untag(r.response)}) + "\n" for r in recs))
    scores = []
    for how in ("conclusion", "last-paragraph"):
        assert main(["eval", "score", "--bench", str(bench), "--predictions", str(preds), "--json",
                     "--answer-from", how]) == 0
        scores.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"])
    assert scores[0] < 1.0 and scores[1] == 1.0


def test_eval_score_with_nothing_to_score_exits_2(synth_dir, tmp_path, capsys):
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"index": "nope", "response": "x"}) + "\n")
    assert main(["eval", "score", "--bench", str(synth_dir / "test.jsonl"), "--predictions", str(preds)]) == 2
    assert "no prediction" in capsys.readouterr().err


def test_eval_plot_draws_a_compute_curve(tmp_path, capsys):
    dirs = []
    for search, beam, tokens, acc in [("greedy", 1, 200, 0.3), ("best_of_n", 2, 450, 0.35), ("best_of_n", 4, 900, 0.4),
                                      ("stage_beam", 2, 500, 0.38), ("stage_beam", 4, 1000, 0.45)]:
        d = tmp_path / f"{search}-{beam}"
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({"bench": "synth-test", "search": search, "beam": beam, "n": 10,
                                                    "accuracy": acc, "tokens_per_item": tokens, "categories": {},
                                                    "judge_calls_per_item": beam - 1, "seconds_per_item": beam / 4}))
        dirs.append(str(d))
    out = tmp_path / "compute.png"
    assert main(["eval", "plot", *dirs, "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG") and out.stat().st_size > 1000
    table = capsys.readouterr().out.splitlines()
    assert table[2].startswith("| greedy | 1 | - | 30.0% | 200 | 0.0 | 0.25 | 10 |")  # greedy first, then by name
    assert table[6].startswith("| stage_beam | 4 | - | 45.0% | 1000 | 3.0 | 1.00 | 10 |")
    assert main(["eval", "plot", str(tmp_path), "--out", str(out)]) == 2  # no metrics.json there


def test_judge_fallback_without_a_judge_is_a_user_error(tmp_path, capsys):
    from llava_cot.cli import main

    preds = tmp_path / "p.jsonl"
    preds.write_text('{"index": "x", "response": "A"}\n')
    assert main(["eval", "score", "--bench", "synth-test", "--predictions", str(preds), "--limit", "2",
                 "--judge-fallback"]) == 2
    assert "needs a judge" in capsys.readouterr().err


def test_concurrent_searches_answer_as_one_at_a_time(tmp_path, toy):
    """`--concurrency 3` searches three items at once, their candidates in one running batch; a
    sample depends only on its own seed, so every row is what a one-at-a-time run writes."""
    search = ["--search", "best_of_n", "--beam", "2", "--judge", "majority"]
    assert _eval(None, tmp_path / "one", *search, "--concurrency", "1", tokens=12) == 0
    assert _eval(None, tmp_path / "three", *search, "--concurrency", "3", tokens=12) == 0
    one = {r["index"]: r for r in _lines(tmp_path / "one" / "predictions.jsonl")}
    three = {r["index"]: r for r in _lines(tmp_path / "three" / "predictions.jsonl")}
    assert one.keys() == three.keys() and len(one) == 6
    for index, row in one.items():
        assert (three[index]["response"], three[index]["tokens_generated"]) == (row["response"], row["tokens_generated"])
