"""Reading the final answer out of a model response, and checking it against a gold answer.

    >>> from llava_cot import answers
    >>> answers.extract_choice("Answer: (B) 5 MPa", {"A": "3 MPa", "B": "5 MPa"})
    'B'
    >>> answers.extract_number("There are 3 objects left."), answers.extract_yes_no("**No**")
    (3.0, 'No')

Every extractor reads the CONCLUSION when there is one (else the untagged text) and returns None
rather than guess when it names two different answers. Pure `re`, no heavy imports. The forms
handled, the rules, and how they compare with VLMEvalKit and lmms-eval: docs/answers.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping

from llava_cot import stages
from llava_cot.errors import LlavaCotError

Options = Mapping[str, str] | Iterable[str]
Gold = str | int | float | bool
Rule = Callable[[str, frozenset[str], dict[str, str]], set[str]]  # text, letters, texts -> letters named
REL_TOL = 1e-6  # numbers are equal within this relative tolerance, so "3" == "3.0"
ABS_TOL = 1e-9  # ... and within this absolute one, for a gold answer of 0

# ---------------------------------------------------------------------------------------------
# Shared clean-up
_LATEX_FRAC = re.compile(r"\\d?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_WRAP = re.compile(r"\\(?:boxed|text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
# Markdown emphasis and LaTeX math delimiters carry no answer: "**B**" and "$\boxed{B}$" mean "B".
_MARKUP = re.compile(r"[*`#$]|\\[()\[\]]")
# "The answer is", "Answer:", "the correct option is", "answer would be option" ...
_ANSWER_CUE = re.compile(
    r"\b(?:answer|(?:correct|right|best)\s+(?:option|choice))\b"
    r"\s*(?:is|would\s+be|should\s+be|must\s+be|will\s+be|=|:|-|–)?\s*:?\s*"
    r"(?:(?:option|choice)\b\s*)?",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?;\n](?:\s|$)")


def _target(response: str) -> str:
    """The text an answer is read from: the CONCLUSION, else the untagged response; markup removed."""
    text = _LATEX_FRAC.sub(r"\1/\2", stages.answer_text(response))
    for _ in range(2):  # twice, for one level of nesting: \boxed{\text{B}}
        text = _LATEX_WRAP.sub(r"\1", text)
    return _MARKUP.sub(" ", text)


def _answer_spans(text: str) -> list[str]:
    """Where a free-text answer may be: the sentence after the last answer cue, then all of it."""
    cues = list(_ANSWER_CUE.finditer(text))
    if not cues:
        return [text]
    tail = text[cues[-1].end() :]
    end = _SENTENCE_END.search(tail)
    return [tail[: end.start()] if end else tail, text]


# Punctuation goes, except a point or comma between digits ("3.5", "1,234" keep theirs).
_PUNCT = re.compile(r"(?<!\d)[^\w\s]|[^\w\s](?!\d)")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def normalize_text(text: str) -> str:
    """Lower-case, punctuation and the articles a/an/the removed, whitespace collapsed."""
    return " ".join(_ARTICLES.sub(" ", _PUNCT.sub(" ", text.lower())).split())


# ---------------------------------------------------------------------------------------------
# Multiple choice

# One letter: bracketed ("(b)", "[B]") in either case, or bare and not part of a word or name
# ("B", "B.", "B)" but not "Bob", "B's", "A-frame", "x(s)").
_LETTER = re.compile(r"(?<!\w)[(\[]\s*([A-Za-z])\s*[)\]]|(?<![\w'’-])([A-Za-z])(?![\w'’]|-\w)")
_LIST_SEP = re.compile(r"\s*(?:,\s*(?:or\b|and\b)?|/|&|\bor\b|\band\b)\s*", re.IGNORECASE)
_LEAD = re.compile(r"\s*(?:[(\[]\s*([A-Za-z])\s*[)\]]|([A-Za-z])(?:\s*$|[.:)\]](?!\w)|\s+[-–—]\s))")
_LOWER_END = re.compile(r"\s*(?:$|[.,;:!?)\]](?!\w))")  # nothing word-like follows "b" in "is b."
_NEXT_WORD = re.compile(r"\s+([A-Za-z]+)")
_NEGATED = re.compile(r"\bnot\s+(?:(?:option|choice)\s*)?[(\[]?\s*$", re.IGNORECASE)
_AFTER_NUMBER = re.compile(r"\d\s*$")  # "10 C", "5 V": a unit, not an option
_AFTER_OPTION = re.compile(r"\b(?:option|choice)\s*[(\[]?\s*$", re.IGNORECASE)  # "option A since": a letter
_OPTION_CUE = re.compile(r"\b(?:option|choice)\b\s*(?:is\b)?\s*:?\s*", re.IGNORECASE)
# Words that can follow the letter "A" (or "I") but never the article "a" (or the pronoun "I"):
# "A is correct", "A or B". Any other lower-case word after a bare "A" makes it the article.
_LETTER_VERBS = frozenset(
    ("is", "was", "or", "and", "seems", "appears", "would", "should", "must", "best", "matches", "fits")
)


def _option_table(options: Options) -> tuple[frozenset[str], dict[str, str]]:
    """Valid letters and normalised option texts. Keys may be "a", "(B)"; missing options (None,
    NaN, as in TSV rows with fewer options) are dropped."""
    pairs = options.items() if isinstance(options, Mapping) else ((k, None) for k in options)
    letters: set[str] = set()
    texts: dict[str, str] = {}
    for key, value in pairs:
        letter = str(key).strip().strip("().").upper()
        if len(letter) != 1 or not "A" <= letter <= "Z":
            raise LlavaCotError(f"option keys must be single letters such as 'A', got {key!r}")
        if isinstance(options, Mapping) and (value is None or value != value):  # NaN != NaN
            continue
        letters.add(letter)
        if value is not None and normalize_text(str(value)):
            texts[letter] = normalize_text(str(value))
    if not letters:
        raise LlavaCotError("no options given: pass {'A': text, ...} or the option letters")
    return frozenset(letters), texts


def _letter_at(text: str, m: re.Match[str], lower_ok: bool) -> str | None:
    """The option letter a _LETTER match names, or None where it reads as a word: the article
    "A", the pronoun "I", a unit after a number, a negated letter, a stray lower-case letter."""
    before = text[max(0, m.start() - 24) : m.start()]
    if _NEGATED.search(before):
        return None
    if m.group(1):
        return m.group(1).upper()
    ch = m.group(2)
    if ch.islower():
        return ch.upper() if lower_ok and _LOWER_END.match(text, m.end()) else None
    if _AFTER_NUMBER.search(before):
        return None
    if ch in "AI" and not _AFTER_OPTION.search(before):
        word = _NEXT_WORD.match(text, m.end())
        if word and word.group(1)[0].islower() and word.group(1).lower() not in _LETTER_VERBS:
            return None
    return ch


def _letters_after(text: str, pos: int, letters: frozenset[str]) -> set[str]:
    """Letters listed right at `pos` ("B", "(b)", "A or B", "A, C"); lower-case allowed."""
    found: set[str] = set()
    while (m := _LETTER.match(text, pos)) and (letter := _letter_at(text, m, lower_ok=True)) in letters:
        found.add(letter)
        sep = _LIST_SEP.match(text, m.end())
        if not sep:
            break
        pos = sep.end()
    return found


def _after_cue(cue: re.Pattern[str]) -> Rule:
    def rule(text: str, letters: frozenset[str], texts: dict[str, str]) -> set[str]:
        return {x for m in cue.finditer(text) for x in _letters_after(text, m.end(), letters)}

    return rule


def _lead(text: str, letters: frozenset[str], texts: dict[str, str]) -> set[str]:
    m = _LEAD.match(text)
    letter = m and (m.group(1) or m.group(2)).upper()
    return {letter} if letter in letters else set()


def _bare(text: str, letters: frozenset[str], texts: dict[str, str]) -> set[str]:
    found = {_letter_at(text, m, lower_ok=False) for m in _LETTER.finditer(text)}
    return found & letters


def _contains(haystack: str, needle: str) -> bool:
    """Whole-word containment of normalised texts ("5 mpa" is not in "15 mpa")."""
    return f" {needle} " in f" {haystack} "


def _by_text(text: str, letters: frozenset[str], texts: dict[str, str]) -> set[str]:
    for span in _answer_spans(text):
        said = normalize_text(span)
        exact = {k for k, v in texts.items() if v == said}
        if exact:
            return exact
        inside = {k for k, v in texts.items() if _contains(said, v)}
        # "red" inside a mention of "dark red" is no separate mention of option "red"
        inside = {k for k in inside if not any(j != k and _contains(texts[j], texts[k]) for j in inside)}
        if inside:
            return inside
    return set()


# Tried in order; the first that finds any letter decides (two different letters -> None).
_CHOICE_RULES = (_after_cue(_ANSWER_CUE), _lead, _after_cue(_OPTION_CUE), _bare, _by_text)


def extract_choice(response: str, options: Options) -> str | None:
    """The option letter the response picks ("B"), or None if it names none or several.
    `options` maps letters to texts ({"A": "3 MPa", ...}: then "5 MPa" alone names its letter)
    or is just the letters ("ABCD")."""
    letters, texts = _option_table(options)
    text = _target(response)
    for rule in _CHOICE_RULES:
        found = rule(text, letters, texts)
        if found:
            return found.pop() if len(found) == 1 else None
    return None


# ---------------------------------------------------------------------------------------------
# Numbers

_NUMBER = re.compile(
    r"(?:(?<![\w)])(?P<sign>[-+−]))?(?<![\w.])"  # a sign only where it cannot be a minus between terms
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?)"
    r"(?:\s*/\s*(?P<den>\d+)(?![\d.]))?"  # a simple fraction: 3/4
)
_WORDS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
_WORDS += "fifteen sixteen seventeen eighteen nineteen twenty"
_WORD_VALUE = {w: float(i) for i, w in enumerate(_WORDS.split())}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_WORD_VALUE) + r")\b", re.IGNORECASE)
# "the one on the left", "one of them": the pronoun, not the number
_PRONOUN_ONE = re.compile(r"\b(?:the|this|that|each|any|every|which|no|another)\s+$", re.IGNORECASE)
_NUMBER_CUE = re.compile(_ANSWER_CUE.pattern + r"|=|\bequals\b|\bis\s+equal\s+to\b", re.IGNORECASE)
_OR = re.compile(r"\s*,?\s*or\s*$", re.IGNORECASE)
_OF = re.compile(r"\s+of\b", re.IGNORECASE)


def _number_value(m: re.Match[str]) -> float | None:
    value = float(m.group("num").replace(",", ""))
    if m.group("den"):
        den = float(m.group("den"))
        if den == 0:
            return None
        value /= den
    return -value if m.group("sign") in ("-", "−") else value


def _numbers(text: str) -> list[tuple[int, int, float]]:
    """(start, end, value) of every number in text. Digits win: number words count only where
    the text has no digits ("There are 3 cubes; one is red" -> [3])."""
    found = [(m.start(), m.end(), v) for m in _NUMBER.finditer(text) if (v := _number_value(m)) is not None]
    if found:
        return found
    for m in _NUMBER_WORD.finditer(text):
        word = m.group(1).lower()
        pronoun = word == "one" and (
            _PRONOUN_ONE.search(text, max(0, m.start() - 10), m.start()) or _OF.match(text, m.end())
        )
        if not pronoun:
            found.append((m.start(), m.end(), _WORD_VALUE[word]))
    return found


def extract_number(response: str) -> float | None:
    """The numeric answer: the first number after the last "answer is"/"="/"equals", else the
    last number in the text; None where it is offered as "3 or 4"."""
    text = _target(response)
    nums, cues = _numbers(text), list(_NUMBER_CUE.finditer(text))
    if not nums:
        return None
    after = [i for i, n in enumerate(nums) if cues and n[0] >= cues[-1].end()]
    i = after[0] if after else len(nums) - 1
    for j in (i - 1, i + 1):
        if 0 <= j < len(nums) and nums[j][2] != nums[i][2]:
            gap = text[min(nums[i][1], nums[j][1]) : max(nums[i][0], nums[j][0])]
            if _OR.match(gap):
                return None
    return nums[i][2]


# ---------------------------------------------------------------------------------------------
# Yes / no

_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_YN_LEAD = re.compile(r"[^\w]*(yes|no)\b", re.IGNORECASE)
_YN_CUE = re.compile(_ANSWER_CUE.pattern + r"(yes|no)\b", re.IGNORECASE)
_YN_ALSO = re.compile(r"\s*,?\s*(?:and|or|/)\s*(yes|no)\b", re.IGNORECASE)  # "yes and no", "Yes/No"
_YN_END = re.compile(r"\s*(?:$|[.,;:!?])")


def _yes_no_at(text: str, m: re.Match[str]) -> set[str]:
    also = _YN_ALSO.match(text, m.end())
    return {w.capitalize() for w in (m.group(1), also and also.group(1)) if w}


def extract_yes_no(response: str) -> str | None:
    """The answer "Yes" or "No": after an answer cue, else as the first word, else a lone
    "yes."/"no," in the text (the "no" in "there is no cube" is a determiner, not an answer)."""
    text = _target(response)
    lead = _YN_LEAD.match(text)
    ends = (_YN_END, _YN_ALSO)
    tail = [m for m in _YES_NO.finditer(text) if any(e.match(text, m.end()) for e in ends)]
    for matches in (list(_YN_CUE.finditer(text)), [lead] if lead else [], tail):
        found = {w for m in matches for w in _yes_no_at(text, m)}
        if found:
            return found.pop() if len(found) == 1 else None
    return None


# ---------------------------------------------------------------------------------------------
# Any answer


def extract_text(response: str) -> str | None:
    """The free-text answer, normalised: the rest of the sentence after the last answer cue, else
    the whole CONCLUSION."""
    return normalize_text(_answer_spans(_target(response))[0]) or None


_GOLD_LETTER = re.compile(r"[(\[]?\s*([A-Za-z])\s*[)\]]?\.?")
_GOLD_NUMBER = re.compile(r"\s*" + _NUMBER.pattern + r"\s*%?\s*")


def _resolve(gold: Gold, options: Options | None) -> tuple[str, object, Options | None]:
    """(kind, gold as its extractor would return it, options) for a gold answer. A lone letter
    with no options is taken as a choice among A..D (or up to that letter)."""
    if isinstance(gold, bool):
        return "yes_no", "Yes" if gold else "No", None
    if isinstance(gold, int | float):
        return "number", float(gold), None
    if not isinstance(gold, str):
        raise LlavaCotError(f"gold answer must be a string or a number, got {gold!r}")
    g, letter = gold.strip(), _GOLD_LETTER.fullmatch(gold.strip())
    if options is not None:
        options = options if isinstance(options, Mapping) else list(options)  # read twice below
        letters, texts = _option_table(options)
        named = [k for k, v in texts.items() if v == normalize_text(g)]
        if letter and letter.group(1).upper() not in letters:
            raise LlavaCotError(f"gold answer {gold!r} is not one of the options {sorted(letters)}")
        if letter or len(named) == 1:
            return "choice", letter.group(1).upper() if letter else named[0], options
    elif letter:
        last = max("D", letter.group(1).upper())
        return "choice", letter.group(1).upper(), [chr(c) for c in range(ord("A"), ord(last) + 1)]
    if (m := _GOLD_NUMBER.fullmatch(g)) and (value := _number_value(m)) is not None:
        return "number", value, None
    if g.lower() in _WORD_VALUE:
        return "number", _WORD_VALUE[g.lower()], None
    if normalize_text(g) in ("yes", "no"):
        return "yes_no", normalize_text(g).capitalize(), None
    if not normalize_text(g):
        raise LlavaCotError(f"gold answer {gold!r} has no words or numbers in it")
    return "text", normalize_text(g), None


def answer_kind(gold: Gold, options: Options | None = None) -> str:
    """How `gold` is compared: "choice", "number", "yes_no", or "text" (free text, matched only
    when the normalised texts are equal: where an LLM judge may be needed)."""
    return _resolve(gold, options)[0]


def extract(response: str, gold: Gold, options: Options | None = None) -> str | float | None:
    """The response's answer, read the way `gold` is written: an option letter, a number,
    "Yes"/"No", or normalised free text."""
    kind, _, options = _resolve(gold, options)
    if kind == "choice":
        return extract_choice(response, options)
    if kind == "number":
        return extract_number(response)
    return extract_yes_no(response) if kind == "yes_no" else extract_text(response)


def is_correct(response: str, gold: Gold, options: Options | None = None) -> bool:
    """Whether the response's answer is `gold`: the same option (by letter, or by the option's
    text), the same number within REL_TOL, the same yes/no, or the same normalised text (after
    the last answer cue, or the whole CONCLUSION)."""
    kind, want, options = _resolve(gold, options)
    if kind == "text":
        return want in {normalize_text(s) for s in _answer_spans(_target(response))}
    got = extract(response, gold, options)
    if kind == "number":
        return got is not None and math.isclose(got, want, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return got == want
