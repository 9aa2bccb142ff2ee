"""Tiny vision-language models for tests, built offline from configs: Llava, Mllama, Qwen2-VL.

Each factory writes a randomly initialised model (a few layers, hidden size 32) and a working
processor to a directory, in the standard Hugging Face layout, so that tests exercise the same
loading path as a real checkpoint (`AutoModelForImageTextToText` / `AutoProcessor`, and
`llava_cot.models.load`). Nothing is downloaded: the tokenizer is a small byte-level BPE trained
here on a few sentences, carrying the architecture's own special tokens (`llava_sentencepiece`:
Llava with a Llama-2 style SentencePiece tokenizer instead, as Llava-1.5 has), and the chat
templates behave as the real ones do, down to what each writes after an assistant turn
(Llava-1.5: a space and no end-of-turn token; Llama-3.2-Vision: <|eot_id|>, and a system turn
with today's date when there is no image; Qwen2-VL: <|im_end|> and a newline).

    from tiny_vlms import build
    path = build("mllama", tmp_path / "mllama")      # -> the directory, ready for from_pretrained

Test files use `cached(arch, root)` (one build per architecture and root). transformers 5 cannot
build Qwen2VLProcessor without torchvision, which our machines lack: `unavailable("qwen2_vl")`
says so, and `Qwen2VLStandIn` (the real tokenizer and image processor) lets tests still run our
code on the real Qwen2-VL model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from llava_cot import stages

ARCHS = ("llava", "mllama", "qwen2_vl")

# Text the BPE merges are learnt from: enough English and stage tags that a four-stage response
# is a few hundred tokens, not a few thousand bytes.
SENTENCES = [
    "How many objects are left? Subtract all red cubes. Answer with a number.",
    "There are 3 objects in the image, placed on a 4 by 4 grid, going row by row from the top left.",
    "At row 2, column 3 there is a small yellow triangle. At row 4 there is a large blue square.",
    "I will count the objects, take away those the instruction names, and report what remains.",
    "The answer is option B. After the subtractions, the number of objects left is 1.",
    "What colour is the sphere? The green circle is left of the purple cylinder.",
    "USER: a question ASSISTANT: an answer. You are a helpful assistant.",
    *(stages.render_stage(s, "text") for s in stages.STAGES),
]

# The chat templates below behave as each family's real one does (read from llava-hf's
# chat_template.json, meta-llama's Llama-3.2-11B-Vision-Instruct and Qwen2-VL-7B-Instruct), written
# here in our own words. What differs between them is what training and inference get wrong:
# whether an assistant turn ends with an end-of-turn token, what follows it, and what else the
# template writes on its own (a system turn with today's date).

# llava-hf's Llava-1.5: "USER: <image>\nQUESTION ASSISTANT: ANSWER USER: ..."; every turn's text
# is followed by a space and NO end-of-turn token (the tokenizer adds the <s> at the start); a
# system message is written bare; the generation prompt is "ASSISTANT:" with no space after it.
LLAVA_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- set items = [{'type': 'text', 'text': message['content']}] if message['content'] is string"
    " else message['content'] -%}"
    "{%- if message['role'] != 'system' -%}{{ message['role'].upper() + ': ' }}{%- endif -%}"
    "{%- for item in items if item['type'] == 'image' -%}{{ '<image>\\n' }}{%- endfor -%}"
    "{%- for item in items if item['type'] == 'text' -%}{{ item['text'] + ' ' }}{%- endfor -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
)

# Llama-3.2-Vision-Instruct: BOS, header ids around the role, <|eot_id|> after every turn. A
# conversation without an image opens with a system turn carrying "Today Date: " and the date the
# template is rendered on (`strftime_now`), unless the caller passes `date_string`; with an image
# there is no such turn, and a system message is refused.
MLLAMA_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- if date_string is not defined -%}"
    "{%- if strftime_now is defined -%}{%- set date_string = strftime_now('%d %b %Y') -%}"
    "{%- else -%}{%- set date_string = '26 Jul 2024' -%}{%- endif -%}"
    "{%- endif -%}"
    "{%- set ns = namespace(images=false, system='') -%}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set ns.system = messages[0]['content'] | trim -%}"
    "{%- else -%}{%- for item in messages[0]['content'] if item['type'] == 'text' -%}"
    "{%- set ns.system = ns.system + item['text'] | trim -%}{%- endfor -%}{%- endif -%}"
    "{%- set messages = messages[1:] -%}"
    "{%- endif -%}"
    "{%- for message in messages if message['content'] is not string -%}"
    "{%- for item in message['content'] if item['type'] == 'image' -%}{%- set ns.images = true -%}{%- endfor -%}"
    "{%- endfor -%}"
    "{%- if ns.images and ns.system -%}{{ raise_exception('a system message cannot go with an image') }}{%- endif -%}"
    "{%- if not ns.images -%}"
    "{{ '<|start_header_id|>system<|end_header_id|>\n\n' + 'Cutting Knowledge Date: December 2023\n' }}"
    "{{ 'Today Date: ' + date_string + '\n\n' + ns.system + '<|eot_id|>' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<|image|>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|eot_id|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif -%}"
)

# Qwen2-VL-Instruct: ChatML with a default system turn, images wrapped in vision start/end tokens,
# and every turn closed by <|im_end|> and a newline.
QWEN2_VL_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)


def tokenizer(special: list[str], texts: Iterable[str] = (), vocab_size: int = 600,
              bos: str | None = None, **roles: Any) -> Any:
    """A byte-level BPE tokenizer trained on SENTENCES (+ texts), with `special` tokens first.
    With `bos`, that token is prepended to every encoding, as Llama tokenizers do."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([*SENTENCES, *texts], trainer)
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, **roles)


