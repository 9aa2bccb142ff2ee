"""`llava-cot data check`: every kind of bad record reported on its own line, exit codes."""

import json

from PIL import Image

from llava_cot import records, stages
from llava_cot.cli import main
from llava_cot.records import Record

RESPONSE = stages.render({s: s.lower() for s in stages.STAGES})


def _faulty_file(tmp_path):
    """A data set with one good record and one record for each fault `check` knows, by line."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(root / "images" / "ok.png")
    (root / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "outside.png")

    def rec(i, image="images/ok.png", response=RESPONSE):
        return json.dumps(Record.make(f"r{i}", "How many?", response, image=image).to_json())

    lines = {
        1: rec(1),
        2: "{this is not json",
        3: json.dumps({"id": "r3", "image": "images/ok.png"}),
        4: json.dumps({"id": "r4", "conversations": [{"from": "human", "value": "<image>\nq"}]}),
        5: rec(5, response="The answer is 3."),
        6: rec(6, image="images/missing.png"),
        7: rec(7, image="images/broken.png"),
        8: rec(8, image="../outside.png"),
        9: rec(1),
    }
    path = root / "train.jsonl"
    path.write_text("".join(lines[i] + "\n" for i in sorted(lines)))
    return path, root


EXPECTED = {
    2: "malformed JSON",
    3: "missing field 'conversations'",
    4: "no human turn followed by a gpt turn",
    5: "not in the four-stage format",
    6: "not found",
    7: "unreadable",
    8: "escapes the image root",
    9: "duplicate id, first seen at line 1",
}


def test_each_fault_reported_on_its_line(tmp_path, capsys):
    path, root = _faulty_file(tmp_path)
    assert main(["data", "check", str(path), "--images", str(root)]) == 1
    out = capsys.readouterr().out.splitlines()
    reported = {int(line.split(":")[1].split()[1]): line for line in out if line.startswith(str(path))}
    assert set(reported) == set(EXPECTED)
    for lineno, reason in EXPECTED.items():
        assert reason in reported[lineno]
    assert out[-1].startswith("checked 9 records: 1 good, 8 bad")


def test_without_images_only_structure_is_checked(tmp_path, capsys):
    path, _ = _faulty_file(tmp_path)
    assert main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "checked 9 records: 4 good, 5 bad" in out and "images not checked" in out


def test_clean_file_exits_zero(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    records.write(path, [Record.make(f"r{i}", "q", RESPONSE) for i in range(3)])
    assert main(["data", "check", str(path)]) == 0
    assert "3 good, 0 bad" in capsys.readouterr().out


def test_no_stages_flag_accepts_plain_answers(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    records.write(path, [Record.make("r0", "q", "3")])
    assert main(["data", "check", str(path)]) == 1
    assert main(["data", "check", str(path), "--no-stages"]) == 0


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nope.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("llava-cot: error: cannot read") and "\n" not in err
    path = tmp_path / "d.jsonl"
    path.write_text("")
    assert main(["data", "check", str(path), "--images", str(tmp_path / "nodir")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_file_not_utf8_reported_by_line(tmp_path, capsys):
    path = tmp_path / "f.jsonl"
    good = json.dumps(Record.make("r0", "How many?", RESPONSE).to_json()).encode() + b"\n"
    path.write_bytes(good + b"\x00\xff\xfe garbage\n" + good.replace(b"r0", b"r2"))
    assert main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}:line 2: not UTF-8 text: byte 0xff at column 2 (save the file as UTF-8)"
    assert out[-1].startswith("checked 3 records: 2 good, 1 bad (not UTF-8: 1)")


def test_image_too_large_is_a_bad_record(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # the limit a user may set, made small
    Image.new("L", (150, 150)).save(tmp_path / "big.png")  # over twice it: PIL refuses to open it
    path = tmp_path / "d.jsonl"
    records.write(path, [Record.make("r0", "How many?", RESPONSE, image="big.png")])
    assert main(["data", "check", str(path), "--images", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "line 1 (id r0): image 'big.png' is too large: 22,500 pixels" in out and "(too large: 1)" in out


def test_multi_turn_records_are_counted_and_every_turn_checked(tmp_path, capsys):
    def conversation(*answers):
        turns = []
        for k, answer in enumerate(answers):
            turns += [{"from": "human", "value": f"Question {k}?"}, {"from": "gpt", "value": answer}]
        return turns

    recs = [Record.make("r0", "q", RESPONSE), Record("r1", conversation(RESPONSE, RESPONSE)),
            Record("r2", conversation(RESPONSE, RESPONSE, "Three.")), Record("r3", conversation(RESPONSE, RESPONSE, RESPONSE))]
    path = tmp_path / "d.jsonl"
    records.write(path, recs)
    assert main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}:line 3 (id r2): gpt turn 3 not in the four-stage format")
    assert out[-1].startswith("checked 4 records: 3 good, 1 bad (four-stage: 1); 2 multi-turn")
