"""Training: examples and loss masks (`llava_cot.sft`) on Llava, Mllama and Qwen2-VL, and the
`llava-cot train` command (`llava_cot.train`) end to end on tiny models and synthetic data:
parameters move and loss falls, LoRA trains adapters only and merges, resume is exact, bad
records are skipped with their line, and two processes step together.

    /work/venv/bin/python -m pytest -q tests/test_train.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import tiny_vlms
from llava_cot import cli, models, records, sft, stages, train
from llava_cot.errors import LlavaCotError
from llava_cot.records import Record
from llava_cot.synth.generate import SynthConfig, generate

# What is learned of an assistant turn, per template (tests/tiny_vlms.py): what the turn adds
# after the generation prompt, ending with the end-of-turn token. Llava-1.5's template writes
# none (its turn is " answer "): the tokenizer's EOS ends it instead, as the model stops on it.
# Qwen2-VL's newline after <|im_end|> comes after the end, and is not learned.
COMPLETION = {"llava": " {}</s>", "mllama": "{}<|eot_id|>", "qwen2_vl": "{}<|im_end|>"}
# Llava-1.5 and Llama-2's SentencePiece tokenizer, as llava-hf ships them
SENTENCEPIECE = "llava_sentencepiece"


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(out=str(out), n=16, seed=0))
    return out


@pytest.fixture(scope="module")
def recs(synth) -> list[Record]:
    return list(records.read(synth / "train.jsonl"))


def processor_for(arch: str, root: Path):
    if tiny_vlms.unavailable(arch):
        _, tok, images = tiny_vlms.qwen2_vl_parts()
        return tiny_vlms.Qwen2VLStandIn(tok, images)
    return models.load(tiny_vlms.cached(arch, root), device="cpu").processor


def labelled(ex: dict[str, torch.Tensor]) -> torch.Tensor:
    labels = ex["labels"][0]
    return labels[labels != sft.IGNORE]


def config(data, out, **kw) -> train.TrainConfig:
    base = dict(data=str(data), out=str(out), max_steps=4, batch_size=2, logging_steps=1, num_workers=0,
                device="cpu", save_steps=1000, lr=1e-3)
    return train.TrainConfig(**{**base, **kw})


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def weights(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(path).state_dict()


# ---------------------------------------------------------------------------------------------
# Examples: formats, loss mask, batches


def test_formats(recs):
    rec = recs[0]
    assert sft.target(rec, "structured") == rec.response.strip()
    untagged = sft.target(rec, "untagged")
    assert not stages.parse(untagged).stages and stages.parse(rec.response).stages["REASONING"] in untagged
    assert sft.target(rec, "direct") == rec.extra["answer"]
    no_gold = Record.make("x", "q?", rec.response, image=rec.image)
    assert sft.target(no_gold, "direct") == stages.parse(rec.response).stages["CONCLUSION"]
    with pytest.raises(ValueError, match="unknown format"):
        sft.target(rec, "json")


@pytest.mark.parametrize("arch", tiny_vlms.ARCHS)
def test_exactly_the_assistant_turn_is_labelled(arch, root, recs, synth):
    processor = processor_for(arch, root)
    rec, image = recs[0], Image.open(synth / recs[0].image)
    ex = sft.encode(processor, rec.question, rec.response, image)
    assert processor.tokenizer.decode(labelled(ex)) == COMPLETION[arch].format(rec.response)
    # the labels are one block at the end, and what precedes them is exactly the inference prompt
    n_prompt = int((ex["labels"][0] == sft.IGNORE).sum())
    assert (ex["labels"][0, n_prompt:] != sft.IGNORE).all()
    prompt = sft.process(processor, models.prompt_text(processor, rec.question), image)
    assert torch.equal(ex["input_ids"][0, :n_prompt], prompt["input_ids"][0])


def test_mllama_example_equals_processing_the_whole_conversation(root, recs, synth):
    # Appending the completion repeats the prompt's last position in the other sequence tensors;
    # for Mllama's cross-attention mask that must give what the processor computes on the full text.
    processor = processor_for("mllama", root)
    rec, image = recs[1], Image.open(synth / recs[1].image)
    ex = sft.encode(processor, rec.question, rec.response, image)
    full = sft.process(processor, "".join(sft.split(processor, rec.question, rec.response)), image)
    assert set(full) == set(ex) - {"labels"}
    assert all(torch.equal(full[k], ex[k]) for k in full)


@pytest.mark.parametrize("arch", [*tiny_vlms.ARCHS, SENTENCEPIECE])
def test_the_learned_turn_ends_with_the_end_of_turn_token(arch, root, recs, synth):
    """A model that never sees its end-of-turn token labelled never learns to stop. Llava-1.5's
    template writes none, so the tokenizer's EOS is learned in its place."""
    processor = processor_for(arch, root)
    rec, image = recs[0], Image.open(synth / recs[0].image)
    ids = labelled(sft.encode(processor, rec.question, rec.response, image)).tolist()
    assert ids[-1] == processor.tokenizer.eos_token_id
    assert ids.count(processor.tokenizer.eos_token_id) == 1  # the end, nothing learned after it


