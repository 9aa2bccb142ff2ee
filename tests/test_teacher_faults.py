"""The teacher pipeline under faults: a teacher that answers 429, 500, slowly, with malformed JSON,
with empty content and with wrong answers at random, and a run killed with SIGKILL at random
moments 20 times, resumed each time. Nothing finished is lost, nothing is written twice, and
what is kept is exactly what the teacher answered right."""

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from tests.teacher_data import lines, plain_items

from llava_cot import records, stages
from llava_cot.check import check
from llava_cot.teacher.oracle import Oracle, serve

ITEMS, KILLS = 200, 20
FATES = {"wrong": 0.15, "bad_format": 0.05, "leak": 0.05, "refuse": 0.03, "second_try": 0.1}


def _written(out) -> int:
    """Lines in both output files so far (a torn last line counts: the kill may land mid-write)."""
    return sum(p.read_bytes().count(b"\n") for p in (out, out.with_name("cot.rejected.jsonl")) if p.exists())


def _start(data, url, out, log):
    cmd = [sys.executable, "-m", "llava_cot", "data", "annotate", "--input", str(data), "--images",
           str(data.parent), "--teacher-url", url, "--teacher-model", "oracle", "--out", str(out),
           "--concurrency", "16", "--timeout", "0.25", "--backoff", "0.01", "--request-retries", "12",
           "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)


def _kill_at_random(proc, out, rng) -> bool:
    """SIGKILL `proc` at a random moment: during its start-up now and then, else once it has
    finished 1 to 6 more items. False if it ended on its own first."""
    if rng.random() < 0.25:
        deadline, target = time.monotonic() + rng.uniform(0.05, 1.5), None
    else:
        deadline, target = time.monotonic() + 60, _written(out) + rng.randint(1, 6)
    while proc.poll() is None:
        if time.monotonic() >= deadline or (target is not None and _written(out) >= target):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    return False


@pytest.mark.slow
def test_killed_20_times_nothing_lost_nothing_twice_exactly_the_right_answers_kept(tmp_path):
    data = plain_items(tmp_path, n=ITEMS, seed=5)
    out = tmp_path / "cot.jsonl"
    rng = random.Random(0)
    oracle = Oracle(data, data.parent, faults=0.2, slow=0.5, retry_after=0.01, seed=11, **FATES)
    log = (tmp_path / "stderr.txt").open("wb")  # a file, not a pipe: a pipe nobody reads can fill and block
    with serve(oracle) as url, log:
        kills = 0
        while kills < KILLS:
            proc = _start(data, url, out, log)
            killed = _kill_at_random(proc, out, rng)
            assert killed or proc.returncode in (0, 1), (tmp_path / "stderr.txt").read_text()[-2000:]
            kills += killed
            if not killed and proc.returncode == 0:
                break  # it finished between kills: the rest of the kills would find nothing to do
        finishing_runs = 0
        while _start(data, url, out, log).wait() != 0:  # resume until every item is done
            finishing_runs += 1
            assert finishing_runs < 5, (tmp_path / "stderr.txt").read_text()[-2000:]

    inputs = [r.id for r in records.read(data)]
    accepted, rejected = lines(out), lines(tmp_path / "cot.rejected.jsonl")
    written = Counter(r["id"] for r in accepted + rejected)
    duplicates = sum(n - 1 for n in written.values())
    lost = len(set(inputs) - set(written))
    print(f"kills {kills}, items {len(inputs)}, accepted {len(accepted)}, rejected {len(rejected)}, "
          f"duplicates {duplicates}, lost {lost}, teacher requests {oracle.requests}")
    assert kills == KILLS and len(inputs) == ITEMS
    assert duplicates == 0 and lost == 0 and set(written) == set(inputs)
    assert {r["id"] for r in accepted} == oracle.good  # exactly what the teacher answered right
    assert oracle.good == {i for i in inputs if oracle.fate(i) in ("right", "second_try")}
    assert all(isinstance(r, records.Record) for r in check(out, data.parent))  # valid, four stages, images
    assert all(stages.parse(r["conversations"][1]["value"]).ok for r in accepted)
    assert {r["reason"] for r in rejected} <= {"wrong_answer", "judge_said_no", "not_four_stage", "leaked_hint",
                                                "teacher_refused"}
