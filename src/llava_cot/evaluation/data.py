"""Benchmarks `llava-cot eval` can score: a registered one (llava_cot.benches), or a data file in
the LLaVA-CoT layout whose records carry a gold "answer" (and "options" for multiple choice),
read by the registry's "records" bench: an item per record, keyed by its id, its "family" as
the category. A benchmark's own file given as the bench (`--bench ~/LMUData/MMStar.tsv`) is read
by the benchmark its name says (`benches.guess_bench`), as `--bench mmstar --data FILE` would.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava_cot.benches import Bench, Item
from llava_cot.errors import LlavaCotError

ANSWER_FROM = ["conclusion", "last-paragraph"]


@dataclass(kw_only=True)
class ScoringOptions:
    """The scoring options of every command that scores (eval, eval score)."""

    match: str = field(default="ours", metadata={
        "help": "multiple-choice matching: ours, vlmeval (VLMEvalKit's rules on the CONCLUSION) or vlmeval-raw",
        "choices": ["ours", "vlmeval", "vlmeval-raw"]})
    judge_url: str | None = field(default=None, metadata={
        "help": "OpenAI-compatible endpoint of the LLM judge (MathVista, MMVet, optional MC fallback)"})
    judge_model: str | None = field(default=None, metadata={"help": "the judge's model name"})
    judge_fallback: bool = field(default=False, metadata={
        "help": "ask the judge when multiple-choice matching finds no answer (VLMEvalKit's fallback)"})
    answer_from: str = field(default="conclusion", metadata={
        "help": "where an answer is read: the CONCLUSION (else the whole response), or the last paragraph "
                "(for a model trained on untagged four-stage text, whose last paragraph is its conclusion)",
        "choices": ANSWER_FROM})


def bench_options(cfg: ScoringOptions, cache_dir: str | None) -> dict[str, Any]:
    """The options `load_bench` takes, from a command's config: matching and the judge, whose
    answers are cached under `cache_dir` (or ~/.cache/llava-cot) so a re-score never asks again."""
    options: dict[str, Any] = {"match": cfg.match, "judge_fallback": cfg.judge_fallback, "answer_from": cfg.answer_from}
    if cfg.judge_model:
        from llava_cot.benches.judge import Judge

        cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "llava-cot"
        cache.mkdir(parents=True, exist_ok=True)
        options["judge"] = Judge(model=cfg.judge_model, base_url=cfg.judge_url, cache=cache / "judge-cache.jsonl")
    elif cfg.judge_fallback:
        raise LlavaCotError("--judge-fallback needs a judge: pass --judge-model (and --judge-url)")
    return options


def resolve(name: str, **options: Any) -> tuple[Bench, bool]:
    """The bench called `name`, and whether it is a data file (the name is then its path)."""
    from llava_cot import benches

    if name.lower() in benches.BENCHES:
        return benches.load_bench(name, **options), False
    path = Path(name).expanduser()
    names = ", ".join(sorted(benches.BENCHES))
    if not path.exists():
        raise LlavaCotError(f"bench {name} is neither a data file nor one of {names}")
    if path.is_file() and path.suffix.lower() not in (".tsv", ".parquet"):
        return benches.load_bench("records", **options), True
    # A benchmark's own file (VLMEvalKit TSV, lmms-eval parquet or folder of them): its name says
    # which one, the file's own name first (a folder's, as in "runs/mmstar-try/AI2D_TEST.tsv", can mislead).
    guess = benches.guess_bench(path.name) or benches.guess_bench(str(path))
    if guess in (None, "records"):
        raise LlavaCotError(f"{name} is not a LLaVA-CoT data file (.jsonl, .json) and its name does not say which "
                            f"benchmark it holds: pass --bench NAME --data {name}, NAME one of {names}")
    print(f"{name}: read as the {guess} benchmark (--bench {guess} --data {name})", file=sys.stderr)
    return benches.load_bench(guess, **options), True


class LastParagraph:
    """A bench whose responses are scored on their last paragraph (`--answer-from last-paragraph`):
    a model trained on untagged four-stage text concludes in its last paragraph, and read whole
    its reasoning names many numbers and colours besides the answer. Otherwise the bench itself."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bench, name)

    def score(self, item: Item, response: str) -> dict[str, Any]:
        from llava_cot import stages

        return self.bench.score(item, stages.last_paragraph(response))


def load(name: str, data: str | None = None, limit: int = 0, answer_from: str = "conclusion",
         **options: Any) -> tuple[Bench, list[Item]]:
    """Resolve a bench and load its items (at most `limit`; 0: all). Indices must be unique.
    `answer_from` is where a response's answer is read (ANSWER_FROM); `options` go to the bench."""
    if answer_from not in ANSWER_FROM:
        raise LlavaCotError(f"answer_from must be one of {', '.join(ANSWER_FROM)}, not {answer_from!r}")
    bench, is_file = resolve(name, **options)
    if is_file and data:
        raise LlavaCotError(f"--bench {name} is a file already; pass --data only with a benchmark's name")
    items = bench.load(name if is_file else data, limit)
    check_unique(items, name)
    return (LastParagraph(bench) if answer_from == "last-paragraph" else bench), items


def check_unique(items: Sequence[Item], name: str) -> None:
    """Predictions are keyed by index: two items under one would be scored as one."""
    seen: set[str] = set()
    for item in items:
        if str(item.index) in seen:
            raise LlavaCotError(f"bench {name}: two items share the index {item.index!r}")
        seen.add(str(item.index))