@pytest.mark.parametrize("arch", [*tiny_vlms.ARCHS, SENTENCEPIECE])
def test_labels_are_the_tokens_of_the_answer_in_context(arch, root, recs, synth):
    """The learned ids are the answer as the tokenizer splits it after the prompt, the way the
    model reads it: a SentencePiece tokenizer given the answer on its own starts it with a lone
    "▁" token that it never produces after the prompt."""
    processor = processor_for(arch, root)
    rec, image = recs[2], Image.open(synth / recs[2].image)
    ex = sft.encode(processor, rec.question, rec.response, image)
    prompt, completion = sft.split(processor, rec.question, rec.response)
    whole = sft.process(processor, prompt + completion, image)
    assert ex["input_ids"].tolist() == whole["input_ids"].tolist()
    n_prompt = sft.process(processor, prompt, image)["input_ids"].shape[1]
    assert (ex["labels"][0, n_prompt:] == whole["input_ids"][0, n_prompt:]).all()
    assert (ex["labels"][0, :n_prompt] == sft.IGNORE).all()


SECOND = ("And how many are left?", stages.render({s: f"second {s.lower()}" for s in stages.STAGES}))


def two_turns(rec: Record) -> Record:
    """`rec` with a second question and answer about the same image, as in LLaVA-CoT-100k."""
    more = [{"from": "human", "value": SECOND[0]}, {"from": "gpt", "value": SECOND[1]}]
    return Record(id=rec.id, conversations=[*rec.conversations, *more], image=rec.image, extra=dict(rec.extra))


def blocks(labels: torch.Tensor) -> list[tuple[int, int]]:
    """(start, end) of each run of learned positions."""
    learned = [*(labels != sft.IGNORE).tolist(), False]
    return [(i, j) for i in range(len(learned) - 1) if learned[i] and (i == 0 or not learned[i - 1])
            for j in [learned.index(False, i)]]


@pytest.mark.parametrize("arch", tiny_vlms.ARCHS)
def test_every_turn_of_a_multi_turn_record_is_learned_after_the_turns_before_it(arch, root, recs, synth):
    processor = processor_for(arch, root)
    rec = two_turns(recs[0])
    (q1, a1), (q2, a2) = (recs[0].question, recs[0].response), SECOND
    ex = sft.Examples([rec], processor, images=synth)[0]
    runs = blocks(ex["labels"][0])
    ids = ex["input_ids"][0]
    assert [processor.tokenizer.decode(ids[i:j]) for i, j in runs] == [COMPLETION[arch].format(a) for a in (a1, a2)]
    # the second answer is learned after exactly what inference feeds the model for that turn
    image = Image.open(synth / rec.image)
    asked = sft.process(processor, models.prompt_text(processor, q2, history=[(q1, a1)]), image)["input_ids"][0]
    context = ids[: runs[1][0]]
    if arch == "llava":  # ... but for the EOS the first turn learned, which Llava-1.5's template does not write
        end = runs[0][1] - 1
        assert ids[end] == processor.tokenizer.eos_token_id
        context = torch.cat([context[:end], context[end + 1:]])
    assert context.tolist() == asked.tolist()


