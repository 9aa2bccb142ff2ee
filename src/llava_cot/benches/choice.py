"""Multiple-choice benchmarks: MMStar, MMBench (circular), AI2D, read from VLMEvalKit TSVs.

    bench = load_bench("mmbench", match="ours")      # or "vlmeval", "vlmeval-raw"
    items = bench.load("~/LMUData/MMBench_DEV_EN.tsv", limit=0)
    rows = [bench.score(item, respond(bench.prompt(item), item.image())) for item in items]
    bench.summarise(rows)  # {"n", "accuracy", "categories", "l2_categories", "vanilla", ...}

Prompts are VLMEvalKit's default for multiple choice: "Hint: ..." (when there is one),
"Question: ...", "Options:", one "A. text" line per option, then the line "Please select the
correct answer from the options above." (`instruction=` changes it).

Scoring reads the answer from the CONCLUSION (`stages.answer_text`) with one of three matchers:
"ours" (default: `answers.extract_choice`), "vlmeval" (VLMEvalKit's `can_infer`, see
vlmeval.py, on the CONCLUSION), "vlmeval-raw" (the same on the whole response, exactly what
VLMEvalKit sees). With `judge_fallback=True` and a `judge`, a response no rule reads is given
to the LLM judge to match against the options, as VLMEvalKit does (off by default; never a
random pick). A "Z" (refusal / none of them) or no answer is wrong.

MMBench is circular (as in VLMEvalKit): each question also appears with its options rotated,
under index + k * 1,000,000; a question counts as right only if every one of its rows is. Its
`limit` counts questions, not rows. docs/benchmarks.md has the files and the differences.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from llava_cot import answers, stages
from llava_cot.benches import Item, accuracy_by
from llava_cot.benches.judge import Judge
from llava_cot.benches.tsv import Bad, Row, Source, read_items
from llava_cot.benches.vlmeval import vlmeval_match
from llava_cot.errors import LlavaCotError

MATCHES = ("ours", "vlmeval", "vlmeval-raw")
INSTRUCTION = "Please select the correct answer from the options above."
CIRCULAR_OFFSET = 1_000_000  # VLMEvalKit: a circular variant's index is the question's + k * 1e6
LETTERS = string.ascii_uppercase
OPENCOMPASS = "https://opencompass.openxlab.space/utils"


def check_match(match: str) -> str:
    if match not in MATCHES:
        raise LlavaCotError(f"unknown match {match!r}: choose one of {', '.join(MATCHES)}")
    return match


def check_options(name: str, match: str, judge: Any, judge_fallback: bool) -> None:
    """The scoring options every bench that reads choices takes: a known rule, a judge if asked."""
    check_match(match)
    if judge_fallback and judge is None:
        raise LlavaCotError(f"{name}: judge_fallback needs a judge (--judge-model, --judge-url)")


def read_choice(response: str, options: dict[str, str], match: str = "ours") -> str | None:
    """The option letter a response picks ("Z": none of them), or None, read by `match`."""
    if match == "ours":
        return answers.extract_choice(response, options)
    return vlmeval_match(response if match == "vlmeval-raw" else stages.answer_text(response), options)


def judge_choice(judge: Judge, question: str, options: dict[str, str], answer: str) -> str | None:
    """Ask the judge which option an answer means (VLMEvalKit's fallback). None: none, or unreadable."""
    listed = "\n".join(f"{k}. {v}" for k, v in options.items())
    prompt = (
        "A model answered a multiple-choice question. Decide which option its answer means.\n"
        f"Reply with one capital letter among {', '.join(options)}, or Z if the answer means none of them.\n\n"
        f"Question: {question}\nOptions:\n{listed}\nModel's answer: {answer}\nLetter:")
    _, letter = judge.ask(prompt, lambda reply: vlmeval_match(reply, options))
    return None if letter in (None, "Z") else letter


@dataclass
class ChoiceBench:
    name: str
    source: Source
    circular: bool = False
    match: str = "ours"
    judge: Judge | None = None
    judge_fallback: bool = False
    instruction: str = INSTRUCTION
    log: TextIO | None = None
    lmms: Any = None  # record -> VLMEvalKit fields, for lmms-eval's parquet files
    bad: list[Bad] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_options(self.name, self.match, self.judge, self.judge_fallback)

    def load(self, source: str | None, limit: int = 0) -> list[Item]:
        if not source:
            raise LlavaCotError(f"{self.name} needs its data file: {self.source.hint()}")
        keep = _first_questions(limit) if self.circular and limit else None
        items, self.bad = read_items(source, self._item, 0 if keep else limit, keep=keep, adapt=self.lmms,
                                     missing=self.source.hint(), log=self.log)
        return items

    def _item(self, row: Row) -> Item:
        options = {k: str(row.get(k)) for k in LETTERS if row.get(k) is not None}
        answer = str(row.get("answer", "")).strip()
        if not row.get("question"):
            raise ValueError("no question")
        if answer not in options:
            raise ValueError(f"the answer {answer!r} is not one of the options {''.join(options) or '(none)'}")
        extra = {k: row.get(k) for k in ("hint", "l2-category", "split") if row.get(k) is not None}
        if self.circular:
            if not row.index.isdigit():
                raise ValueError("a circular benchmark needs integer indices")
            extra["group"] = int(row.index) % CIRCULAR_OFFSET
        return Item(row.index, str(row.get("question")), answer, row.image_loader(), options,
                    str(row.get("category", "all")), extra)

    def prompt(self, item: Item) -> str:
        lines = [f"Hint: {item.extra['hint']}"] if item.extra.get("hint") else []
        lines.append(f"Question: {item.question}")
        if item.options:
            lines += ["Options:", *(f"{k}. {v}" for k, v in item.options.items())]
            lines += [self.instruction] if self.instruction else []
        return "\n".join(lines)

    def score(self, item: Item, response: str) -> dict[str, Any]:
        letter, how = read_choice(response, item.options, self.match), "rule"
        if letter in (None, "Z") and self.judge_fallback and self.judge is not None:
            said = response if self.match == "vlmeval-raw" else stages.answer_text(response)
            letter, how = judge_choice(self.judge, item.question, item.options, said), "judge"
        row = {"index": item.index, "category": item.category, "answer": item.answer, "prediction": letter,
               "correct": letter == item.answer, "matched_by": how if letter not in (None, "Z") else None}
        if "l2-category" in item.extra:
            row["l2_category"] = item.extra["l2-category"]
        if self.circular:
            row["group"] = item.extra["group"]
        return row

    def summarise(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        unmatched = sum(r["prediction"] in (None, "Z") for r in rows)
        if not self.circular:
            return {**_with_l2(rows), "unmatched": unmatched}
        groups: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(r["group"], []).append(r)
        # VLMEvalKit scores the questions whose own row (index == group) is present.
        main = {r["group"]: r for r in rows if str(r["index"]) == str(r["group"])}
        questions = [{**main[g], "correct": all(x["correct"] for x in groups[g])} for g in sorted(main)]
        return {**_with_l2(questions), "rows": len(rows), "unmatched": unmatched,
                "vanilla_all": accuracy_by(rows)["accuracy"],  # every row on its own
                "vanilla_first": accuracy_by(list(main.values()))["accuracy"],  # the unrotated rows only
                "orphan_rows": sum(len(v) for g, v in groups.items() if g not in main)}


def _with_l2(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out = accuracy_by(rows)
    if any("l2_category" in r for r in rows):
        out["l2_categories"] = accuracy_by(rows, "l2_category")["categories"]
    return out


def _first_questions(limit: int) -> Any:
    """A row filter keeping every row of the first `limit` circular questions (by file order)."""
    chosen: set[int] = set()

    def keep(row: Row) -> bool:
        if not row.index.isdigit():
            return True  # reported as bad when the item is built
        group = int(row.index) % CIRCULAR_OFFSET
        if group not in chosen and len(chosen) < limit:
            chosen.add(group)
        return group in chosen

    return keep


# ---------------------------------------------------------------------------------------------
# lmms-eval's parquet columns, as VLMEvalKit's


def _common(record: dict[str, Any]) -> dict[str, Any]:
    """MMBench's parquet has VLMEvalKit's columns, with "nan" for missing and "L2-category"."""
    out = {k: v for k, v in record.items() if not (isinstance(v, str) and v.strip().lower() == "nan")}
    for key in ("L2-category", "l2_category"):
        if key in out:
            out["l2-category"] = out.pop(key)
    return out


_MMSTAR_OPTIONS = re.compile(r"\n\s*Options:\s*(.*)\Z", re.DOTALL)
_MMSTAR_LETTER = re.compile(r"(?:\A|,\s+)([A-F]):\s")


def mmstar_record(record: dict[str, Any]) -> dict[str, Any]:
    """MMStar's parquet puts the options in the question ("...\\nOptions: A: x, B: y, ...")."""
    out = _common(record)
    m = _MMSTAR_OPTIONS.search(out["question"])
    if m:
        parts = _MMSTAR_LETTER.split(m.group(1))
        letters, texts = parts[1::2], [t.strip() for t in parts[2::2]]
        if parts[0] == "" and letters == list(LETTERS[: len(letters)]):
            out["question"] = out["question"][: m.start()].strip()
            out.update(zip(letters, texts, strict=True))
    return out


def ai2d_record(record: dict[str, Any]) -> dict[str, Any]:
    """AI2D's parquet: options as a list, the answer as a position ("0".."3")."""
    options, position = list(record["options"]), int(record["answer"])
    if not 0 <= position < len(options):
        raise ValueError(f"the answer position {position} is not among the {len(options)} options")
    out = {"question": record["question"], "image": record["image"], "answer": LETTERS[position]}
    out.update(zip(LETTERS, map(str, options), strict=False))
    return out


# ---------------------------------------------------------------------------------------------
# The benchmarks (registered in benches/__init__.py)


def mmstar(**options: Any) -> ChoiceBench:
    src = Source("MMStar.tsv", f"{OPENCOMPASS}/VLMEval/MMStar.tsv", "Lin-Chen/MMStar")
    return ChoiceBench("mmstar", src, lmms=mmstar_record, **options)


def mmbench(**options: Any) -> ChoiceBench:
    src = Source("MMBench_DEV_EN.tsv (or MMBench_DEV_EN_V11.tsv)", f"{OPENCOMPASS}/benchmarks/MMBench/MMBench_DEV_EN.tsv",
                 "lmms-lab/MMBench")
    return ChoiceBench("mmbench", src, circular=True, lmms=_common, **options)


def ai2d(**options: Any) -> ChoiceBench:
    src = Source("AI2D_TEST.tsv", f"{OPENCOMPASS}/VLMEval/AI2D_TEST.tsv", "lmms-lab/ai2d")
    return ChoiceBench("ai2d", src, lmms=ai2d_record, **options)


def ai2d_no_mask(**options: Any) -> ChoiceBench:
    src = Source("AI2D_TEST_NO_MASK.tsv", f"{OPENCOMPASS}/VLMEval/AI2D_TEST_NO_MASK.tsv",
                 "Efficient-Large-Model/ai2d-no-mask")
    return ChoiceBench("ai2d_no_mask", src, lmms=ai2d_record, **options)
