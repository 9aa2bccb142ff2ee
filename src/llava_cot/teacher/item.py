"""Annotating one record: each human/gpt pair asked of the teacher, checked, retried with new seeds.

    annotator = Annotator(teacher, Template.load(None), judge=teacher, retries=2)
    outcome = await annotator.annotate(record, images=Path("runs/vqa"))
    outcome.accepted   # the record with its gpt turns in four stages, or None
    outcome.rejected   # {"id", "reason", "detail", "turn", "attempts"} when it was not kept

A record's pairs are annotated in order; the K-th is asked with the conversation before it
(the earlier questions, and the answers already annotated) as chat history, the image in the
first user turn. A pair whose every attempt is rejected rejects the whole record (a record is
kept or dropped whole, so that `train` never sees a conversation with a plain answer in it).
Teacher failures (`TeacherError`, `BudgetSpent`) propagate: the item is neither kept nor
rejected, and a rerun does it again.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llava_cot import answers, stages
from llava_cot.errors import LlavaCotError
from llava_cot.records import GPT, HUMAN, IMAGE_TOKEN, Record
from llava_cot.teacher import filters
from llava_cot.teacher.client import Teacher, TeacherError
from llava_cot.teacher.filters import Verdict
from llava_cot.teacher.prompt import Template, stage_text

JUDGE_TRIES = 3  # an unreadable verdict is asked again, at temperatures 0, 0.5, 1
_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])[.)]\s+(\S.*)$", re.MULTILINE)


@dataclass
class Outcome:
    accepted: dict[str, Any] | None = None
    rejected: dict[str, Any] | None = None


def options_in(question: str) -> dict[str, str]:
    """Options listed in a question's text ("A. cat" lines, from A on), as VLMEvalKit writes them."""
    found: dict[str, str] = {}
    for m in _OPTION_LINE.finditer(question):
        if m.group(1) == chr(ord("A") + len(found)):
            found[m.group(1)] = m.group(2).strip()
    return found if len(found) >= 2 else {}


def pairs(rec: Record) -> list[tuple[int, int]]:
    """(human index, gpt index) of each human turn directly followed by a gpt turn."""
    turns = rec.conversations
    return [(i, i + 1) for i in range(len(turns) - 1) if turns[i]["from"] == HUMAN and turns[i + 1]["from"] == GPT]


def golds(rec: Record) -> list[tuple[str, dict[str, str] | None]]:
    """Each pair's gold answer (the gpt turn; its CONCLUSION if it has stages already) and options
    (the record's "options" for a single pair, else "A. ..." lines in the question); ValueError
    when an answer cannot be checked against (a letter no option has, no words at all)."""
    found = pairs(rec)
    given = rec.extra.get("options")
    out = []
    for h, g in found:
        gold = stages.answer_text(rec.conversations[g]["value"])
        options = given if isinstance(given, dict) and given and len(found) == 1 else None
        options = options or options_in(rec.conversations[h]["value"]) or None
        try:
            answers.answer_kind(gold, options)
        except LlavaCotError as e:
            raise ValueError(str(e)) from None
        out.append((gold, options))
    return out


def image_url(rec: Record, images: Path) -> str | None:
    """The record's image as a data URL (the teacher gets the bytes: it need not see our disk)."""
    if rec.image is None:
        return None
    path = images / rec.image
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"image {rec.image!r} cannot be read under {images}: {e.strerror or e}") from None
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class Annotator:
    def __init__(self, teacher: Teacher, template: Template, judge: Teacher | None = None, retries: int = 2,
                 seed: int = 0, staged: bool = False):
        self.teacher, self.template, self.judge = teacher, template, judge
        self.retries, self.seed, self.staged = retries, seed, staged

    async def annotate(self, rec: Record, images: Path) -> Outcome:
        try:
            url, gold_answers = image_url(rec, images), golds(rec)
        except ValueError as e:
            return Outcome(rejected={"id": rec.id, "reason": filters.BAD_INPUT, "detail": str(e)})
        turns = [dict(t) for t in rec.conversations]
        for k, ((h, g), (gold, options)) in enumerate(zip(pairs(rec), gold_answers, strict=True)):
            question = turns[h]["value"].replace(IMAGE_TOKEN, "").strip()
            history = self._history(turns[:h], url)
            text, why = await self._pair(history, url if h == 0 else None, question, gold, options)
            if text is None:
                return Outcome(rejected={"id": rec.id, **why, "turn": k, "attempts": self.retries + 1})
            turns[g]["value"] = text
        done = Record(rec.id, turns, rec.image, rec.extra)
        return Outcome(accepted=done.to_json())

    @staticmethod
    def _history(turns: list[dict[str, str]], url: str | None) -> list[dict[str, Any]]:
        messages = []
        for t in turns:
            text = t["value"].replace(IMAGE_TOKEN, "").strip()
            role = "user" if t["from"] == HUMAN else "assistant"
            messages.append({"role": role, "content": _content(text, url if not messages else None)})
        return messages

    async def _pair(self, history: list[dict[str, Any]], url: str | None, question: str, gold: str,
                    options: Mapping[str, str] | None) -> tuple[str | None, dict[str, Any]]:
        """The accepted four-stage answer to one question, or None and why none was."""
        why: dict[str, Any] = {}
        for attempt in range(self.retries + 1):
            seed = self.seed + attempt
            if self.staged:
                text, refusal = await self._staged(history, url, question, gold, seed)
            else:
                prompt = self.template.render(question, gold)
                reply = await self.teacher.chat([*history, _user(prompt, url)], seed=seed)
                text, refusal = reply.text, reply.refusal
            if refusal:
                v = Verdict(False, filters.REFUSED, " ".join(refusal.split())[:200])
            else:
                v = filters.verdict(text, gold, options, question, hinted=self.template.hint)
            if v.needs_judge and self.judge is not None:
                v = await self._judged(question, gold, stages.parse(text).stages["CONCLUSION"])
            if v.ok:
                return stages.render(stages.parse(text).stages), {}
            why = {"reason": v.reason, "detail": v.detail}
        return None, why

    async def _staged(self, history: list[dict[str, Any]], url: str | None, question: str, gold: str,
                      seed: int) -> tuple[str, str | None]:
        """The four stages asked one request each, every request after the stages written so far."""
        done: dict[str, str] = {}
        for stage in stages.STAGES:
            prompt = self.template.render_stage(question, gold, done, stage)
            reply = await self.teacher.chat([*history, _user(prompt, url)], seed=seed, stop=[stages.close_tag(stage)])
            if reply.refusal:
                return "", reply.refusal
            text = stage_text(reply.text, stage)
            if text is None:
                break  # the format check reports the missing stage
            done[stage] = text
        return stages.render(done), None

    async def _judged(self, question: str, gold: str, said: str) -> Verdict:
        prompt = filters.judge_prompt(question, gold, said)
        for attempt in range(JUDGE_TRIES):
            reply = await self.judge.chat([_user(prompt, None)], seed=self.seed + attempt, temperature=0.5 * attempt)
            same = filters.read_judgement(reply.text)
            if same is not None:
                detail = f"the judge said {'yes' if same else 'no'} to {said[:80]!r} for the gold answer {gold!r}"
                return Verdict(True) if same else Verdict(False, filters.JUDGE_SAID_NO, detail)
        raise TeacherError(f"the judge's verdict could not be read ({reply.text[:80]!r}) in {JUDGE_TRIES} tries")


def _content(text: str, url: str | None) -> Any:
    if url is None:
        return text
    return [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}]


def _user(text: str, url: str | None) -> dict[str, Any]:
    return {"role": "user", "content": _content(text, url)}