def test_prompts_do_not_depend_on_the_day(root, recs):
    """Llama-3.2-Vision's template writes today's date into a prompt without an image; training
    and inference on different days must still see the same prompt."""
    import time

    processor = processor_for("mllama", root)
    today = time.strftime("%d %b %Y")
    inference = models.prompt_text(processor, recs[0].question, image=False)
    prompt, _ = sft.split(processor, recs[0].question, recs[0].response, image=False)
    assert today not in inference and today not in prompt
    assert f"Today Date: {models.DATE_STRING}" in inference and prompt == inference


@pytest.mark.parametrize("fmt", ["structured", "untagged", "direct"])
def test_format_variants_label_the_right_completion(fmt, root, recs, synth):
    processor = processor_for("llava", root)
    examples = sft.Examples(recs[:3], processor, fmt, images=synth)
    for i, rec in enumerate(recs[:3]):
        text = processor.tokenizer.decode(labelled(examples[i]))
        assert text == COMPLETION["llava"].format(sft.target(rec, fmt))
    assert (stages.open_tag("CAPTION") in text) == (fmt == "structured")


def test_max_length_cuts_the_completion_not_the_prompt(root, recs, synth):
    processor = processor_for("llava", root)
    full = sft.Examples(recs[:1], processor, images=synth)[0]
    n_prompt = int((full["labels"][0] == sft.IGNORE).sum())
    cut = sft.Examples(recs[:1], processor, images=synth, max_length=n_prompt + 5)[0]
    assert cut["input_ids"].shape[1] == n_prompt + 5 and torch.equal(cut["input_ids"], full["input_ids"][:, : n_prompt + 5])
    with pytest.warns(UserWarning, match="exceeds max_length"):
        tiny = sft.Examples(recs[:1], processor, images=synth, max_length=4)[0]
    assert tiny["input_ids"].shape[1] == n_prompt + 1


