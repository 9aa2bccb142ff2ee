"""HallusionBench: yes/no questions about charts, tables, maps, illusions, read from VLMEvalKit's
HallusionBench.tsv (or lmms-eval's `lmms-lab/HallusionBench` parquet), scored by aAcc, fAcc, qAcc.

    bench = load_bench("hallusionbench")             # match="ours" | "vlmeval" | "vlmeval-raw"
    items = bench.load("~/LMUData/HallusionBench.tsv")
    bench.summarise(rows)   # {"accuracy" (= aAcc), "aAcc", "fAcc", "qAcc", "categories", "l2_categories"}

Questions come in sets: the same questions asked about an original figure and edited versions of
it. The metrics, as HallusionBench defines them:

- aAcc: the share of questions answered right;
- fAcc (figure-level): the share of figures all of whose questions are answered right, a figure
  being (category, subcategory, set_id, figure_id);
- qAcc (question-level): the share of questions answered right on every figure they are asked
  about, a question being (category, subcategory, set_id, question_id).

Each is reported overall, per category (VD: visual dependent, VS: visual supplement) and per
subcategory (`l2-category`: chart, table, map, ...). set_id, figure_id and question_id come from
their own columns when the file has them, else from the index ("..._set_figure_question", the 4th
to 6th parts, as VLMEvalKit reads them). The prompt is the question alone (VLMEvalKit's).

The answer is read from the CONCLUSION by `answers.extract_yes_no` ("ours"), or by VLMEvalKit's
`YOrN_Extraction` ("vlmeval", "vlmeval-raw"). With `judge_fallback=True` and a `judge`, a response
neither yes nor no is given to the LLM judge (VLMEvalKit's fallback; off by default).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from llava_cot import answers, stages
from llava_cot.benches import Item
from llava_cot.benches.choice import OPENCOMPASS, check_options
from llava_cot.benches.judge import Judge
from llava_cot.benches.tsv import Bad, Row, Source, read_items
from llava_cot.benches.vlmeval import vlmeval_yes_no
from llava_cot.errors import LlavaCotError

SOURCE = Source("HallusionBench.tsv", f"{OPENCOMPASS}/VLMEval/HallusionBench.tsv", "lmms-lab/HallusionBench")
IDS = ("set_id", "figure_id", "question_id")


def read_yes_no(response: str, match: str = "ours") -> str | None:
    if match == "ours":
        return answers.extract_yes_no(response)
    return vlmeval_yes_no(response if match == "vlmeval-raw" else stages.answer_text(response))


def judge_yes_no(judge: Judge, question: str, answer: str) -> str | None:
    prompt = ("A model answered a yes/no question. Does its answer mean yes or no?\n"
              "Reply with one word: Yes, No, or Unknown if it means neither.\n\n"
              f"Question: {question}\nModel's answer: {answer}\nReply:")
    return judge.ask(prompt, vlmeval_yes_no)[1]


@dataclass
class HallusionBench:
    name: str = "hallusionbench"
    match: str = "ours"
    judge: Judge | None = None
    judge_fallback: bool = False
    instruction: str = ""  # appended to the question on a new line when given
    log: TextIO | None = None
    bad: list[Bad] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_options(self.name, self.match, self.judge, self.judge_fallback)

    def load(self, source: str | None, limit: int = 0) -> list[Item]:
        if not source:
            raise LlavaCotError(f"{self.name} needs its data file: {SOURCE.hint()}")
        items, self.bad = read_items(source, _item, limit, adapt=lmms_record, missing=SOURCE.hint(), log=self.log)
        return items

    def prompt(self, item: Item) -> str:
        return f"{item.question}\n{self.instruction}" if self.instruction else item.question

    def score(self, item: Item, response: str) -> dict[str, Any]:
        said, how = read_yes_no(response, self.match), "rule"
        if said is None and self.judge_fallback and self.judge is not None:
            text = response if self.match == "vlmeval-raw" else stages.answer_text(response)
            said, how = judge_yes_no(self.judge, item.question, text), "judge"
        return {"index": item.index, "category": item.category, "l2_category": item.extra["l2-category"],
                **{k: item.extra[k] for k in IDS}, "answer": item.answer, "prediction": said,
                "correct": said == item.answer, "matched_by": how if said else None}

    def summarise(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        out = metrics(rows)
        out["accuracy"] = out["aAcc"]
        out["unmatched"] = sum(r["prediction"] is None for r in rows)
        for key, name in (("category", "categories"), ("l2_category", "l2_categories")):
            groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in rows:
                groups[str(r[key])].append(r)
            out[name] = {k: metrics(v) for k, v in sorted(groups.items())}
        return out


def metrics(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """n, aAcc, fAcc and qAcc (fractions) of scored rows."""
    figures: dict[tuple[str, ...], bool] = {}
    questions: dict[tuple[str, ...], bool] = {}
    for r in rows:
        where = (str(r["category"]), str(r["l2_category"]), str(r["set_id"]))
        figure, question = (*where, str(r["figure_id"])), (*where, str(r["question_id"]))
        figures[figure] = figures.get(figure, True) and bool(r["correct"])
        questions[question] = questions.get(question, True) and bool(r["correct"])

    def share(values: Any) -> float:
        values = list(values)
        return sum(values) / len(values) if values else 0.0

    return {"n": len(rows), "aAcc": share(bool(r["correct"]) for r in rows),
            "fAcc": share(figures.values()), "qAcc": share(questions.values()),
            "figures": len(figures), "questions": len(questions)}


def _item(row: Row) -> Item:
    answer = str(row.get("answer", "")).strip().capitalize()
    if answer not in ("Yes", "No"):
        raise ValueError(f"the answer {row.get('answer')!r} is not Yes or No")
    if not row.get("question"):
        raise ValueError("no question")
    ids = {k: row.get(k) for k in IDS}
    if any(v is None for v in ids.values()):
        parts = row.index.split("_")
        if len(parts) < 6:
            raise ValueError("no set_id/figure_id/question_id columns, and the index is not 'a_b_c_set_figure_question'")
        ids = dict(zip(IDS, parts[3:6], strict=True))
    extra = {"l2-category": str(row.get("l2-category", "all")), **{k: str(v) for k, v in ids.items()}}
    return Item(row.index, str(row.get("question")), answer, row.image_loader(), {},
                str(row.get("category", "all")), extra)


def lmms_record(record: dict[str, Any]) -> dict[str, Any]:
    """lmms-eval's parquet: subcategory, and gt_answer "1"/"0" for Yes/No."""
    ids = [str(record[k]) for k in ("category", "subcategory", *IDS)]
    gold = {"1": "Yes", "0": "No"}.get(str(record["gt_answer"]).strip())
    if gold is None:
        raise ValueError(f"gt_answer {record['gt_answer']!r} is not 1 or 0")
    return {"index": "_".join(ids), "question": record["question"], "answer": gold, "image": record.get("image"),
            "category": record["category"], "l2-category": record["subcategory"],
            **{k: str(record[k]) for k in IDS}}


def hallusionbench(**options: Any) -> HallusionBench:
    return HallusionBench(**options)
