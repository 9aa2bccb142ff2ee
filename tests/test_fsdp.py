"""`llava-cot train --fsdp` end to end on two CPU processes (torchrun, gloo), as on a GPU node:
a tiny Mllama (Llama-3.2-Vision, the paper's architecture) and a tiny Qwen2-VL, each process
holding half of every sharded block. Both processes step together, the loss falls, the final
model is one standard checkpoint in the base model's dtype that `AutoModelForImageTextToText`
loads and `llava-cot ask` answers with; --resume from a sharded checkpoint continues exactly;
LoRA trains under FSDP and merges.

    OMP_NUM_THREADS=1 python -m pytest -q -p no:randomly tests/test_fsdp.py

(Slow: each launch of two processes takes 40-55 s on 2 shared cores, about 4 minutes in all.)
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tiny_vlms
from llava_cot import cli, fsdp, records
from llava_cot.synth.generate import SynthConfig, generate

# Each process: run `llava-cot train` with the command-line arguments given, then report what
# it trained from its own side: steps, the loss history it logged, how much of the model it held.
HARNESS = """
import hashlib, json, os, sys
sys.path.insert(0, {tests!r})
import tiny_vlms
from llava_cot import cli, fsdp, train

class StandIn(tiny_vlms.Qwen2VLStandIn):  # Qwen2VLProcessor needs torchvision (see tiny_vlms.unavailable)
    def save_pretrained(self, out):
        self.tokenizer.save_pretrained(out)
        self.image_processor.save_pretrained(out)

kind, *argv = sys.argv[1:]
cfg = train.TrainConfig(**vars(cli.build_parser("train", train.TrainConfig).parse_args(argv)))
processor = None
if kind == "stand-in":
    from transformers import AutoTokenizer, Qwen2VLImageProcessorPil
    processor = StandIn(AutoTokenizer.from_pretrained(cfg.model), Qwen2VLImageProcessorPil.from_pretrained(cfg.model))
trainer = train.train(cfg, processor)
model = trainer.accelerator.unwrap_model(trainer.model)
params = list(model.parameters())
# the trainable tensors FSDP does not shard (LoRA adapters added after sharding) must stay equal
whole = [p for p in params if p.requires_grad and not hasattr(p, "to_local")]
digest = hashlib.sha256(b"".join(p.detach().float().numpy().tobytes() for p in whole)).hexdigest()
with open(os.path.join(cfg.out, "rank" + os.environ["RANK"] + ".json"), "w") as f:
    json.dump({{"step": trainer.state.global_step, "world": trainer.args.world_size, "sharded": fsdp.is_sharded(model),
               "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
               "held": sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in params),
               "total": sum(p.numel() for p in params), "whole": len(whole), "digest": digest}}, f)
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """(two records, their image directory): with one record per process per step, every step
    sees the same two examples, so the loss falls within a few steps."""
    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(out=str(out), n=4, seed=0))
    two = out / "two.jsonl"
    records.write(two, list(records.read(out / "train.jsonl"))[:2])
    return two, out


@pytest.fixture(scope="module")
def mllama(root) -> Path:
    """The tiny Mllama saved in bfloat16, as Llama-3.2-Vision's checkpoints are."""
    from transformers import AutoModelForImageTextToText

    path = tiny_vlms.cached("mllama", root)
    bf16 = root / "mllama-bf16"
    if not bf16.is_dir():
        AutoModelForImageTextToText.from_pretrained(path, dtype=torch.bfloat16).save_pretrained(bf16)
        for f in path.iterdir():  # processor, tokenizer and template files
            if not (bf16 / f.name).exists():
                shutil.copy(f, bf16 / f.name)
    return bf16


@pytest.fixture(scope="module")
def qwen2_vl(root) -> Path:
    """The tiny Qwen2-VL with its tokenizer and image processor (not its processor: see tiny_vlms)."""
    out = root / "qwen2_vl-parts"
    if not out.is_dir():
        torch.manual_seed(0)
        model, tok, images = tiny_vlms.qwen2_vl_parts()
        model.save_pretrained(out)
        tok.save_pretrained(out)
        images.save_pretrained(out)
    return out


