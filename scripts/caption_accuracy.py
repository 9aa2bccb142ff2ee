"""How right a model's CAPTION stages are on synthetic test items, against the scene graphs:
the object count, the set of positions, and the attributes of each object placed right.
Separates perception from reasoning when a tiny model's answers are wrong.

    python scripts/caption_accuracy.py MODEL_DIR TEST_DATA_DIR [--n 60]

TEST_DATA_DIR is a `llava-cot data synth --split test` output (with test_scenes.jsonl).
"""

import argparse
import json
import re

import torch

from llava_cot import models, records, stages
from llava_cot.engines import Prompt, Sampling
from llava_cot.engines.hf import HFEngine

# "Row 2, column 3: a small red circle." or "At row 2, column 3 there is a small red circle."
LINE = re.compile(r"(?:Row|At row) (\d+), column (\d+)(?::| there is) a (\w+) (\w+) (\w+)\.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--batch", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    engine = HFEngine(models.load(args.model, device="cpu", dtype="float32"), max_batch=args.batch)
    items = list(records.read(f"{args.data}/test.jsonl"))[: args.n]
    with open(f"{args.data}/test_scenes.jsonl") as f:
        scenes = {s["id"]: s for s in map(json.loads, f)}
    c = dict(items=0, exact=0, count=0, positions=0, named=0, placed=0, attributes=0)
    for i in range(0, len(items), args.batch):
        batch = items[i : i + args.batch]
        images = [models.open_image(f"{args.data}/{r.image}") for r in batch]
        outs = engine.generate([Prompt(im, r.question) for im, r in zip(images, batch, strict=True)],
                               Sampling(max_new_tokens=400))
        for rec, [out] in zip(batch, outs, strict=True):
            objects = scenes[rec.extra["scene"]]["objects"]
            gold = {(o["row"], o["col"]): (o["size"], o["colour"], o["shape"]) for o in objects}
            caption = stages.parse(out.text).stages.get("CAPTION", "")
            said = {(int(r), int(col)): (s, colour, shape) for r, col, s, colour, shape in LINE.findall(caption)}
            c["items"] += 1
            c["exact"] += said == gold
            c["count"] += len(said) == len(gold)
            c["positions"] += set(said) == set(gold)
            c["named"] += len(said)
            c["placed"] += sum(p in gold for p in said)
            c["attributes"] += sum(gold.get(p) == a for p, a in said.items())
    figures = {"captions_exact": c["exact"] / c["items"], "count_right": c["count"] / c["items"],
               "position_sets_right": c["positions"] / c["items"],
               "position_precision": c["placed"] / max(1, c["named"]),
               "attributes_given_position": c["attributes"] / max(1, c["placed"]), "items": c["items"]}
    for key, value in figures.items():
        print(f"{key:>26}: {value:.3f}" if isinstance(value, float) else f"{key:>26}: {value}")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
