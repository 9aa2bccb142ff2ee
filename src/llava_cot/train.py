"""`llava-cot train`: fine-tune a vision-language model on four-stage data, or train a tiny one.

    llava-cot train --data DIR_OR_FILE --out DIR [--model DIR_OR_ID | --init tiny]
                    [--format structured|untagged|direct] [--lora] [--epochs E | --max-steps N] ...
    python -m llava_cot.train ...                                    (the same command)
    accelerate launch --num_processes N -m llava_cot.train ...       (N GPUs, data parallel)
    torchrun --standalone --nproc_per_node N -m llava_cot.train ...  (the same, also on CPUs over gloo)
    torchrun ... -m llava_cot.train --fsdp ...                       (sharded: see `fsdp`, docs/training.md)

Any Hugging Face image-text-to-text checkpoint trains the same way: each record's prompt and
image go through the model's own processor and chat template (see `sft`), and the loss is on the
assistant's turn only. Writes to --out: checkpoint-N/ every --save-steps (and --resume continues
from the latest), metrics.jsonl (one line per log: step, loss, lr, tokens_per_s, elapsed), and
at the end the model and processor as a standard checkpoint that `AutoModelForImageTextToText`
and `llava-cot ask --model DIR` load, in the base checkpoint's dtype (--dtype). With --lora the
adapter is merged into the base first (unless --no-merge, which saves the adapter alone).

The loop is transformers' `Trainer` with our collator, not TRL's `SFTTrainer`: SFTTrainer's
value is its data preparation (chat templating, completion masks, VLM collation), and that is
exactly the part we own in `sft` (the loss mask derived from the template with the image
expanded, our record layout, lazy image loading). With those replaced, SFTTrainer adds only
a heavier import and a second set of dataset conventions; Trainer alone still gives us DDP and
FSDP through accelerate, gradient accumulation, mixed precision, checkpoints and exact resume.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llava_cot import models, records
from llava_cot.errors import LlavaCotError
from llava_cot.records import Record

FORMAT_CHOICES = ["structured", "untagged", "direct"]
# Learning rates by what is trained: the paper's full fine-tune of Llama-3.2-11B-Vision used
# 1e-5; LoRA adapters start at zero and want a larger step; a model from scratch larger still.
DEFAULT_LR = {"full": 1e-5, "lora": 2e-4, "tiny": 1e-3}
# Batches are padded to a multiple of this many tokens: CPU (oneDNN) kernels are prepared per
# shape, and a new length at every step spent more time preparing kernels than computing.
PAD_MULTIPLE = 64
VISION_SCENES = 8192  # scene graphs read for the tiny recipe's vision phase


@dataclass
class TrainConfig:
    """Fine-tune a vision-language model on four-stage data (full or LoRA), or train a tiny one from scratch."""

    data: str = field(metadata={"help": "training data: a JSONL / JSON file, or a directory holding train.jsonl"})
    out: str = field(metadata={"help": "output directory: checkpoints, metrics.jsonl, and the final model"})
    model: str | None = field(default=None, metadata={
        "help": "model to fine-tune: a local directory or hub id (default: the embedded model)"})
    init: str | None = field(default=None, metadata={
        "help": "build a new model instead of loading one: 'tiny' (a small Llava, tokenizer trained on the data)",
        "choices": ["tiny"]})
    format: str = field(default="structured", metadata={
        "help": "what the model learns to answer: the four-stage response, the same text untagged, or the answer alone",
        "choices": FORMAT_CHOICES})
    images: str | None = field(default=None, metadata={
        "help": "root the records' image paths are relative to (default: the data file's directory)"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the data"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many optimizer steps (overrides --epochs)"})
    batch_size: int = field(default=4, metadata={"help": "examples per device per step"})
    grad_accum: int = field(default=1, metadata={"help": "steps of gradient accumulation per optimizer step"})
    lr: float | None = field(default=None, metadata={
        "help": "peak learning rate (default: 1e-5 full fine-tune, 2e-4 LoRA, 1e-3 --init tiny)"})
    warmup_ratio: float = field(default=0.03, metadata={"help": "fraction of the steps spent warming up the learning rate"})
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters on the language model's linear layers only"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (the scale is alpha / r)"})
    merge: bool = field(default=True, metadata={"help": "with --lora, merge the adapter into the saved model"})
    dtype: str = field(default="auto", metadata={
        "help": "dtype of the saved model: auto (the base checkpoint's own, e.g. bfloat16 for Llama-3.2-Vision; "
                "float32 for --init tiny); a full fine-tune keeps float32 master weights while training",
        "choices": ["auto", "float32", "bfloat16", "float16"]})
    bf16: str = field(default="auto", metadata={
        "help": "bfloat16 mixed precision: auto (where the GPU or CPU computes it natively), on, off",
        "choices": ["auto", "on", "off"]})
    vision_steps: int = field(default=400, metadata={
        "help": "with --init tiny and a scene-graph file beside the data (DATA_scenes.jsonl, as `data synth` "
                "writes): steps of the vision phase that first teaches the vision tower each cell's object"})
    freeze_vision: bool = field(default=False, metadata={
        "help": "keep the vision tower's weights fixed (train the projector and language model)"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations to save memory"})
    fsdp: bool = field(default=False, metadata={
        "help": "shard parameters, gradients and optimizer state across the processes (FSDP2, under torchrun; "
                "GPUs or CPUs): each process loads only its shard, checkpoints stay sharded"})
    seed: int = field(default=0, metadata={"help": "random seed (initialisation, data order, dropout)"})
    save_steps: int = field(default=500, metadata={"help": "write a checkpoint every this many optimizer steps"})
    logging_steps: int = field(default=10, metadata={"help": "log loss, learning rate and speed every this many steps"})
    resume: bool = field(default=False, metadata={"help": "continue from the latest checkpoint in --out"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    max_length: int = field(default=2048, metadata={"help": "longest example in tokens; longer answers are cut"})
    num_workers: int = field(default=2, metadata={"help": "data loader processes (images are read and processed there)"})


# ---------------------------------------------------------------------------------------------
# Data


def data_file(path: str | os.PathLike[str]) -> Path:
    """The data file named by --data: the file itself, or train.jsonl (else the only .jsonl) in a directory."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if not p.is_dir():
        raise LlavaCotError(f"--data {path} does not exist")
    if (p / "train.jsonl").is_file():
        return p / "train.jsonl"
    # the synthetic generator's *_scenes.jsonl sidecar holds scene graphs, not records
    found = sorted(q for q in p.glob("*.json*") if q.suffix in (".jsonl", ".json") and not q.stem.endswith("_scenes"))
    if len(found) != 1:
        raise LlavaCotError(f"--data {path} has no train.jsonl and {len(found)} other data files; name the file")
    return found[0]


