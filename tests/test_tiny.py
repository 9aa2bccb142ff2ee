"""The tiny model built from scratch: a standard HF checkpoint, an exact tokenizer, a learnable vision phase."""

import json

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from llava_cot import models, records, stages, tiny


def test_loads_with_auto_classes_and_no_code_of_ours(tiny_dir):
    model = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    processor = AutoProcessor.from_pretrained(tiny_dir)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert type(processor).__name__ == "LlavaProcessor"
    assert "tiny" not in type(processor.image_processor).__module__.split(".")[0]


def test_tokenizer_round_trips_exactly_and_tags_are_single_tokens(tiny_dir, synth_dir):
    tok = AutoProcessor.from_pretrained(tiny_dir).tokenizer
    rec = next(records.read(synth_dir / "train.jsonl"))
    for text in (rec.response, "Unseen words: Zebra 12,345 é ü!"):
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    for s in stages.STAGES:
        for tag in (stages.open_tag(s), stages.close_tag(s)):
            assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1


def test_image_tokens_match_patches_and_prompt_continues(tiny_dir, synth_dir):
    loaded = models.load(tiny_dir, device="cpu")
    rec = next(records.read(synth_dir / "train.jsonl"))
    image = models.open_image(synth_dir / rec.image)
    partial = stages.open_tag("SUMMARY") + " I will"
    text = models.prompt_text(loaded.processor, rec.question, partial)
    assert text.endswith(partial)
    enc = loaded.processor(images=[image], text=[text], return_tensors="pt")
    image_id = loaded.model.config.image_token_index
    assert int((enc["input_ids"] == image_id).sum()) == 16
    with torch.no_grad():
        out = loaded.model(**enc)  # features and placeholders agree, or this raises
    assert out.logits.shape[1] == enc["input_ids"].shape[1]


def test_vision_phase_learns_cell_attributes(tiny_dir, synth_dir):
    model = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    processor = AutoProcessor.from_pretrained(tiny_dir)
    scenes = [json.loads(line) for line in (synth_dir / "train_scenes.jsonl").open()]
    losses = tiny.pretrain_vision(model, processor, scenes, str(synth_dir), steps=60, batch_size=16, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0]


def test_cell_targets():
    scene = {"objects": [{"row": 2, "col": 3, "shape": "circle", "colour": "blue", "size": "small"}]}
    values = {"shape": ("square", "circle"), "colour": ("red", "blue"), "size": ("small", "large")}
    t = tiny.cell_targets(scene, values, grid=4)
    assert [row[6] for row in t] == [2, 2, 1]
    assert sum(sum(row) for row in t) == 5
