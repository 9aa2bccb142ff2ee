"""`llava-cot data annotate` against a real HTTP teacher on localhost (llava_cot.teacher.oracle):
what is kept and why the rest is dropped, resuming, retries, rate and token limits, stage by stage."""

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest
from tests.http_server import serve as serve_handler
from tests.teacher_data import lines, plain_items, summary

from llava_cot import records, stages
from llava_cot.check import check
from llava_cot.cli import main as cli
from llava_cot.teacher.client import Teacher
from llava_cot.teacher.oracle import Oracle, serve

FATES = {"wrong": 0.2, "bad_format": 0.1, "leak": 0.1, "refuse": 0.05, "second_try": 0.1}
REASON_OF = {"wrong": {"wrong_answer", "judge_said_no"}, "bad_format": {"not_four_stage"}, "leak": {"leaked_hint"},
             "refuse": {"teacher_refused"}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return plain_items(tmp_path_factory.mktemp("teacher"), n=40, seed=3)


def annotate(data, url, out, *extra):
    return cli(["data", "annotate", "--input", str(data), "--images", str(data.parent), "--teacher-url", url,
                "--teacher-model", "oracle", "--out", str(out), "--backoff", "0.01", "--timeout", "5",
                "--no-progress", *extra])


def test_keeps_exactly_the_right_answers_and_says_why_it_dropped_the_rest(data, tmp_path, capsys):
    oracle = Oracle(data, data.parent, seed=1, **FATES)
    out = tmp_path / "cot.jsonl"
    with serve(oracle) as url:
        assert annotate(data, url, out) == 0
    s = summary(capsys.readouterr().out)
    accepted, rejected = lines(out), lines(tmp_path / "cot.rejected.jsonl")
    inputs = {r.id: r for r in records.read(data)}
    assert {r["id"] for r in accepted} == oracle.good
    assert {r["id"] for r in accepted} | {r["id"] for r in rejected} == set(inputs)
    assert s["accepted"] == len(accepted) and sum(s["rejected"].values()) == len(rejected) == 40 - len(accepted)
    for r in rejected:  # each dropped item carries the reason its teacher answer deserved
        assert r["reason"] in REASON_OF[oracle.fate(r["id"])], r
    fates = {oracle.fate(i) for i in inputs}
    assert {"right", "wrong", "second_try"} <= fates  # the data exercised retries with new seeds
    for r in accepted:  # ids, images and extra keys kept; the gpt turn in four stages; valid for training
        before = inputs[r["id"]]
        assert r["image"] == before.image and r["answer"] == before.extra["answer"]
        assert stages.parse(r["conversations"][1]["value"]).ok
    assert all(isinstance(x, records.Record) for x in check(out, data.parent))


def test_a_rerun_resumes_skips_what_is_done_and_repairs_a_torn_line(data, tmp_path, capsys):
    oracle = Oracle(data, data.parent, seed=1, **FATES)
    out = tmp_path / "cot.jsonl"
    with serve(oracle) as url:
        assert annotate(data, url, out, "--limit", "25") == 0
        first = out.read_bytes()
        kept = first[: first.rstrip(b"\n").rfind(b"\n") + 1]
        out.write_bytes(kept + first[len(kept):][:30])  # a kill cut the last line short
        asked = oracle.requests
        capsys.readouterr()
        assert annotate(data, url, out) == 0
        s = summary(capsys.readouterr().out)
    ids = [r["id"] for r in lines(out)] + [r["id"] for r in lines(tmp_path / "cot.rejected.jsonl")]
    assert sorted(ids) == sorted(r.id for r in records.read(data))  # each id once: none lost, none twice
    assert s["done_before"] == 24 and s["accepted"] + sum(s["rejected"].values()) == 16
    assert oracle.requests > asked
    capsys.readouterr()
    with serve(oracle) as url:  # everything is done: nothing is asked again
        before = oracle.requests
        assert annotate(data, url, out) == 0
    assert oracle.requests == before and summary(capsys.readouterr().out)["done_before"] == 40


def test_faults_are_retried_until_answered(data, tmp_path, capsys):
    oracle = Oracle(data, data.parent, faults=0.5, slow=1.0, retry_after=0.01, seed=2)
    out = tmp_path / "cot.jsonl"
    with serve(oracle) as url:
        assert annotate(data, url, out, "--timeout", "0.3", "--request-retries", "20", "--limit", "20") == 0
    s = summary(capsys.readouterr().out)
    assert s["accepted"] == 20 and s["errors"] == 0 and s["retried_requests"] > 5


def test_a_teacher_that_never_answers_fails_items_but_not_the_run(data, tmp_path, capsys):
    oracle = Oracle(data, data.parent, faults=1.0, slow=0.5, retry_after=0.0, seed=2)
    out = tmp_path / "cot.jsonl"
    with serve(oracle) as url:
        assert annotate(data, url, out, "--timeout", "0.2", "--request-retries", "1", "--limit", "5") == 1
    s = summary(capsys.readouterr().out)
    assert s["errors"] == 5 and s["remaining"] == 5 and not out.read_text()


def test_token_budget_stops_cleanly_and_a_rerun_finishes(data, tmp_path, capsys):
    oracle = Oracle(data, data.parent, seed=1)
    out = tmp_path / "cot.jsonl"
    with serve(oracle) as url:
        assert annotate(data, url, out, "--max-tokens-total", "3000", "--concurrency", "2") == 1
        s = summary(capsys.readouterr().out)
        assert s["stopped"] and 0 < s["accepted"] < 40 and s["remaining"] == 40 - s["accepted"]
        assert s["prompt_tokens"] + s["completion_tokens"] < 3000 + 2 * 600  # in-flight requests only
        assert annotate(data, url, out) == 0
    assert len(lines(out)) == 40


def test_stage_by_stage_asks_each_stage_after_the_ones_written(data, tmp_path, capsys):
    oracle = Oracle(data, data.parent, seed=1, bad_format=0.2)
    out = tmp_path / "cot.jsonl"
    with serve(oracle) as url:
        assert annotate(data, url, out, "--staged", "--limit", "12") == 0
    s = summary(capsys.readouterr().out)
    assert {r["id"] for r in lines(out)} == oracle.good and s["accepted"] > 0
    assert s["requests"] >= 4 * s["accepted"]
    for r in lines(tmp_path / "cot.rejected.jsonl"):
        assert r["reason"] == "not_four_stage"


def test_no_judge_rejects_free_text_mismatches_without_asking(data, tmp_path, capsys):
    oracle = Oracle(data, data.parent, seed=1, wrong=1.0)
    out = tmp_path / "cot.jsonl"
    with serve(oracle) as url:
        assert annotate(data, url, out, "--retries", "0") == 0
        judged = {r["reason"] for r in lines(tmp_path / "cot.rejected.jsonl")}
        assert "judge_said_no" in judged  # attribute questions (free text) went to the judge
        before = oracle.requests
        assert annotate(data, url, tmp_path / "b.jsonl", "--retries", "0", "--no-judge") == 0
    assert oracle.requests - before == 40  # one request per item, none to a judge
    assert {r["reason"] for r in lines(tmp_path / "b.rejected.jsonl")} == {"wrong_answer"}


def test_a_wrong_key_stops_the_run_with_one_line(data, tmp_path, capsys):
    class Unauthorised(BaseHTTPRequestHandler):
        def do_POST(self):
            body = b'{"error": {"message": "Incorrect API key provided"}}'
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with serve_handler(Unauthorised, None) as url:
        assert annotate(data, url, tmp_path / "cot.jsonl") == 2
    err = capsys.readouterr().err
    assert "401" in err and "--api-key" in err


class _Scripted(BaseHTTPRequestHandler):
    """Answers from a list of (status, headers) in turn, then 200s; records when each came."""

    def do_POST(self):
        app = self.server.app
        self.rfile.read(int(self.headers["Content-Length"]))
        with app["lock"]:
            app["times"].append(time.monotonic())
            status, headers = app["script"].pop(0) if app["script"] else (200, {})
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}
        body = json.dumps(reply if status == 200 else {"error": {"message": "busy"}}).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _chat(url, n=1, **options):
    async def go():
        teacher = Teacher(url, "m", **options)
        try:
            return await asyncio.gather(*(teacher.chat([{"role": "user", "content": "hi"}]) for _ in range(n)))
        finally:
            await teacher.close()

    return asyncio.run(go())


