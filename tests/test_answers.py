"""Tests for llava_cot.answers: answer extraction and the correctness check.

Run: python -m pytest -q tests/test_answers.py

Tables list the forms models write and what must come out of them; property tests check that no
text makes an extractor raise and that a four-stage response's CONCLUSION round-trips.
"""

import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llava_cot import answers, stages
from llava_cot.answers import (
    extract,
    extract_choice,
    extract_number,
    extract_text,
    extract_yes_no,
    is_correct,
    normalize_text,
)
from llava_cot.errors import LlavaCotError

MPA = {"A": "3 MPa", "B": "5 MPa", "C": "7 MPa", "D": "9 MPa"}


def four_stage(conclusion: str, reasoning: str = "Compare the options one by one.") -> str:
    return stages.render(
        {
            "SUMMARY": "I will read the chart.",
            "CAPTION": "A chart of stresses.",
            "REASONING": reasoning,
            "CONCLUSION": conclusion,
        }
    )


# ---------------------------------------------------------------------------------------------
# Multiple choice

CHOICE_FORMS = [
    ("B", "B"),
    ("(B)", "B"),
    ("B.", "B"),
    ("B)", "B"),
    ("[C]", "C"),
    ("B: 5 MPa", "B"),
    ("B. 5 MPa", "B"),
    ("B - 5 MPa", "B"),
    ("(B) 5 MPa", "B"),
    ("**B**", "B"),
    ("**B**: 5 MPa", "B"),
    ("The answer is B", "B"),
    ("The answer is B.", "B"),
    ("The correct answer is (D).", "D"),
    ("Answer: (B) 5 MPa", "B"),
    ("Answer: B", "B"),
    ("Final answer: D", "D"),
    ("The answer would be option C.", "C"),
    ("The correct option is (c).", "C"),
    ("option B", "B"),
    ("I choose option D because it is the largest.", "D"),
    ("B is the correct answer.", "B"),
    ("A is correct.", "A"),
    ("A.", "A"),
    ("$\\boxed{B}$", "B"),
    ("\\boxed{\\text{D}}", "D"),
    # lower case where it cannot be the article or prose
    ("(b)", "B"),
    ("answer is b", "B"),
    ("The answer is a.", "A"),
    ("b", "B"),
    ("a", "A"),
    ("c) 7 MPa", "C"),
    # the option's text alone, case- and punctuation-insensitive
    ("5 MPa", "B"),
    ("5 mpa.", "B"),
    ("The answer is 5 MPa.", "B"),
    ("It is about 9 MPa in total.", "D"),
    # the article "A" and the pronoun "I" are not options
    ("A cube is larger, so B.", "B"),
    ("A stress of 5 MPa", "B"),
    ("I think B.", "B"),
    # a rejected letter or a later explicit answer does not make it ambiguous
    ("The answer is B, not A.", "B"),
    ("B, not A", "B"),
    ("Option A is wrong. The correct answer is B.", "B"),
    ("A. Option B is wrong because the stress is lower.", "A"),
]


@pytest.mark.parametrize(("text", "want"), CHOICE_FORMS)
def test_extract_choice_forms(text, want):
    assert extract_choice(text, MPA) == want


NO_CHOICE = [
    "A or B",
    "The answer is A or B.",
    "Either (A) or (C).",
    "A, C",
    "The answer is A and C",
    "5 MPa or 7 MPa",
    "A cube is on the table.",
    "The answer is a cube.",
    "there is a cube and a ball",
    "It is 10 C warmer than before.",  # a unit after a number, not option C
    "The answer is not A.",
    "E",  # not an option
    "The answer is E.",
    "15 MPa",  # "5 MPa" only as a whole word
    "",
    "I cannot tell from the image.",
]


@pytest.mark.parametrize("text", NO_CHOICE)
def test_extract_choice_refuses_ambiguous_or_absent(text):
    assert extract_choice(text, MPA) is None


