"""MathVista and MM-Vet: benchmarks scored through an LLM judge (judge.py), as VLMEvalKit does.

    judge = Judge(model="gpt-4o-mini", base_url=URL, api_key=KEY, cache="runs/judge.jsonl")
    bench = load_bench("mathvista", judge=judge)      # judge=None: rules only, see below
    items = bench.load("~/LMUData/MathVista_MINI.tsv")
    bench.summarise(rows)   # {"accuracy", "categories" (task), "skills", "judged", ...}

MathVista (testmini, VLMEvalKit's MathVista_MINI.tsv or lmms-eval's `AI4Math/MathVista`
parquet): the prompt is the question as given (its hint says what form the answer takes). A
response is first scored by rules on its CONCLUSION: multiple choice by the bench's matcher
(`match`, as in choice.py), integer and float answers by `answers.extract_number` (a float
rounded to the item's `precision` decimals), list answers by the numbers in the CONCLUSION, in
order. Right by the rules is right; otherwise, with a judge, the judge extracts the answer from the
CONCLUSION and that is compared the same way (VLMEvalKit: "prefetch", then GPT extraction).
Without a judge the rules decide alone; only free-form text answers need the judge, and loading
a file with any of them and no judge raises LlavaCotError.

MM-Vet (VLMEvalKit's MMVet.tsv or lmms-eval's `lmms-lab/MMVet`): open answers, always graded by
the judge from 0.0 to 1.0 against the reference (`<AND>` / `<OR>` in it as MM-Vet defines);
the score is the mean grade, per capability (rec, ocr, know, gen, spat, math) and per
combination. Without a judge, loading raises LlavaCotError. A verdict the judge never makes
readable scores 0 and is counted in "judge_failures".
"""

from __future__ import annotations

import ast
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from llava_cot import answers, stages
from llava_cot.benches import Item, accuracy_by
from llava_cot.benches.choice import LETTERS, OPENCOMPASS, check_match, read_choice
from llava_cot.benches.judge import Judge
from llava_cot.benches.tsv import Bad, Row, Source, read_items
from llava_cot.benches.vlmeval import vlmeval_match
from llava_cot.errors import LlavaCotError

MATHVISTA = Source("MathVista_MINI.tsv", f"{OPENCOMPASS}/VLMEval/MathVista_MINI.tsv", "AI4Math/MathVista (testmini)")
MMVET = Source("MMVet.tsv", f"{OPENCOMPASS}/VLMEval/MMVet.tsv", "lmms-lab/MMVet")
CAPABILITIES = ("rec", "ocr", "know", "gen", "spat", "math")
_NUMBERS = re.compile(r"[-−]?\d+(?:\.\d+)?")

EXTRACT_PROMPT = """Read a model's response to a math question and write down only its final answer.
Write an option letter for a multiple-choice question, a number (with the decimals the hint asks
for) for a numeric one, a Python list such as [3, 7] for a list. Examples:

Question: How many cubes are left after removing the red ones?
Model response: Three cubes remain once the red one is gone.
Extracted answer: 3

Question: What is the slope of the line? Choices: (A) 1/2 (B) 2 (C) -2 (D) 0
Model response: Rising 4 over a run of 2 gives the option B.
Extracted answer: B

Question: Which two months had the same sales?
Model response: March and June are equal, both at 40 units.
Extracted answer: [3, 6]

Question: {question}
Model response: {response}
Extracted answer:"""

GRADE_PROMPT = """Grade a model's answer against the reference answer to a question about an image.
In the reference, <AND> joins parts that must all be present for full marks, and <OR> joins
alternatives any one of which is enough. Reply with the grade only: one of 0.0, 0.1, 0.2, ..., 1.0
(0.0 wholly wrong, 1.0 wholly right).

Question | Reference | Answer | Grade
--- | --- | --- | ---
How many birds are on the wire? | 4 | There are four birds. | 1.0
How many birds are on the wire? | 4 | I count five birds. | 0.0
Which two fruits are in the bowl? | apple <AND> pear | An apple. | 0.5
What does the sign say? | STOP <OR> stop sign | It is a stop sign. | 1.0
What is the weather like? | sunny and warm | It looks bright, probably hot. | 0.8
{question} | {reference} | {answer} |"""


def grade(reply: str) -> float | None:
    """A judge's grade: the first number in its reply, if it lies in [0, 1]."""
    m = re.search(r"\d+(?:\.\d+)?|\.\d+", reply)
    value = float(m.group()) if m else None
    return value if value is not None and 0.0 <= value <= 1.0 else None


