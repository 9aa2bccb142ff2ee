"""Plain-answer VQA records for the teacher pipeline's tests: synthetic items through `data import`."""

import json
from pathlib import Path

from llava_cot.cli import main as cli
from llava_cot.synth.generate import SynthConfig, generate


def plain_items(root: Path, n: int, seed: int = 0) -> Path:
    """root/vqa/data.jsonl: n synthetic questions (counts, yes/no, attributes, multiple choice)
    whose gpt turns are the plain gold answers, images under root/vqa/images."""
    generate(SynthConfig(out=str(root / "synth"), n=n, split="train", seed=seed))
    assert cli(["data", "import", "--from", str(root / "synth" / "train.jsonl"), "--out", str(root / "vqa")]) == 0
    return root / "vqa" / "data.jsonl"


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def summary(out: str) -> dict:
    """The JSON object on the last line of a command's stdout."""
    return json.loads(out.strip().splitlines()[-1])
