"""What the teacher pipeline keeps: a response in the four stages, whose CONCLUSION agrees with the
gold answer, and that does not let on that it was given that answer.

    v = verdict(response, gold="B", options={"A": "3", "B": "5"}, question=q, hinted=True)
    v.ok, v.reason, v.detail        # False, "wrong_answer", "answered 'A', the gold answer is 'B'"
    v.needs_judge                   # free-text gold answers no rule can decide: ask an LLM judge

The answer is compared by `llava_cot.answers` (letters, option texts, numbers, yes/no, normalised
text). A free-text answer that is not the gold text word for word may still mean it ("a red
sphere" for "red ball"): that case goes to an LLM judge, asked with `judge_prompt` and read with
`read_judgement`, as the reference pipeline does with a second call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from llava_cot import answers, stages

# Why an item was rejected (the `reason` of its line in OUT.rejected.jsonl).
WRONG_ANSWER = "wrong_answer"
NOT_FOUR_STAGE = "not_four_stage"
LEAKED_HINT = "leaked_hint"
JUDGE_SAID_NO = "judge_said_no"
REFUSED = "teacher_refused"
BAD_INPUT = "bad_input"  # the item itself cannot be annotated: no image file, a gold answer no option names
REASONS = (WRONG_ANSWER, NOT_FOUR_STAGE, LEAKED_HINT, JUDGE_SAID_NO, REFUSED, BAD_INPUT)

# Ways a response lets on that it was handed the answer. Each is counted only where the question
# itself does not use the same words (an MMBench question may carry a "Hint:" of its own).
_LEAKS = re.compile(
    r"\bhint(?:s|ed)?\b"
    r"|\b(?:given|provided|supplied|told|shown)\s+(?:me\s+|us\s+)?(?:that\s+)?(?:the\s+)?"
    r"(?:correct\s+|right\s+|standard\s+|gold\s+|reference\s+|expected\s+|final\s+)?answer\b"
    r"|\banswer\s+(?:was|is|has\s+been|had\s+been)\s+(?:already\s+)?(?:given|provided|supplied|stated|told)\b"
    r"|\b(?:standard|gold|reference|expected)\s+answer\b"
    r"|\b(?:correct|right|final)\s+answer\s+(?:provided|given|supplied)\b"
    r"|\bthe\s+(?:provided|given|supplied)\s+(?:correct\s+)?answer\b"
    r"|\b(?:as|like)\s+(?:stated|given|instructed|required)\s+(?:in|by)\s+the\s+(?:prompt|instructions?|task)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""  # one of REASONS when not ok
    detail: str = ""
    needs_judge: bool = False  # not decided by rule: a free-text answer that is not the gold text


def leak(response: str, question: str) -> str | None:
    """The words by which `response` lets on that it was given the answer, or None."""
    asked = " ".join(question.lower().split())
    for m in _LEAKS.finditer(response):
        said = " ".join(m.group(0).lower().split())
        if said not in asked:
            return m.group(0)
    return None


def verdict(response: str, gold: str, options: Mapping[str, str] | None, question: str,
            hinted: bool) -> Verdict:
    """Whether to keep a teacher's response to `question` whose gold answer is `gold`."""
    parsed = stages.parse(response)
    if not parsed.ok:
        return Verdict(False, NOT_FOUR_STAGE, "; ".join(str(p) for p in parsed.problems[:4]))
    if hinted and (said := leak(response, question)):
        return Verdict(False, LEAKED_HINT, f"says {said!r}")
    if answers.is_correct(response, gold, options or None):
        return Verdict(True)
    conclusion = parsed.stages["CONCLUSION"]
    detail = f"answered {_short(conclusion)!r}, the gold answer is {gold!r}"
    if answers.answer_kind(gold, options or None) == "text":
        return Verdict(False, WRONG_ANSWER, detail, needs_judge=True)
    return Verdict(False, WRONG_ANSWER, detail)


def _short(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


# ---------------------------------------------------------------------------------------------
# The LLM judge, for free-text answers

QUESTION_LABEL, REFERENCE_LABEL, CANDIDATE_LABEL = "Question:", "Reference answer:", "Candidate answer:"
JUDGE_TEMPLATE = f"""\
Two answers to the same question about an image follow. Decide whether the candidate answer \
means the same as the reference answer (the wording may differ; the meaning may not).

{QUESTION_LABEL} {{question}}
{REFERENCE_LABEL} {{reference}}
{CANDIDATE_LABEL} {{candidate}}

Reply with one word: yes if they mean the same, no if they do not."""


def judge_prompt(question: str, reference: str, candidate: str) -> str:
    one_line = " ".join  # each field on its one line, so that the labels stay unambiguous
    return JUDGE_TEMPLATE.format(question=one_line(question.split()), reference=one_line(reference.split()),
                                 candidate=one_line(candidate.split()))


def read_judgement(reply: str) -> bool | None:
    """True for a yes, False for a no, None for a reply that says neither (or both)."""
    said = answers.extract_yes_no(reply)
    return None if said is None else said == "Yes"
