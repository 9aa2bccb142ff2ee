"""The four-stage LLaVA-CoT response format, and the only module that spells its tags.

A response reasons in four tagged stages, in this order:

    <SUMMARY> the plan </SUMMARY>
    <CAPTION> what the image shows that matters </CAPTION>
    <REASONING> step-by-step inference </REASONING>
    <CONCLUSION> the answer </CONCLUSION>

`parse` reads a whole response into its stages and reports whatever is odd about it as data
(`Problem`s) rather than raising: model output is often malformed, and callers (a data checker,
a search, an evaluator) each decide what to do about it. `render` is its inverse on well-formed
input. `StreamParser` does the same work incrementally for streamed text, where a tag may be
split across chunks.

    >>> p = parse("<SUMMARY> plan </SUMMARY><CAPTION> two cubes </CAPTION>"
    ...           "<REASONING> 1 + 1 = 2 </REASONING><CONCLUSION> 2 </CONCLUSION>")
    >>> p.ok, p.stages["CONCLUSION"]
    (True, '2')
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

STAGES: tuple[str, ...] = ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION")
_ORDER = {name: i for i, name in enumerate(STAGES)}

# Tags are matched case-insensitively and tolerate spaces inside the brackets ("< /summary >"),
# because fine-tuned models and teachers both produce such variants.
_TAG = re.compile(r"<\s*(/?)\s*(" + "|".join(STAGES) + r")\s*>", re.IGNORECASE)
_PARAGRAPH = re.compile(r"\n[ \t]*\n")  # a blank line
# The longest text that can still grow into a tag; used to bound what a stream holds back.
_MAX_PARTIAL_TAG = 32


def open_tag(stage: str) -> str:
    return f"<{stage}>"


def close_tag(stage: str) -> str:
    """The closing tag of a stage: also the stop string that ends that stage in generation."""
    return f"</{stage}>"


def next_stage(stage: str | None) -> str | None:
    """The stage after `stage` (the first one for None), or None after the last."""
    i = -1 if stage is None else _ORDER[stage]
    return STAGES[i + 1] if i + 1 < len(STAGES) else None


# ---------------------------------------------------------------------------------------------
# Parsing a whole response


@dataclass(frozen=True)
class Problem:
    """Something wrong with a response's structure.

    kind is one of: "missing" (a stage never appears), "duplicate" (a stage appears again; the
    first is kept), "out_of_order" (a stage appears after one that should follow it), "unclosed"
    (a stage is not closed before the next one opens), "unopened" (a closing tag with no open
    stage), "outside_text" (non-blank text outside every stage).
    """

    kind: str
    stage: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        where = f" {self.stage}" if self.stage else ""
        return f"{self.kind}{where}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class Parsed:
    """The stages found in a response (text stripped, first occurrence kept, in order of
    appearance) and the problems seen on the way. `complete` is False when the last stage is
    still open at the end of the text (tolerated: streamed or stop-string-truncated output)."""

    stages: dict[str, str]
    problems: tuple[Problem, ...] = ()
    complete: bool = True

    @property
    def ok(self) -> bool:
        """All four stages, once each, in order, nothing outside them."""
        return not self.problems

    def get(self, stage: str, default: str = "") -> str:
        return self.stages.get(stage, default)


def _scan(text: str) -> Iterator[tuple[str, str | None, str]]:
    """Split text into ("text", None, chunk) and ("open"|"close", STAGE, raw_tag) pieces."""
    pos = 0
    for m in _TAG.finditer(text):
        if m.start() > pos:
            yield "text", None, text[pos : m.start()]
        yield ("close" if m.group(1) else "open"), m.group(2).upper(), m.group(0)
        pos = m.end()
    if pos < len(text):
        yield "text", None, text[pos:]


def parse(text: str) -> Parsed:
    """Parse a response into its stages. Never raises on odd input; see `Problem`."""
    stages: dict[str, str] = {}
    problems: list[Problem] = []
    current: str | None = None  # the stage whose text we are collecting
    buf: list[str] = []
    last_index = -1  # order index of the last stage opened, for the out-of-order check

    def finish(stage: str) -> None:
        if stage in stages:
            problems.append(Problem("duplicate", stage, "later occurrence ignored"))
        else:
            stages[stage] = "".join(buf).strip()
        buf.clear()

    for kind, stage, chunk in _scan(text):
        if kind == "text":
            if current is not None:
                buf.append(chunk)
            elif chunk.strip():
                problems.append(Problem("outside_text", None, _preview(chunk)))
        elif kind == "open":
            if current is not None:
                problems.append(Problem("unclosed", current, f"closed implicitly by <{stage}>"))
                finish(current)
            if _ORDER[stage] < last_index:
                problems.append(Problem("out_of_order", stage, f"after {STAGES[last_index]}"))
            last_index = max(last_index, _ORDER[stage])
            current = stage
        else:  # close
            if current == stage:
                finish(stage)
                current = None
            else:
                problems.append(Problem("unopened", stage, "closing tag without a matching opening tag"))
    complete = current is None
    if current is not None:
        finish(current)  # a missing closing tag on the last stage is tolerated
    for stage in STAGES:
        if stage not in stages:
            problems.append(Problem("missing", stage))
    return Parsed(stages, tuple(problems), complete)


def _preview(s: str, n: int = 40) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Rendering


def render_stage(stage: str, text: str) -> str:
    return f"{open_tag(stage)} {text} {close_tag(stage)}"


def render(stages: Mapping[str, str], sep: str = "\n\n") -> str:
    """Stages back to text, in the order given, in the layout of LLaVA-CoT-100k."""
    return sep.join(render_stage(stage, text) for stage, text in stages.items())


def untag(text: str, sep: str = "\n\n") -> str:
    """The same response without its tags (the paper's Table 2 'no tags' ablation)."""
    p = parse(text)
    return sep.join(t for t in p.stages.values() if t) if p.stages else text.strip()


def last_paragraph(text: str) -> str:
    """The response's last paragraph (paragraphs are separated by blank lines): where a response
    trained without tags (the Table 2 'no tags' ablation, `untag`) states its conclusion."""
    paragraphs = [p for p in _PARAGRAPH.split(text) if p.strip()]
    return paragraphs[-1].strip() if paragraphs else text.strip()


def answer_text(text: str) -> str:
    """Where to look for the final answer: the CONCLUSION if there is one, else the whole
    text with any stage tags removed."""
    conclusion = parse(text).stages.get("CONCLUSION")
    if conclusion:
        return conclusion
    return _TAG.sub(" ", text).strip()


# ---------------------------------------------------------------------------------------------
# Streaming


@dataclass(frozen=True)
class StageStart:
    stage: str


@dataclass(frozen=True)
class StageText:
    stage: str | None  # None: text outside any stage
    text: str


@dataclass(frozen=True)
class StageEnd:
    stage: str
    closed: bool = True  # False when ended by the next tag or the end of the stream


Event = StageStart | StageText | StageEnd


def _could_become_tag(tail: str) -> bool:
    """True if `tail` (starting with '<') is a prefix of some stage tag."""
    m = re.fullmatch(r"<\s*/?\s*([A-Za-z]*)(\s*)", tail)
    if not m:
        return False
    word, space = m.group(1).upper(), m.group(2)
    if space:  # the name is complete; only '>' may follow
        return word in _ORDER
    return any(s.startswith(word) for s in STAGES)


@dataclass
class StreamParser:
    """Incremental parser: feed text chunks of any size, get stage events as soon as they are
    certain. Only a possible partial tag at the end of the buffer is held back, so the work per
    chunk is proportional to the chunk, not to the text so far.

        sp = StreamParser()
        for chunk in chunks:
            for event in sp.feed(chunk): ...
        for event in sp.close(): ...
    """

    current: str | None = None
    _pending: str = field(default="", repr=False)

    def feed(self, chunk: str) -> list[Event]:
        text = self._pending + chunk
        self._pending = ""
        events: list[Event] = []
        pos = 0
        for m in _TAG.finditer(text):
            self._emit_text(text[pos : m.start()], events)
            self._on_tag(bool(m.group(1)), m.group(2).upper(), events)
            pos = m.end()
        rest = text[pos:]
        cut = rest.rfind("<")
        if cut >= 0 and len(rest) - cut <= _MAX_PARTIAL_TAG and _could_become_tag(rest[cut:]):
            self._pending = rest[cut:]
            rest = rest[:cut]
        self._emit_text(rest, events)
        return events

    def close(self) -> list[Event]:
        """End of stream: flush held-back text and end an open stage."""
        events: list[Event] = []
        self._emit_text(self._pending, events)
        self._pending = ""
        if self.current is not None:
            events.append(StageEnd(self.current, closed=False))
            self.current = None
        return events

    def _emit_text(self, text: str, events: list[Event]) -> None:
        if text:
            events.append(StageText(self.current, text))

    def _on_tag(self, is_close: bool, stage: str, events: list[Event]) -> None:
        if not is_close:
            if self.current is not None:
                events.append(StageEnd(self.current, closed=False))
            events.append(StageStart(stage))
            self.current = stage
        elif self.current == stage:
            events.append(StageEnd(stage))
            self.current = None
        # a stray closing tag is dropped here; `parse` reports it as "unopened"


def collect(events: list[Event]) -> dict[str, str]:
    """Stage texts (stripped, first occurrence kept) from a list of stream events."""
    texts: dict[str, list[str]] = {}
    done: set[str] = set()
    for e in events:
        if isinstance(e, StageStart) and e.stage not in done:
            texts[e.stage] = []
        elif isinstance(e, StageText) and e.stage is not None and e.stage not in done:
            texts[e.stage].append(e.text)
        elif isinstance(e, StageEnd):
            done.add(e.stage)
    return {s: "".join(t).strip() for s, t in texts.items()}