def load_records(path: Path, images: Path, log: Any = sys.stderr) -> list[Record]:
    """The usable records of `path`. A malformed record, or one whose image is missing, is
    reported with its line number on `log` (None: silently) and skipped."""
    log = log or io.StringIO()  # processes other than the first stay quiet: one report is enough
    good = []
    for rec in records.read(path, on_error="skip", log=log):
        if rec.image is not None and not (images / rec.image).is_file():
            print(f"{path}: skipping record at line {rec.line} (id {rec.id}): "
                  f"image {rec.image} not found under {images}", file=log)
            continue
        good.append(rec)
    if not good:
        raise LlavaCotError(f"{path} has no usable records (see `llava-cot data check {path} --images {images}`)")
    return good


# ---------------------------------------------------------------------------------------------
# Model


def build_model(cfg: TrainConfig, texts: list[str], checkpoint: str | None,
                processor: Any = None) -> tuple[Any, Any]:
    """(model, processor) to train: a tiny model built on the data's `texts`, the --model, or,
    when resuming a full fine-tune, the checkpoint's own weights and processor. A `processor`
    given replaces the model's own (for one AutoProcessor cannot build)."""
    # A LoRA base can stay in bf16 (only the float32 adapters get optimizer state); a full
    # fine-tune keeps float32 master weights and runs the maths in bf16 under autocast.
    # On a CPU the base stays float32 too: its bf16 autocast speeds the maths, not the storage.
    on_gpu = models.pick_device(cfg.device) != "cpu"
    dtype = "bfloat16" if cfg.lora and on_gpu and use_bf16(cfg) else "float32"
    # transformers 5's Trainer restores weights on resume with a non-strict load_state_dict
    # of the checkpoint file, whose keys are saved in the original (pre-v5) layout for these
    # VLMs: nothing matches, so nothing is loaded (a logged warning at most). from_pretrained
    # maps the keys; the trainer then restores optimizer, scheduler, RNG and data position.
    source = checkpoint if checkpoint and not cfg.lora else models.resolve(cfg.model)
    if cfg.fsdp:
        from llava_cot import fsdp

        # sharded as it loads: each process reads its slice of every tensor (no whole copy anywhere)
        model = fsdp.load(source, models.pick_dtype(dtype, "cpu"), bf16=use_bf16(cfg))
        return model, processor or load_processor(source)
    if checkpoint and not cfg.lora:
        return pretrained(source, "float32", processor)
    if cfg.init == "tiny":
        try:
            from llava_cot import tiny
        except ImportError as e:
            raise LlavaCotError(f"--init tiny is unavailable in this installation ({e})") from None
        model, processor = tiny.build(texts, seed=cfg.seed)
        vision_phase(cfg, model, processor)
        return model, processor
    return pretrained(source, dtype, processor)


