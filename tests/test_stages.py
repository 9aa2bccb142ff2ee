"""The four-stage format: parsing, rendering, streaming (unit and property tests)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llava_cot import stages
from llava_cot.stages import STAGES, StageEnd, StageStart, StageText, StreamParser, parse, render

GOOD = {"SUMMARY": "I will count.", "CAPTION": "Two red cubes.", "REASONING": "1 + 1 = 2.", "CONCLUSION": "2"}


def kinds(text):
    return [(p.kind, p.stage) for p in parse(text).problems]


def test_well_formed_round_trip():
    p = parse(render(GOOD))
    assert p.ok and p.complete
    assert p.stages == GOOD
    assert list(p.stages) == list(STAGES)


@pytest.mark.parametrize(
    "text",
    [
        "<summary>I will count.</summary><caption>Two red cubes.</caption>"
        "<reasoning>1 + 1 = 2.</reasoning><conclusion>2</conclusion>",
        "  <SUMMARY>\n I will count.\n</SUMMARY>\n\n\n<CAPTION>Two red cubes.</CAPTION>"
        "<REASONING>1 + 1 = 2.</REASONING>\n<CONCLUSION>  2  </CONCLUSION>\n",
        "< SUMMARY >I will count.< /SUMMARY ><Caption>Two red cubes.</Caption>"
        "<REASONING>1 + 1 = 2.</REASONING><CONCLUSION>2</ CONCLUSION>",
    ],
)
def test_tolerates_case_and_whitespace(text):
    p = parse(text)
    assert p.ok, p.problems
    assert p.stages == GOOD


def test_missing_close_on_last_stage_is_tolerated():
    text = render(GOOD).removesuffix(stages.close_tag("CONCLUSION"))
    p = parse(text)
    assert p.ok and not p.complete
    assert p.stages["CONCLUSION"] == "2"


def test_missing_stage():
    text = render({k: v for k, v in GOOD.items() if k != "CAPTION"})
    assert kinds(text) == [("missing", "CAPTION")]


def test_duplicate_keeps_first():
    text = render(GOOD) + render({"CONCLUSION": "3"})
    p = parse(text)
    assert p.stages["CONCLUSION"] == "2"
    assert ("duplicate", "CONCLUSION") in kinds(text)


def test_out_of_order():
    text = render({k: GOOD[k] for k in ("CAPTION", "SUMMARY", "REASONING", "CONCLUSION")})
    assert kinds(text) == [("out_of_order", "SUMMARY")]


def test_unclosed_middle_stage():
    text = render(GOOD).replace(stages.close_tag("CAPTION"), "")
    p = parse(text)
    assert kinds(text) == [("unclosed", "CAPTION")]
    assert p.stages["CAPTION"] == "Two red cubes."


def test_unopened_and_outside_text():
    text = "Sure! " + render(GOOD) + stages.close_tag("REASONING")
    assert kinds(text) == [("outside_text", None), ("unopened", "REASONING")]


def test_plain_text_has_all_missing():
    p = parse("The answer is 4.")
    assert [pr.kind for pr in p.problems] == ["outside_text"] + ["missing"] * 4
    assert stages.answer_text("The answer is 4.") == "The answer is 4."


def test_answer_text_prefers_conclusion():
    assert stages.answer_text(render(GOOD)) == "2"


def test_untag_drops_tags_keeps_text():
    plain = stages.untag(render(GOOD))
    assert plain == "I will count.\n\nTwo red cubes.\n\n1 + 1 = 2.\n\n2"
    assert parse(plain).stages == {}


def test_last_paragraph():
    assert stages.last_paragraph(stages.untag(render(GOOD))) == "2"
    assert stages.last_paragraph("One line\nand its next line.\n \t\nThe end.\n\n\n") == "The end."
    assert stages.last_paragraph("  no blank line\nat all ") == "no blank line\nat all"
    assert stages.last_paragraph("") == ""


def test_next_stage():
    assert stages.next_stage(None) == "SUMMARY"
    assert stages.next_stage("REASONING") == "CONCLUSION"
    assert stages.next_stage("CONCLUSION") is None


def test_stream_events_split_tags():
    sp = StreamParser()
    events = []
    for chunk in ["<SUMM", "ARY> plan </SU", "MMARY><", "CAPTION>x", "</CAPTION>"]:
        events += sp.feed(chunk)
    events += sp.close()
    assert events == [
        StageStart("SUMMARY"), StageText("SUMMARY", " plan "), StageEnd("SUMMARY"),
        StageStart("CAPTION"), StageText("CAPTION", "x"), StageEnd("CAPTION"),
    ]


def test_stream_emits_text_before_stage_ends():
    # Text must not be held back once it cannot be part of a tag: a UI shows it as it streams.
    sp = StreamParser()
    assert sp.feed("<REASONING> 3 < 5 and") == [StageStart("REASONING"), StageText("REASONING", " 3 < 5 and")]
    assert sp.feed(" <") == [StageText("REASONING", " ")]
    assert sp.feed("b>") == [StageText("REASONING", "<b>")]


def test_stream_close_ends_open_stage():
    sp = StreamParser()
    sp.feed("<CONCLUSION> B")
    assert sp.close() == [StageEnd("CONCLUSION", closed=False)]


# ---- property tests -------------------------------------------------------------------------

_text = st.text(alphabet=st.characters(blacklist_characters="<>", blacklist_categories=("Cs",)), max_size=40)
_stage_texts = st.tuples(*[_text.map(str.strip) for _ in STAGES]).map(lambda t: dict(zip(STAGES, t, strict=True)))
# arbitrary text salted with tag fragments, to reach the parser's odd paths
_fragments = st.sampled_from(
    [stages.open_tag(s) for s in STAGES] + [stages.close_tag(s) for s in STAGES]
    + ["<", ">", "</", "< summary >", "<caption", "</CONC", "\n", " ", "B", "<b>"]
)
_noisy = st.lists(st.one_of(_text, _fragments), max_size=30).map("".join)


@given(st.text())
def test_parse_never_raises_on_any_text(text):
    p = parse(text)
    assert isinstance(p.ok, bool)
    assert set(p.stages) <= set(STAGES)


@given(_noisy)
def test_parse_never_raises_on_tag_soup(text):
    p = parse(text)
    assert p.ok == (not p.problems)


@given(_stage_texts)
def test_parse_render_inverse(texts):
    assert parse(render(texts)).stages == texts
    assert parse(render(texts)).ok


@settings(max_examples=200)
@given(_noisy, st.lists(st.integers(1, 7), min_size=1, max_size=60))
def test_stream_is_chunking_invariant(text, sizes):
    whole = StreamParser()
    expected = whole.feed(text) + whole.close()
    sp, events, pos, i = StreamParser(), [], 0, 0
    while pos < len(text):
        n = sizes[i % len(sizes)]
        events += sp.feed(text[pos : pos + n])
        pos, i = pos + n, i + 1
    events += sp.close()
    assert _merge(events) == _merge(expected)


@given(_stage_texts, st.integers(1, 9))
def test_stream_agrees_with_parse(texts, n):
    text = render(texts)
    sp, events = StreamParser(), []
    for i in range(0, len(text), n):
        events += sp.feed(text[i : i + n])
    events += sp.close()
    assert stages.collect(events) == parse(text).stages


def _merge(events):
    """Adjacent text events of the same stage joined: chunking may split text differently."""
    out = []
    for e in events:
        if isinstance(e, StageText) and out and isinstance(out[-1], StageText) and out[-1].stage == e.stage:
            out[-1] = StageText(e.stage, out[-1].text + e.text)
        elif not (isinstance(e, StageText) and not e.text):
            out.append(e)
    return out
