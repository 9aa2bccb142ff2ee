"""A tiny Llava-architecture VLM built from scratch: tokenizer, processor and model.

`build(texts)` trains a small byte-level BPE tokenizer on the training texts (the stage tags and
the image token are added tokens, so each is one id) and returns a randomly initialised
`LlavaForConditionalGeneration` with a matching `LlavaProcessor`. Saved with `save_pretrained`,
both load back with `AutoModelForImageTextToText` / `AutoProcessor` and no code of ours.

`pretrain_vision` is the recipe's first phase: it trains the vision tower alone to read each
grid cell's object (shape, colour, size) from the synthetic world's scene graphs, so that the
language model later learns to describe and reason over features that already separate them.

Choices forced by transformers 5.x that are easy to get wrong (each cost a failed run):
  * vision_feature_layer=-1: the default -2 leaves a 2-layer tower's last layer without gradient;
  * strategy "default" drops CLS, so the processor must count 1 additional image token to make
    the number of image tokens equal the patch count (16 at 64 px with 16 px patches);
  * image_seq_length and image_token_index must match the processor and the vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from llava_cot import stages

IMAGE_TOKEN = "<image>"
SPECIAL = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"}

# A plain chat template in the shape of Llava-1.5's: "USER: <image>\n... ASSISTANT: ...</s>".
# It accepts string or content-list messages, add_generation_prompt and continue_final_message.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}USER: "
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}" + IMAGE_TOKEN + "{{ '\\n' }}{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '\\n' }}"
    "{% else %}ASSISTANT: "
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{{ c['text'] }}{% endfor %}{% endif %}"
    "{% if not (loop.last and continue_final_message) %}{{ eos_token }}{{ '\\n' }}{% endif %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT: {% endif %}"
)


@dataclass
class TinySize:
    """Sizes of the tiny model. The defaults keep it under 20 MB in float32."""

    image_size: int = 64
    patch_size: int = 16
    vision_hidden: int = 128
    vision_layers: int = 2
    vision_heads: int = 4
    text_hidden: int = 192
    text_layers: int = 6
    text_heads: int = 6
    text_intermediate: int = 512
    vocab_size: int = 512
    max_positions: int = 2048


def build_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> Any:
    """A byte-level BPE tokenizer trained on `texts`: it can encode any text, and decodes back
    to exactly the input (unlike a word-level vocabulary, which loses spacing)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[*SPECIAL.values(), IMAGE_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL, extra_special_tokens={"image_token": IMAGE_TOKEN})
    # The stage tags are ordinary added tokens: one id each, and kept by decode().
    fast.add_tokens([t for s in stages.STAGES for t in (stages.open_tag(s), stages.close_tag(s))])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build(texts: Iterable[str], seed: int = 0, size: TinySize | None = None) -> tuple[Any, Any]:
    """A randomly initialised tiny Llava model and its processor, the tokenizer trained on `texts`."""
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    size = size or TinySize()
    tokenizer = build_tokenizer(texts, size.vocab_size)
    pixels = {"height": size.image_size, "width": size.image_size}
    image_processor = CLIPImageProcessorPil(size=pixels, crop_size=pixels, do_center_crop=False)
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=size.patch_size,
        vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,  # CLIP's CLS, dropped again by the "default" strategy
    )
    vision = CLIPVisionConfig(
        hidden_size=size.vision_hidden, intermediate_size=4 * size.vision_hidden,
        num_hidden_layers=size.vision_layers, num_attention_heads=size.vision_heads,
        image_size=size.image_size, patch_size=size.patch_size,
    )
    text = LlamaConfig(
        hidden_size=size.text_hidden, intermediate_size=size.text_intermediate,
        num_hidden_layers=size.text_layers, num_attention_heads=size.text_heads,
        num_key_value_heads=size.text_heads, vocab_size=len(tokenizer),
        max_position_embeddings=size.max_positions, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=-1, vision_feature_select_strategy="default",
        image_seq_length=(size.image_size // size.patch_size) ** 2, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.config.llava_cot_tiny = asdict(size)  # recorded for the model card
    return model, processor


def cell_targets(scene: dict[str, Any], values: dict[str, tuple[str, ...]], grid: int) -> list[list[int]]:
    """Per attribute, a class per grid cell in patch order (0 = empty, i + 1 = the i-th value)."""
    targets = [[0] * (grid * grid) for _ in values]
    for obj in scene["objects"]:
        cell = (obj["row"] - 1) * grid + obj["col"] - 1
        for k, (attr, names) in enumerate(values.items()):
            targets[k][cell] = names.index(obj[attr]) + 1
    return targets


def pretrain_vision(model: Any, processor: Any, scenes: list[dict[str, Any]], images_root: str,
                    steps: int = 400, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                    log: Any = None) -> list[float]:
    """Train the vision tower (and throw-away linear heads) to classify every cell's shape,
    colour and size, and the cell's own position. Returns the loss per step. The heads are
    discarded: only the tower's features matter to the language model, through the projector.

    Why the position: trained on attributes alone, the tower becomes translation-invariant and
    its features lose every trace of where they are (a linear probe reads the cell index at
    chance, 6%). The language model must then find "row 2, column 1" by counting token
    positions, and after 1,000 SFT steps it still read the right attributes for only 23% of the
    objects it placed right. With the position in each feature, a caption's "row r, column c"
    finds its patch by content. (At lr 3e-3 the joint objective diverged; 1e-3 is stable.)"""
    import random

    import torch
    from PIL import Image

    from llava_cot.synth.scene import GRID, VALUES

    tower = model.model.vision_tower
    hidden = tower.config.hidden_size
    heads = torch.nn.ModuleList(torch.nn.Linear(hidden, len(v) + 1) for v in VALUES.values())
    where = torch.nn.Linear(hidden, GRID * GRID)  # each patch names its own cell
    cells = torch.arange(GRID * GRID)
    params = list(tower.parameters()) + list(heads.parameters()) + list(where.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    images = [Image.open(f"{images_root}/{s['image']}").convert("RGB") for s in scenes]
    targets = torch.tensor([cell_targets(s, VALUES, GRID) for s in scenes])  # [N, attrs, cells]
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    tower.train()
    losses = []
    for step in range(steps):
        idx = torch.tensor(rng.sample(range(len(scenes)), min(batch_size, len(scenes))))
        feats = tower(pixel_values=pixels[idx]).last_hidden_state[:, 1:]  # drop CLS: [B, cells, H]
        loss = sum(torch.nn.functional.cross_entropy(h(feats).flatten(0, 1), targets[idx, k].flatten())
                   for k, h in enumerate(heads))
        loss = loss + torch.nn.functional.cross_entropy(where(feats).flatten(0, 1), cells.repeat(len(idx)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if log and (step % 50 == 0 or step == steps - 1):
            log(f"vision step {step + 1}/{steps}: loss {losses[-1]:.4f}")
    return losses
