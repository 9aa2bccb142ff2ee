"""The `llava-cot` command: a thin layer over the library.

Each command is a module with a config dataclass and a `main(cfg) -> int`; this file maps command
names to them and builds each command's arguments from its dataclass fields (their `help`
metadata is the help text). Only the module of the command being run is imported, so
`llava-cot --help` stays fast however heavy the commands are.

    llava-cot data synth --out /tmp/s --n 100
    llava-cot data check /tmp/s/train.jsonl --images /tmp/s
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import types
import typing
from collections.abc import Sequence

from llava_cot import __version__
from llava_cot.errors import LlavaCotError

# command words -> ("module:ConfigClass", one-line help). The module also defines main(cfg).
COMMANDS: dict[str, tuple[str, str]] = {
    "ask": ("llava_cot.ask:AskConfig", "answer a question about an image, streaming the four stages"),
    "eval": ("llava_cot.evaluate:EvalConfig", "score a model on a benchmark (resumable): accuracy per category, cost"),
    "eval score": ("llava_cot.evaluation.score:ScoreConfig", "score a predictions file against a benchmark, no model"),
    "eval plot": ("llava_cot.plots:PlotConfig", "draw accuracy against tokens generated for several eval runs"),
    "data synth": (
        "llava_cot.synth.generate:SynthConfig",
        "render a synthetic visual-reasoning data set (records, images, scene graphs)",
    ),
    "data check": ("llava_cot.check:CheckConfig", "report every bad record of a LLaVA-CoT data file"),
    "data import": ("llava_cot.teacher.importer:ImportConfig", "turn VQA data (TSV, parquet, JSONL, CSV) into records with plain answers"),
    "data annotate": ("llava_cot.teacher.annotate:AnnotateConfig", "have a teacher answer records in four stages, keep the right ones (resumable)"),
    "train": ("llava_cot.train:TrainConfig", "fine-tune a VLM on four-stage data (full or LoRA), or train a tiny one from scratch"),
    "calibrate": ("llava_cot.search.calibrate:CalibrateConfig", "measure the verifier threshold SWIRES retraces under"),
    "serve": ("llava_cot.serve:ServeConfig", "serve a model over an OpenAI-compatible API, the stages as reasoning"),
    "demo": ("llava_cot.demo:DemoConfig", "a web page that streams the four stages and shows what a search weighed"),
}


def _top_help() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = [
        f"usage: llava-cot COMMAND [options]   (llava-cot {__version__})",
        "",
        "Vision-language models that reason in four tagged stages: SUMMARY, CAPTION, REASONING, CONCLUSION.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "Run `llava-cot COMMAND --help` for a command's options."]
    return "\n".join(lines)


def _unwrap_optional(tp: typing.Any) -> typing.Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def build_parser(prog: str, config_cls: type) -> argparse.ArgumentParser:
    """An argparse parser whose options are the fields of a config dataclass.

    Field metadata: help (text), positional (bool), nargs, choices (list), aliases (extra flags)."""
    parser = argparse.ArgumentParser(prog=prog, description=(config_cls.__doc__ or "").strip() or None)
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        tp = _unwrap_optional(hints[f.name])
        kwargs: dict[str, typing.Any] = {"help": meta.get("help", "")}
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        if has_default and f.default is not dataclasses.MISSING and f.default is not None:
            kwargs["help"] += f" (default: {f.default})"
        for key in ("choices", "nargs"):
            if key in meta:
                kwargs[key] = meta[key]
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif tp in (int, float, str):
            kwargs["type"] = tp
        if meta.get("positional"):
            parser.add_argument(f.name, metavar=f.name.upper(), **kwargs)
            continue
        flags = [f"--{f.name.replace('_', '-')}", *meta.get("aliases", ())]
        if not has_default:
            kwargs["required"] = True
        parser.add_argument(*flags, dest=f.name, default=f.default if has_default else None, **kwargs)
    return parser


def _resolve(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """The longest command name formed by the leading words of argv, and the rest."""
    for n in (2, 1):
        name = " ".join(argv[:n])
        if len(argv) >= n and name in COMMANDS:
            return name, list(argv[n:])
    return None, list(argv)


def _group_help(word: str) -> str | None:
    subs = {n: h for n, (_, h) in COMMANDS.items() if n.split()[0] == word and " " in n}
    if not subs:
        return None
    width = max(len(n) for n in subs)
    return "\n".join([f"usage: llava-cot {word} SUBCOMMAND [options]", "", "subcommands:"] +
                     [f"  {n:<{width}}  {h}" for n, h in subs.items()])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_top_help())
        return 0
    if argv[0] == "--version":
        print(f"llava-cot {__version__}")
        return 0
    name, rest = _resolve(argv)
    if name is None:
        group = _group_help(argv[0])
        if group is not None and (len(argv) == 1 or argv[1] in ("-h", "--help")):
            print(group)
            return 0
        print(f"llava-cot: error: unknown command {' '.join(argv[:2])!r}; see `llava-cot --help`", file=sys.stderr)
        return 2
    target, _ = COMMANDS[name]
    module_name, cls_name = target.split(":")
    module = importlib.import_module(module_name)
    config_cls = getattr(module, cls_name)
    args = build_parser(f"llava-cot {name}", config_cls).parse_args(rest)
    try:
        return int(module.main(config_cls(**vars(args))) or 0)
    except LlavaCotError as e:
        print(f"llava-cot: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llava-cot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
