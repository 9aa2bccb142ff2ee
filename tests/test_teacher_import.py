"""`llava-cot data import`: VQA layouts users have, as records with plain answers that `data check
--no-stages` passes and `data annotate` reads."""

import base64
import csv
import io
import json

import pytest
from PIL import Image

from llava_cot import records, stages
from llava_cot.check import check
from llava_cot.cli import main as cli


def png(colour="red", size=8):
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


def imported(tmp_path, source, *options):
    out = tmp_path / "out"
    assert cli(["data", "import", "--from", str(source), "--out", str(out), *options]) == 0
    recs = list(records.read(out / "data.jsonl"))
    bad = [x for x in check(out / "data.jsonl", out, require_stages=False) if not isinstance(x, records.Record)]
    assert bad == []  # what `llava-cot data check --no-stages --images OUT` would say
    return out, {r.id: r for r in recs}


def test_vlmevalkit_tsv_options_in_the_question_shared_images_bad_rows_reported(tmp_path, capsys):
    b64 = base64.b64encode(png()).decode()
    rows = [
        ["index", "question", "hint", "A", "B", "C", "answer", "category", "image"],
        ["1", "What colour is the square?", "Look closely.", "red", "blue", "", "A", "colour", b64],
        ["2", "Is it a square?", "", "yes", "no", "", "A", "shape", "1"],  # the image of row 1
        ["3", "Broken image?", "", "x", "y", "", "A", "x", "!!not base64!!" * 10],
        ["4", "No answer?", "", "x", "y", "", "", "x", b64],
        ["5", "Gold not an option?", "", "x", "y", "", "D", "x", b64],
    ]
    path = tmp_path / "Bench.tsv"
    path.write_text("\n".join("\t".join(r) for r in rows) + "\n")
    _, recs = imported(tmp_path, path)
    assert sorted(recs) == ["Bench-1", "Bench-2"]
    first = recs["Bench-1"]
    assert first.question == ("Hint: Look closely.\nQuestion: What colour is the square?\nOptions:\nA. red\nB. blue\n"
                              "Please select the correct answer from the options above.")
    assert first.response == "A" and first.extra["options"] == {"A": "red", "B": "blue"}
    assert first.extra["category"] == "colour"
    assert recs["Bench-2"].image == first.image  # one file for the shared image
    err = capsys.readouterr().err
    for line in (4, 5, 6):  # each skipped row named by its line in the file
        assert f"line {line}" in err


def test_parquet_with_a_list_of_choices_and_the_answer_as_a_position(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({
        "question_id": ["q1", "q2"],
        "image": [{"bytes": png("red"), "path": None}, {"bytes": png("blue"), "path": None}],
        "question": ["Which colour?", "How many?"],
        "choices": [["blue", "red"], ["1", "2", "3"]],
        "answer": [1, 2],
    })
    folder = tmp_path / "ai2d"
    folder.mkdir()
    pq.write_table(table, folder / "test-00000-of-00001.parquet")
    _, recs = imported(tmp_path, folder)
    assert recs["ai2d-q1"].response == "B" and recs["ai2d-q1"].extra["options"] == {"A": "blue", "B": "red"}
    assert recs["ai2d-q2"].response == "C"


def test_save_to_disk_folder_and_its_splits(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    images = [Image.open(io.BytesIO(png(c))) for c in ("red", "green")]
    features = datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                                  "answer": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({"image": images, "question": ["Colour?", "Colour?"], "answer": ["red", "green"]},
                                    features=features)
    datasets.DatasetDict({"train": ds, "test": ds.select([1])}).save_to_disk(tmp_path / "hf")
    assert cli(["data", "import", "--from", str(tmp_path / "hf"), "--out", str(tmp_path / "x")]) == 2
    assert "--split" in capsys.readouterr().err
    _, recs = imported(tmp_path, tmp_path / "hf", "--split", "train")
    assert [r.response for r in recs.values()] == ["red", "green"]  # ids from the row numbers: hf-1, hf-2
    assert sorted(recs) == ["hf-1", "hf-2"]


def test_llava_conversations_each_pair_one_item_the_answer_its_conclusion(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(png())
    four = stages.render({s: "x" for s in stages.STAGES[:-1]} | {"CONCLUSION": "3"})
    rec = {"id": "r1", "image": "img/a.png", "family": "count", "conversations": [
        {"from": "human", "value": "<image>\nHow many?"}, {"from": "gpt", "value": four},
        {"from": "human", "value": "And red ones?"}, {"from": "gpt", "value": "1"}]}
    (tmp_path / "in.jsonl").write_text(json.dumps(rec) + "\n")
    _, recs = imported(tmp_path, tmp_path / "in.jsonl")
    assert {k: (r.question, r.response) for k, r in recs.items()} == {"r1-0": ("How many?", "3"),
                                                                        "r1-1": ("And red ones?", "1")}
    assert recs["r1-1"].extra["family"] == "count" and recs["r1-1"].image is not None


def test_csv_with_named_columns_is_stable_and_skips_missing_images(tmp_path, capsys):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "one.png").write_bytes(png())
    with (tmp_path / "mine.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "q", "label"])
        w.writerow(["pics/one.png", "What colour?", "red"])
        w.writerow(["pics/missing.png", "What colour?", "blue"])
        w.writerow(["pics/one.png", "Is it round?", "no"])
    options = ["--image-column", "file", "--question-column", "q", "--answer-column", "label"]
    out, recs = imported(tmp_path, tmp_path / "mine.csv", *options)
    assert sorted(recs) == ["mine-1", "mine-3"] and recs["mine-3"].response == "no"
    assert "line 3" in capsys.readouterr().err
    first = (out / "data.jsonl").read_bytes()
    imported(tmp_path, tmp_path / "mine.csv", *options)
    assert (out / "data.jsonl").read_bytes() == first  # the same ids and files every time
