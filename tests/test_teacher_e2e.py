"""End to end, offline: `llava-cot serve` (the embedded model) as the teacher of `data annotate`,
then `data check` and a few steps of `llava-cot train` on what it kept."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from tests.teacher_data import lines, plain_items, summary

from llava_cot import answers, records, stages
from llava_cot.cli import main as cli

# Families the embedded model was trained on (its model card), with numeric or yes/no answers.
KNOWN = {"count", "subtract", "exist", "compare"}
ITEMS = 4


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def teacher(tmp_path):
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "llava_cot", "serve", "--port", str(port)], stdout=log,
                            stderr=log, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=2).read()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-2000:]
            time.sleep(0.5)
    yield url + "/v1"
    proc.terminate()
    proc.wait(30)
    log.close()


@pytest.mark.slow
def test_serve_teaches_check_passes_train_runs(tmp_path, teacher, capsys):
    data = plain_items(tmp_path, n=24, seed=4)
    known = [r for r in records.read(data) if r.extra.get("family") in KNOWN][:ITEMS]
    assert len(known) == ITEMS
    records.write(data.with_name("known.jsonl"), known)
    # The embedded model knows no teacher instructions: it is asked the question as it was trained.
    (tmp_path / "prompt.txt").write_text("{question}")
    out = tmp_path / "cot.jsonl"
    rc = cli(["data", "annotate", "--input", str(data.with_name("known.jsonl")), "--images", str(data.parent),
              "--teacher-url", teacher, "--teacher-model", "embedded", "--out", str(out),
              "--prompt", str(tmp_path / "prompt.txt"), "--no-hint", "--no-judge", "--temperature", "0",
              "--retries", "0", "--max-tokens", "512", "--concurrency", "2", "--timeout", "900", "--no-progress"])
    s = summary(capsys.readouterr().out)
    assert rc == 0 and s["errors"] == 0 and s["accepted"] >= 1, s
    gold = {r.id: r.response for r in known}
    for r in lines(out):
        answer = r["conversations"][1]["value"]
        assert stages.parse(answer).ok and answers.is_correct(answer, gold[r["id"]])
    assert cli(["data", "check", str(out), "--images", str(data.parent)]) == 0
    assert "0 bad" in capsys.readouterr().out
    model = tmp_path / "model"
    assert cli(["train", "--data", str(out), "--images", str(data.parent), "--out", str(model),
                "--max-steps", "2", "--batch-size", "2", "--logging-steps", "1"]) == 0
    logged = [json.loads(line) for line in (model / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in row for row in logged) and (model / "config.json").is_file()