def test_choice_is_read_from_the_conclusion_first():
    response = four_stage("B", reasoning="The answer is A at first sight, but option A ignores friction.")
    assert extract_choice(response, MPA) == "B"
    # without a CONCLUSION the whole untagged text is read, and its two answers conflict
    no_conclusion = stages.render({"SUMMARY": "The answer is A.", "REASONING": "The answer is B."})
    assert extract_choice(no_conclusion, MPA) is None


@pytest.mark.parametrize(
    ("text", "options", "want"),
    [
        ("Point B", {"A": "Point A", "B": "Point B"}, "B"),
        ("Point B is closer than point A", {"A": "Point A", "B": "Point B"}, None),
        ("dark red", {"A": "red", "B": "dark red"}, "B"),
        ("It is dark red.", {"A": "red", "B": "dark red"}, "B"),
        ("red", {"A": "red", "B": "dark red"}, "A"),
        ("The value is 3.5", {"A": "5", "B": "3.5"}, "B"),
        ("Yes", {"A": "Yes", "B": "No"}, "A"),
        ("B", "ABCD", "B"),
        ("B", ["A", "B"], "B"),
        ("5 MPa", "ABCD", None),  # no option texts to match
        ("b", {"a": "x", "b": "y"}, "B"),  # lower-case keys are canonicalised
        ("(C)", {"A": "x", "B": "y", "C": float("nan")}, None),  # a missing option (NaN in a TSV row)
        ("C", {"A": "x", "B": "y", "C": None}, None),
    ],
)
def test_extract_choice_option_tables(text, options, want):
    assert extract_choice(text, options) == want


@pytest.mark.parametrize("options", [{}, {"AB": "x"}, ["1", "2"], {"A. ": "x", "?": "y"}])
def test_bad_options_raise_user_error(options):
    with pytest.raises(LlavaCotError):
        extract_choice("B", options)


# ---------------------------------------------------------------------------------------------
# Numbers

NUMBER_FORMS = [
    ("3", 3),
    ("3.0", 3),
    ("-5", -5),
    ("−3", -3),  # unicode minus
    ("+2", 2),
    (".5", 0.5),
    ("1,234", 1234),
    ("1,234.5", 1234.5),
    ("1e-6", 1e-6),
    ("3/4", 0.75),
    ("$\\frac{1}{2}$", 0.5),
    ("seven", 7),
    ("Twelve", 12),
    ("5 MPa", 5),
    ("12 cm", 12),
    ("12cm", 12),
    ("3 objects", 3),
    ("45%", 45),
    ("**42**", 42),
    ("There are 3 objects left.", 3),
    ("The temperature is -5 degrees.", -5),
    ("CO2 has 3 atoms.", 3),  # a digit inside a word is not a number
    # several numbers: the one after the last "answer is" / "=" / "equals", else the last one
    ("5 + 3 = 8", 8),
    ("3 + 4 = 7 objects", 7),
    ("The answer is 4 cubes, out of 10 in total.", 4),
    ("x = 3, so y = 5", 5),
    ("5 - 3 equals 2", 2),
    ("There were 5 cubes; removing 2 leaves 3.", 3),
    ("The answer is seven.", 7),
    # digits beat number words; "one" as a pronoun is not a number
    ("There are 3 cubes; one is red.", 3),
    ("There are three objects, one of which is red.", 3),
    ("The one on the left has twelve sides.", 12),
]


@pytest.mark.parametrize(("text", "want"), NUMBER_FORMS)
def test_extract_number_forms(text, want):
    got = extract_number(text)
    assert got is not None and math.isclose(got, want, rel_tol=1e-9)


@pytest.mark.parametrize("text", ["no numbers here", "", "3 or 4", "The answer is 3 or 4.", "H2O"])
def test_extract_number_none(text):
    assert extract_number(text) is None