@dataclass
class JudgedBench:
    name: str
    kind: str  # "mathvista" | "mmvet"
    judge: Judge | None = None
    match: str = "ours"
    judge_fallback: bool = False  # accepted for a uniform interface: these benches always use the judge
    log: TextIO | None = None
    bad: list[Bad] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_match(self.match)

    @property
    def source(self) -> Source:
        return MATHVISTA if self.kind == "mathvista" else MMVET

    def load(self, source: str | None, limit: int = 0) -> list[Item]:
        if not source:
            raise LlavaCotError(f"{self.name} needs its data file: {self.source.hint()}")
        if self.kind == "mmvet" and self.judge is None:
            raise LlavaCotError("mmvet is graded by an LLM judge: give one (--judge-model NAME, and --judge-url "
                                "for a server other than OpenAI's)")
        adapt, make = (mathvista_record, _mathvista_item) if self.kind == "mathvista" else (mmvet_record, _mmvet_item)
        items, self.bad = read_items(source, make, limit, adapt=adapt, missing=self.source.hint(), log=self.log)
        free_text = sum(_needs_judge(i) for i in items) if self.kind == "mathvista" else 0
        if free_text and self.judge is None:
            raise LlavaCotError(f"{source}: {free_text} items have free-form text answers, which only an LLM "
                                "judge can score: give one (--judge-model NAME, --judge-url URL)")
        return items

    def prompt(self, item: Item) -> str:
        return item.question

    def score(self, item: Item, response: str) -> dict[str, Any]:
        return self._mathvista(item, response) if self.kind == "mathvista" else self._mmvet(item, response)

    def _mathvista(self, item: Item, response: str) -> dict[str, Any]:
        row = {"index": item.index, "category": item.category, "skills": item.extra["skills"],
               "answer": item.answer, "judged": False, "judge_failures": 0}
        if _needs_judge(item) and self.judge is None:
            raise LlavaCotError(f"mathvista item {item.index} has a free-form text answer: only an LLM judge can score it")
        correct, said = (False, None) if _needs_judge(item) else _rule_check(item, response, self.match)
        if not correct and self.judge is not None:
            prompt = EXTRACT_PROMPT.format(question=item.question, response=stages.answer_text(response))
            reply, said = self.judge.ask(prompt, lambda r: r.strip() or None)
            correct = said is not None and _same(item, said, said_by_judge=True)
            row.update(judged=True, judge_failures=int(said is None), judge_reply=reply)
        return {**row, "prediction": said, "correct": correct}

    def _mmvet(self, item: Item, response: str) -> dict[str, Any]:
        if self.judge is None:
            raise LlavaCotError("mmvet is graded by an LLM judge: give one (--judge-model NAME, --judge-url URL)")
        reference = item.answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
        prompt = GRADE_PROMPT.format(question=item.question, reference=reference,
                                     answer=stages.answer_text(response).replace("\n", " "))
        reply, value = self.judge.ask(prompt, grade)
        return {"index": item.index, "category": item.category, "answer": item.answer,
                "prediction": stages.answer_text(response), "score": value or 0.0, "correct": value == 1.0,
                "judged": True, "judge_failures": int(value is None), "judge_reply": reply}

    def summarise(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        failures = sum(r.get("judge_failures", 0) for r in rows)
        if self.kind == "mmvet":
            return {**_mean_scores(rows), "judge_failures": failures}
        skills: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            for s in r["skills"]:
                skills[s].append(r)
        return {**accuracy_by(rows), "skills": {s: {"n": len(v), "accuracy": accuracy_by(v)["accuracy"]}
                                                for s, v in sorted(skills.items())},
                "judged": sum(bool(r.get("judged")) for r in rows), "judge_failures": failures}


# ---------------------------------------------------------------------------------------------
# MathVista rules


def _needs_judge(item: Item) -> bool:
    return item.extra["question_type"] != "multi_choice" and item.extra["answer_type"] not in ("integer", "float", "list")


def _rule_check(item: Item, response: str, match: str) -> tuple[bool, Any]:
    if item.options:
        letter = read_choice(response, item.options, match)
        return letter == item.answer, letter
    if item.extra["answer_type"] == "list":
        said = [float(x.replace("−", "-")) for x in _NUMBERS.findall(stages.answer_text(response))]
        return _same(item, str(said)), said
    value = answers.extract_number(response)
    return value is not None and _same(item, str(value)), value


def _same(item: Item, said: str, said_by_judge: bool = False) -> bool:
    """Whether an extracted answer (text) is the gold one, compared by the item's answer type."""
    if item.options:
        letter = vlmeval_match(said, item.options) if said_by_judge else said
        return letter == item.answer
    kind, gold = item.extra["answer_type"], item.answer
    if kind == "list":
        try:
            want = [float(x) for x in ast.literal_eval(gold)]
        except (ValueError, SyntaxError, TypeError):
            return False
        got = [float(x.replace("−", "-")) for x in _NUMBERS.findall(said)]
        return len(got) == len(want) and all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(got, want, strict=True))
    if kind in ("integer", "float"):
        value = answers.extract_number(said)
        if value is None:
            return False
        if kind == "integer":
            return math.isclose(value, float(gold), rel_tol=answers.REL_TOL)
        digits = item.extra["precision"]
        return round(value, digits) == round(float(gold), digits)
    return answers.normalize_text(said) == answers.normalize_text(gold)


