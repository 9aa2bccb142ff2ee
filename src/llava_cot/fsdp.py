"""FSDP2 for `llava-cot train --fsdp`: the model loaded sharded, checkpoints kept sharded, the
final model gathered into a standard checkpoint in the base model's dtype.

    torchrun --standalone --nproc-per-node 8 -m llava_cot.train --fsdp --model DIR_OR_ID ...
    torchrun --standalone --nproc-per-node 2 -m llava_cot.train --fsdp --device cpu ...   (CPUs, gloo)

accelerate's FSDP plugin only shards on GPUs (on CPUs it silently trains data-parallel, every
rank holding the whole model), and it shards a model that every rank has first loaded whole.
transformers can instead shard while loading (`from_pretrained(distributed_config=
DistributedConfig(fsdp_size=N))`): each rank builds the model on the meta device, wraps its
blocks with `fully_shard`, and reads only its own slice of every tensor from the checkpoint
files, on a GPU or a CPU alike. No process ever holds the whole model until the final save.

The shard units are the blocks the model declares unsplittable (`_no_split_modules`: for
Llama-3.2-Vision the vision encoder layers and both kinds of decoder layer, self- and
cross-attention), on top of transformers' default plan (embeddings, decoder layers, final norm).

transformers' `Trainer` trains such a model, but does not checkpoint its optimizer (it refuses
unless told to save the model only). `trainer_class()` adds what resuming needs: every rank
writes its shard of the model and of the optimizer state (torch.distributed.checkpoint), the
scheduler and its own RNG state, and reads them back on `--resume`.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
from pathlib import Path
from typing import Any

OPTIMIZER_DIR = "optimizer"  # inside checkpoint-N/: each rank's shard of the Adam state
SCHEDULER_FILE = "scheduler.pt"


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def plan(name: str) -> dict[str, str]:
    """An FSDP plan (module name pattern -> style) making each block of `_no_split_modules` a
    shard unit. Read off the model built on the meta device, which costs no memory."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    with torch.device("meta"):
        skeleton = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(name))
    blocks = set(getattr(skeleton, "_no_split_modules", None) or [])
    # "model.language_model.layers.3" -> "model.language_model.layers.*", as transformers' plans write it
    return {re.sub(r"\.\d+(\.|$)", r".*\1", module): "free_full_weight"
            for module, m in skeleton.named_modules() if type(m).__name__ in blocks}


def load(name: str, dtype: Any, bf16: bool) -> Any:
    """The model `name` (a directory or hub id, or a checkpoint-N/ of a sharded run), sharded over
    all processes as it loads: each rank reads its slice of every tensor, cast to `dtype` (float32
    master weights for a full fine-tune: a slice of them per rank, never the whole model). With
    `bf16`, blocks are gathered and computed in bfloat16 and gradients reduced in float32."""
    from transformers import AutoModelForImageTextToText
    from transformers.distributed import DistributedConfig

    config = DistributedConfig(fsdp_size=world_size(), fsdp_plan=plan(name), fsdp_mixed_precision=bf16)
    return AutoModelForImageTextToText.from_pretrained(name, dtype=dtype, distributed_config=config)


def is_sharded(model: Any) -> bool:
    return bool(getattr(model, "is_distributed_loading_by_transformers", False))


def full_state_dict(model: Any, dtype: Any) -> dict[str, Any]:
    """The whole model's state on rank 0 (empty on the others), floating tensors cast to `dtype`.
    Gathered one tensor at a time, so rank 0 holds the result plus one full tensor, never a second
    float32 copy of the model. Every rank must call this (each gather is a collective)."""
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor

    main = dist.get_rank() == 0
    state = {}
    for key, t in model.state_dict().items():
        full = t.full_tensor() if isinstance(t, DTensor) else t
        if main:
            state[key] = full.to("cpu", dtype=dtype if full.is_floating_point() else full.dtype)
        del full
    return state if main else {}


