"""`llava-cot ask`: streamed stages, the --json object, and one-line errors with exit code 2."""

import json
from pathlib import Path

import pytest
from PIL import Image

from llava_cot import ask, stages
from llava_cot.cli import main


@pytest.fixture
def image(synth_dir):
    return str(next((synth_dir / "images" / "train").glob("*.png")))


def test_json_object_has_the_documented_keys(tiny_dir, image, capsys):
    rc = main(["ask", "--model", str(tiny_dir), "--image", image, "How many objects?", "--json",
               "--max-new-tokens", "8", "--device", "cpu"])
    assert rc == 0
    obj = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(obj) >= {"stages", "answer", "text", "search"}
    assert list(obj["stages"]) == list(stages.STAGES)
    assert 1 <= obj["search"]["tokens_generated"] <= 8


def test_stage_printer_labels_streamed_stages():
    import io

    out = io.StringIO()
    printer = ask._StagePrinter(out)
    text = stages.render({"SUMMARY": "plan", "CAPTION": "two cubes", "REASONING": "1 + 1 = 2", "CONCLUSION": "2"})
    for i in range(0, len(text), 3):
        printer(text[i : i + 3])
    printer.close()
    assert out.getvalue().split("\n") == [
        "SUMMARY", "plan", "", "CAPTION", "two cubes", "", "REASONING", "1 + 1 = 2", "", "CONCLUSION", "2", "",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image", "/nonexistent.png", "q?"], "does not exist"),
        (["--image", "IMAGE", "   "], "question is empty"),
        (["--image", "IMAGE", "q?", "--model", "/no/such/dir"], "neither a model directory"),
        (["--image", "BROKEN", "q?"], "cannot be read"),
    ],
)
def test_user_errors_one_line_exit_2(args, message, image, tmp_path, tiny_dir, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    args = [str(broken) if a == "BROKEN" else image if a == "IMAGE" else a for a in args]
    if "--model" not in args:
        args += ["--model", str(tiny_dir)]
    assert main(["ask", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_streaming_matches_batch_output(tiny_dir, image):
    from llava_cot import models
    from llava_cot.ask import ask

    loaded = models.load(tiny_dir, device="cpu")
    img = Image.open(image).convert("RGB")
    pieces = []
    streamed = ask(img, "How many?", loaded, max_new_tokens=12, on_text=pieces.append)
    plain = ask(img, "How many?", loaded, max_new_tokens=12)
    assert streamed["text"] == plain["text"] and len(pieces) > 1
    assert "".join(pieces).strip() == plain["text"]
    # the same tokens transformers' own generate picks
    from llava_cot.engines import Prompt
    from llava_cot.engines.hf import HFEngine

    _, inputs = HFEngine(loaded).encode(Prompt(img, "How many?"))
    out = loaded.model.generate(**inputs, max_new_tokens=12, do_sample=False)
    want = loaded.processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert plain["text"] == want.strip() and plain["search"]["tokens_generated"] == out.shape[1] - inputs["input_ids"].shape[1]


def test_embedded_model_answers_offline_in_four_stages(capsys):
    # The main job of the README: no --model, the model shipped inside the package.
    rc = main(["ask", "--image", str(Path(__file__).parent.parent / "examples" / "scene1.png"), "How many circles are there?", "--json", "--device", "cpu"])
    assert rc == 0
    obj = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stages.parse(obj["text"]).ok
    assert obj["answer"] == obj["stages"]["CONCLUSION"] != ""


def test_image_too_large_one_line_exit_2(tmp_path, capsys):
    big = tmp_path / "big.png"
    Image.new("1", (20000, 20000)).save(big)  # 400 megapixels in about 50 KB
    assert main(["ask", "--image", str(big), "How many objects?"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert f"image {big} is too large: 400,000,000 pixels, more than the 178,956,970 pixels PIL opens" in err


def test_image_over_pil_warning_limit_is_read_quietly(tmp_path, monkeypatch):
    import warnings

    from llava_cot import models
    from llava_cot.errors import LlavaCotError

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # the limit a user may set, made small
    Image.new("L", (120, 120)).save(tmp_path / "warned.png")  # 14,400 pixels: PIL only warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert models.open_image(tmp_path / "warned.png").size == (120, 120)
    Image.new("L", (150, 150)).save(tmp_path / "refused.png")  # 22,500: over twice the limit
    with pytest.raises(LlavaCotError, match="22,500 pixels, more than the 20,000 pixels PIL opens"):
        models.open_image(tmp_path / "refused.png")


# ---------------------------------------------------------------------------------------------
# Out of its world: the embedded model says so once, and still answers


def _photo(path: Path, size: tuple[int, int] = (160, 120)) -> str:
    """A photograph's stand-in: smooth gradients and sensor noise, no flat colour anywhere."""
    import random

    rng = random.Random(0)
    w, h = size
    pixels = [(min(255, 40 + 180 * x // w + rng.randrange(20)), min(255, 60 + 150 * y // h + rng.randrange(20)),
               min(255, 90 + rng.randrange(40))) for y in range(h) for x in range(w)]
    img = Image.new("RGB", size)
    img.putdata(pixels)
    img.save(path)
    return str(path)


def _scene(path: Path, size: int, pad: int = 0) -> str:
    import random

    from llava_cot.synth import scene

    img = scene.render(scene.sample(random.Random(3), 9, "x"), size)
    if pad:  # the same drawing on a wider canvas: no longer the world's square
        wide = Image.new("RGB", (size + pad, size), scene.BACKGROUND)
        wide.paste(img)
        img = wide
    img.save(path)
    return str(path)


def test_embedded_model_says_once_when_the_image_is_not_of_its_world_and_still_answers(tmp_path, capsys):
    from llava_cot.synth import world

    for image in (_photo(tmp_path / "photo.png"), _scene(tmp_path / "wide.png", 64, pad=40)):
        rc = main(["ask", "--image", image, "How many objects are there?", "--max-new-tokens", "6", "--device", "cpu"])
        out, err = capsys.readouterr()
        assert rc == 0 and "Answer:" in out
        notes = [line for line in err.splitlines() if "synthetic world" in line]
        assert notes == [world.NOTE] and "--model" in notes[0]


def test_no_note_for_scenes_of_its_world_or_another_model(tmp_path, tiny_dir, capsys):
    from llava_cot.synth import world

    examples = Path(__file__).parent.parent / "examples"
    scenes = [*map(str, sorted(examples.glob("*.png"))), _scene(tmp_path / "big.png", 256)]
    jpeg = tmp_path / "scene.jpg"
    Image.open(scenes[0]).save(jpeg, quality=90)
    assert all(world.looks_synthetic(Image.open(p)) for p in [*scenes, jpeg])
    assert main(["ask", "--image", scenes[0], "How many circles are there?", "--max-new-tokens", "4", "--device", "cpu"]) == 0
    assert "synthetic world" not in capsys.readouterr().err
    photo = _photo(tmp_path / "photo.png")
    assert main(["ask", "--model", str(tiny_dir), "--image", photo, "q?", "--max-new-tokens", "4", "--device", "cpu"]) == 0
    assert "synthetic world" not in capsys.readouterr().err  # the user chose a model: not ours to judge
