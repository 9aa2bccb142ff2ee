"""VLMEvalKit's rule-based answer matching, reimplemented so that scores can be compared with it.

    >>> vlmeval_match("Answer: C", {"A": "cat", "B": "dog", "C": "cow"})
    'C'
    >>> vlmeval_match("a cow, I think", {"A": "cat", "B": "dog", "C": "cow"}), vlmeval_yes_no("No, it is not.")
    ('C', 'No')

`vlmeval_match` behaves as VLMEvalKit's `can_infer` (its `can_infer_option`, then
`can_infer_text`), `vlmeval_yes_no` as its `YOrN_Extraction`, both as of VLMEvalKit commit
e8e78f05 (August 2026). Our own code, written from reading theirs; every rule is stated below
because the quirks are the point: they decide which responses VLMEvalKit scores as right.

Multiple choice (`vlmeval_option`, then `vlmeval_text`):

1. A text containing "Failed to obtain answer via API" is no answer; one containing a known
   refusal sentence ("Cannot determine the answer", ...) is "Z".
2. The characters `.()[],:;!*#{}` become spaces and the text is split on whitespace. If exactly
   one option letter (upper case, as its own token) occurs, it is the answer when its first
   occurrence is among the last four tokens; if no letter occurs but a token "Z" does, "Z".
3. Otherwise a case-insensitive "(correct) answer is X" (X in A-D, optionally in `**`) names X
   (added to VLMEvalKit in June 2026: "the answer is a cat" reads as A).
4. Otherwise, unless the text is longer than twice the options' texts together, the one option
   whose text (lower-cased) is a substring of the lower-cased text. Two or more: no answer.

VLMEvalKit's VERBOSE mode (which also refuses any text of more than three tokens containing a
token "A") is not reproduced: it is off by default there. "Z" means "none of the options";
callers score it as wrong, like no answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Sentences VLMEvalKit reads as a refusal, answered "Z" (none of the options).
REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
API_FAILURE = "Failed to obtain answer via API"
_SPACED = str.maketrans(dict.fromkeys(".()[],:;!*#{}", " "))
_LAST_TOKENS = 4  # a lone letter counts only among the last four tokens
_ANSWER_IS = re.compile(r"(?:correct\s+)?answer\s+is\s+\**([ABCD])\**", re.IGNORECASE)


def _options(options: Mapping[str, Any]) -> dict[str, str]:
    """Letter -> text, missing options (None, NaN) dropped, as VLMEvalKit's build_choices does."""
    return {str(k): str(v) for k, v in options.items() if v is not None and v == v}


def vlmeval_option(text: str, letters: Any) -> str | None:
    """The option letter (or "Z") VLMEvalKit's `can_infer_option` reads from text, else None."""
    letters = list(letters)
    if API_FAILURE in text:
        return None
    if any(refusal in text for refusal in REFUSALS):
        return "Z"
    tokens = text.translate(_SPACED).split()
    named = [c for c in letters if c in tokens]
    if len(named) == 1 and tokens.index(named[0]) >= len(tokens) - _LAST_TOKENS:
        return named[0]
    if not named and "Z" in tokens:
        return "Z"
    m = _ANSWER_IS.search(text)
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    return None


def vlmeval_text(text: str, options: Mapping[str, Any]) -> str | None:
    """The option VLMEvalKit's `can_infer_text` finds by its text: the only one whose lower-cased
    text occurs in the lower-cased response, which must not be over twice the options' length."""
    texts = _options(options)
    lowered = text.lower()
    if len(lowered) > 2 * sum(len(v) for v in texts.values()):
        return None
    found = [k for k, v in texts.items() if v.lower() in lowered]
    return found[0] if len(found) == 1 else None


def vlmeval_match(text: str, options: Mapping[str, Any]) -> str | None:
    """VLMEvalKit's `can_infer`: an option letter, "Z" (a refusal), or None (no answer).
    `options` maps letters to option texts; None/NaN texts are dropped as missing options."""
    texts = _options(options)
    return vlmeval_option(str(text), texts) or vlmeval_text(str(text), texts)


# ---------------------------------------------------------------------------------------------
# Yes / no

# VLMEvalKit's `process_punctuation` (from the VQA evaluation code): each of these characters is
# deleted where it touches a space somewhere in the text (or the text has a digit-comma-digit),
# else replaced by a space; then periods not next to a digit are deleted.
_PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
_DIGIT_COMMA = re.compile(r"\d,\d")
_LONE_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")
# VLMEvalKit passes re.UNICODE where `count` goes, so at most 32 periods are deleted.
_PERIODS_DELETED = 32


def vlmeval_punctuation(text: str) -> str:
    out = text
    digit_comma = _DIGIT_COMMA.search(text) is not None
    for p in _PUNCT:
        touches_space = p + " " in text or " " + p in text
        out = out.replace(p, "" if touches_space or digit_comma else " ")
    return _LONE_PERIOD.sub("", out, count=_PERIODS_DELETED)


def vlmeval_yes_no(text: str) -> str | None:
    """VLMEvalKit's `YOrN_Extraction`: "Yes" if the word yes occurs and no does not, "No" the
    other way round, else None (VLMEvalKit's "Unknown")."""
    words = vlmeval_punctuation(str(text).lower()).split()
    if ("yes" in words) != ("no" in words):
        return "Yes" if "yes" in words else "No"
    return None
