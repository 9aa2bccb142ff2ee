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
    from llava_cot import generation, models

    loaded = models.load(tiny_dir, device="cpu")
    img = Image.open(image).convert("RGB")
    pieces = []
    streamed = generation.generate(loaded, [img], ["How many?"], max_new_tokens=12, on_text=pieces.append)[0]
    plain = generation.generate(loaded, [img], ["How many?"], max_new_tokens=12)[0]
    assert streamed == plain
    assert "".join(pieces).strip() == plain.text


def test_embedded_model_answers_offline_in_four_stages(capsys):
    # The main job of the README: no --model, the model shipped inside the package.
    rc = main(["ask", "--image", str(Path(__file__).parent.parent / "examples" / "scene1.png"), "How many circles are there?", "--json", "--device", "cpu"])
    assert rc == 0
    obj = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stages.parse(obj["text"]).ok
    assert obj["answer"] == obj["stages"]["CONCLUSION"] != ""