@pytest.mark.parametrize("arch", tiny_vlms.ARCHS)
def test_collated_batch_gives_each_example_its_own_logits(arch, root, recs, synth):
    """Right padding and image concatenation must not change what the model computes for any
    example: the batch's logits on real tokens equal each example's logits alone. Qwen2-VL gets
    images of two sizes, so their patch counts differ."""
    processor = processor_for(arch, root)
    if tiny_vlms.unavailable(arch):
        model = tiny_vlms.qwen2_vl_parts()[0]
    else:
        from transformers import AutoModelForImageTextToText

        model = AutoModelForImageTextToText.from_pretrained(tiny_vlms.cached(arch, root))
    model.eval()
    sizes = [(64, 64), (96, 48)] if arch == "qwen2_vl" else [(64, 64), (64, 64)]
    exs = [sft.encode(processor, rec.question, sft.target(rec, fmt), Image.open(synth / rec.image).resize(size))
           for rec, fmt, size in zip(recs[:2], ["structured", "direct"], sizes, strict=True)]
    batch = sft.Collator(sft.pad_token_id(processor))(exs)
    lengths = [ex["input_ids"].shape[1] for ex in exs]
    assert batch["input_ids"].shape == (2, max(lengths)) and lengths[0] != lengths[1]
    short = lengths.index(min(lengths))
    assert (batch["attention_mask"][short, min(lengths):] == 0).all()
    assert (batch["labels"][short, min(lengths):] == sft.IGNORE).all()
    if arch == "qwen2_vl":
        assert batch["pixel_values"].shape[0] == sum(ex["pixel_values"].shape[0] for ex in exs)
    with torch.no_grad():
        together = model(**batch).logits
        for i, ex in enumerate(exs):
            alone = model(**ex).logits[0]
            torch.testing.assert_close(together[i, : lengths[i]], alone, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# The train command


@pytest.fixture(scope="module")
def two(recs, tmp_path_factory) -> Path:
    """Two records only: with batch size 2 every step sees the same batch."""
    path = tmp_path_factory.mktemp("two") / "two.jsonl"
    records.write(path, recs[:2])
    return path


def test_training_moves_parameters_and_lowers_loss(root, two, synth, tmp_path):
    base = tiny_vlms.cached("llava", root)
    train.train(config(two, tmp_path, model=str(base), images=str(synth), max_steps=10, lr=3e-3))
    losses = [m["loss"] for m in metrics(tmp_path)]
    assert len(losses) == 10 and losses[-1] < losses[0] - 0.5
    before, after = weights(base), weights(tmp_path)
    assert set(before) == set(after)
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("vision_tower" in k for k in moved) and any("language_model" in k for k in moved)
    line = metrics(tmp_path)[-1]
    assert line["step"] == 10 and line["tokens_per_s"] > 0 and line["elapsed"] > 0 and line["lr"] >= 0


def test_lora_trains_adapters_only_then_merges(root, synth, tmp_path):
    base = tiny_vlms.cached("mllama", root)
    trainer = train.train(config(synth, tmp_path, model=str(base), lora=True, lr=1e-2, save_steps=4))
    adapter = (tmp_path / "checkpoint-4" / "adapter_model.safetensors")
    from safetensors.torch import load_file

    adapted = list(load_file(adapter))
    assert adapter.is_file() and all("lora_" in k and "language_model" in k for k in adapted)
    # the cross-attention layers are adapted too (their zero-initialised gates keep them idle
    # in this untrained model, so their merged weights need not move)
    assert any("cross_attn.q_proj" in k for k in adapted)
    assert not (tmp_path / "adapter_config.json").exists()  # merged: a plain checkpoint
    before, after = weights(base), weights(tmp_path)
    assert set(before) == set(after)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    # only the language model's linear layers (self- and cross-attention, MLP) changed
    assert moved and all("language_model" in k and k.endswith("proj.weight") for k in moved)
    assert trainer.state.global_step == 4


def test_lora_without_merge_saves_the_adapter(root, synth, tmp_path):
    train.train(config(synth, tmp_path, model=str(tiny_vlms.cached("llava", root)), lora=True, merge=False,
                       max_steps=1))
    assert (tmp_path / "adapter_config.json").is_file() and (tmp_path / "adapter_model.safetensors").is_file()


def test_resume_continues_exactly_from_the_checkpoint(root, synth, tmp_path):
    cfg = dict(model=str(tiny_vlms.cached("llava", root)), max_steps=4, save_steps=2)
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    train.train(config(synth, straight, **cfg))
    # the same run interrupted after step 2: its checkpoint and log so far, then --resume
    shutil.copytree(straight / "checkpoint-2", cut / "checkpoint-2")
    (cut / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics(straight)[:2]))
    with pytest.raises(LlavaCotError, match="holds checkpoints"):
        train.train(config(synth, cut, **cfg))
    trainer = train.train(config(synth, cut, resume=True, **cfg))
    assert trainer.state.global_step == 4
    assert [m["step"] for m in metrics(cut)] == [1, 2, 3, 4]
    assert [m["loss"] for m in metrics(cut)] == [m["loss"] for m in metrics(straight)]
    a, b = weights(straight), weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # resuming a finished run again trains nothing (transformers' loop alone would take a 5th step)
    stamp = (cut / "model.safetensors").stat().st_mtime_ns
    again = train.train(config(synth, cut, resume=True, **cfg))
    assert again.state.global_step == 4 and not (cut / "checkpoint-5").exists()
    assert (cut / "model.safetensors").stat().st_mtime_ns == stamp
    assert [m["step"] for m in metrics(cut)] == [1, 2, 3, 4]
    # a final model older than the last checkpoint (a longer run cut before its final save) is not
    # taken for the result: the run goes on and saves again
    os.utime(cut / "config.json", ns=(0, 0))
    train.train(config(synth, cut, resume=True, **cfg))
    assert (cut / "config.json").stat().st_mtime_ns > 0


