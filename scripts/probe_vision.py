"""Linear probes of a Llava checkpoint's image features on the synthetic world: can each patch's
feature (after the vision tower, and after the projector) tell its cell's size, colour and shape,
and its own cell index? This is the check that found the attribute-only vision phase erasing
position (cell index at chance) and that the position head restores it.

    python scripts/probe_vision.py MODEL_DIR TRAIN_DATA_DIR TEST_DATA_DIR [--n-train 1500] [--n-test 500]

The data directories are `llava-cot data synth` outputs (with their {split}_scenes.jsonl).
"""

import argparse
import json

import torch
from PIL import Image

from llava_cot import models, tiny
from llava_cot.synth.scene import GRID, VALUES


def features(loaded, data: str, split: str, n: int):
    with open(f"{data}/{split}_scenes.jsonl") as f:
        scenes = [json.loads(line) for line, _ in zip(f, range(n), strict=False)]
    images = [Image.open(f"{data}/{s['image']}").convert("RGB") for s in scenes]
    pixels = loaded.processor.image_processor(images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        vision = loaded.model.model.vision_tower(pixel_values=pixels, output_hidden_states=True).hidden_states[-1][:, 1:]
        projected = loaded.model.model.multi_modal_projector(vision)
    targets = torch.tensor([tiny.cell_targets(s, VALUES, GRID) for s in scenes])  # [N, attrs, cells]
    return vision, projected, targets


def probe(x_train, y_train, x_test, y_test, classes: int, mask=None) -> float:
    """Test accuracy of a linear classifier fit on standardised features (where `mask`)."""
    head = torch.nn.Linear(x_train.shape[-1], classes)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(head((x_train - mu) / sd), y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred = head((x_test - mu) / sd).argmax(-1)
    mask = torch.ones_like(y_test, dtype=torch.bool) if mask is None else mask
    return (pred[mask] == y_test[mask]).float().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("train_data")
    ap.add_argument("test_data")
    ap.add_argument("--n-train", type=int, default=1500)
    ap.add_argument("--n-test", type=int, default=500)
    args = ap.parse_args()
    torch.manual_seed(0)
    loaded = models.load(args.model, device="cpu", dtype="float32")
    vtr, ptr, ttr = features(loaded, args.train_data, "train", args.n_train)
    vte, pte, tte = features(loaded, args.test_data, "test", args.n_test)
    cells_tr = torch.arange(GRID * GRID).repeat(len(vtr))
    cells_te = torch.arange(GRID * GRID).repeat(len(vte))
    figures = {}
    for name, xtr, xte in (("vision", vtr, vte), ("projector", ptr, pte)):
        xtr, xte = xtr.flatten(0, 1), xte.flatten(0, 1)
        for k, (attr, values) in enumerate(VALUES.items()):
            ytr, yte = ttr[:, k].flatten(), tte[:, k].flatten()
            figures[f"{name}_{attr}"] = probe(xtr, ytr, xte, yte, len(values) + 1, mask=yte > 0)
        figures[f"{name}_cell_index"] = probe(xtr, cells_tr, xte, cells_te, GRID * GRID)
    for key, value in figures.items():
        print(f"{key:>22}: {value:.3f}")
    print(json.dumps({k: round(v, 4) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