def _mathvista_item(row: Row) -> Item:
    question, gold = row.get("question"), row.get("answer")
    if not question or gold is None:
        raise ValueError("no question or no answer")
    kind, answer_type = str(row.get("question_type", "free_form")), str(row.get("answer_type", "text"))
    options: dict[str, str] = {}
    if kind == "multi_choice":
        choices = _list(row.get("choices"))
        options = dict(zip(LETTERS, map(str, choices), strict=False))
        letter = row.get("answer_option") or next((k for k, v in options.items() if v == str(gold)), None)
        if letter not in options:
            raise ValueError(f"the answer {gold!r} is not one of the choices")
        gold = letter
    precision = row.get("precision")
    extra = {"question_type": kind, "answer_type": answer_type, "skills": [str(s) for s in _list(row.get("skills"))],
             "precision": int(float(precision)) if precision not in (None, "") else 2}
    return Item(row.index, str(question), str(gold), row.image_loader(), options, str(row.get("task", "all")), extra)


def _list(value: Any) -> list[Any]:
    """A list cell: a list already (parquet) or its Python literal (TSV, "['a', 'b']")."""
    if value is None or isinstance(value, list | tuple):
        return list(value or [])
    try:
        parsed = ast.literal_eval(str(value))
    except (ValueError, SyntaxError):
        return [value]
    return list(parsed) if isinstance(parsed, list | tuple) else [parsed]


def mathvista_record(record: dict[str, Any]) -> dict[str, Any]:
    """AI4Math/MathVista's parquet: pid, query (the question with its hint), metadata.{task,skills}."""
    meta = record.get("metadata") or {}
    return {"index": record["pid"], "question": record["query"], "answer": record["answer"],
            "image": record.get("decoded_image") or record.get("image"), "choices": record.get("choices"),
            "question_type": record["question_type"], "answer_type": record["answer_type"],
            "precision": record.get("precision"), "task": meta.get("task"), "skills": meta.get("skills")}


# ---------------------------------------------------------------------------------------------
# MM-Vet


def _mmvet_item(row: Row) -> Item:
    if not row.get("question") or row.get("answer") is None:
        raise ValueError("no question or no answer")
    return Item(row.index, str(row.get("question")), str(row.get("answer")), row.image_loader(),
                category=str(row.get("category", "all")))


def mmvet_record(record: dict[str, Any]) -> dict[str, Any]:
    """lmms-lab/MMVet's parquet: question_id, and capability ("rec,ocr" or a list)."""
    caps = record["capability"]
    return {"index": record["question_id"], "question": record["question"], "answer": record["answer"],
            "image": record.get("image"), "category": caps if isinstance(caps, str) else ",".join(caps)}


def _mean_scores(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The mean grade overall, per capability, and per combination of capabilities ("ocr_rec")."""
    caps: dict[str, list[float]] = defaultdict(list)
    combos: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        parts = [c.strip() for c in str(r["category"]).split(",")]
        for c in parts:
            caps[c].append(r["score"])
        combos["_".join(parts)].append(r["score"])

    def table(groups: dict[str, list[float]]) -> dict[str, Any]:
        return {k: {"n": len(v), "accuracy": sum(v) / len(v)} for k, v in sorted(groups.items())}

    return {"n": len(rows), "accuracy": sum(r["score"] for r in rows) / len(rows) if rows else 0.0,
            "categories": table(caps), "combinations": table(combos)}


def mathvista(**options: Any) -> JudgedBench:
    return JudgedBench("mathvista", "mathvista", **options)


def mmvet(**options: Any) -> JudgedBench:
    return JudgedBench("mmvet", "mmvet", **options)