def test_retry_after_is_honoured_over_the_backoff():
    app = {"lock": threading.Lock(), "times": [], "script": [(429, {"Retry-After": "1"})]}
    with serve_handler(_Scripted, app) as url:
        [reply] = _chat(url, backoff=0.001)
        assert reply.text == "ok" and app["times"][1] - app["times"][0] >= 0.95
        app.update(times=[], script=[(503, {"retry-after-ms": "50"})])
        t0 = time.monotonic()
        _chat(url, backoff=100)  # the server's 50 ms, not a 100 s backoff
        assert time.monotonic() - t0 < 5


def test_rpm_spaces_the_requests():
    app = {"lock": threading.Lock(), "times": [], "script": []}
    with serve_handler(_Scripted, app) as url:
        t0 = time.monotonic()
        _chat(url, n=5, rpm=600)  # one start every 0.1 s: the fifth at 0.4 s
        assert time.monotonic() - t0 >= 0.4
        assert len(app["times"]) == 5 and app["times"][-1] - t0 >= 0.4


def test_multi_turn_records_keep_their_turns_and_bad_inputs_are_rejected_with_the_reason(data, tmp_path, capsys):
    first, second = list(records.read(data))[:2]
    turns = [*first.conversations, {"from": "human", "value": second.question},
             {"from": "gpt", "value": second.response}]
    two = records.Record(first.id, turns, first.image, {})
    lost = records.Record.make("lost", "How many?", "3", image="images/not-there.png")
    bad_gold = records.Record.make("bad-gold", second.question, "E", image=second.image, options={"A": "1", "B": "2"})
    path = tmp_path / "in.jsonl"
    records.write(path, [two, lost, bad_gold])
    oracle = Oracle(path, data.parent, seed=1)
    with serve(oracle) as url:
        assert cli(["data", "annotate", "--input", str(path), "--images", str(data.parent), "--teacher-url", url,
                    "--teacher-model", "oracle", "--out", str(tmp_path / "cot.jsonl"), "--no-progress"]) == 0
    [kept] = lines(tmp_path / "cot.jsonl")
    assert [t["from"] for t in kept["conversations"]] == ["human", "gpt", "human", "gpt"]
    assert [t["value"] for t in kept["conversations"][::2]] == [t["value"] for t in turns[::2]]
    assert all(stages.parse(t["value"]).ok for t in kept["conversations"][1::2])
    rejected = {r["id"]: r for r in lines(tmp_path / "cot.rejected.jsonl")}
    assert rejected["lost"]["reason"] == rejected["bad-gold"]["reason"] == "bad_input"
    assert "not-there.png" in rejected["lost"]["detail"] and "options" in rejected["bad-gold"]["detail"]
