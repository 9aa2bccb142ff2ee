"""Tests for llava_cot.benches: file reading, prompts, scoring, the benchmark metrics, VLMEvalKit's
matching rules and the cached LLM judge.

Run: python -m pytest -q tests/test_benches.py

Benchmark files are built here, in VLMEvalKit's TSV layout (base64 PNGs made with PIL) and in
lmms-eval's parquet layout, with expectations computed by hand. The multiple-choice table holds
over 200 responses, generated from templates, each with the answer VLMEvalKit's `can_infer` gives
(worked out from its rules, quoted per template); `vlmeval_match` must agree on every one, and our
default matcher on every one except the by-design differences listed in BY_DESIGN (and in
docs/benchmarks.md). The judge talks to a real HTTP server in this process.
"""

import base64
import csv
import io
import json
import threading
from http.server import BaseHTTPRequestHandler

import pytest
from PIL import Image
from tests.http_server import serve

from llava_cot import answers, stages
from llava_cot.benches import BENCHES, guess_bench, load_bench
from llava_cot.benches.judge import Judge
from llava_cot.benches.vlmeval import vlmeval_match, vlmeval_yes_no
from llava_cot.errors import LlavaCotError
from llava_cot.synth.questions import FAMILIES

# ---------------------------------------------------------------------------------------------
# The multiple-choice table

SETS = {
    "mpa": {"A": "3 MPa", "B": "5 MPa", "C": "7 MPa", "D": "9 MPa"},
    "colour": {"A": "red", "B": "blue", "C": "green", "D": "yellow"},
    "animal": {"A": "a cat", "B": "a dog", "C": "a bird", "D": "a fish"},
    "five": {"A": "1", "B": "2", "C": "3", "D": "4", "E": "5"},
}
FOUR = ("mpa", "colour", "animal")
L = "L"  # expected: the letter the template was filled with

# (name, template, option sets, what VLMEvalKit's can_infer gives). Fields: {L} the letter, {M}
# another letter, {l} the letter in lower case, {T} the option's text, {U} it in upper case.
# An expectation is L, None (no answer), a fixed letter / "Z", or a dict by set name or by letter.
LETTER_TEMPLATES = [
    # one letter token among the last four tokens: that letter
    ("bare", "{L}", (*FOUR, "five"), L),
    ("paren", "({L})", (*FOUR, "five"), L),
    ("dot", "{L}.", (*FOUR, "five"), L),
    ("close-paren", "{L})", FOUR, L),
    ("brackets", "[{L}]", FOUR, L),
    ("bold", "**{L}**", FOUR, L),
    ("answer-colon", "Answer: {L}", (*FOUR, "five"), L),
    ("answer-is", "The answer is {L}.", (*FOUR, "five"), L),
    ("correct-answer-paren", "The correct answer is ({L}).", FOUR, L),
    ("correct-answer-bold", "The correct answer is **{L}**.", FOUR, L),
    ("final-answer", "Final answer: {L}", FOUR, L),
    ("boxed", "$\\boxed{{{L}}}$", FOUR, L),
    ("final-boxed", "The final answer is $\\boxed{{{L}}}$.", FOUR, L),
    ("option", "Option {L}", FOUR, L),
    ("letter-dot-text", "{L}. {T}", FOUR, L),
    ("letter-colon-text", "{L}: {T}", FOUR, L),
    ("paren-text", "({L}) {T}", FOUR, L),
    ("letter-space-text", "{L} {T}", FOUR, L),
    ("answer-letter-text", "Answer: {L}. {T}", FOUR, L),
    ("i-think", "I think it is {L}.", FOUR, L),
    ("is-correct", "{L} is correct.", FOUR, L),
    ("based-on", "Based on the image, {L}", FOUR, L),
    ("option-late", "Looking at the image, the best match is option {L} since it fits.", FOUR, L),
    # two letters, but "answer is X" names one (VLMEvalKit's verbose-answer rule)
    ("answer-not-other", "The answer is {L}, not {M}.", FOUR, L),
    ("not-other-answer", "Not {M}; the answer is {L}.", FOUR, L),
    # lower case: only the "answer is x" rule reads it, and only for A-D
    ("lower-answer-is", "the answer is {l}", FOUR, L),
    ("lower-answer-is-five", "The answer is {l}.", ("five",), {"E": None}),
    ("lower-bare", "{l}", FOUR, None),
    ("lower-paren", "({l})", FOUR, None),
    ("lower-answer-colon", "answer: {l}", FOUR, None),
    # two letters and no "answer is": no answer
    ("two-and", "{L} and {M}", FOUR, None),
    ("two-or", "{L} or {M}", FOUR, None),
    ("either", "Either {L} or {M}.", FOUR, None),
    ("two-comma", "{L}, {M}", FOUR, None),
    # one letter, but before the last four tokens, in a text too long for the text rule
    ("letter-because", "{L} is the correct answer because it matches the picture best.", FOUR, None),
    ("letter-explanation", "{L}\n\nExplanation: the picture shows it clearly.", FOUR, None),
    ("option-early", "Option {L} is right, as the chart clearly shows the tallest bar there.", FOUR, None),
    ("letter-text-reason", "{L}. {T}. This is because it is the highest value shown in the picture.", FOUR, None),
    ("letter-comma-reason", "{L}, because it is the largest one.", FOUR, None),
]
TEXT_TEMPLATES = [
    ("text", "{T}", FOUR, L),
    ("text-upper", "{U}", FOUR, {"animal": "A"}),  # "A DOG": the token "A" is option A
    ("answer-is-text", "The answer is {T}.", ("mpa", "colour"), L),
    ("answer-is-article", "The answer is {T}.", ("animal",), "A"),  # "answer is a" reads as A
    ("text-is-answer", "{T} is the answer.", FOUR, L),
    ("text-long", "After comparing all the bars carefully, the tallest one is clearly {T}.", FOUR, None),
]
SUBSTRING_SET = {"A": "15 MPa", "B": "5 MPa", "C": "25 MPa", "D": "50 MPa"}
FIXED = [  # (name, response, expectation by set name or for all)
    ("refusal-people", "Sorry, I can't help with images of people yet.", "Z"),
    ("refusal-determine", "Cannot determine the answer from this image.", "Z"),
    ("refusal-lowercase", "I cannot determine the answer from this image.", None),  # case matters
    ("api-failure", "Failed to obtain answer via API.", None),
    ("z", "Z", "Z"),
    ("none-of-them", "None of the options is correct.", None),
    ("empty", "", None),
    ("dont-know", "I don't know.", None),
    ("article-sentence", "A cat is sitting on the mat.", {"animal": "A"}),
    ("letter-outside-options", "E", None),
]