def test_init_tiny_trains_a_model_from_scratch(synth, tmp_path):
    pytest.importorskip("llava_cot.tiny")
    train.train(config(synth, tmp_path, init="tiny", max_steps=2, format="direct"))
    lm = models.load(tmp_path, device="cpu")
    prompt = models.prompt_text(lm.processor, "How many objects are there?")
    enc = sft.process(lm.processor, prompt, Image.new("RGB", (64, 64), "white"))
    out = lm.model.generate(**enc, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert out.shape[1] == enc["input_ids"].shape[1] + 3


def test_bad_records_are_reported_with_their_line_and_skipped(recs, synth, tmp_path, capsys, root):
    lines = [json.dumps(recs[0].to_json()), "{not json", json.dumps({**recs[1].to_json(), "image": "nope.png"}),
             json.dumps(recs[2].to_json())]
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(lines) + "\n")
    trainer = train.train(config(data, tmp_path / "out", model=str(tiny_vlms.cached("llava", root)),
                                 images=str(synth), max_steps=1))
    err = capsys.readouterr().err
    assert "line 2" in err and "malformed JSON" in err
    assert "line 3" in err and "nope.png" in err
    assert len(trainer.train_dataset) == 2


@pytest.mark.parametrize("args, message", [
    (["--data", "/no/such/data"], "does not exist"),
    (["--data", "EMPTY"], "no usable records"),
    (["--data", "SYNTH", "--init", "tiny", "--lora"], "--lora adapts a pretrained model"),
    (["--data", "SYNTH", "--fsdp", "--device", "cpu"], "--fsdp shards the model across processes"),
    (["--data", "SYNTH", "--max-steps", "0"], "--max-steps"),
])
def test_user_errors_exit_2(args, message, synth, tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    args = [{"EMPTY": str(tmp_path / "empty.jsonl"), "SYNTH": str(synth)}.get(a, a) for a in args]
    assert cli.main(["train", *args, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Two processes

HARNESS = """
import hashlib, json, os, sys
import torch
from llava_cot import cli, train
cfg = train.TrainConfig(**vars(cli.build_parser("train", train.TrainConfig).parse_args(sys.argv[1:])))
trainer = train.train(cfg)
model = trainer.accelerator.unwrap_model(trainer.model)
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
rank = os.environ["RANK"]
with open(os.path.join(cfg.out, f"rank{rank}.json"), "w") as f:
    json.dump({"step": trainer.state.global_step, "digest": digest, "world": trainer.args.world_size,
               "distributed": type(trainer.model_wrapped).__name__}, f)
"""


def test_two_processes_step_together_and_save_a_loadable_model(root, synth, tmp_path):
    script = tmp_path / "harness.py"
    script.write_text(HARNESS)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), "--data", str(synth), "--out", str(out), "--model", str(tiny_vlms.cached("llava", root)),
           "--max-steps", "3", "--batch-size", "1", "--logging-steps", "1", "--num-workers", "0", "--device", "cpu", "--lr", "1e-3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == 2 and ranks[0]["distributed"] == "DistributedDataParallel"
    assert ranks[0]["step"] == ranks[1]["step"] == 3
    assert ranks[0]["digest"] == ranks[1]["digest"]
    # each step consumed one record per process: 3 steps, 2 processes, batch 1 -> 6 records
    assert metrics(out)[-1]["step"] == 3
    assert json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())["epoch"] == pytest.approx(6 / 16)
    lm = models.load(out, device="cpu")
    assert type(lm.model).__name__ == "LlavaForConditionalGeneration"
