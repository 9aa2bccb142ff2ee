"""Write the embedded model's card from the outputs of scripts/train_embedded.sh (and, where they
exist, scripts/table2.sh and scripts/search_table.sh): every figure on the card is read from a
file those commands wrote, none typed by hand.

    python scripts/model_card.py runs/embedded-build > src/llava_cot/embedded/README.md
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from llava_cot.evaluation.metrics import table

SPLITS = {"synth-test": "Scenes never seen in training, drawn like the training ones (3-6 objects, 1-2 subtraction steps).",
          "synth-phrasings": "The same kind of unseen scenes, every question worded in a phrasing never used in training "
                             "(`--split heldout`): how far the model follows new wordings.",
          "synth-hard": "8-12 objects and 3-4 subtraction steps, more than any training scene has: a test of how far "
                        "the model generalises."}


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def training(run: Path) -> str:
    cfg = load(run / "train_config.json") or {}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").open()] if (run / "metrics.jsonl").is_file() else []
    steps = [r for r in rows if "loss" in r]
    if not steps:
        return f"({run}: no training log)"
    # elapsed restarts from zero when a run resumes: add up each segment's last figure
    ends = [a for a, b in zip(steps, [*steps[1:], None], strict=True) if b is None or b["elapsed"] < a["elapsed"]]
    seconds = sum(a["elapsed"] for a in ends)
    starts = [json.loads(line) for line in (run / "hardware.jsonl").open()] if (run / "hardware.jsonl").is_file() else []
    kinds = sorted({s.get("gpu") or f"{s['cpu_cores']} CPU cores ({s['cpu'] or 'CPU'})" for s in starts})
    where = f" on {', '.join(kinds)}" if kinds else ""
    last = steps[-1]
    return (f"{last['step']} steps of {cfg.get('batch_size')} examples, lr {cfg.get('lr')}, seed {cfg.get('seed')}, "
            f"{seconds / 60:.0f} minutes{where}, final loss {last['loss']:.3f}")


def parameters(run: Path) -> str:
    """The parameter count of a run's saved weights, read from the safetensors header."""
    from safetensors import safe_open

    path = run / "model.safetensors"
    if not path.is_file():
        return "tiny"
    with safe_open(str(path), "pt") as f:
        n = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 (a safe_open handle, not a dict)
    return f"{n / 1e6:.1f}M-parameter"


def main() -> None:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/embedded-build")
    commit = (work / "commit").read_text().strip() if (work / "commit").is_file() else ""
    checkout = f"git checkout {commit.removesuffix('-dirty')} && " if commit else ""  # the data generator changes
    size = (load(work / "judge" / "config.json") or {}).get("llava_cot_tiny", {})
    g = {k: size.get(k, "?") for k in ("vision_layers", "vision_hidden", "image_size", "patch_size", "text_layers",
                                        "text_hidden", "vocab_size")}
    out = ["# Embedded model card: llava-cot tiny", "",
           f"The default model of `llava-cot ask`: a {parameters(work / 'judge')} Llava (CLIP vision tower "
           f"{g['vision_layers']} x {g['vision_hidden']}, {g['image_size']} px images in {g['patch_size']} px",
           f"patches; Llama text model {g['text_layers']} x {g['text_hidden']}; byte-level BPE vocabulary of "
           f"{g['vocab_size']} trained on the data) built from scratch",
           "on the synthetic world by this project, and trained to judge and verify its own stages. It knows",
           "only that world (flat shapes on a 4 x 4 grid); `llava-cot ask` says so when an image is not of it.", "",
           "## Reproduce (seeded)", "", f"    {checkout}bash scripts/train_embedded.sh {work}", "",
           *(["Built with uncommitted changes on top of that commit: it may not reproduce exactly.", ""]
             if commit.endswith("-dirty") else []),
           f"- Phase 1 (four-stage answers, vision phase first): {training(work / 'model')}.",
           *([f"- Phase 2 (the multiple-choice items of the same data, a drill): {training(work / 'drill')}."]
             if (work / "drill").is_dir() else []),
           f"- Phase {3 if (work / 'drill').is_dir() else 2} (four-stage answers of every family mixed with judge and verifier items): "
           f"{training(work / 'judge')}.", ""]
    calibration = load(work / "judge" / "search.json")
    if calibration:
        out += [f"As its own judge (`llava-cot calibrate`, synthetic test scenes; a correct stage against one with a "
                f"planted mistake): the verifier (\"is it correct?\") separates them with balanced accuracy "
                f"{calibration['balanced_accuracy']:.1%} on {calibration['items']} stages (SWIRES threshold "
                f"{calibration['swires_threshold']})"]
        if "pairwise_accuracy" in calibration:
            out[-1] += (f"; the pairwise judge picks the correct one {calibration['pairwise_accuracy']:.1%} of "
                        f"{calibration['pairwise_items']} times")
        if "likelihood_threshold" in calibration:
            out[-1] += (f"; the likelihood judge (its probability of a stage's least likely token) separates them with "
                        f"balanced accuracy {calibration['likelihood_balanced_accuracy']:.1%} on "
                        f"{calibration['likelihood_items']} stages (threshold {calibration['likelihood_threshold']})")
        out += [out.pop() + ".", ""]
    for bench in SPLITS:
        m = load(work / f"eval-{bench}" / "metrics.json")
        if m:
            out += [f"## Greedy, {bench} (`llava-cot eval --bench {bench} --limit {m['n']}`)", "", SPLITS[bench], "",
                    table(m), ""]
    variants = []
    for fmt in ("structured", "untagged", "direct"):
        run = work / "model" if fmt == "structured" else work / "table2" / f"{fmt}-seed0"
        test, hard = (load(run / f"eval-{b}" / "metrics.json") for b in ("synth-test", "synth-hard"))
        if test and hard:
            variants.append(f"| {fmt} | {test['accuracy']:.1%} of {test['n']} | {hard['accuracy']:.1%} of {hard['n']} |")
    if variants:
        out += ["## Table 2 in miniature (same data and budget; `bash scripts/table2.sh`)", "",
                "The model trained on the full four-stage text, the same text without tags (its answer read",
                "from its last paragraph), and the answer alone; one run (seed 0) each, greedy.", "",
                "| format | synth-test | synth-hard |", "| --- | ---: | ---: |", *variants, ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
