"""The scripts that write the docs' figures, and the search-speed benchmark, run and say what
they measured."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _predictions(out: Path, correct: list[bool]) -> Path:
    out.mkdir(parents=True)
    rows = [{"index": f"q{i}", "correct": c} for i, c in enumerate(correct)]
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def test_paired_difference_counts_only_shared_items_and_its_interval_contains_it(tmp_path):
    reproduction = _load("reproduction", ROOT / "scripts" / "reproduction.py")
    a = _predictions(tmp_path / "a", [True] * 8 + [False] * 2)  # 80%
    b = _predictions(tmp_path / "b", [True] * 5 + [False] * 5 + [True] * 10)  # 50% on the shared ten
    got = reproduction.paired(a, b)
    assert got.startswith("+30.0 points") and got.endswith("; 10 items)")
    lo, hi = (float(x) for x in got.split("interval ")[1].split(";")[0].split(" to "))
    assert lo < 30.0 < hi
    assert reproduction.paired(a, a).startswith("+0.0 points (95% interval +0.0 to +0.0")
    assert reproduction.paired(a, tmp_path / "missing") == "not run yet"


@pytest.mark.slow
def test_search_speed_benchmark_ends_with_its_figures():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "search_speed.py"), "--questions", "1",
                          "--repeats", "1", "--beam", "2", "--stage-tokens", "12", "--judge", "likelihood"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["speedup_vs_reference"] > 0 and figures["stage_beam2_over_greedy"] > 0
    assert figures["step_ms"]["1"] > 0 and figures["step_ms"]["2"] > 0
    assert figures["tokens"]["stage_beam"] > 0 and figures["tokens"]["reference"] > 0
