"""What the teacher pipeline keeps (four stages, the gold answer, no leaked hint) and the prompt it sends."""

import pytest

from llava_cot import stages
from llava_cot.errors import LlavaCotError
from llava_cot.teacher import filters
from llava_cot.teacher.item import options_in
from llava_cot.teacher.prompt import Template, stage_text


def response(conclusion, reasoning="Counting them one by one gives the answer."):
    return stages.render({"SUMMARY": "I will count.", "CAPTION": "Three cubes.", "REASONING": reasoning,
                          "CONCLUSION": conclusion})


OPTIONS = {"A": "3 MPa", "B": "5 MPa"}


@pytest.mark.parametrize(("said", "gold", "options", "ok"), [
    ("B", "B", OPTIONS, True),
    ("5 MPa", "B", OPTIONS, True),  # the option's text names its letter
    ("A", "B", OPTIONS, False),
    ("3", "3", None, True),
    ("There are three.", "3", None, True),
    ("4", "3", None, False),
    ("No", "Yes", None, False),
])
def test_the_conclusion_must_agree_with_the_gold_answer(said, gold, options, ok):
    v = filters.verdict(response(said), gold, options, "How many?", hinted=True)
    assert v.ok is ok
    assert v.reason == ("" if ok else filters.WRONG_ANSWER) and not v.needs_judge


def test_free_text_that_no_rule_matches_goes_to_the_judge():
    v = filters.verdict(response("a crimson ball"), "red sphere", None, "What is it?", hinted=True)
    assert not v.ok and v.needs_judge
    assert filters.verdict(response("red sphere"), "red sphere", None, "What is it?", hinted=True).ok


def test_not_four_stages_is_rejected_with_the_problem():
    text = stages.render({"SUMMARY": "plan", "REASONING": "so 3", "CONCLUSION": "3"})
    v = filters.verdict(text, "3", None, "How many?", hinted=True)
    assert (v.ok, v.reason) == (False, filters.NOT_FOUR_STAGE) and "CAPTION" in v.detail
    assert filters.verdict("The answer is 3.", "3", None, "q", hinted=True).reason == filters.NOT_FOUR_STAGE


@pytest.mark.parametrize("leaky", [
    "As the hint says, there are 3.",
    "I was given the answer, 3, so I count to it.",
    "The correct answer provided is 3.",
    "The answer was given as 3.",
    "This matches the reference answer.",
])
def test_a_response_that_mentions_being_given_the_answer_is_rejected(leaky):
    v = filters.verdict(response("3", reasoning=leaky), "3", None, "How many cubes?", hinted=True)
    assert (v.ok, v.reason) == (False, filters.LEAKED_HINT)
    assert filters.verdict(response("3", reasoning=leaky), "3", None, "How many?", hinted=False).ok


def test_words_the_question_itself_uses_are_no_leak():
    question = "Hint: the cubes are small.\nQuestion: How many cubes?"
    v = filters.verdict(response("3", reasoning="The hint says they are small; I count 3."), "3", None, question,
                        hinted=True)
    assert v.ok
    assert filters.verdict(response("3", reasoning="The correct answer is 3."), "3", None, "q", hinted=True).ok


def test_judge_replies_are_read_strictly():
    assert filters.read_judgement("Yes.") is True and filters.read_judgement("no") is False
    assert filters.read_judgement("I cannot say.") is None and filters.read_judgement("yes and no") is None
    prompt = filters.judge_prompt("What?\nReally?", "red\nball", "crimson")
    assert "Reference answer: red ball" in prompt and "Candidate answer: crimson" in prompt


def test_the_prompt_spells_the_stages_and_gives_the_answer_unless_told_not_to():
    question = "How many cubes?\nA. 2\nB. 3"
    hinted = Template.load(None).render(question, "B")
    for stage in stages.STAGES:
        assert stages.open_tag(stage) in hinted and stages.close_tag(stage) in hinted
    assert question in hinted and "The correct answer is: B" in hinted
    bare = Template.load(None, hint=False).render(question, "B")
    assert "correct answer is" not in bare and question in bare


def test_a_user_template_is_checked_and_filled(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("Q: {question} (gold {answer}) {format} {braces: kept}")
    text = Template.load(str(path)).render("How many?", "3")
    assert text.startswith("Q: How many? (gold 3) ") and text.endswith("{braces: kept}")
    with pytest.raises(LlavaCotError, match="--no-hint"):
        Template.load(str(path), hint=False)
    path.write_text("no placeholder")
    with pytest.raises(LlavaCotError, match="question"):
        Template.load(str(path))


def test_stage_requests_carry_the_stages_written_so_far():
    t = Template.load(None)
    first = t.render_stage("How many?", "3", {}, "SUMMARY")
    later = t.render_stage("How many?", "3", {"SUMMARY": "I will count."}, "CAPTION")
    assert "first stage only, SUMMARY" in first
    assert stages.render({"SUMMARY": "I will count."}) in later and "next stage, CAPTION" in later
    assert stage_text(f"{stages.open_tag('CAPTION')} Three cubes.", "CAPTION") == "Three cubes."
    assert stage_text("Three cubes.", "CAPTION") == "Three cubes."
    assert stage_text(stages.render({"SUMMARY": "x"}), "CAPTION") is None


def test_options_listed_in_a_question_are_found():
    assert options_in("Which?\nOptions:\nA. cat\nB. dog\nPlease select.") == {"A": "cat", "B": "dog"}
    assert options_in("A. only one") == {} and options_in("Which? B. dog C. cow") == {}