def test_number_is_read_from_the_conclusion():
    assert extract_number(four_stage("There are 3 objects left.", reasoning="10 - 7 = 3, from 10.")) == 3


# ---------------------------------------------------------------------------------------------
# Yes / no

YES_NO_FORMS = [
    ("Yes", "Yes"),
    ("yes.", "Yes"),
    ("YES", "Yes"),
    ("Yes, the red cube is larger.", "Yes"),
    ("No", "No"),
    ("**No**", "No"),
    ("No, there is no red cube.", "No"),
    ("The answer is no.", "No"),
    ("I would say yes.", "Yes"),
    ("Yes and no", None),
    ("Yes/No", None),
    ("yes or no", None),
    ("There is no red cube.", None),  # a determiner, not an answer
    ("Maybe.", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "want"), YES_NO_FORMS)
def test_extract_yes_no_forms(text, want):
    assert extract_yes_no(text) == want


# ---------------------------------------------------------------------------------------------
# Free text and normalisation


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("The Red Cube!", "red cube"),
        ("  a   cat, an owl ", "cat owl"),
        ("3.5 cm", "3.5 cm"),
        ("1,234 apples.", "1,234 apples"),
        ("", ""),
    ],
)
def test_normalize_text(text, want):
    assert normalize_text(text) == want


def test_extract_text_takes_the_sentence_after_the_answer_cue():
    assert extract_text("Looking at it closely, the answer is the red cube. It is on the left.") == "red cube"
    assert extract_text(four_stage("A red cube.")) == "red cube"
    assert extract_text("...") is None


# ---------------------------------------------------------------------------------------------
# Correctness


@pytest.mark.parametrize(
    ("response", "gold", "options", "want"),
    [
        # numbers: numeric comparison within a small relative tolerance
        ("3.0", "3", None, True),
        ("3", 3, None, True),
        ("3.0000001", 3, None, True),
        ("3.01", "3", None, False),
        ("1,234", 1234, None, True),
        ("45%", "45%", None, True),
        ("seven", 7, None, True),
        ("7", "seven", None, True),
        ("0", 0, None, True),
        ("-2", 2, None, False),
        ("There are 3 objects left.", "3", None, True),
        ("I cannot count them.", "3", None, False),
        # multiple choice, by letter or by the option's text
        ("B", "B", MPA, True),
        ("(b)", "b", MPA, True),
        ("5 MPa", "B", MPA, True),
        ("The answer is 5 MPa", "(B)", MPA, True),
        ("B", "5 MPa", MPA, True),  # gold given as the option text
        ("3 MPa", "B", MPA, False),
        ("A or B", "B", MPA, False),
        ("A: 5 MPa", "B", MPA, False),  # the letter said wins over the text after it
        # a gold letter without options: a choice among A..D
        ("Answer: (B) 5 MPa", "B", None, True),
        ("**C**", "C", None, True),
        ("A", "B", None, False),
        # yes / no
        ("Yes, the red cube is larger.", "yes", None, True),
        ("No", "Yes", None, False),
        ("yes", True, None, True),
        ("no.", False, None, True),
        ("Yes and no", "Yes", None, False),
        # free text: normalised exact match, after an answer cue or the whole conclusion
        ("The answer is the red cube.", "red cube", None, True),
        ("Red cube", "the red cube", None, True),
        ("blue cube", "red cube", None, False),
        ("a large red cube", "red cube", None, False),
    ],
)
def test_is_correct(response, gold, options, want):
    assert is_correct(response, gold, options) is want


def test_is_correct_reads_the_conclusion():
    response = four_stage("B", reasoning="Option A gives 3 MPa; option B gives 5 MPa.")
    assert is_correct(response, "B", MPA)
    assert not is_correct(response, "A", MPA)


