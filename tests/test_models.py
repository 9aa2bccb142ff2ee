"""Loading and prompting vision-language models (`llava_cot.models`) on tiny Llava, Mllama and
Qwen2-VL models built from configs (tests/tiny_vlms.py): the standard HF round trip, generation
from a chat-template prompt with an image, continuing a partial answer, and the errors a user
can cause.

    /work/venv/bin/python -m pytest -q tests/test_models.py
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

import tiny_vlms
from llava_cot import models, sft, stages
from llava_cot.errors import LlavaCotError

QUESTION = "How many objects are left?"


@pytest.fixture(scope="module")
def qwen2_vl_parts():
    torch.manual_seed(0)
    return tiny_vlms.qwen2_vl_parts()


def loaded(arch: str, root: Path, qwen2_vl_parts=None) -> models.Loaded:
    """The tiny `arch` model through `models.load`; for Qwen2-VL where its processor cannot be
    built (no torchvision), the real model with the stand-in processor."""
    if tiny_vlms.unavailable(arch):
        model, tok, images = qwen2_vl_parts
        return models.Loaded(model.eval(), tiny_vlms.Qwen2VLStandIn(tok, images), arch)
    return models.load(tiny_vlms.cached(arch, root), device="cpu")


def generate(lm: models.Loaded, prompt: str, image, **kwargs) -> torch.Tensor:
    enc = sft.process(lm.processor, prompt, image)
    out = lm.model.generate(**enc, max_new_tokens=6, do_sample=False, **kwargs)
    return out[0, enc["input_ids"].shape[1]:]


def red_square(size=(64, 64)) -> Image.Image:
    return Image.new("RGB", size, "red")


# ---------------------------------------------------------------------------------------------
# Round trip through the standard HF classes


@pytest.mark.parametrize("arch", ["llava", "mllama"])
def test_auto_classes_load_the_saved_model_and_processor(arch, root):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = tiny_vlms.cached(arch, root)
    model = AutoModelForImageTextToText.from_pretrained(path)
    processor = AutoProcessor.from_pretrained(path)
    assert type(model).__name__.lower().startswith(arch)
    # no torchvision here: the processor must have come back with the PIL image processor
    assert type(processor.image_processor).__name__.endswith("ImageProcessorPil")
    assert processor.chat_template


def test_qwen2_vl_model_round_trips(tmp_path, qwen2_vl_parts):
    from transformers import AutoModelForImageTextToText

    model, _, _ = qwen2_vl_parts
    model.save_pretrained(tmp_path)
    again = AutoModelForImageTextToText.from_pretrained(tmp_path)
    assert type(again).__name__ == "Qwen2VLForConditionalGeneration"
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_qwen2_vl_processor_round_trips(root):
    if reason := tiny_vlms.unavailable("qwen2_vl"):
        pytest.skip(reason)
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_vlms.cached("qwen2_vl", root))
    assert type(processor).__name__ == "Qwen2VLProcessor"


# ---------------------------------------------------------------------------------------------
# Prompting and generating


@pytest.mark.parametrize("arch", tiny_vlms.ARCHS)
def test_generates_from_a_chat_template_prompt_with_an_image(arch, root, qwen2_vl_parts):
    lm = loaded(arch, root, qwen2_vl_parts)
    prompt = models.prompt_text(lm.processor, QUESTION)
    assert QUESTION in prompt and prompt.index(lm.processor.image_token) < prompt.index(QUESTION)
    new = generate(lm, prompt, red_square())
    assert len(new) == 6 and isinstance(lm.processor.decode(new), str)
    # greedy decoding with and without the KV cache must agree
    assert torch.equal(new, generate(lm, prompt, red_square(), use_cache=False))


@pytest.mark.parametrize("arch", tiny_vlms.ARCHS)
def test_continues_a_partial_assistant_message(arch, root, qwen2_vl_parts):
    lm = loaded(arch, root, qwen2_vl_parts)
    partial = f"{stages.open_tag('SUMMARY')} I will count"
    fresh = models.prompt_text(lm.processor, QUESTION)
    cont = models.prompt_text(lm.processor, QUESTION, partial=partial)
    # the same assistant turn, continued: the generation prompt then the partial text, and no
    # end-of-turn after it (the model is to go on writing, not start a new turn)
    assert cont.startswith(fresh.rstrip()) and cont.endswith(partial)
    assert len(generate(lm, cont, red_square())) == 6


def test_prompt_without_image_has_no_image_token(root):
    lm = loaded("mllama", root)
    prompt = models.prompt_text(lm.processor, QUESTION, image=False)
    assert lm.processor.image_token not in prompt
    assert len(generate(lm, prompt, None)) == 6


# ---------------------------------------------------------------------------------------------
# Errors a user can cause


def test_missing_embedded_model_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "EMBEDDED_DIR", tmp_path / "embedded")
    with pytest.raises(LlavaCotError, match="no embedded model in"):
        models.load(None, device="cpu")


@pytest.mark.parametrize("name", ["/no/such/model/dir", "not a model!"])
def test_bad_model_name_is_a_user_error(name):
    with pytest.raises(LlavaCotError, match="neither a model directory nor a hub id"):
        models.resolve(name)


def test_model_name_that_is_a_file_is_a_user_error(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\0")
    with pytest.raises(LlavaCotError):
        models.resolve(tmp_path / "model.bin")


def test_directory_without_a_model_is_a_user_error(tmp_path):
    with pytest.raises(LlavaCotError, match="cannot load model"):
        models.load(tmp_path, device="cpu")


def test_open_image_reads_rgb(tmp_path):
    Image.new("L", (8, 8), 128).save(tmp_path / "grey.png")
    assert models.open_image(tmp_path / "grey.png").mode == "RGB"


def test_open_image_errors(tmp_path):
    with pytest.raises(LlavaCotError, match="does not exist"):
        models.open_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(LlavaCotError, match="cannot be read"):
        models.open_image(tmp_path / "notes.png")
