"""Scenes of the synthetic world: objects on a 4x4 grid, how to sample them and how to draw them.

A scene is a few objects, each with a shape, a colour and a size, each alone in one cell of a
GRID x GRID grid (rows and columns numbered from 1, row 1 at the top). It is drawn with PIL
primitives on a plain background. The default 64 px image gives every cell exactly one 16x16
patch of the tiny ViT that learns from this data, so one patch sees one whole object and nothing
of its neighbours. Used by `generate.py`; to look at one scene:

    python -m llava_cot.synth.scene /tmp/scene.png [SEED] [SIZE]
"""

from __future__ import annotations

import hashlib
import random
import struct
import sys
import zlib
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

GRID = 4
# Four shapes whose silhouettes differ even at 8 px: corners (square), none (circle), a flat
# base and one apex (triangle), two apexes on the vertical axis (diamond). All start with a
# consonant, so "a" is always the right article in the generated text.
SHAPES: tuple[str, ...] = ("square", "circle", "triangle", "diamond")
# Six saturated colours far apart in RGB (every pair differs by > 100 in some channel), none close
# to the background, so a linear patch embedding separates them from a single pixel.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 230),
    "yellow": (240, 200, 30),
    "purple": (160, 60, 200),
    "cyan": (40, 200, 210),
}
# Side of the object's bounding box as a fraction of its cell: large fills most of the cell,
# small about a quarter of its area, so size reads off the patch at a glance.
SIZES: dict[str, float] = {"small": 0.5, "large": 0.82}
BACKGROUND = (235, 235, 235)
# Attribute order in noun phrases ("large red squares"): size, colour, shape, as English has it.
ATTRS: tuple[str, ...] = ("size", "colour", "shape")
VALUES: dict[str, tuple[str, ...]] = {"size": tuple(SIZES), "colour": tuple(COLOURS), "shape": SHAPES}


@dataclass(frozen=True)
class Split:
    """What a split's scenes and questions look like. `test_bucket` is True for test and heldout,
    False for train and None for hard (hard cannot meet train or test anyway: it has more
    objects than either). `heldout`: the questions are worded only in the held-out phrasings
    (`wording.py`), which no other split uses."""

    objects: tuple[int, int]  # inclusive range of objects per scene
    steps: tuple[int, int]  # inclusive range of subtraction steps per question
    test_bucket: bool | None
    heldout: bool = False


SPLITS: dict[str, Split] = {
    "train": Split(objects=(3, 6), steps=(1, 2), test_bucket=False),
    "test": Split(objects=(3, 6), steps=(1, 2), test_bucket=True),
    "hard": Split(objects=(8, 12), steps=(3, 4), test_bucket=None),
    "heldout": Split(objects=(3, 6), steps=(1, 2), test_bucket=True, heldout=True),
}


@dataclass(frozen=True)
class Obj:
    shape: str
    colour: str
    size: str
    row: int  # 1..GRID, from the top
    col: int  # 1..GRID, from the left
    jitter: tuple[float, float] = (0.0, 0.0)  # in [-1, 1], scaled to the free room in the cell

    def describe(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"

    def where(self) -> str:
        return f"row {self.row}, column {self.col}"


@dataclass(frozen=True)
class Scene:
    id: str
    objects: tuple[Obj, ...]  # in reading order: row by row, left to right

    def key(self) -> str:
        """Canonical form: what the scene shows, ignoring jitter, which is drawing noise."""
        return ";".join(f"{o.row},{o.col},{o.size},{o.colour},{o.shape}" for o in self.objects)

    def is_test(self) -> bool:
        """The train/test assignment: a fixed function of the scene's content, so a scene can
        never be in both splits, whatever seeds generated them."""
        digest = hashlib.blake2b(self.key().encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % 10 == 0


def sample(rng: random.Random, n_objects: int, scene_id: str) -> Scene:
    """A scene of `n_objects` objects in distinct cells, attributes uniform and independent."""
    cells = sorted(rng.sample(range(GRID * GRID), n_objects))
    objects = []
    for cell in cells:
        row, col = divmod(cell, GRID)
        shape, colour, size = rng.choice(SHAPES), rng.choice(VALUES["colour"]), rng.choice(VALUES["size"])
        # Jitter is drawn whatever the image size, so a seed gives the same scenes at any size.
        jitter = (round(rng.uniform(-1, 1), 3), round(rng.uniform(-1, 1), 3))
        objects.append(Obj(shape, colour, size, row + 1, col + 1, jitter))
    return Scene(scene_id, tuple(objects))


def box(obj: Obj, image_size: int) -> tuple[int, int, int, int]:
    """Pixel bounding box (x0, y0, x1, y1), inclusive, of an object in an image of this size."""
    cell = image_size // GRID
    side = max(3, round(SIZES[obj.size] * cell))
    # Jitter stays small enough that the shape keeps a 1 px gap to its cell's border and still
    # covers the cell's centre pixel (a triangle is narrow near its apex: hence side // 8).
    room = max(0, min((cell - side) // 2 - 1, side // 8))
    x0 = (obj.col - 1) * cell + (cell - side) // 2 + round(obj.jitter[0] * room)
    y0 = (obj.row - 1) * cell + (cell - side) // 2 + round(obj.jitter[1] * room)
    return x0, y0, x0 + side - 1, y0 + side - 1


def _draw(draw: ImageDraw.ImageDraw, shape: str, b: tuple[int, int, int, int], fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = b
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    outline = {
        "triangle": [(cx, y0), (x1, y1), (x0, y1)],
        "diamond": [(cx, y0), (x1, cy), (cx, y1), (x0, cy)],
    }
    if shape == "square":
        draw.rectangle(b, fill=fill)
    elif shape == "circle":
        draw.ellipse(b, fill=fill)
    else:
        draw.polygon(outline[shape], fill=fill)


def render(scene: Scene, image_size: int = 64) -> Image.Image:
    """The scene as an RGB image: flat colours, no anti-aliasing, so every object pixel has
    exactly its colour's value."""
    img = Image.new("RGB", (image_size, image_size), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        _draw(draw, obj.shape, box(obj, image_size), COLOURS[obj.colour])
    return img


def png(img: Image.Image, level: int = 1) -> bytes:
    """An RGB image as PNG bytes. For images this small, Pillow's PNG writer spends most of its
    ~140 us in per-call setup; this writes the same format (no row filters, one zlib stream)
    in ~15 us, which makes it the largest single saving in `generate` (see the benchmark)."""
    if img.mode != "RGB":
        raise ValueError(f"png() writes RGB images, not {img.mode}")
    w, h = img.size
    raw = img.tobytes()
    stride = 3 * w
    # Each row is prefixed with its filter type, 0 = none: flat colours compress well without.
    rows = b"".join(b"\x00" + raw[i : i + stride] for i in range(0, len(raw), stride))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8 bits per channel, colour type 2 (RGB)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, level)) + chunk(b"IEND", b"")


def to_json(scene: Scene, image: str, image_size: int) -> dict[str, Any]:
    """The scene's ground truth as saved in {split}_scenes.jsonl (rows and columns from 1)."""
    objects = [
        {"shape": o.shape, "colour": o.colour, "size": o.size, "row": o.row, "col": o.col,
         "box": list(box(o, image_size))}
        for o in scene.objects
    ]
    return {"id": scene.id, "image": image, "image_size": image_size, "grid": GRID, "objects": objects}


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/scene.png"
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    px = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    s = sample(random.Random(seed), 6, "example")
    render(s, px).save(out)
    print(out, s.key())
