"""What a judge is asked: the per-stage criteria and the two question forms, as data.

The same text is used to train a model as a judge (`llava-cot data synth --task judge`) and to
ask it at search time (`llava_cot.judges`), so the two cannot drift apart. A judge prompt is an
ordinary user turn with the image; the verdict is the model's next word, read from its
log-probabilities over `PAIR_CHOICES` or `VERDICT_CHOICES` rather than parsed from generated text.

    critique.pairwise("How many cubes?", {"SUMMARY": "..."}, "CAPTION", text_a, text_b)
    critique.pointwise("How many cubes?", {"SUMMARY": "..."}, "CAPTION", text)
"""

from __future__ import annotations

from collections.abc import Mapping

from llava_cot import stages

# What makes a stage good: the paper's judge compares candidates on the stage's own purpose.
CRITERIA: dict[str, str] = {
    "SUMMARY": "a plan that fits the question and the steps needed to answer it",
    "CAPTION": "a faithful description of the image: the right objects, positions, colours, shapes and sizes",
    "REASONING": "correct steps: every object checked against the question, the tally and the arithmetic right",
    "CONCLUSION": "the right final answer, the one the reasoning reaches",
}
# A whole response (best-of-N) is judged on everything at once.
WHOLE = "RESPONSE"
CRITERIA[WHOLE] = "a correct description of the image, correct reasoning and the right final answer"

PAIR_CHOICES = ("1", "2")
VERDICT_CHOICES = ("yes", "no")
# The verdicts of judge and verifier training records, by their "task" (llava_cot.synth.critiques).
VERDICTS: dict[str, tuple[str, ...]] = {"judge": PAIR_CHOICES, "verify": VERDICT_CHOICES}


def _context(question: str, previous: Mapping[str, str]) -> str:
    lines = [f"Question: {question}"]
    if previous:
        lines.append("Answer so far:\n" + stages.render(previous, sep="\n"))
    return "\n".join(lines)


def _name(stage: str) -> str:
    return "whole response" if stage == WHOLE else f"{stage} stage"


def pairwise(question: str, previous: Mapping[str, str], stage: str, first: str, second: str) -> str:
    """Ask which of two candidates for `stage` (or WHOLE) is better; the answer is "1" or "2"."""
    return (f"{_context(question, previous)}\n"
            f"Two candidates for the {_name(stage)}, judged on {CRITERIA[stage]}.\n"
            f"Candidate 1: {first.strip()}\n"
            f"Candidate 2: {second.strip()}\n"
            "Which candidate is better? Answer 1 or 2.")


def pointwise(question: str, previous: Mapping[str, str], stage: str, text: str) -> str:
    """Ask whether one candidate for `stage` (or WHOLE) is correct; the answer is "yes" or "no"."""
    return (f"{_context(question, previous)}\n"
            f"Candidate for the {_name(stage)}: {text.strip()}\n"
            f"Is it correct, judged on {CRITERIA[stage]}? Answer yes or no.")