@pytest.mark.parametrize(
    ("response", "gold", "options", "want"),
    [
        ("The answer is B", "A", MPA, "B"),
        ("There are 3", 5, None, 3.0),
        ("Yes.", "no", None, "Yes"),
        ("The answer is the red cube.", "blue", None, "red cube"),
    ],
)
def test_extract_dispatches_on_the_gold_answer(response, gold, options, want):
    assert extract(response, gold, options) == want


@pytest.mark.parametrize(
    ("gold", "options"), [("", None), ("?!", None), (None, None), (["a"], None), ("E", "ABCD")]
)
def test_bad_gold_raises_user_error(gold, options):
    with pytest.raises(LlavaCotError):
        is_correct("B", gold, options)


# ---------------------------------------------------------------------------------------------
# Properties

LETTER_TEMPLATES = ["{}", "({})", "{}.", "{})", "**{}**", "The answer is {}.", "Answer: ({})", "option {}"]
# Stage text without "<", so it cannot contain a stage tag.
prose = st.text(alphabet=st.characters(blacklist_characters="<", blacklist_categories=("Cs",)), max_size=80)


@given(st.text(max_size=300))
def test_extractors_never_raise(text):
    assert extract_choice(text, MPA) in {None, "A", "B", "C", "D"}
    assert extract_yes_no(text) in {None, "Yes", "No"}
    number = extract_number(text)
    assert number is None or isinstance(number, float)
    assert extract_text(text) is None or isinstance(extract_text(text), str)
    for gold in ("B", "3", "yes", "red cube"):
        assert is_correct(text, gold, MPA) in (True, False)


@given(st.sampled_from("ABCD"), st.sampled_from(LETTER_TEMPLATES), prose, prose)
def test_rendered_letter_conclusion_round_trips(letter, template, caption, reasoning):
    response = stages.render(
        {"SUMMARY": "plan", "CAPTION": caption, "REASONING": reasoning, "CONCLUSION": template.format(letter)}
    )
    assert extract_choice(response, MPA) == letter
    assert is_correct(response, letter, MPA)


numbers = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
)


@given(
    numbers,
    st.sampled_from(["{}", "{:,}", "The answer is {}.", "There are {} objects left.", "{} cm"]),
    prose,
)
def test_rendered_number_conclusion_round_trips(value, template, reasoning):
    response = stages.render(
        {"SUMMARY": "plan", "REASONING": reasoning, "CONCLUSION": template.format(value)}
    )
    got = extract_number(response)
    assert got is not None and math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-300)
    assert is_correct(response, value)


@given(st.sampled_from(["yes", "no"]), st.sampled_from(["{}", "{}.", "{}, it is.", "**{}**"]), st.booleans())
def test_yes_no_round_trips(word, template, capitalise):
    text = template.format(word.capitalize() if capitalise else word)
    assert extract_yes_no(four_stage(text)) == word.capitalize()


@given(
    st.sampled_from("ABCD"), st.sampled_from("ABCD"), st.sampled_from(["{} or {}", "The answer is {} or {}."])
)
def test_two_letters_are_ambiguous(x, y, template):
    want = x if x == y else None
    assert extract_choice(template.format(x, y), MPA) == want


@given(st.text(max_size=200))
def test_normalize_text_is_idempotent(text):
    once = normalize_text(text)
    assert normalize_text(once) == once


def test_long_responses_are_fast():
    # about 200 KB of prose full of letters and numbers, without tags: each extractor reads it all
    text = "A cube of 5 MPa is next to B, the 3rd one, and no sphere. " * 3500
    start = time.perf_counter()
    extract_choice(text, MPA), extract_number(text), extract_yes_no(text), is_correct(text, "red cube")
    assert time.perf_counter() - start < 2.0


def test_a_letter_after_option_is_never_the_article():
    assert answers.extract_choice("The best match is option A since it fits.", "ABCD") == "A"
    assert answers.extract_choice("I choose choice (A) because it fits.", "ABCD") == "A"
    assert answers.extract_choice("A cat sits on the mat, so the answer is B.", "ABCD") == "B"
