"""What the demo's chat shows of one answer, as Gradio message dicts (no Gradio needed here).

Each stage is a collapsible thought box (`metadata.title`, Gradio's ChatMessage layout) that
fills as the stage streams, then a box with what the search weighed (each step's candidates, the
judge's scores or pairwise wins, the chosen one marked, the retraces), then the answer, large,
with its cost under it:

    view = Answer()
    view.feed("<SUMMARY> I will count")      # streamed text, any chunking
    view.messages()                          # the boxes so far
    view.final(result)                       # the boxes for the `ask --json` object `result`
"""

from __future__ import annotations

import re
import time
from typing import Any

from llava_cot import critique, stages

PREVIEW = 240  # characters of a candidate shown in the trace
_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>()#+!|~$])")


def title(stage: str) -> str:
    """A stage's box title: its tag name, as a word ("Summary")."""
    return stage.capitalize()


def escape(text: str) -> str:
    """Model text shown as itself, not as Markdown or HTML."""
    return _MARKDOWN.sub(r"\\\1", text)


def box(stage: str, text: str, done: bool, seconds: float | None = None) -> dict[str, Any]:
    """A stage's box: a spinner while it streams; once done, left open (Gradio folds a box whose
    status is "done", and a finished stage is what the user came to read)."""
    meta: dict[str, Any] = {"title": title(stage)}
    if not done:
        meta["status"] = "pending"
    if seconds is not None:
        meta["duration"] = round(seconds, 2)
    return {"role": "assistant", "content": escape(text.strip()) or "…", "metadata": meta}


def note(text: str) -> dict[str, Any]:
    """A plain message: an error, or what is happening."""
    return {"role": "assistant", "content": text}


def error(problem: object) -> dict[str, Any]:
    """What went wrong, as the chat shows it (the conversation is left as it was)."""
    return note(f"**Error:** {escape(str(problem))}")


class Answer:
    """The boxes of one answer while it streams: a StreamParser's events gathered per stage."""

    def __init__(self) -> None:
        self.parser = stages.StreamParser()
        self.texts: dict[str, str] = {}  # stage -> its text so far, in order of appearance
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}  # stage -> how long it took, once it has ended
        self.outside = ""  # text outside any stage (a model that does not write the tags)

    def feed(self, piece: str) -> None:
        self._apply(self.parser.feed(piece))

    def close(self) -> None:
        self._apply(self.parser.close())

    def _apply(self, events: list[stages.Event]) -> None:
        for e in events:
            if isinstance(e, stages.StageStart):
                self.texts.setdefault(e.stage, "")
                self.started.setdefault(e.stage, time.perf_counter())
            elif isinstance(e, stages.StageText):
                if e.stage is None:
                    self.outside += e.text
                elif e.stage not in self.seconds:  # a repeated stage: the first one is shown
                    self.texts[e.stage] += e.text
            elif isinstance(e, stages.StageEnd) and e.stage not in self.seconds:
                self.seconds[e.stage] = time.perf_counter() - self.started[e.stage]

    def messages(self) -> list[dict[str, Any]]:
        shown = [box(s, t, s in self.seconds, self.seconds.get(s)) for s, t in self.texts.items()]
        if not self.texts and self.outside.strip():
            shown.append(note(escape(self.outside.strip())))
        return shown

    def final(self, result: dict[str, Any]) -> list[dict[str, Any]]:
        """The answer's boxes once it is over, from the `ask --json` object (its parse is the
        truth: a stream cut at the token budget still ends in a box marked done)."""
        parsed = stages.parse(result["text"]).stages
        shown = [box(s, parsed[s], True, self.seconds.get(s)) for s in stages.STAGES if s in parsed]
        if result.get("trace"):
            shown.append(trace_box(result["search"]["name"], result["trace"]))
        body = f"## Answer: {escape(result['answer'])}\n\n*{cost_line(result['search'])}*"
        if not result.get("format_ok", True):
            body += "\n\n(the response is not in the four-stage format)"
        return [*shown, note(body)]


def cost_line(cost: dict[str, Any]) -> str:
    """What the answer cost, in one line: tokens generated, judge calls, seconds."""
    parts = [cost["name"], f"{cost['tokens_generated']} tokens generated", f"{cost['judge_calls']} judge calls",
             f"{cost['seconds']:.2f} s"]
    if cost.get("retraces"):
        parts.append(f"{cost['retraces']} retraces")
    if cost.get("ties"):
        parts.append(f"{cost['ties']} ties decided by a coin")
    return " · ".join(parts)


def _weight(candidate: dict[str, Any]) -> str:
    for key, label in (("score", "score"), ("wins", "wins"), ("votes", "votes")):
        if key in candidate:
            return f"{label} {candidate[key]}"
    return "only candidate"


def _shown(text: str, stage: str) -> str:
    """What of a candidate the trace shows: its stage's text, or a whole answer's conclusion
    first (the rest after it)."""
    if stage == critique.WHOLE:
        body = f"answer {stages.answer_text(text)!r}: {stages.untag(text)}"
    else:
        body = stages.parse(text).stages.get(stage) or stages.untag(text)
    body = " ".join(body.split())
    return body if len(body) <= PREVIEW else body[:PREVIEW] + "…"


def trace_lines(step: dict[str, Any]) -> list[str]:
    """One step of a trace as Markdown lines: a heading, then each candidate, the chosen one
    first-marked, and how the step ended."""
    stage = step["stage"]
    head = "the whole answer" if stage == critique.WHOLE else title(stage)
    if "step" in step:
        head += f", sentence {step['step'] + 1}"
    lines = [f"**{head}**: {len(step['candidates'])} candidate{'s' * (len(step['candidates']) != 1)}"]
    for k, c in enumerate(step["candidates"], 1):
        mark = "✓ **chosen**" if c["chosen"] else ""
        lines.append(f"- #{k} {mark} ({_weight(c)}) {escape(_shown(c['text'], stage))}")
    for m in step.get("matches", ()):  # the pairwise knockout's verdicts; candidates numbered from 1
        a, b = (i + 1 for i in m["pair"])
        odds = "certain" if m["log_odds"] is None else f"log-odds {m['log_odds']:+.2f} for #{a}"
        lines.append(f"- #{a} against #{b}: #{m['winner'] + 1} won ({'a tie, decided by a coin' if m['tie'] else odds})")
    if step.get("retrace"):
        lines.append("- ↩ **retraced**: the best score was under the threshold; the search went back")
    elif not any(c["chosen"] for c in step["candidates"]):
        lines.append("- ✗ rejected: the best score was under the threshold; sampled afresh")
    return lines


def trace_box(search: str, trace: list[dict[str, Any]]) -> dict[str, Any]:
    """The collapsible box of what a search weighed."""
    n = sum(len(s["candidates"]) for s in trace)
    retraces = sum(bool(s.get("retrace")) for s in trace)
    summary = f"What {search} weighed: {len(trace)} steps, {n} candidates"
    if retraces:
        summary += f", {retraces} retraces"
    body = "\n\n".join("\n".join(trace_lines(s)) for s in trace)
    return {"role": "assistant", "content": body, "metadata": {"title": summary}}  # open, as the stages