# Where our default (answers.extract_choice) differs from VLMEvalKit by design: name -> (what we
# read, why). docs/benchmarks.md lists the same.
BY_DESIGN = {
    "lower-answer-is-five": (L, "we read a lower-case letter after an answer cue for any option, not only A-D"),
    "lower-bare": (L, "a lone lower-case letter is the answer"),
    "lower-paren": (L, "a bracketed lower-case letter is the answer"),
    "lower-answer-colon": (L, "a lower-case letter right after 'answer:' is the answer"),
    "letter-because": (L, "a letter anywhere counts, not only in the last four words"),
    "letter-explanation": (L, "a letter anywhere counts, not only in the last four words"),
    "option-early": (L, "'option X' names X wherever it stands"),
    "letter-text-reason": (L, "a leading 'X.' is the answer, however long the text after it"),
    "letter-comma-reason": (L, "a letter anywhere counts, not only in the last four words"),
    "answer-is-article": (L, "'the answer is a cat' is the article 'a' and the option text 'a cat', not A"),
    "text-long": (L, "option texts are found in long answers too"),
    "substring": ("exact", "option texts match as whole words: '5 MPa' is not inside '15 MPa'"),
    "refusal-people": (None, "no 'Z': a refusal is no answer (both are scored wrong)"),
    "refusal-determine": (None, "no 'Z': a refusal is no answer (both are scored wrong)"),
    "z": (None, "no 'Z': a refusal is no answer (both are scored wrong)"),
}


def _expect(spec, letter, set_name):
    if isinstance(spec, dict):  # by set name or by letter; anything else: the letter
        spec = spec.get(set_name, spec.get(letter, L))
    return letter if spec == L else spec


def _fill(template, letter, options):
    letters = list(options)
    other = letters[(letters.index(letter) + 1) % len(letters)]
    text = options[letter]
    return template.format(L=letter, M=other, l=letter.lower(), T=text, U=text.upper())


def mc_table():
    """(name, set name, response, options, VLMEvalKit's answer, ours) for every case."""
    cases = []
    for name, template, sets, spec in LETTER_TEMPLATES + TEXT_TEMPLATES:
        for set_name in sets:
            options = SETS[set_name]
            for letter in options:
                vlm = _expect(spec, letter, set_name)
                ours = _expect(BY_DESIGN[name][0], letter, set_name) if name in BY_DESIGN else vlm
                cases.append((name, set_name, _fill(template, letter, options), options, vlm, ours))
    for letter, vlm in zip("ABCD", (None, "B", None, "D"), strict=True):  # "15 MPa" contains "5 MPa"
        cases.append(("substring", "substring", SUBSTRING_SET[letter], SUBSTRING_SET, vlm, letter))
    for name, response, spec in FIXED:
        for set_name in FOUR:
            vlm = spec.get(set_name) if isinstance(spec, dict) else spec
            ours = BY_DESIGN[name][0] if name in BY_DESIGN else vlm
            cases.append((name, set_name, response, SETS[set_name], vlm, ours))
    return cases


MC_CASES = mc_table()


def test_the_table_is_large_and_varied():
    assert len(MC_CASES) >= 200
    assert len({c[2] for c in MC_CASES}) >= 200  # distinct responses
    assert {c[4] for c in MC_CASES} >= {"A", "B", "C", "D", "E", "Z", None}


@pytest.mark.parametrize("case", MC_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2][:20]}")
def test_vlmeval_match_agrees_with_vlmevalkit(case):
    _, _, response, options, vlm, _ = case
    assert vlmeval_match(response, options) == vlm


@pytest.mark.parametrize("case", MC_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2][:20]}")
def test_our_matcher_agrees_except_by_design(case):
    _, _, response, options, _, ours = case
    assert answers.extract_choice(response, options) == ours


def test_every_difference_is_exercised():
    differing = {c[0] for c in MC_CASES if c[4] != c[5]}
    assert differing == set(BY_DESIGN)


# ---------------------------------------------------------------------------------------------
# Yes / no: VLMEvalKit's YOrN_Extraction and ours

