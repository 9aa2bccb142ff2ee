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


GARBAGE = b"\x00\xff\xfe garbage\n"  # what `printf '\x00\xff\xfe garbage\n'` writes: not UTF-8


def test_line_not_utf8_is_a_bad_record_and_the_rest_is_read(tmp_path):
    path = tmp_path / "d.jsonl"
    good = [json.dumps(make(i).to_json()).encode() + b"\n" for i in range(3)]
    path.write_bytes(good[0] + good[1] + GARBAGE + good[2])
    got = list(records.scan(path))
    assert [r.id for r in got if isinstance(r, Record)] == ["r0", "r1", "r2"]
    bad = [r for r in got if isinstance(r, BadRecord)]
    assert len(bad) == 1 and bad[0].line == 3
    assert "not UTF-8" in bad[0].reason and "0xff at column 2" in bad[0].reason
    assert [r.id for r in records.read(path, on_error="skip")] == ["r0", "r1", "r2"]
    with pytest.raises(LlavaCotError, match="line 3: not UTF-8"):
        list(records.read(path))


def test_json_list_element_not_utf8(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "_CHUNK", 7)  # the bad byte found across read boundaries too
    objs = [json.dumps(make(i).to_json()).encode() for i in range(3)]
    inside = objs[1].replace(b"Question 1", b"Question \xe9")  # latin-1, inside a string
    path = tmp_path / "d.json"
    path.write_bytes(b"[\n" + b",\n".join([objs[0], inside, objs[2]]) + b"\n]")
    got = list(records.scan(path))
    assert [r.id if isinstance(r, Record) else r.line for r in got] == ["r0", 3, "r2"]
    assert "not UTF-8 text: byte 0xe9" in got[1].reason
    # outside a string the list itself is broken: what came before is still read
    path.write_bytes(b"[\n" + objs[0] + b",\n" + objs[1] + b",\xff\n" + objs[2] + b"]")
    got = list(records.scan(path))
    assert [r.id for r in got[:2]] == ["r0", "r1"]
    assert got[2].line == 3 and "not UTF-8" in got[2].reason and "rest of the list" in got[2].reason


def test_byte_order_mark_is_not_part_of_the_text(tmp_path):
    bom = b"\xef\xbb\xbf"  # what Windows editors put before "UTF-8 with BOM"
    path = tmp_path / "d.jsonl"
    path.write_bytes(bom + json.dumps(make(0).to_json()).encode() + b"\n")
    assert [r.id for r in records.read(path)] == ["r0"]
    path = tmp_path / "d.json"
    path.write_bytes(bom + json.dumps([make(0).to_json()]).encode())
    assert [r.id for r in records.read(path)] == ["r0"]


def test_every_turn_of_a_multi_turn_record():
    # LLaVA-CoT-100k has conversations of several questions about one image; none may be lost
    turns = [("human", "<image>\nHow many cubes?"), ("gpt", "A1"), ("human", "And spheres?"), ("gpt", "A2"),
             ("human", "Which is larger?"), ("gpt", "A3")]
    obj = {"id": "m", "image": "x.png", "conversations": [{"from": f, "value": v} for f, v in turns]}
    rec = Record.from_json(obj)
    assert rec.turns == [("How many cubes?", "A1"), ("And spheres?", "A2"), ("Which is larger?", "A3")]
    assert (rec.question, rec.response) == rec.turns[0]
    assert make(1).turns == [("Question 1?", RESPONSE)]
