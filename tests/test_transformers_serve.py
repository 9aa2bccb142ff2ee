"""`llava-cot ask` and `eval` against a real `transformers serve` (the transformers CLI's
OpenAI-compatible server, `pip install "transformers[serving]"`) serving the embedded model,
offline, started as a subprocess on a free port.

What it does with our requests (transformers 5.24, on this VLM), and what the engine does about it:
greedy answers exactly as our local engine; `n` > 1 comes back as one choice (the rest are asked
for one request each, seeded seed + i); `logprobs` is ignored (no log-probabilities: a judge that
needs them says so); `stop` answers 500 (its stop-string criteria want the tokenizer and are given
the processor: stops are then applied to the text); vLLM's `continue_final_message` answers 422
(partial answers continue in a fresh turn). It does not sample this model at temperature > 0
(sampling is on only when the model's generation_config says so, and ours does not), so the
samples of a search are all the greedy answer.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from llava_cot import models
from llava_cot.cli import main

IMAGE, QUESTION = "examples/scene2.png", "How many cubes are there?"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.skip('transformers serve cannot be imported (needs pip install "transformers[serving]")')
    port = _free_port()
    log = (tmp_path_factory.mktemp("transformers-serve") / "serve.log").open("w")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    script = "import sys; from transformers.cli.transformers import main; sys.argv[0] = 'transformers'; main()"
    process = subprocess.Popen([sys.executable, "-c", script, "serve", str(models.EMBEDDED_DIR), "--host",
                                "127.0.0.1", "--port", str(port), "--device", "cpu"],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {process.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"transformers serve did not start in 180 s; see {log.name}")
            time.sleep(0.5)
        yield f"{base}/v1"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _ask(capsys, *args):
    assert main(["ask", "--image", IMAGE, QUESTION, "--json", *args]) == 0
    out, err = capsys.readouterr()
    return json.loads(out.strip().splitlines()[-1]), err


@pytest.mark.slow
def test_greedy_through_transformers_serve_is_the_local_answer(url, capsys):
    there, _ = _ask(capsys, "--base-url", url)
    here, _ = _ask(capsys)
    assert there["format_ok"] and there["text"] == here["text"] and there["answer"] == here["answer"]


@pytest.mark.slow
def test_best_of_n_with_the_majority_judge_runs(url, capsys):
    obj, err = _ask(capsys, "--base-url", url, "--search", "best_of_n", "--beam", "3", "--judge", "majority")
    assert obj["format_ok"] and obj["search"]["candidates"] >= 1
    assert "answers n > 1 with fewer choices" in err  # three requests of one choice each


@pytest.mark.slow
def test_eval_greedy_and_self_consistency_through_transformers_serve(url, tmp_path, capsys):
    for search in ("greedy", "self_consistency"):
        out = tmp_path / search
        args = ["eval", "--base-url", url, "--bench", "synth-test", "--limit", "2", "--concurrency", "2",
                "--search", search, "--beam", "2", "--out", str(out)]
        assert main(args) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["n"] == 2 and summary["format_valid"] == 1.0
        run = json.loads((out / "run.json").read_text())
        assert run["base_url"] == url and run["served_model"] == str(models.EMBEDDED_DIR)
        rows = (out / "predictions.jsonl").read_text()
        assert main(args) == 0  # resumed: nothing left to answer, nothing rewritten
        assert (out / "predictions.jsonl").read_text() == rows
        capsys.readouterr()


@pytest.mark.slow
def test_a_judge_that_needs_logprobs_says_the_server_has_none(url, capsys):
    # SWIRES asks its verifier about every stage: after the first stage (its stop string refused
    # with a 500, applied to the text instead), the verifier finds no log-probabilities.
    rc = main(["ask", "--image", IMAGE, QUESTION, "--base-url", url, "--search", "swires", "--beam", "2",
               "--max-new-tokens", "48"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "gives no log-probabilities" in err and url in err and "\n" not in err
