"""The teacher prompt: a template a user can replace, filled in for one question.

As in the paper, the teacher is told the four stages, what goes in each, and (unless --no-hint)
the gold answer, with the instruction never to say it was given. A template is plain text with
these placeholders (each replaced where it appears; other braces are left alone):

    {question}   the question, as the human turn asks it (required)
    {format}     the four tagged stages, each with a line saying what goes in it
    {hint}       the sentence giving the gold answer; empty with --no-hint
    {answer}     the gold answer alone (refused with --no-hint: it would give the answer away)

Stage by stage (--staged), each request is the same prompt followed by the stages written so far
and the name of the one stage to write next, with that stage's closing tag as the stop string.

    python -m llava_cot.teacher.prompt        # print the default template, to copy and edit
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from llava_cot import stages
from llava_cot.errors import LlavaCotError

# What each stage holds, as the teacher is told (the paper's descriptions, in our words).
GUIDE: dict[str, str] = {
    "SUMMARY": "Say briefly how you will solve the problem: the steps you will take to reach the answer.",
    "CAPTION": "Describe the image, above all the parts of it that matter for the question.",
    "REASONING": "Reason step by step, from what the image shows to the answer.",
    "CONCLUSION": "State the final answer, directly and briefly. For a multiple-choice question give "
                  "the option's letter only.",
}

DEFAULT_TEMPLATE = """\
I will give you an image and a question about it. Answer in exactly four stages, in this order, \
each inside its own pair of tags, and write nothing outside them:

{format}

Follow this format exactly, and close every stage, the last one too.{hint}

Question: {question}"""

HINT = ("\n\nThe correct answer is: {answer}\nYour conclusion must give this answer. Reach it from "
        "the image as if you had found it yourself: never mention that you were told the answer, "
        "or any hint.")

STAGED = """

The stages written so far:

{done}

Now write the next stage, {stage}, and nothing else."""

STAGED_FIRST = """

Write the first stage only, {stage}, and nothing else."""


def format_block() -> str:
    """The four stages, tagged, each holding what the teacher should write in it."""
    return stages.render({s: GUIDE[s] for s in stages.STAGES}, sep="\n")


@dataclass(frozen=True)
class Template:
    text: str
    hint: bool = True

    @classmethod
    def load(cls, path: str | None, hint: bool = True) -> Template:
        """The template in `path` (the default one for None), checked for its placeholders."""
        if path is None:
            return cls(DEFAULT_TEMPLATE, hint)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise LlavaCotError(f"cannot read the prompt template {path}: {e.strerror or e}") from None
        if "{question}" not in text:
            raise LlavaCotError(f"the prompt template {path} has no {{question}} placeholder")
        if not hint and "{answer}" in text:
            raise LlavaCotError(f"the prompt template {path} uses {{answer}}, which --no-hint withholds; "
                                "remove it or drop --no-hint")
        return cls(text, hint)

    def render(self, question: str, answer: str) -> str:
        """The prompt for one question with gold answer `answer`."""
        values = {
            "{format}": format_block(),
            "{hint}": HINT.replace("{answer}", answer) if self.hint else "",
            "{answer}": answer if self.hint else "",
            "{question}": question,  # last: a question may itself contain "{answer}"
        }
        text = self.text
        for key, value in values.items():
            text = text.replace(key, value)
        return text

    def render_stage(self, question: str, answer: str, done: Mapping[str, str], stage: str) -> str:
        """The prompt asking for `stage` only, after the stages in `done`."""
        base = self.render(question, answer)
        if not done:
            return base + STAGED_FIRST.replace("{stage}", stage)
        return base + STAGED.replace("{done}", stages.render(done)).replace("{stage}", stage)


def stage_text(reply: str, stage: str) -> str | None:
    """The text of `stage` in a reply to a stage request: inside its tags when the reply has them
    (the closing one is usually cut off as the stop string), else the whole reply when it holds no
    tag at all. None when the reply wrote some other stage instead."""
    parsed = stages.parse(reply)
    if stage in parsed.stages:
        return parsed.stages[stage] or None
    if parsed.stages:
        return None
    return reply.strip() or None


if __name__ == "__main__":
    print(DEFAULT_TEMPLATE.replace("{format}", format_block()))