def save_full(model: Any, out: str | os.PathLike[str], dtype: Any) -> None:
    """Write the sharded `model` to `out` as a standard checkpoint in `dtype` (every rank calls;
    rank 0 writes). The weights go through a meta-device copy of the architecture, so that
    `save_pretrained` writes them in the checkpoint layout without gathering anything again."""
    import torch
    import torch.distributed as dist
    from transformers import AutoModelForImageTextToText

    state = full_state_dict(model, dtype)
    if dist.get_rank() == 0:
        config = copy.deepcopy(model.config)
        config.__dict__.pop("distributed_config", None)  # the saved model is a plain one
        with torch.device("meta"):
            skeleton = AutoModelForImageTextToText.from_config(config, dtype=dtype)
        skeleton.save_pretrained(out, state_dict=state)
    dist.barrier()


def save_final(trainer: Any, out: Path, dtype: Any, lora_base: str | None = None, merge: bool = True) -> None:
    """The final save of a sharded run (every rank calls): the shards gathered into one standard
    checkpoint in `dtype`; with LoRA (on the base `lora_base`) the adapter, merged by default."""
    if lora_base is None:
        save_full(trainer.accelerator.unwrap_model(trainer.model), out, dtype)
        return
    # every process holds the adapter whole (only the base is sharded); the first one writes it
    adapter = out / "adapter" if merge else out
    trainer.save_model(str(adapter))
    if merge:
        merge_lora(adapter, lora_base, out, dtype)
        if trainer.is_world_process_zero():
            shutil.rmtree(adapter)


def merge_lora(adapter: str | os.PathLike[str], base: str, out: str | os.PathLike[str], dtype: Any) -> None:
    """Rank 0 merges a saved LoRA adapter into the base model loaded whole, once, in `dtype`,
    and writes the merged standard checkpoint to `out`."""
    import torch.distributed as dist
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    if dist.get_rank() == 0:
        model = AutoModelForImageTextToText.from_pretrained(base, dtype=dtype)
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        merged.save_pretrained(out)
    dist.barrier()


def trainer_class() -> type:
    """transformers' Trainer, able to checkpoint and resume a model sharded at load time."""
    import torch
    from transformers import Trainer
    from transformers.distributed.checkpoint import load_optimizer_distributed, save_optimizer_distributed
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    class ShardedTrainer(Trainer):
        """Checkpoints hold each rank's shard of the weights (or the LoRA adapter, which every rank
        holds whole) and of the optimizer state; `train(resume_from_checkpoint=...)` reads them."""

        def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
            peft = hasattr(self.model, "peft_config")
            if not _internal_call or peft:
                return super().save_model(output_dir, _internal_call)
            # a checkpoint: every rank writes its own shard; nothing is gathered
            self.model.save_pretrained(output_dir, distributed_checkpoint=True, is_main_process=self.args.should_save)
            if self.args.should_save and self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)

        def _save_checkpoint(self, model: Any, trial: Any) -> None:
            out = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            # optimizer, scheduler and RNG first: the trainer state, written last by the parent,
            # marks the checkpoint complete
            save_optimizer_distributed(self.model, self.optimizer, str(out / OPTIMIZER_DIR))
            if self.args.should_save:
                torch.save(self.lr_scheduler.state_dict(), out / SCHEDULER_FILE)
            self._save_rng_state(str(out))
            super()._save_checkpoint(model, trial)

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            if hasattr(self.model, "peft_config"):
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            # the weights were read from the checkpoint's shards when the model was loaded (`load`)

        def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
            if checkpoint is None:
                return
            load_optimizer_distributed(self.model, self.optimizer, str(Path(checkpoint) / OPTIMIZER_DIR))
            self.lr_scheduler.load_state_dict(torch.load(Path(checkpoint) / SCHEDULER_FILE, weights_only=True))

    return ShardedTrainer