def sentencepiece_tokenizer(texts: Iterable[str] = (), vocab_size: int = 600) -> Any:
    """A tokenizer laid out as Llama-2's (and so Llava-1.5's) SentencePiece model is in its
    tokenizer.json: every text gets a "▁" prepended and its spaces turned into "▁" before BPE
    with byte fallback, so a text that starts with a space starts with a lone "▁" token when
    tokenised on its own (" A" -> "▁", "▁A"), but not after other text ("x A" -> "▁x", "▁A").
    The BPE is learnt here on SENTENCES (+ texts), merges never crossing a word boundary."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    # words are split at "▁" only while the merges are learnt, as SentencePiece splits by whitespace
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False,
                                  initial_alphabet=[f"<0x{b:02X}>" for b in range(256)])
    tok.train_from_iterator([*SENTENCES, *texts], trainer)
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1, right=0)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


LLAMA3_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>", "<|start_header_id|>",
                  "<|end_header_id|>", "<|eot_id|>", "<|python_tag|>", "<|image|>"]


def llama3_tokenizer(texts: Iterable[str] = (), vocab_size: int = 600) -> Any:
    """A stand-in for Llama 3's tokenizer: its special tokens, BOS, end of turn and padding."""
    return tokenizer(LLAMA3_SPECIAL, texts, vocab_size=vocab_size, bos="<|begin_of_text|>", eos_token="<|eot_id|>",
                     pad_token="<|finetune_right_pad_id|>")


def _llama_text(tok: Any, **extra: Any) -> dict[str, Any]:
    """Tiny decoder settings shared by the three architectures."""
    return dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                **extra)