def pretrained(name: str, dtype: str, processor: Any = None) -> tuple[Any, Any]:
    """(model, processor) of a checkpoint, the model on the CPU in `dtype`."""
    if processor is None:
        loaded = models.load(name, device="cpu", dtype=dtype)
        return loaded.model, loaded.processor
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(name, dtype=models.pick_dtype(dtype, "cpu")), processor


def load_processor(name: str) -> Any:
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(name)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LlavaCotError(f"cannot load the processor of {name!r}: {first}") from None


def save_dtype(cfg: TrainConfig) -> Any:
    """--dtype as a torch dtype; auto is the base checkpoint's own (its config's), float32 if it names none."""
    import torch

    if cfg.dtype != "auto":
        return models.pick_dtype(cfg.dtype, "cpu")
    if cfg.init:
        return torch.float32
    from transformers import AutoConfig

    dtype = getattr(AutoConfig.from_pretrained(models.resolve(cfg.model)), "dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def vision_phase(cfg: TrainConfig, model: Any, processor: Any) -> None:
    """The tiny recipe's first phase, when the data comes with scene graphs (see tiny.pretrain_vision)."""
    from llava_cot import tiny

    path = data_file(cfg.data)
    scenes_file = path.with_name(f"{path.stem}_scenes.jsonl")
    if cfg.vision_steps <= 0 or not scenes_file.is_file():
        return
    with scenes_file.open() as f:  # a sample of scenes is plenty for a few hundred steps
        scenes = [json.loads(line) for line, _ in zip(f, range(VISION_SCENES), strict=False) if line.strip()]
    images = cfg.images or str(path.parent)
    quiet = int(os.environ.get("RANK", "0")) != 0
    tiny.pretrain_vision(model, processor, scenes, images, steps=cfg.vision_steps, seed=cfg.seed,
                         log=None if quiet else (lambda msg: print(msg, file=sys.stderr)))


def lora_targets(model: Any) -> str:
    """A regex (PEFT matches it against whole module names) for the language model's linear
    layers: attention and MLP projections, including Mllama's cross-attention, but not the
    vision tower, the projector or the output head."""
    import torch

    names = {name.rsplit(".", 1)[-1] for name, mod in model.named_modules()
             if isinstance(mod, torch.nn.Linear) and "language_model." in f"{name}."}
    if not names:
        raise LlavaCotError(f"{type(model).__name__} has no language_model submodule to put LoRA adapters on")
    return rf".*language_model\..*\.({'|'.join(sorted(names))})"


def add_lora(model: Any, cfg: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.05,
                        target_modules=lora_targets(model), task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    if cfg.gradient_checkpointing:
        peft_model.enable_input_require_grads()  # frozen embeddings would cut the recomputed graph
    return peft_model


def use_bf16(cfg: TrainConfig) -> bool:
    if cfg.bf16 != "auto":
        return cfg.bf16 == "on"
    import torch

    if models.pick_device(cfg.device) != "cpu":
        return torch.cuda.is_bf16_supported()
    # CPUs with AVX512-BF16 or AMX run bf16 autocast 2-3x faster than float32 (measured on the
    # tiny model); elsewhere bf16 on a CPU is emulated and slower, so stay in float32.
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


# ---------------------------------------------------------------------------------------------
# Trainer pieces


def metrics_log(path: Path, append: bool) -> Any:
    """A TrainerCallback writing one JSON line per log event to `path` (main process only).
    tokens_per_s counts the non-padding input tokens (prompt, image and answer) of every process
    since the previous line. Defined here so that `llava-cot train --help` imports no transformers."""
    from transformers import TrainerCallback

    class MetricsLog(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.start = self.last_time = time.perf_counter()
            self.last_tokens = state.num_input_tokens_seen
            if state.is_world_process_zero and not append:
                path.write_text("")

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not state.is_world_process_zero or "loss" not in (logs or {}):
                return
            now, tokens = time.perf_counter(), state.num_input_tokens_seen
            line = {"step": state.global_step, "loss": logs["loss"], "lr": logs.get("learning_rate"),
                    "tokens_per_s": (tokens - self.last_tokens) / max(now - self.last_time, 1e-9),
                    "elapsed": now - self.start}
            self.last_time, self.last_tokens = now, tokens
            with path.open("a") as f:
                f.write(json.dumps(line) + "\n")

    return MetricsLog()


def training_args(cfg: TrainConfig) -> Any:
    """The Trainer's arguments. Made before the model loads: they set up the processes' group,
    which --fsdp loading shards over."""
    from transformers import TrainingArguments

    mode = "tiny" if cfg.init == "tiny" else "lora" if cfg.lora else "full"
    return TrainingArguments(
        output_dir=cfg.out, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr if cfg.lr is not None else DEFAULT_LR[mode], warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type="cosine", weight_decay=0.0, max_grad_norm=1.0,
        bf16=use_bf16(cfg), use_cpu=models.pick_device(cfg.device) == "cpu", seed=cfg.seed, data_seed=cfg.seed,
        activation_checkpointing=cfg.gradient_checkpointing,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=2,
        logging_strategy="steps", logging_steps=cfg.logging_steps, include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=cfg.num_workers, dataloader_pin_memory=models.pick_device(cfg.device) != "cpu",
        remove_unused_columns=False, report_to="none",
        # LoRA leaves the vision tower without gradients: tell DDP not to wait for them.
        ddp_find_unused_parameters=cfg.lora or None,
        # Trainer refuses to checkpoint the optimizer of a model sharded at load time unless told to
        # save the model only; fsdp.trainer_class() then saves the sharded optimizer state itself
        save_only_model=cfg.fsdp,
    )


def check(cfg: TrainConfig) -> None:
    if cfg.init and cfg.model:
        raise LlavaCotError("give --model (fine-tune it) or --init tiny (train from scratch), not both")
    if cfg.init == "tiny" and cfg.lora:
        raise LlavaCotError("--lora adapts a pretrained model; train a --init tiny model in full (drop --lora)")
    for name in ("epochs", "batch_size", "grad_accum", "save_steps", "logging_steps", "max_length"):
        if getattr(cfg, name) <= 0:
            raise LlavaCotError(f"--{name.replace('_', '-')} must be positive")
    if not 0 <= cfg.warmup_ratio < 1:
        raise LlavaCotError("--warmup-ratio must be in [0, 1)")
    if cfg.max_steps == 0 or cfg.max_steps < -1:
        raise LlavaCotError("--max-steps must be positive (or -1: train for --epochs)")
    device = models.pick_device(cfg.device)  # a clear error for cuda on a machine without one
    if cfg.fsdp and device == "cpu" and models.pick_device("auto") != "cpu":
        # transformers shards over the machine's accelerator whenever it has one
        raise LlavaCotError("--fsdp shards over this machine's GPUs: drop --device cpu")
    if cfg.fsdp and cfg.init:
        raise LlavaCotError("--fsdp shards a pretrained --model; a --init tiny model trains data-parallel (drop --fsdp)")
    if cfg.fsdp and int(os.environ.get("WORLD_SIZE", "1")) < 2:
        raise LlavaCotError("--fsdp shards the model across processes: launch with "
                            "`torchrun --nproc-per-node N -m llava_cot.train --fsdp ...` (N >= 2)")
    if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise LlavaCotError(f"--out {cfg.out} is a file; give a directory")


def hardware(args: Any) -> dict[str, Any]:
    """What a run trains on: processes, device, GPU name or CPU cores, bf16, torch version."""
    import platform

    import torch

    info: dict[str, Any] = {"processes": args.world_size, "device": str(args.device), "bf16": bool(args.bf16),
                            "torch": torch.__version__, "cpu_cores": os.cpu_count(), "cpu": platform.processor()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def save(trainer: Any, processor: Any, cfg: TrainConfig) -> None:
    """Write the final model and processor to --out, in --dtype (a LoRA adapter merged in, by default)."""
    out, dtype = Path(cfg.out), save_dtype(cfg)
    model = trainer.accelerator.unwrap_model(trainer.model)
    main = trainer.is_world_process_zero()
    if cfg.fsdp:
        from llava_cot import fsdp

        fsdp.save_final(trainer, out, dtype, lora_base=models.resolve(cfg.model) if cfg.lora else None,
                        merge=cfg.merge)
    elif not (cfg.lora and cfg.merge):
        if not cfg.lora:
            model.to(dtype)  # training is over: the float32 master weights are no longer needed
        trainer.save_model(cfg.out)
    elif main:
        model.merge_and_unload().to(dtype).save_pretrained(out)
    if main:
        processor.save_pretrained(out)
    trainer.accelerator.wait_for_everyone()


def finished(checkpoint: str | None, cfg: TrainConfig) -> Any:
    """The checkpoint's TrainerState when it already reached --max-steps and the final model was
    saved after it, else None. (Resumed at its last step, transformers' loop would still take one
    more optimizer step before it checks the limit.)"""
    from transformers import TrainerState

    if not checkpoint or cfg.max_steps < 1:
        return None
    path = Path(checkpoint) / "trainer_state.json"
    state = TrainerState.load_from_json(str(path))
    # the final save comes after the last checkpoint; an older one is from a shorter run
    saved = [f for f in (Path(cfg.out) / name for name in ("config.json", "adapter_config.json")) if f.is_file()]
    fresh = any(f.stat().st_mtime_ns >= path.stat().st_mtime_ns for f in saved)
    return state if fresh and state.global_step >= cfg.max_steps else None


def train(cfg: TrainConfig, processor: Any = None) -> Any:
    """Train as `cfg` says and save the result; returns the transformers Trainer (its `state`
    holds the step count and log history, its `model` the trained model). `processor` replaces
    the model's own, for one AutoProcessor cannot build."""
    from transformers.trainer_utils import get_last_checkpoint
    from transformers.utils import logging as hf_logging

    check(cfg)
    main_process = int(os.environ.get("RANK", "0")) == 0
    path = data_file(cfg.data)
    images = Path(cfg.images) if cfg.images else path.parent
    recs = load_records(path, images, sys.stderr if main_process else None)
    out = Path(cfg.out)
    checkpoint = get_last_checkpoint(cfg.out) if out.is_dir() else None
    if checkpoint and not cfg.resume:
        raise LlavaCotError(f"--out {cfg.out} holds checkpoints; pass --resume to continue, or choose another --out")
    if cfg.resume and not checkpoint and main_process:
        print(f"no checkpoint in {cfg.out}; starting from the beginning", file=sys.stderr)
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    # transformers' notes and loading/saving bars would bury the training progress bar
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return _train(cfg, recs, images, checkpoint, processor)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _train(cfg: TrainConfig, recs: list[Record], images: Path, checkpoint: str | None, processor: Any) -> Any:
    from transformers import Trainer

    from llava_cot import sft

    out = Path(cfg.out)
    args = training_args(cfg)  # first: it starts the process group that --fsdp loads the model over
    model, processor = build_model(cfg, sft.texts(recs, cfg.format), checkpoint, processor)
    if cfg.freeze_vision:
        vision = next((getattr(model.model, name) for name in ("vision_tower", "vision_model", "visual")
                       if hasattr(model.model, name)), None)
        if vision is None:
            raise LlavaCotError(f"--freeze-vision: {type(model).__name__} has no vision tower to freeze")
        vision.requires_grad_(False)
    if cfg.lora:
        model = add_lora(model, cfg)
    examples = sft.Examples(recs, processor, cfg.format, images=images, max_length=cfg.max_length)
    try:
        examples[0]  # fail now, not at the first batch, on a template or image the processor rejects
    except ValueError as e:
        raise LlavaCotError(f"cannot make a training example for this model: {e}") from None
    out.mkdir(parents=True, exist_ok=True)
    trainer_class = Trainer
    if cfg.fsdp:
        from llava_cot import fsdp

        trainer_class = fsdp.trainer_class()  # the same loop, checkpointing each process's shards
    trainer = trainer_class(model=model, args=args, train_dataset=examples,
                      data_collator=sft.Collator(sft.pad_token_id(processor), pad_to_multiple_of=PAD_MULTIPLE), processing_class=processor,
                      callbacks=[metrics_log(out / "metrics.jsonl", append=bool(checkpoint))])
    done = finished(checkpoint, cfg)
    if done is not None:
        trainer.state = done
        if trainer.is_world_process_zero():
            print(f"{out} already holds the model of all {done.global_step} steps; nothing to train", file=sys.stderr)
        return trainer
    if trainer.is_world_process_zero():
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
        with (out / "hardware.jsonl").open("a") as f:  # one line per start or resume, for model cards
            f.write(json.dumps({"from_checkpoint": checkpoint, **hardware(trainer.args)}) + "\n")
    result = trainer.train(resume_from_checkpoint=checkpoint)
    save(trainer, processor, cfg)
    if trainer.is_world_process_zero():
        print(f"trained {result.global_step} steps on {len(recs)} records "
              f"(loss {result.training_loss:.4f}); model saved to {out}")
    return trainer


def main(cfg: TrainConfig) -> int:
    train(cfg)
    return 0


if __name__ == "__main__":
    from llava_cot import cli

    raise SystemExit(cli.main(["train", *sys.argv[1:]]))