def launch(out: Path, model: Path, data: tuple[Path, Path], *args: str, kind: str = "own") -> list[dict]:
    """Run the harness on 2 processes, with the model's own processor or (`kind="stand-in"`)
    the Qwen2-VL stand-in; returns each rank's report."""
    script = out.parent / f"{out.name}-harness.py"
    script.write_text(HARNESS.format(tests=str(Path(__file__).parent)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script), kind,
           "--fsdp", "--data", str(data[0]), "--images", str(data[1]), "--out", str(out), "--model", str(model),
           "--batch-size", "1", "--logging-steps", "1", "--num-workers", "0", "--device", "cpu", *args]
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def weights(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(path).state_dict()


def test_the_plan_makes_every_block_a_shard_unit(mllama, qwen2_vl):
    """Mllama's vision encoder layers (local and global) and both kinds of decoder layer, and
    Qwen2-VL's vision blocks and decoder layers, each become their own shard unit."""
    assert set(fsdp.plan(str(mllama))) == {
        "model.vision_model.transformer.layers.*", "model.vision_model.global_transformer.layers.*",
        "model.language_model.layers.*"}  # cross-attention layer 1 and self-attention layers 0 and 2
    assert set(fsdp.plan(str(qwen2_vl))) == {"model.visual.blocks.*", "model.language_model.layers.*"}


@pytest.fixture(scope="module")
def straight(mllama, data, tmp_path_factory) -> tuple[Path, list[dict]]:
    """Four steps of a full fine-tune of Mllama, checkpointed after the second."""
    out = tmp_path_factory.mktemp("fsdp") / "straight"
    return out, launch(out, mllama, data, "--max-steps", "4", "--save-steps", "2", "--lr", "1e-2", "--warmup-ratio", "0")


@pytest.mark.slow
def test_two_processes_shard_mllama_and_save_a_standard_checkpoint(straight, mllama, tmp_path):
    out, ranks = straight
    for r in ranks:
        assert r["world"] == 2 and r["sharded"] and r["step"] == 4
        # each process holds about half of the model (small tensors that do not split evenly aside)
        assert r["held"] < 0.6 * r["total"]
    assert ranks[0]["losses"] == ranks[1]["losses"] == [m["loss"] for m in metrics(out)]
    losses = ranks[0]["losses"]
    assert len(losses) == 4 and all(b < a for a, b in itertools.pairwise(losses)) and losses[-1] < losses[0] - 0.3
    # the checkpoint keeps each process's shards, of the weights and of the optimizer state
    ckpt = out / "checkpoint-2"
    assert len(list(ckpt.glob("shard-0000?-model-*.safetensors"))) == 2 and not (ckpt / "model.safetensors").exists()
    assert len(list((ckpt / fsdp.OPTIMIZER_DIR).glob("*.distcp"))) == 2
    # the final model is one standard checkpoint, in the base model's dtype, that training changed
    from transformers import AutoModelForImageTextToText

    trained = AutoModelForImageTextToText.from_pretrained(out)
    assert type(trained).__name__ == "MllamaForConditionalGeneration" and trained.dtype == torch.bfloat16
    from safetensors import safe_open

    with safe_open(out / "model.safetensors", "pt") as saved, safe_open(mllama / "model.safetensors", "pt") as base:
        assert set(saved.keys()) == set(base.keys())  # the checkpoint layout, key for key
    before, after = weights(mllama), trained.state_dict()
    assert set(before) == set(after)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("vision_model" in k for k in moved) and any("cross_attn" in k for k in moved)
    image = Path(__file__).parents[1] / "examples" / "scene1.png"
    assert cli.main(["ask", "--model", str(out), "--image", str(image), "How many circles are there?",
                     "--json", "--max-new-tokens", "8", "--device", "cpu"]) == 0


@pytest.mark.slow
def test_resume_from_a_sharded_checkpoint_continues_exactly(straight, mllama, data, tmp_path):
    out, ranks = straight
    cut = tmp_path / "cut"  # the same run interrupted after step 2, then resumed
    shutil.copytree(out / "checkpoint-2", cut / "checkpoint-2")
    (cut / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics(out)[:2]))
    resumed = launch(cut, mllama, data, "--max-steps", "4", "--save-steps", "2", "--lr", "1e-2", "--warmup-ratio", "0", "--resume")
    assert [m["step"] for m in metrics(cut)] == [1, 2, 3, 4]
    assert [m["loss"] for m in metrics(cut)] == ranks[0]["losses"]
    # each process's log: the first two steps restored from the checkpoint, the last two trained again
    assert resumed[0]["losses"] == resumed[1]["losses"] == ranks[0]["losses"]
    a, b = weights(out), weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_processes_shard_qwen2_vl(qwen2_vl, data, tmp_path):
    out = tmp_path / "qwen"
    ranks = launch(out, qwen2_vl, data, "--max-steps", "4", "--save-steps", "1000", "--lr", "1e-2", "--warmup-ratio", "0", kind="stand-in")
    assert all(r["sharded"] and r["step"] == 4 and r["held"] < 0.6 * r["total"] for r in ranks)
    losses = ranks[0]["losses"]
    assert ranks[1]["losses"] == losses and losses[-1] < losses[0] - 0.5
    before, after = weights(qwen2_vl), weights(out)
    assert set(before) == set(after) and any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_lora_under_fsdp_trains_the_adapters_and_merges(mllama, data, tmp_path):
    out = tmp_path / "lora"
    ranks = launch(out, mllama, data, "--lora", "--max-steps", "3", "--save-steps", "1000", "--lr", "1e-2")
    assert all(r["sharded"] and r["step"] == 3 for r in ranks)
    assert ranks[0]["losses"] == ranks[1]["losses"] and ranks[0]["losses"][-1] < ranks[0]["losses"][0]
    # the adapters are not sharded: every process holds them whole, and they stay the same on both
    assert ranks[0]["whole"] > 0 and ranks[0]["digest"] == ranks[1]["digest"]
    assert not (out / "adapter_config.json").exists() and not (out / "adapter").exists()  # merged
    before, after = weights(mllama), weights(out)
    assert set(before) == set(after)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all("language_model" in k and k.endswith("proj.weight") for k in moved)


def test_without_fsdp_the_final_model_keeps_the_base_dtype_too(mllama, data, tmp_path):
    """Data-parallel or on one process, training keeps float32 master weights, and the final
    model is saved in the base checkpoint's dtype (--dtype auto), not in float32."""
    from transformers import AutoModelForImageTextToText

    from llava_cot import train

    cfg = dict(data=str(data[0]), images=str(data[1]), model=str(mllama), max_steps=1, batch_size=1,
               num_workers=0, device="cpu", save_steps=1000)
    train.train(train.TrainConfig(out=str(tmp_path / "auto"), **cfg))
    assert AutoModelForImageTextToText.from_pretrained(tmp_path / "auto").dtype == torch.bfloat16
    train.train(train.TrainConfig(out=str(tmp_path / "fp32"), dtype="float32", **cfg))
    assert AutoModelForImageTextToText.from_pretrained(tmp_path / "fp32").dtype == torch.float32