YES_NO = [  # response, VLMEvalKit, ours
    ("Yes", "Yes", "Yes"), ("No", "No", "No"), ("yes.", "Yes", "Yes"), ("NO.", "No", "No"),
    ("No, it is not.", "No", "No"), ("Yes, the cube is red.", "Yes", "Yes"), ("Yes!", "Yes", "Yes"),
    ("The answer is yes.", "Yes", "Yes"), ("No. The cube is blue.", "No", "No"),
    ("Not sure.", None, None), ("Yes and no", None, None), ("yes/no", None, None), ("y", None, None),
    ("It is not red.", None, None), ("Nope", None, None), ("", None, None),
    ("(yes)", "Yes", "Yes"), ("Answer: No", "No", "No"),
    # by design: a leading yes/no decides; "no" as a determiner is not an answer; markdown is read
    ("Yes, there is no cat.", None, "Yes"), ("There is no cat.", "No", None), ("**Yes**", None, "Yes"),
    ("Yes... no wait, no.", None, "Yes"),
]


@pytest.mark.parametrize(("response", "vlm", "ours"), YES_NO)
def test_yes_no_matchers(response, vlm, ours):
    assert vlmeval_yes_no(response) == vlm
    assert answers.extract_yes_no(response) == ours


# ---------------------------------------------------------------------------------------------
# Building benchmark files

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def png_b64(colour="red", size=(8, 6)):
    buf = io.BytesIO()
    Image.new("RGB", size, COLOURS[colour]).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def write_tsv(path, header, rows):
    """A TSV as pandas writes one: tab-separated, fields with newlines quoted, NaN as empty."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows([[row.get(h, "") for h in header] for row in rows])
    return path


def four_stage(conclusion):
    return stages.render({"SUMMARY": "I will look at the image and pick an option.",
                          "CAPTION": "A is red, B is blue; (C) and D are other colours.",
                          "REASONING": "Options A, B, C and D are compared in turn.", "CONCLUSION": conclusion})


MC_HEADER = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "split", "image"]


@pytest.fixture
def mmstar_tsv(tmp_path):
    rows = [
        {"index": 0, "question": "What colour is the square?", "A": "red", "B": "blue", "C": "green",
         "answer": "A", "category": "coarse perception", "l2-category": "colour", "image": png_b64("red")},
        {"index": 1, "question": "Which colour?\nLook at the centre.", "A": "red", "B": "green",
         "answer": "B", "category": "coarse perception", "l2-category": "colour", "image": png_b64("green")},
        {"index": 2, "question": "Same picture as 0?", "A": "yes", "B": "no", "answer": "A",
         "category": "math", "l2-category": "logic", "image": "0"},  # an image shared by reference
        {"index": 3, "question": "Broken", "A": "x", "B": "y", "answer": "Q", "category": "math",
         "image": png_b64()},  # the answer is no option
        {"index": 4, "question": "Bad image", "A": "x", "B": "y", "answer": "A", "image": "%%%%" * 20},
        {"index": 5, "question": "Refers ahead", "A": "x", "B": "y", "answer": "B", "category": "math",
         "l2-category": "logic", "image": "7"},
        {"index": 0, "question": "Duplicate", "A": "x", "B": "y", "answer": "A", "image": png_b64()},
        {"index": 6, "question": "No image", "A": "x", "B": "y", "answer": "A"},
        {"index": 7, "question": "Blue?", "A": "yes", "B": "no", "answer": "A", "category": "math",
         "l2-category": "logic", "image": png_b64("blue", (4, 4))},
    ]
    path = write_tsv(tmp_path / "MMStar.tsv", MC_HEADER, rows)
    with path.open("a") as f:
        f.write("8\ttoo few fields\n")
    return path


def test_tsv_loading_reports_bad_rows_with_line_numbers(mmstar_tsv):
    log = io.StringIO()
    bench = load_bench("mmstar", log=log)
    items = bench.load(str(mmstar_tsv))
    assert [i.index for i in items] == ["0", "1", "2", "5", "7"]
    reported = log.getvalue()
    # lines: header 1, rows 0 2, 1 3-4 (quoted newline), 2 5, 3 6, 4 7, 5 8, dup 9, 6 10, 7 11, short 12
    for line, reason in [(6, "the answer 'Q' is not one of the options AB"), (7, "not valid base64"),
                         (9, "duplicate index (first at line 2)"), (10, "no image"), (12, "2 fields where")]:
        assert f"line {line}" in reported and reason in reported
    assert sorted(b.line for b in bench.bad) == [6, 7, 9, 10, 12]
    assert items[1].question == "Which colour?\nLook at the centre."
    assert items[0].options == {"A": "red", "B": "blue", "C": "green"} and items[0].answer == "A"
    assert items[0].category == "coarse perception" and items[0].extra["l2-category"] == "colour"
    assert items[2].image().getpixel((0, 0)) == COLOURS["red"]  # index 0's image, by reference
    assert items[3].image().size == (4, 4)  # a reference to a later row


def test_limit_stops_early_and_still_resolves_references(mmstar_tsv):
    items = load_bench("mmstar", log=io.StringIO()).load(str(mmstar_tsv), limit=4)
    assert [i.index for i in items] == ["0", "1", "2", "5"]
    assert items[3].image().size == (4, 4)  # row 7 was never kept, but its image was fetched


def test_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(LlavaCotError, match=r"MMStar\.tsv from https://opencompass"):
        load_bench("mmstar").load(str(tmp_path / "MMStar.tsv"))
    with pytest.raises(LlavaCotError, match="needs its data file"):
        load_bench("hallusionbench").load(None)
    with pytest.raises(LlavaCotError, match="unknown match"):
        load_bench("ai2d", match="fuzzy")


def test_choice_prompt_is_vlmevalkits(tmp_path):
    rows = [{"index": 0, "question": "What is it?", "hint": "Look at the top.", "A": "a cube", "B": "a ball",
             "answer": "B", "category": "c", "image": png_b64()}]
    bench = load_bench("ai2d")
    item = bench.load(str(write_tsv(tmp_path / "AI2D_TEST.tsv", MC_HEADER, rows)))[0]
    assert bench.prompt(item) == ("Hint: Look at the top.\nQuestion: What is it?\nOptions:\nA. a cube\nB. a ball\n"
                                  "Please select the correct answer from the options above.")
    assert load_bench("ai2d_no_mask").name == "ai2d_no_mask" != bench.name


def test_choice_scoring_reads_the_conclusion(mmstar_tsv):
    bench = load_bench("mmstar", log=io.StringIO())
    items = {i.index: i for i in bench.load(str(mmstar_tsv))}
    rows = [bench.score(items["0"], four_stage("The answer is A.")),  # right, though REASONING names all
            bench.score(items["1"], four_stage("(b) green")),
            bench.score(items["2"], four_stage("I cannot tell.")),
            bench.score(items["5"], four_stage("A")),
            bench.score(items["7"], "A")]
    assert [r["prediction"] for r in rows] == ["A", "B", None, "A", "A"]
    assert [r["correct"] for r in rows] == [True, True, False, False, True]
    m = bench.summarise(rows)
    assert m["n"] == 5 and m["accuracy"] == pytest.approx(3 / 5) and m["unmatched"] == 1
    assert m["categories"]["coarse perception"] == {"n": 2, "accuracy": 1.0}
    assert m["categories"]["math"] == {"n": 3, "accuracy": pytest.approx(1 / 3)}
    assert m["l2_categories"]["logic"]["n"] == 3
    # VLMEvalKit's rules: "(b)" is no answer; on the whole response the reasoning's letters confuse it
    vlm = load_bench("mmstar", match="vlmeval", log=io.StringIO())
    assert vlm.score(items["1"], four_stage("(b)"))["prediction"] is None
    assert vlm.score(items["1"], four_stage("(b) green"))["prediction"] == "B"  # by the option's text
    assert vlm.score(items["0"], four_stage("A"))["prediction"] == "A"
    raw = load_bench("mmstar", match="vlmeval-raw", log=io.StringIO())
    assert raw.score(items["0"], four_stage("A"))["prediction"] is None


def test_mmbench_is_circular(tmp_path):
    base = {"question": "Colour?", "category": "attribute", "l2-category": "perception", "split": "dev"}
    rows = [
        {**base, "index": 0, "A": "red", "B": "blue", "C": "green", "answer": "A", "image": png_b64("red")},
        {**base, "index": 1, "A": "blue", "B": "green", "answer": "B", "category": "count", "image": png_b64("green")},
        {**base, "index": 1000000, "A": "blue", "B": "green", "C": "red", "answer": "C", "image": "0"},
        {**base, "index": 2000000, "A": "green", "B": "red", "C": "blue", "answer": "B", "image": "0"},
        {**base, "index": 1000001, "A": "green", "B": "blue", "answer": "A", "category": "count", "image": "1"},
        {**base, "index": 1000002, "A": "x", "B": "y", "answer": "A", "image": "0"},  # its question is absent
    ]
    path = write_tsv(tmp_path / "MMBench_DEV_EN.tsv", MC_HEADER, rows)
    bench = load_bench("mmbench")
    items = {i.index: i for i in bench.load(str(path))}
    assert items["2000000"].extra["group"] == 0 and items["1000001"].extra["group"] == 1
    said = {"0": "A", "1000000": "C", "2000000": "B", "1": "B", "1000001": "B", "1000002": "A"}
    rows = [bench.score(items[k], four_stage(v)) for k, v in said.items()]
    m = bench.summarise(rows)
    # question 0: all three rows right; question 1: its rotation is wrong; group 2 has no question row
    assert m["n"] == 2 and m["accuracy"] == 0.5 and m["rows"] == 6 and m["orphan_rows"] == 1
    assert m["categories"] == {"attribute": {"n": 1, "accuracy": 1.0}, "count": {"n": 1, "accuracy": 0.0}}
    assert m["vanilla_all"] == pytest.approx(5 / 6) and m["vanilla_first"] == 1.0
    # a limit counts questions, with all their rotations
    assert sorted(i.index for i in bench.load(str(path), limit=1)) == ["0", "1000000", "2000000"]


# ---------------------------------------------------------------------------------------------
# HallusionBench

HB_HEADER = ["index", "image", "category", "l2-category", "question", "answer"]
# (category, subcategory, set, figure, question, gold, said): set 0 has one wrong answer (figure 1,
# question 0); everything else is answered right.
HB = [("VD", "chart", 0, 0, 0, "Yes", "Yes"), ("VD", "chart", 0, 0, 1, "No", "No"),
      ("VD", "chart", 0, 1, 0, "No", "Yes"), ("VD", "chart", 0, 1, 1, "Yes", "Yes"),
      ("VS", "map", 1, 0, 0, "Yes", "Yes"), ("VS", "map", 1, 1, 0, "No", "No")]


@pytest.fixture
def hallusion_tsv(tmp_path):
    rows = [{"index": f"hb_{c}_{s}_{st}_{f}_{q}", "image": png_b64(), "category": c, "l2-category": s,
             "question": f"Is claim {q} true of figure {f}?", "answer": gold}
            for c, s, st, f, q, gold, _ in HB]
    return write_tsv(tmp_path / "HallusionBench.tsv", HB_HEADER, rows)


def test_hallusionbench_aacc_facc_qacc(hallusion_tsv):
    bench = load_bench("hallusionbench")
    items = bench.load(str(hallusion_tsv))
    assert items[2].extra | {} == {"l2-category": "chart", "set_id": "0", "figure_id": "1", "question_id": "0"}
    assert bench.prompt(items[0]) == "Is claim 0 true of figure 0?"
    rows = [bench.score(item, four_stage(f"{said}, it is.")) for item, (*_, said) in zip(items, HB, strict=True)]
    m = bench.summarise(rows)
    # aAcc 5/6; figures (VD chart 0 0) ok, (VD chart 0 1) not, (VS map 1 0), (VS map 1 1) ok: 3/4;
    # questions (VD chart 0 q0) not, (VD chart 0 q1) ok, (VS map 1 q0) ok: 2/3
    assert (m["aAcc"], m["fAcc"], m["qAcc"]) == (pytest.approx(5 / 6), 0.75, pytest.approx(2 / 3))
    assert m["accuracy"] == m["aAcc"] and (m["figures"], m["questions"]) == (4, 3)
    vd = m["categories"]["VD"]
    assert (vd["aAcc"], vd["fAcc"], vd["qAcc"]) == (0.75, 0.5, 0.5)
    assert m["l2_categories"]["map"] | {} == {"n": 2, "aAcc": 1.0, "fAcc": 1.0, "qAcc": 1.0, "figures": 2,
                                             "questions": 1}


def test_hallusionbench_ids_from_columns_and_matchers(tmp_path):
    header = [*HB_HEADER, "set_id", "figure_id", "question_id"]
    rows = [{"index": 7, "image": png_b64(), "category": "VS", "l2-category": "table", "question": "Q?",
             "answer": "no", "set_id": 3, "figure_id": 2, "question_id": 1},
            {"index": 8, "image": png_b64(), "question": "Q?", "answer": "maybe"}]
    log = io.StringIO()
    bench = load_bench("hallusionbench", log=log)
    (item,) = bench.load(str(write_tsv(tmp_path / "hb.tsv", header, rows)))
    assert (item.answer, item.extra["set_id"], item.extra["figure_id"]) == ("No", "3", "2")
    assert "line 3 (index 8): the answer 'maybe' is not Yes or No" in log.getvalue()
    assert bench.score(item, four_stage("There is no such row."))["prediction"] is None
    vlm = load_bench("hallusionbench", match="vlmeval")
    assert vlm.score(item, four_stage("There is no such row."))["correct"]  # VLMEvalKit: the word "no"


# ---------------------------------------------------------------------------------------------
# The LLM judge, against a real HTTP server


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        app = self.server.app
        with app.lock:
            app.requests.append(request)
        reply = app.reply(request)
        body = json.dumps({"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": request["model"],
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": reply}}],
                           "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class JudgeServer:
    def __init__(self):
        self.requests, self.lock = [], threading.Lock()
        self.reply = lambda request: "0"
        self.url = None  # set while served

    def judge(self, cache, model="judge-1"):
        return Judge(model=model, base_url=self.url, api_key="test", cache=cache, max_retries=0)


@pytest.fixture
def server():
    s = JudgeServer()
    with serve(_Handler, s) as s.url:
        yield s


MMVET_HEADER = ["index", "image", "question", "answer", "category"]


@pytest.fixture
def mmvet_tsv(tmp_path):
    rows = [{"index": "v1_0", "image": png_b64(), "question": "What is written?", "answer": "STOP<OR>stop sign",
             "category": "ocr,rec"},
            {"index": "v1_1", "image": png_b64(), "question": "How many birds?", "answer": "4", "category": "rec"},
            {"index": "v1_2", "image": png_b64(), "question": "Which fruits?", "answer": "apple<AND>pear",
             "category": "rec,know"}]
    return write_tsv(tmp_path / "MMVet.tsv", MMVET_HEADER, rows)


def test_mmvet_grades_by_judge_and_the_cache_prevents_a_second_call(server, mmvet_tsv, tmp_path):
    grades = {"What is written?": "1.0", "How many birds?": "0.0", "Which fruits?": "0.5"}
    server.reply = lambda request: next(g for q, g in grades.items() if q in request["messages"][0]["content"])
    cache = tmp_path / "judge.jsonl"
    bench = load_bench("mmvet", judge=server.judge(cache))
    items = bench.load(str(mmvet_tsv))
    responses = [four_stage("It says STOP."), four_stage("Five birds."), four_stage("An apple.")]
    rows = [bench.score(i, r) for i, r in zip(items, responses, strict=True)]
    assert [r["score"] for r in rows] == [1.0, 0.0, 0.5] and len(server.requests) == 3
    prompt = server.requests[0]["messages"][0]["content"]
    assert "STOP <OR> stop sign" in prompt and "It says STOP." in prompt and "Options A, B" not in prompt
    assert server.requests[0]["model"] == "judge-1" and server.requests[0]["temperature"] == 0
    m = bench.summarise(rows)
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["categories"]["rec"] == {"n": 3, "accuracy": pytest.approx(0.5)}
    assert m["categories"]["ocr"]["accuracy"] == 1.0 and m["combinations"]["rec_know"]["accuracy"] == 0.5
    # a re-score, with a new judge on the same cache file: no call at all
    again = load_bench("mmvet", judge=server.judge(cache))
    assert [again.score(i, r)["score"] for i, r in zip(again.load(str(mmvet_tsv)), responses, strict=True)] \
        == [1.0, 0.0, 0.5]
    assert len(server.requests) == 3 and len(cache.read_text().splitlines()) == 3
    # another judge model is another key
    other = load_bench("mmvet", judge=server.judge(cache, model="judge-2"))
    other.score(items[0], responses[0])
    assert len(server.requests) == 4


def test_an_unreadable_verdict_is_asked_again_then_counted_as_a_failure(server, mmvet_tsv, tmp_path):
    server.reply = lambda request: "What a lovely answer!"
    bench = load_bench("mmvet", judge=server.judge(tmp_path / "c.jsonl"))
    item = bench.load(str(mmvet_tsv))[1]
    row = bench.score(item, four_stage("4"))
    assert (row["score"], row["judge_failures"]) == (0.0, 1)
    assert [r["temperature"] for r in server.requests] == [0, 0.5, 1.0]
    assert bench.summarise([row])["judge_failures"] == 1
    bench.score(item, four_stage("4"))
    assert len(server.requests) == 3  # the failure is cached too


def test_mmvet_without_a_judge_says_how_to_give_one(mmvet_tsv):
    with pytest.raises(LlavaCotError, match="judge-model"):
        load_bench("mmvet").load(str(mmvet_tsv))


def test_an_unreachable_judge_is_a_one_line_error(mmvet_tsv, tmp_path):
    judge = Judge(model="m", base_url="http://127.0.0.1:9/v1", cache=tmp_path / "c.jsonl", max_retries=0)
    bench = load_bench("mmvet", judge=judge)
    with pytest.raises(LlavaCotError, match="cannot reach the judge"):
        bench.score(bench.load(str(mmvet_tsv))[0], "x")


MATHVISTA_HEADER = ["index", "image", "question", "answer", "question_type", "answer_type", "choices",
                    "answer_option", "precision", "task", "skills"]
MATHVISTA = [
    {"index": 1, "question": "Hint: pick a letter.\nQuestion: Which is largest?\nChoices:\n(A) 2\n(B) 8\n(C) 5",
     "answer": "8", "question_type": "multi_choice", "answer_type": "text", "choices": "['2', '8', '5']",
     "answer_option": "B", "task": "figure question answering", "skills": "['arithmetic reasoning']"},
    {"index": 2, "question": "How many cubes?", "answer": "14", "question_type": "free_form",
     "answer_type": "integer", "task": "math word problem", "skills": "['arithmetic reasoning', 'numeric commonsense']"},
    {"index": 3, "question": "What fraction is blue? (one decimal place)", "answer": "0.6",
     "question_type": "free_form", "answer_type": "float", "precision": "1.0", "task": "math word problem",
     "skills": "['arithmetic reasoning']"},
    {"index": 4, "question": "Which two years peak?", "answer": "[2007, 2008]", "question_type": "free_form",
     "answer_type": "list", "task": "figure question answering", "skills": "['statistical reasoning']"},
]


def test_mathvista_by_rules_without_a_judge(tmp_path):
    path = write_tsv(tmp_path / "MathVista_MINI.tsv", MATHVISTA_HEADER,
                     [{**r, "image": png_b64()} for r in MATHVISTA])
    bench = load_bench("mathvista")
    items = bench.load(str(path))
    assert items[0].options == {"A": "2", "B": "8", "C": "5"} and items[0].answer == "B"
    assert bench.prompt(items[0]) == MATHVISTA[0]["question"]
    responses = [four_stage("The answer is (B) 8."), four_stage("There are 14 cubes."),
                 four_stage("About 0.58 of it is blue."), four_stage("The peak is between 2007 and 2008.")]
    rows = [bench.score(i, r) for i, r in zip(items, responses, strict=True)]
    assert [r["correct"] for r in rows] == [True, True, True, True]  # 0.58 rounds to 0.6
    assert not any(r["judged"] for r in rows)
    assert not bench.score(items[1], four_stage("There are 13 cubes."))["correct"]
    m = bench.summarise(rows)
    assert m["categories"]["math word problem"]["n"] == 2
    assert m["skills"]["arithmetic reasoning"] == {"n": 3, "accuracy": 1.0}
    # free-form text answers need the judge
    text_item = {"index": 5, "image": png_b64(), "question": "Name the shape.", "answer": "circle",
                 "question_type": "free_form", "answer_type": "text", "task": "t", "skills": "['s']"}
    path = write_tsv(tmp_path / "MathVista_text.tsv", MATHVISTA_HEADER, [text_item])
    with pytest.raises(LlavaCotError, match="1 items have free-form text answers"):
        bench.load(str(path))


def test_mathvista_asks_the_judge_only_when_the_rules_say_wrong(server, tmp_path):
    path = write_tsv(tmp_path / "MathVista_MINI.tsv", MATHVISTA_HEADER,
                     [{**r, "image": png_b64()} for r in MATHVISTA])
    server.reply = lambda request: "B" if "Which is largest?" in request["messages"][0]["content"] else "14"
    bench = load_bench("mathvista", judge=server.judge(tmp_path / "c.jsonl"))
    items = bench.load(str(path))
    right = bench.score(items[0], four_stage("B"))
    assert right["correct"] and not right["judged"] and not server.requests
    judged = bench.score(items[1], four_stage("A dozen and two."))  # the rules read 2: wrong
    assert judged["correct"] and judged["judged"] and judged["prediction"] == "14"
    assert "A dozen and two." in server.requests[0]["messages"][0]["content"]
    wrong = bench.score(items[0], four_stage("the third one"))
    assert wrong["judged"] and wrong["correct"]  # the judge read "B" from it
    assert bench.summarise([right, judged, wrong])["judged"] == 2


def test_multiple_choice_judge_fallback_is_off_by_default(server, mmstar_tsv, tmp_path):
    server.reply = lambda request: "B"
    items = load_bench("mmstar", log=io.StringIO()).load(str(mmstar_tsv))
    plain = load_bench("mmstar", judge=server.judge(tmp_path / "c.jsonl"))
    assert plain.score(items[1], four_stage("the second one"))["prediction"] is None and not server.requests
    fallback = load_bench("mmstar", judge=server.judge(tmp_path / "c.jsonl"), judge_fallback=True)
    row = fallback.score(items[1], four_stage("the second one"))
    assert (row["prediction"], row["correct"], row["matched_by"]) == ("B", True, "judge")
    assert "B. green" in server.requests[0]["messages"][0]["content"]
    with pytest.raises(LlavaCotError, match="needs a judge"):
        load_bench("mmstar", judge_fallback=True)


# ---------------------------------------------------------------------------------------------
# lmms-eval's parquet layouts


def png_struct(colour="red"):
    return {"bytes": base64.b64decode(png_b64(colour)), "path": None}


def write_parquet(path, records):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), path)
    return path


def test_parquet_mmstar_options_in_the_question(tmp_path):
    records = [{"index": 0, "question": "Which relation is right?\nOptions: A: The cup is on it., B: The cup is "
                "under it., C: Neither, or both., D: None", "image": png_struct("blue"), "answer": "B",
                "category": "instance reasoning", "l2_category": "relation", "meta_info": {"source": "x"}},
               {"index": 1, "question": "Odd layout", "image": png_struct(), "answer": "A", "category": "math",
                "l2_category": "geometry", "meta_info": {"source": "y"}}]
    log = io.StringIO()
    bench = load_bench("mmstar", log=log)
    (item,) = bench.load(str(write_parquet(tmp_path / "val.parquet", records)))
    assert item.question == "Which relation is right?"
    assert item.options == {"A": "The cup is on it.", "B": "The cup is under it.", "C": "Neither, or both.",
                            "D": "None"}  # "None" stays an option (pandas would read it as missing)
    assert item.extra["l2-category"] == "relation" and item.image().getpixel((0, 0)) == COLOURS["blue"]
    assert "row 2 (index 1): the answer 'A' is not one of the options (none)" in log.getvalue()


def test_parquet_ai2d_folder_of_shards(tmp_path):
    folder = tmp_path / "ai2d"
    folder.mkdir()
    write_parquet(folder / "test-00000-of-00002.parquet",
                  [{"question": "Which stage comes first?", "options": ["egg", "larva", "adult"], "answer": "0",
                    "image": png_struct()}])
    write_parquet(folder / "test-00001-of-00002.parquet",
                  [{"question": "What eats grass?", "options": ["cow", "lion"], "answer": "0", "image": png_struct()},
                   {"question": "Broken", "options": ["a"], "answer": "7", "image": png_struct()}])
    log = io.StringIO()
    bench = load_bench("ai2d", log=log)
    items = bench.load(str(folder))
    assert [(i.index, i.answer, i.options) for i in items] == [
        ("1", "A", {"A": "egg", "B": "larva", "C": "adult"}), ("2", "A", {"A": "cow", "B": "lion"})]
    assert "row 3: the answer position 7 is not among the 1 options" in log.getvalue()
    assert bench.prompt(items[1]).startswith("Question: What eats grass?\nOptions:\nA. cow\nB. lion\n")


def test_parquet_hallusionbench_mathvista_mmvet(tmp_path, server):
    hb = [{"category": "VD", "subcategory": "illusion", "visual_input": "1", "set_id": 2, "figure_id": 1,
           "sample_note": "n", "question_id": 0, "question": "Is the line longer?", "gt_answer_details": "...",
           "gt_answer": "1", "filename": "f.png", "image": png_struct()}]
    (item,) = load_bench("hallusionbench").load(str(write_parquet(tmp_path / "hb.parquet", hb)))
    assert (item.index, item.answer, item.category, item.extra["l2-category"], item.extra["figure_id"]) == (
        "VD_illusion_2_1_0", "Yes", "VD", "illusion", "1")
    mv = [{"pid": "7", "question": "Which is larger?", "image": "images/7.png", "decoded_image": png_struct(),
           "choices": ["3", "9"], "unit": None, "precision": None, "answer": "9", "question_type": "multi_choice",
           "answer_type": "text", "metadata": {"task": "textbook question answering", "skills": ["algebraic reasoning"]},
           "query": "Hint: answer with a letter.\nQuestion: Which is larger?\nChoices:\n(A) 3\n(B) 9"}]
    bench = load_bench("mathvista")
    (item,) = bench.load(str(write_parquet(tmp_path / "testmini.parquet", mv)))
    assert (item.index, item.answer, item.options, item.category) == ("7", "B", {"A": "3", "B": "9"},
                                                                      "textbook question answering")
    assert bench.prompt(item).startswith("Hint: answer with a letter.") and item.extra["skills"] == ["algebraic reasoning"]
    assert bench.score(item, four_stage("(B) 9"))["correct"]
    vet = [{"question_id": "v1_5", "image": png_struct(), "question": "What is it?", "answer": "a cat",
            "image_source": "web", "capability": "rec,know"}]
    (item,) = load_bench("mmvet", judge=server.judge(tmp_path / "c.jsonl")).load(
        str(write_parquet(tmp_path / "mmvet.parquet", vet)))
    assert (item.index, item.category) == ("v1_5", "rec,know")


def test_a_bad_parquet_file_is_an_error(tmp_path):
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(LlavaCotError, match="not a readable parquet file"):
        load_bench("mmstar").load(str(tmp_path / "x.parquet"))


# ---------------------------------------------------------------------------------------------
# The synthetic benchmarks, the registry


def test_synth_test_is_fixed_and_scores_its_gold_answers():
    bench = load_bench("synth-test")
    items = bench.load(None, limit=24)
    again = load_bench("synth-test").load(None, limit=24)
    assert [(i.index, i.question) for i in items] == [(i.index, i.question) for i in again]
    assert len(items) == 24 and items[0].image().size == (64, 64)
    assert {i.category for i in items} <= set(FAMILIES)
    choice = next(i for i in items if i.category == "choice")
    assert "Options:" in bench.prompt(choice) and "Options:" not in choice.question
    assert set(choice.options) == {"A", "B", "C", "D"}
    rows = [bench.score(i, four_stage(str(i.extra["gold"]))) for i in items]
    assert all(r["correct"] for r in rows)
    m = bench.summarise(rows)
    assert m["n"] == 24 and m["accuracy"] == 1.0 and sum(c["n"] for c in m["categories"].values()) == 24
    assert not load_bench("synth-test").score(items[0], four_stage("I cannot tell."))["correct"]


def test_synth_hard_differs_and_records_reads_a_file(tmp_path):
    hard = load_bench("synth-hard").load(str(tmp_path / "hard"), limit=3)
    assert len(hard) == 3 and (tmp_path / "hard" / "hard.jsonl").is_file()
    items = load_bench("records").load(str(tmp_path / "hard" / "hard.jsonl"))
    assert [i.index for i in items] == [i.index for i in hard]
    assert items[0].image().size == (64, 64)
    with pytest.raises(LlavaCotError, match="gold 'answer'"):
        (tmp_path / "x.jsonl").write_text(json.dumps({"id": "1", "conversations": [
            {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}) + "\n")
        load_bench("records").load(str(tmp_path / "x.jsonl"))


def test_registry():
    assert set(BENCHES) >= {"synth-test", "synth-hard", "synth-train", "mmstar", "mmbench", "ai2d",
                            "ai2d_no_mask", "hallusionbench", "mathvista", "mmvet"}
    for name in BENCHES:
        bench = load_bench(name, match="vlmeval")
        assert bench.name == name and callable(bench.score) and callable(bench.summarise)
    assert load_bench("AI2D-No-Mask").name == "ai2d_no_mask"
    with pytest.raises(LlavaCotError, match="unknown benchmark 'mmlu'"):
        load_bench("mmlu")
    assert [guess_bench(p) for p in ("~/LMUData/MMStar.tsv", "MMBench_DEV_EN_V11.tsv", "AI2D_TEST_NO_MASK.tsv",
                                     "AI2D_TEST.tsv", "HallusionBench.tsv", "MathVista_MINI.tsv", "MMVet.tsv",
                                     "data/test.jsonl", "lmms-lab/ai2d/test.parquet", "notes.txt")] == [
        "mmstar", "mmbench", "ai2d_no_mask", "ai2d", "hallusionbench", "mathvista", "mmvet", "records", "ai2d", None]


def test_table_reports_categories_then_overall():
    from llava_cot.benches import table

    metrics = {"n": 3, "accuracy": 0.5, "aAcc": 0.5, "fAcc": 0.25, "qAcc": 0.0,
               "categories": {"VD": {"n": 2, "aAcc": 1.0, "fAcc": 0.5, "qAcc": 0.0}}}
    assert table(metrics).splitlines() == ["| category | n | aAcc | fAcc | qAcc |", "| --- | ---: | ---: | ---: | ---: |",
                                           "| VD | 2 | 100.0% | 50.0% | 0.0% |", "| **all** | 3 | 50.0% | 25.0% | 0.0% |"]


# ---------------------------------------------------------------------------------------------
# A benchmark's file given where its name goes (`--bench FILE.tsv`)


def test_eval_score_reads_a_benchmark_file_given_as_the_bench(mmstar_tsv, tmp_path, capsys):
    from llava_cot.cli import main

    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"index": 0, "response": four_stage("A")}) + "\n"  # right
                     + json.dumps({"index": 1, "response": four_stage("A")}) + "\n")  # wrong: B
    scored = []
    for bench in (["--bench", str(mmstar_tsv)], ["--bench", "mmstar", "--data", str(mmstar_tsv)]):
        assert main(["eval", "score", *bench, "--predictions", str(preds), "--json"]) == 0
        cap = capsys.readouterr()
        m = json.loads(cap.out.strip().splitlines()[-1])
        scored.append((m["n"], m["accuracy"], m["categories"]))
        if len(bench) == 2:
            assert f"{mmstar_tsv}: read as the mmstar benchmark (--bench mmstar --data {mmstar_tsv})" in cap.err
    assert scored[0] == scored[1] and scored[0][:2] == (2, 0.5)


def test_a_benchmark_file_its_name_does_not_tell_is_a_one_line_error(mmstar_tsv, tmp_path, capsys):
    from llava_cot.cli import main

    mine = tmp_path / "my_questions.tsv"
    mine.write_bytes(mmstar_tsv.read_bytes())
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"index": 0, "response": "A"}) + "\n")
    for command in (["eval", "score", "--predictions", str(preds)], ["eval", "--limit", "1"]):
        assert main([*command, "--bench", str(mine)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"pass --bench NAME --data {mine}, NAME one of" in err


def test_eval_runs_a_model_on_a_benchmark_file_given_as_the_bench(mmstar_tsv, capsys):
    from llava_cot.cli import main

    assert main(["eval", "--bench", str(mmstar_tsv), "--limit", "2", "--max-new-tokens", "4", "--batch-size", "2",
                 "--device", "cpu"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out.strip().splitlines()[-1])["n"] == 2
    assert "read as the mmstar benchmark" in cap.err
