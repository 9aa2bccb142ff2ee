"""Data records: streaming reads of JSONL and JSON lists with line numbers, safe writes."""

import json

import pytest

from llava_cot import records, stages
from llava_cot.errors import LlavaCotError
from llava_cot.records import BadRecord, Record

RESPONSE = stages.render({s: s.lower() for s in stages.STAGES})


def make(i, **extra):
    return Record.make(f"r{i}", f"Question {i}?", RESPONSE, image=f"images/{i}.png", **extra)


def test_make_and_accessors():
    r = make(1, answer="3")
    assert r.question == "Question 1?"
    assert r.response == RESPONSE
    assert r.conversations[0]["value"].startswith(records.IMAGE_TOKEN + "\n")
    assert r.to_json() == {"id": "r1", "image": "images/1.png", "conversations": r.conversations, "answer": "3"}


def test_write_read_round_trip_keeps_extra_fields(tmp_path):
    path = tmp_path / "d.jsonl"
    assert records.write(path, [make(i, family="count") for i in range(5)]) == 5
    got = list(records.read(path))
    assert [r.id for r in got] == [f"r{i}" for i in range(5)]
    assert [r.line for r in got] == [1, 2, 3, 4, 5]
    assert got[0].extra == {"family": "count"}
    assert not (tmp_path / "d.jsonl.partial").exists()


def test_interrupted_write_keeps_existing_file(tmp_path):
    path = tmp_path / "d.jsonl"
    records.write(path, [make(0)])

    def boom():
        yield make(1)
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        records.write(path, boom())
    assert [r.id for r in records.read(path)] == ["r0"]


def test_append(tmp_path):
    path = tmp_path / "d.jsonl"
    records.write(path, [make(0)])
    records.write(path, [make(1)], append=True)
    assert [r.id for r in records.read(path)] == ["r0", "r1"]


def test_json_list_with_line_numbers(tmp_path):
    path = tmp_path / "d.json"
    objs = [make(i).to_json() for i in range(3)]
    path.write_text(json.dumps(objs, indent=2))
    got = list(records.scan(path))
    assert all(isinstance(r, Record) for r in got)
    lines = path.read_text().splitlines()
    for rec in got:  # each record's line is where its object opens
        assert lines[rec.line - 1].strip() == "{"
        assert f'"{rec.id}"' in lines[rec.line]


def test_json_list_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "_CHUNK", 7)  # force elements to straddle read boundaries
    path = tmp_path / "d.json"
    path.write_text(json.dumps([make(i).to_json() for i in range(4)]))
    assert [r.id for r in records.scan(path)] == ["r0", "r1", "r2", "r3"]


def test_json_list_malformed_element(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n{"id": "a", "conversations": []},\n{"id": oops}\n]')
    got = list(records.scan(path))
    assert isinstance(got[0], BadRecord) and got[0].line == 2 and "human" in got[0].reason
    assert isinstance(got[1], BadRecord) and got[1].line == 3 and "malformed JSON" in got[1].reason


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "malformed JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"conversations": []}', "missing field 'id'"),
        ('{"id": "x"}', "missing field 'conversations'"),
        ('{"id": "x", "conversations": "hi"}', "list of"),
        ('{"id": "x", "image": 3, "conversations": []}', "'image' must be a string"),
        ('{"id": "x", "conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}]}',
         "no human turn followed by a gpt turn"),
    ],
)
def test_bad_lines_are_reported_with_reason(tmp_path, line, reason):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(make(0).to_json()) + "\n\n" + line + "\n")
    got = list(records.scan(path))
    assert isinstance(got[0], Record)
    assert isinstance(got[1], BadRecord) and got[1].line == 3
    assert reason in got[1].reason


def test_read_raises_or_skips_with_line_number(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(make(0).to_json()) + "\n{bad\n" + json.dumps(make(2).to_json()) + "\n")
    with pytest.raises(LlavaCotError, match="line 2"):
        list(records.read(path))
    assert [r.id for r in records.read(path, on_error="skip")] == ["r0", "r2"]
    assert "line 2" in capsys.readouterr().err


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(LlavaCotError, match="cannot read"):
        list(records.scan(tmp_path / "nope.jsonl"))
