"""The engine flags `ask` and `eval` share: which model answers (a local checkpoint, or any
OpenAI-compatible server with --base-url: vLLM, SGLang, `transformers serve`, `llava-cot serve`)
and which one judges a search's candidates (the answering model itself, another local one with
--judge-checkpoint, or another server with --judge-base-url).

    llava-cot eval --base-url http://gpu-node:8000/v1 --bench mmstar --data MMStar.tsv --concurrency 32
    llava-cot ask --image x.png "How many?" --search best_of_n --judge pointwise --judge-checkpoint runs/verifier

With --base-url no local model is loaded. Without --served-model the server's only model is used.
The judge's local model is --judge-checkpoint, not --judge-model: in `eval` that flag already names
the LLM that scores free-form benchmark answers (llava_cot.evaluation.data), another judge.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava_cot.errors import LlavaCotError

MODEL_JUDGES = ("pairwise", "pointwise", "likelihood")  # the judges that ask a model


@dataclass
class EngineOptions:
    base_url: str | None = field(default=None, kw_only=True, metadata={
        "help": "answer with the model an OpenAI-compatible server serves (vLLM, SGLang, ...), e.g. "
                "http://HOST:8000/v1, instead of a local one"})
    served_model: str | None = field(default=None, kw_only=True, metadata={
        "help": "the served model's name at --base-url (default: the only one the server lists)"})
    api_key: str | None = field(default=None, kw_only=True, metadata={
        "help": "API key of the server(s) (default: $OPENAI_API_KEY)"})
    judge_checkpoint: str | None = field(default=None, kw_only=True, metadata={
        "help": "a local model (directory or hub id) that judges the search's candidates (default: the "
                "answering model)"})
    judge_base_url: str | None = field(default=None, kw_only=True, metadata={
        "help": "an OpenAI-compatible server whose model judges the search's candidates"})
    judge_served_model: str | None = field(default=None, kw_only=True, metadata={
        "help": "the served model's name at --judge-base-url (default: the only one the server lists)"})


def judge_name(search: str, judge: str | None) -> str | None:
    """The judge a search will use: the one asked for, or the search's own."""
    from llava_cot.search import DEFAULT_JUDGE

    return None if search == "greedy" else judge or DEFAULT_JUDGE[search]


def check(cfg: Any) -> None:
    """The flags' combinations a user can get wrong, refused before anything loads. `cfg` is an
    AskConfig or EvalConfig: EngineOptions with `model`, `search` and `judge`."""
    for url, flag in ((cfg.base_url, "--base-url"), (cfg.judge_base_url, "--judge-base-url")):
        if url is not None and not url.startswith(("http://", "https://")):
            raise LlavaCotError(f"{flag} {url} is not an http(s) URL (for example http://127.0.0.1:8000/v1)")
    if cfg.base_url is not None and cfg.model is not None:
        raise LlavaCotError("--model and --base-url both name the model that answers: give one of them")
    if cfg.judge_checkpoint is not None and cfg.judge_base_url is not None:
        raise LlavaCotError("--judge-checkpoint and --judge-base-url both name the judge's model: give one of them")
    for name, needs in (("served_model", "base_url"), ("judge_served_model", "judge_base_url")):
        if getattr(cfg, name) is not None and getattr(cfg, needs) is None:
            raise LlavaCotError(f"--{name.replace('_', '-')} names a model at --{needs.replace('_', '-')}: give that too")
    judge = judge_name(cfg.search, cfg.judge)
    own = cfg.judge_checkpoint is not None or cfg.judge_base_url is not None
    if own and judge not in MODEL_JUDGES:
        raise LlavaCotError(f"--judge-checkpoint and --judge-base-url give the judge a model, but {cfg.search}'s judge "
                            f"({judge or 'none'}) asks none: choose --judge {' or '.join(MODEL_JUDGES)}")
    remote_judge = cfg.judge_base_url is not None or (cfg.base_url is not None and not own)
    if judge == "likelihood" and remote_judge:
        raise LlavaCotError("the likelihood judge scores text teacher-forced, which an OpenAI-compatible server "
                            "cannot: give it a local model (--judge-checkpoint DIR_OR_ID), or choose another --judge")


def connect(base_url: str, served_model: str | None, api_key: str | None, concurrency: int = 8) -> Any:
    """An `openai` engine on the server at `base_url`, on its model `served_model` (default: the
    only one it lists), at most `concurrency` requests in flight."""
    from llava_cot.engines.remote import OpenAIEngine

    engine = OpenAIEngine(base_url=base_url, model=served_model or "", api_key=api_key,
                          max_concurrency=max(1, concurrency))
    if served_model is None:
        names = engine.served_models()
        if len(names) != 1:
            listed = ", ".join(names) or "none"
            raise LlavaCotError(f"the server at {base_url} serves {len(names)} models ({listed}): "
                                "choose one with --served-model / --judge-served-model")
        engine.model = names[0]
    return engine


def answering(cfg: Any, concurrency: int = 8) -> Any:
    """The engine on --base-url, or None (a local model answers)."""
    return None if cfg.base_url is None else connect(cfg.base_url, cfg.served_model, cfg.api_key, concurrency)


def judge_server(cfg: Any, concurrency: int = 8) -> Any:
    """The judge's engine on --judge-base-url, or None."""
    if cfg.judge_base_url is None:
        return None
    return connect(cfg.judge_base_url, cfg.judge_served_model, cfg.api_key, max(8, concurrency))


def judging(cfg: Any, device: str = "auto", dtype: str = "auto", concurrency: int = 8, server: Any = None) -> Any:
    """The judge's own engine (`server`, made by judge_server, or the model of --judge-checkpoint,
    loaded here), or None: the answering model judges."""
    if cfg.judge_base_url is not None:
        return server or judge_server(cfg, concurrency)
    if cfg.judge_checkpoint is not None:
        from llava_cot.engines.hf import HFEngine

        return HFEngine(cfg.judge_checkpoint, device=device, dtype=dtype, max_batch=max(32, concurrency * 4))
    return None


def describe(engine: Any) -> str:
    """How a report names an engine's model: a remote one by name and server."""
    if hasattr(engine, "client"):
        return f"{engine.model} at {str(engine.client.base_url).rstrip('/')}"
    return str(getattr(getattr(engine, "loaded", None), "name", engine))


def settings(cfg: Any, answering: Any = None, judge_server: Any = None) -> dict[str, Any]:
    """What a resumed eval run must share with the one it continues about its engines, beside
    the local model's path and fingerprint: the server and served model of a remote one, and the
    judge's own model (a local one's path and fingerprint, or its server and name)."""
    from llava_cot import models
    from llava_cot.evaluation import store

    def served(engine: Any) -> tuple[str | None, str | None]:
        return (None, None) if engine is None else (str(engine.client.base_url).rstrip("/"), engine.model)

    base_url, served_model = served(answering)
    judge_url, judge_served = served(judge_server)
    judge_path = models.resolve(cfg.judge_checkpoint) if cfg.judge_checkpoint is not None else None
    local = judge_path is not None and Path(judge_path).is_dir()
    return {"base_url": base_url, "served_model": served_model,
            "judge_checkpoint": str(Path(judge_path).resolve()) if local else judge_path,
            "judge_checkpoint_fingerprint": store.model_fingerprint(judge_path) if judge_path else None,
            "judge_base_url": judge_url, "judge_served_model": judge_served}


def report(*engines: Any) -> None:
    """Print, on stderr, what each remote engine's server did not do and how it was made up for."""
    for engine in engines:
        for line in getattr(engine, "notes", lambda: [])():
            print(f"note: {line}", file=sys.stderr)
