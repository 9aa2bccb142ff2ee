"""Whether an image looks like the synthetic world, the only one the embedded model knows.

`llava-cot ask` with the embedded model still answers about any image, but a photograph or a
drawing of another shape gets an answer about a world it is not; `note(image)` is the one line
it prints on stderr then. The check is cheap (a 64 x 64 nearest-neighbour sample, a few ms):
a synthetic scene, drawn at any size by `scene.render`, is square, and its pixels are the
background and the six object colours exactly (a little off after JPEG, and not at every edge), with the background
showing between the objects.

    from llava_cot.synth import world
    world.looks_synthetic(Image.open("examples/scene1.png"))   # True
"""

from __future__ import annotations

from typing import Any

from llava_cot.synth.scene import BACKGROUND, COLOURS

SAMPLE = 64  # side of the sample taken; nearest-neighbour keeps a flat scene's colours exact
TOLERANCE = 24  # per channel: what JPEG or a colour profile may move a flat colour
IN_PALETTE = 0.85  # share of sampled pixels that must be a palette colour (JPEG rings at the edges)
BACKGROUND_SHARE = 0.25  # the least background a scene shows (16 large objects leave about 33%)
NOTE = ("note: the embedded model knows only the synthetic world (flat shapes on a 4 x 4 grid, as `llava-cot data "
        "synth` draws them) and will answer as if this image were one; for other images use --model DIR_OR_ID "
        "(a Hugging Face vision-language checkpoint, local or from the hub cache)")


def looks_synthetic(image: Any) -> bool:
    """Whether a PIL image could be a scene of the synthetic world (at any size)."""
    w, h = image.size
    if abs(w - h) > 0.02 * max(w, h):
        return False
    from PIL import Image

    data = image.convert("RGB").resize((SAMPLE, SAMPLE), Image.Resampling.NEAREST).tobytes()
    pixels = list(zip(data[0::3], data[1::3], data[2::3], strict=True))
    palette = [BACKGROUND, *COLOURS.values()]

    def near(p: tuple[int, int, int], q: tuple[int, int, int]) -> bool:
        return max(abs(a - b) for a, b in zip(p, q, strict=True)) <= TOLERANCE

    counts: dict[tuple[int, int, int], int] = {}
    for p in pixels:  # few distinct colours in a scene: decide each once
        counts[p] = counts.get(p, 0) + 1
    inside = sum(n for p, n in counts.items() if any(near(p, q) for q in palette))
    background = sum(n for p, n in counts.items() if near(p, BACKGROUND))
    return inside >= IN_PALETTE * len(pixels) and background >= BACKGROUND_SHARE * len(pixels)


def note(image: Any) -> str | None:
    """The line `ask` prints for an image the embedded model was not made for, else None."""
    return None if looks_synthetic(image) else NOTE
