"""`llava-cot ask` and `eval` against a server (--base-url), and a search's judge on its own model
(--judge-checkpoint, --judge-base-url). The server is tests/openai_fake.py, which answers as
`transformers serve` does (one choice per request, no log-probabilities); the real one is in
tests/test_transformers_serve.py."""

import json
import socket

import pytest
from tests.openai_fake import MODEL, TransformersLike, four_stages, serving

from llava_cot import models
from llava_cot.cli import main

IMAGE = "examples/scene1.png"


@pytest.fixture
def server():
    s = TransformersLike()
    with serving(s) as s.url:
        yield s


@pytest.fixture
def no_local_model(monkeypatch):
    """With --base-url no local model may load."""
    def refuse(*args, **kwargs):
        raise AssertionError("a local model was loaded")

    monkeypatch.setattr(models, "load", refuse)


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_ask_answers_with_the_served_model(server, no_local_model, capsys):
    server.answer = lambda seed: four_stages(4)
    assert main(["ask", "--image", IMAGE, "How many circles?", "--base-url", server.url, "--json"]) == 0
    obj = last_json(capsys)
    assert obj["answer"] == "4" and obj["format_ok"] and obj["stages"]["CAPTION"] == "Some shapes."
    (request,) = server.chats()
    assert request["model"] == MODEL  # the only model the server lists
    assert request["messages"][0]["content"][-1] == {"type": "text", "text": "How many circles?"}


def test_eval_against_a_server_keeps_concurrency_requests_in_flight_and_resumes(server, no_local_model, tmp_path,
                                                                              capsys):
    server.delay = 0.3
    out = tmp_path / "run"
    args = ["eval", "--base-url", server.url, "--bench", "synth-test", "--limit", "4", "--concurrency", "2",
            "--out", str(out)]
    assert main(args) == 0
    assert last_json(capsys)["n"] == 4
    assert len(server.chats()) == 4 and server.most_in_flight == 2
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["forward_passes"] == 1 and r["format_ok"] for r in rows)
    run = json.loads((out / "run.json").read_text())
    assert run["base_url"] == server.url and run["served_model"] == MODEL
    assert run["model"] is None and run["model_fingerprint"] is None

    assert main(args) == 0  # resumed: every item is done already
    assert last_json(capsys)["n"] == 4 and len(server.chats()) == 4
    for other, changed in ((["--served-model", "another/model"], "served_model"),
                           (["--base-url", server.url.replace("127.0.0.1", "localhost")], "base_url")):
        assert main([*args, *other]) == 2
        assert changed in capsys.readouterr().err
    assert len(server.chats()) == 4


def test_eval_refuses_to_resume_a_remote_run_on_a_local_model(server, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["eval", "--base-url", server.url, "--bench", "synth-test", "--limit", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", "--bench", "synth-test", "--limit", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "base_url" in err


def test_eval_records_the_judge_model_and_resumes_only_with_it(server, tmp_path, capsys):
    server.answer = lambda seed: four_stages(seed)
    out = tmp_path / "run"
    args = ["eval", "--base-url", server.url, "--bench", "synth-test", "--limit", "1", "--search", "best_of_n",
            "--beam", "2", "--judge", "pointwise", "--out", str(out)]
    assert main([*args, "--judge-checkpoint", "embedded"]) == 0
    row = json.loads((out / "predictions.jsonl").read_text())
    assert row["judge_calls"] == 2
    run = json.loads((out / "run.json").read_text())
    assert run["judge_checkpoint"] == str(models.EMBEDDED_DIR) and run["judge_checkpoint_fingerprint"]
    capsys.readouterr()
    assert main(args) == 2  # the same run without its judge's model: refused, not resumed
    assert "judge_checkpoint" in capsys.readouterr().err


def test_a_judge_on_its_own_model_scores_what_the_server_answers(server, capsys):
    server.answer = lambda seed: four_stages(seed)  # the two samples differ: the judge must choose
    ask = ["ask", "--image", IMAGE, "How many circles?", "--base-url", server.url, "--json",
           "--search", "best_of_n", "--beam", "2", "--judge", "pointwise"]
    # The server gives no log-probabilities: its own model cannot judge, and says so.
    assert main(ask) == 2
    assert "gives no log-probabilities" in capsys.readouterr().err
    server.requests.clear()
    assert main([*ask, "--judge-checkpoint", "embedded"]) == 0
    obj = last_json(capsys)
    assert obj["search"]["judge_calls"] == 2 and obj["answer"] in ("0", "1")
    assert not any(r.get("max_tokens") == 1 for r in server.chats())  # no verdict was asked of the server
    # SWIRES thresholds the judge's scores by the judge's own calibration.
    assert main(["ask", "--image", IMAGE, "How many circles?", "--base-url", server.url, "--json", "--search",
                 "swires", "--beam", "2", "--judge-checkpoint", "embedded", "--max-new-tokens", "64"]) == 0
    search = last_json(capsys)["search"]
    assert search["threshold_from"] == str(models.EMBEDDED_DIR / "search.json") and search["judge_calls"] > 0


def test_a_judge_on_another_server(server, capsys):
    server.answer = lambda seed: four_stages(seed)
    judge = TransformersLike(models=("judge/model",), verdicts=[("yes", -0.1), ("no", -2.5)])
    with serving(judge) as judge.url:
        rc = main(["ask", "--image", IMAGE, "How many circles?", "--base-url", server.url, "--json", "--search",
                   "best_of_n", "--beam", "2", "--judge", "pointwise", "--judge-base-url", judge.url])
    assert rc == 0
    assert last_json(capsys)["search"]["judge_calls"] == 2
    assert len(judge.chats()) == 2 and all(r["top_logprobs"] == 20 and r["model"] == "judge/model"
                                           for r in judge.chats())
    assert not any(r.get("top_logprobs") for r in server.chats())  # the answering server only answered


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


@pytest.mark.parametrize(("args", "message"), [
    (["--base-url", "URL", "--model", "embedded"], "give one of them"),
    (["--base-url", "localhost:8000/v1"], "not an http(s) URL"),
    (["--served-model", "x"], "--served-model names a model at --base-url"),
    (["--judge-checkpoint", "embedded"], "greedy's judge (none) asks none"),
    (["--search", "self_consistency", "--judge-base-url", "URL"], "self_consistency's judge (majority) asks none"),
    (["--base-url", "URL", "--search", "best_of_n", "--judge", "likelihood"], "likelihood judge"),
    (["--base-url", "TWO"], "serves 2 models (a, b): choose one with --served-model"),
    (["--base-url", "CLOSED"], "cannot reach"),
    (["--base-url", "NOT_API"], "answered 404: Not Found; is http"),
])
def test_engine_flag_errors_are_one_line_exit_2(args, message, server, capsys):
    two = TransformersLike(models=("a", "b"))
    with serving(two) as two.url:
        swap = {"URL": server.url, "TWO": two.url, "CLOSED": _closed_port_url(),
                "NOT_API": server.url.removesuffix("/v1")}
        assert main(["ask", "--image", IMAGE, "q?", *[swap.get(a, a) for a in args]]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not server.chats()


def test_notes_say_what_the_server_did_not_do(server, capsys):
    assert main(["ask", "--image", IMAGE, "How many circles?", "--base-url", server.url, "--search",
                 "self_consistency", "--beam", "3"]) == 0
    err = capsys.readouterr().err
    assert "answers n > 1 with fewer choices" in err
    assert sorted(r["seed"] for r in server.chats()) == [0, 1, 2]