def llava(texts: Iterable[str] = (), tok: Any = None) -> tuple[Any, Any]:
    """Llava: CLIP vision tower (64 px, 16 px patches, CLS dropped: 16 image tokens) + Llama."""
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tok = tok or tokenizer(["<unk>", "<s>", "</s>", "<pad>", "<image>"], texts, bos="<s>",
                           eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    images = CLIPImageProcessorPil(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    processor = LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=16, num_additional_image_tokens=1,
                               vision_feature_select_strategy="default", chat_template=LLAVA_TEMPLATE)
    vision = CLIPVisionConfig(image_size=64, patch_size=16, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=2, num_attention_heads=2, projection_dim=32)
    config = LlavaConfig(vision_config=vision, text_config=LlamaConfig(**_llama_text(tok)),
                         image_token_id=tok.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    return LlavaForConditionalGeneration(config), processor


def mllama(texts: Iterable[str] = ()) -> tuple[Any, Any]:
    """Mllama (Llama-3.2-Vision): 32 px tiles, up to 4 of them (a 64 px image is 2x2 tiles),
    a gated global encoder, and one cross-attention layer between two self-attention layers."""
    from transformers import (
        MllamaConfig,
        MllamaForConditionalGeneration,
        MllamaImageProcessorPil,
        MllamaProcessor,
        MllamaTextConfig,
        MllamaVisionConfig,
    )

    tok = llama3_tokenizer(texts)
    images = MllamaImageProcessorPil(size={"height": 32, "width": 32}, max_image_tiles=4)
    processor = MllamaProcessor(image_processor=images, tokenizer=tok, chat_template=MLLAMA_TEMPLATE)
    vision = MllamaVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_global_layers=1,
                                attention_heads=2, image_size=32, patch_size=16, max_num_tiles=4,
                                intermediate_layers_indices=[0], vision_output_dim=64)
    text = MllamaTextConfig(**{**_llama_text(tok), "num_hidden_layers": 3}, cross_attention_layers=[1])
    config = MllamaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<|image|>"))
    return MllamaForConditionalGeneration(config), processor


def qwen2_vl_parts(texts: Iterable[str] = ()) -> tuple[Any, Any, Any]:
    """Qwen2-VL's model, tokenizer and image processor: native-resolution vision (8 px patches,
    2x2 merge: a 64 px image is 16 tokens, other sizes give other counts), multimodal rotary
    positions. Usable where the processor is not (see `unavailable`)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessorPil

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
               "<|image_pad|>", "<|video_pad|>"]
    tok = tokenizer(special, texts, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    images = Qwen2VLImageProcessorPil(patch_size=8, merge_size=2, temporal_patch_size=2,
                                      min_pixels=16 * 16, max_pixels=128 * 128)
    ids = {name: tok.convert_tokens_to_ids(f"<|{name}|>") for name in ("image_pad", "video_pad", "vision_start", "vision_end")}
    text = _llama_text(tok, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]})
    vision = dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=8,
                  spatial_merge_size=2, temporal_patch_size=2)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["image_pad"],
                           video_token_id=ids["video_pad"], vision_start_token_id=ids["vision_start"],
                           vision_end_token_id=ids["vision_end"])
    return Qwen2VLForConditionalGeneration(config), tok, images


def qwen2_vl(texts: Iterable[str] = ()) -> tuple[Any, Any]:
    """Qwen2-VL with its processor (ChatML template, image wrapped in vision start/end tokens)."""
    from transformers import Qwen2VLProcessor

    model, tok, images = qwen2_vl_parts(texts)
    return model, Qwen2VLProcessor(image_processor=images, tokenizer=tok, chat_template=QWEN2_VL_TEMPLATE)


class Qwen2VLStandIn:
    """Does what Qwen2VLProcessor does for one image per text, from the real tokenizer and image
    processor, for machines where the processor class cannot be built (see `unavailable`). It
    lets our training code run on the real Qwen2-VL model and its variable patch counts; it is a
    test double, not a way to load checkpoints."""

    def __init__(self, tokenizer: Any, image_processor: Any):
        self.tokenizer, self.image_processor = tokenizer, image_processor
        self.tokenizer.chat_template = QWEN2_VL_TEMPLATE
        self.image_token = "<|image_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)

    def apply_chat_template(self, conversation: list[dict[str, Any]], **kwargs: Any) -> Any:
        return self.tokenizer.apply_chat_template(conversation, **kwargs)

    def __call__(self, text: list[str], images: list[Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        pixels: dict[str, Any] = {}
        if images:
            pixels = dict(self.image_processor(images, return_tensors="pt"))
            merge = self.image_processor.merge_size ** 2
            counts = iter(int(g.prod()) // merge for g in pixels["image_grid_thw"])
            # each placeholder becomes as many tokens as its image has merged patches
            expanded = []
            for t in text:
                first, *rest = t.split(self.image_token)
                expanded.append(first + "".join(self.image_token * next(counts) + part for part in rest))
            text = expanded
        enc = dict(self.tokenizer(text, **kwargs))
        enc["mm_token_type_ids"] = (enc["input_ids"] == self.image_token_id).long()
        return {**enc, **pixels}

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)


def unavailable(arch: str) -> str | None:
    """Why `arch` cannot be built with a processor in this environment, or None if it can.

    transformers 5 gives Qwen2VLProcessor a video processor that exists only with torchvision,
    and neither constructing nor loading the processor works without it, even for images
    (huggingface/transformers#48558). Our machines have no torchvision."""
    import importlib.util

    if arch == "qwen2_vl" and importlib.util.find_spec("torchvision") is None:
        return "Qwen2VLProcessor needs torchvision (its video processor), which is not installed"
    return None


def llava_sentencepiece(texts: Iterable[str] = ()) -> tuple[Any, Any]:
    """Llava-1.5 as llava-hf ships it: the Llava model with a Llama-2 SentencePiece tokenizer."""
    return llava(texts, tok=sentencepiece_tokenizer(texts))


FACTORIES: dict[str, Callable[..., tuple[Any, Any]]] = {"llava": llava, "mllama": mllama, "qwen2_vl": qwen2_vl,
                                                        "llava_sentencepiece": llava_sentencepiece}


def build(arch: str, out: str | Path, seed: int = 0, texts: Iterable[str] = ()) -> Path:
    """Build the tiny `arch` model and processor and save them to `out`; returns `out`."""
    import torch

    torch.manual_seed(seed)
    model, processor = FACTORIES[arch](texts)
    out = Path(out)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def cached(arch: str, root: str | Path) -> Path:
    """The tiny `arch` model under `root`, built on first use."""
    out = Path(root) / arch
    if not (out / "config.json").is_file():
        build(arch, out)
    return out
