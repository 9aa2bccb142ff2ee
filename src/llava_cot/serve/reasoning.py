"""A response's four stages as reasoning and content, the way reasoning models return them.

The first three stages (SUMMARY, CAPTION, REASONING) are the reasoning, each stage's text without
its tags, stages separated by a blank line; the CONCLUSION is the content. A response that does
not open with a stage tag (a checkpoint not trained on the format, a plain chat answer) is all
content, exactly as generated: nothing is ever dropped. Text outside the stages of a tagged
response is content too.

One `Splitter` serves both ways of answering: streamed text is fed as it is decoded and each
piece goes out as a delta (reasoning first, with its stage, then content); a whole response is
the same pieces joined, so the streamed and the whole answer always agree.

    sp = Splitter()
    pieces = sp.feed("<SUMMARY> plan </SUMMARY><CONCLUSION> 3") + sp.close()
    split(text).content, split(text).reasoning, split(text).stages
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llava_cot import stages

ANSWER = stages.STAGES[-1]  # the stage that is the content
SEPARATOR = "\n\n"  # between the reasoning stages, as LLaVA-CoT-100k lays them out


@dataclass(frozen=True)
class Piece:
    kind: str  # "reasoning" or "content"
    text: str
    stage: str | None = None  # the stage the text belongs to (None: plain text)


@dataclass
class Split:
    content: str | None
    reasoning: str | None
    stages: dict[str, str] | None  # each stage's text by name; None when not in the format


@dataclass
class Splitter:
    """Generated text in, `Piece`s out (see the module docstring)."""

    mode: str | None = None  # None until the first non-blank text decides: "stages" or "plain"
    _parser: stages.StreamParser = field(default_factory=stages.StreamParser)
    _raw: str = ""  # text fed before the mode is decided
    _fresh: bool = True  # at the start of the current stage's text
    _held: str = ""  # trailing whitespace of a stage, kept until more of its text follows
    _reasoned: bool = False  # a reasoning piece went out already

    def feed(self, text: str) -> list[Piece]:
        if self.mode == "plain":
            return [Piece("content", text)] if text else []
        if self.mode is None:
            self._raw += text
        return self._events(self._parser.feed(text))

    def close(self) -> list[Piece]:
        if self.mode == "plain":
            return []
        pieces = self._events(self._parser.close())
        if self.mode is None:  # nothing but whitespace (or nothing at all)
            self.mode = "plain"
            pieces = [Piece("content", self._raw)] if self._raw else []
        return pieces

    def _events(self, events: list[stages.Event]) -> list[Piece]:
        pieces: list[Piece] = []
        for e in events:
            if self.mode is None:
                if isinstance(e, stages.StageStart):
                    self.mode = "stages"
                elif isinstance(e, stages.StageText) and e.text.strip():
                    # not the four-stage format: everything, as generated, is content
                    self.mode = "plain"
                    return [Piece("content", self._raw)]
                else:
                    continue
            if isinstance(e, stages.StageStart):
                self._fresh, self._held = True, ""
            elif isinstance(e, stages.StageEnd):
                self._held = ""
            elif e.stage is None:
                if e.text.strip():  # outside every stage: kept, as content
                    pieces.append(Piece("content", e.text.strip()))
            else:
                pieces += self._stage_text(e.stage, e.text)
        return pieces

    def _stage_text(self, stage: str, text: str) -> list[Piece]:
        # a stage's text without the spaces around it, as `stages.parse` strips them
        text = self._held + (text.lstrip() if self._fresh else text)
        body = text.rstrip()
        self._held = text[len(body):]
        if not body:
            return []
        kind = "content" if stage == ANSWER else "reasoning"
        if kind == "reasoning" and self._fresh and self._reasoned:
            body = SEPARATOR + body
        self._fresh = False
        self._reasoned |= kind == "reasoning"
        return [Piece(kind, body, stage)]


def join(pieces: list[Piece]) -> Split:
    """Pieces put back together into a whole answer's fields."""
    content = "".join(p.text for p in pieces if p.kind == "content")
    reasoning = "".join(p.text for p in pieces if p.kind == "reasoning")
    named: dict[str, str] = {}
    for p in pieces:
        if p.stage is not None:
            named[p.stage] = named.get(p.stage, "") + p.text
    found = {s: named[s].strip() for s in stages.STAGES if s in named}
    return Split(content or None, reasoning or None, found or None)


def split(text: str) -> Split:
    """A whole response's content, reasoning and stages."""
    sp = Splitter()
    return join(sp.feed(text) + sp.close())
