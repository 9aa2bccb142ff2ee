"""Batched generation with a loaded model: prompts built by the chat template, left padding,
one `generate` call per batch, and optional streaming of the text as it is produced.

    from llava_cot import generation, models
    loaded = models.load()
    outs = generation.generate(loaded, [image], ["How many objects are there?"])
    outs[0].text, outs[0].tokens
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llava_cot import models


@dataclass
class Generation:
    text: str  # the generated continuation, special tokens removed
    tokens: int  # how many tokens were generated (end-of-sequence included)


def encode(loaded: models.Loaded, images: Sequence[Any], questions: Sequence[str],
           partials: Sequence[str | None] | None = None) -> Any:
    """Tokenised, left-padded model inputs for a batch of (image, question[, partial answer])."""
    processor = loaded.processor
    partials = partials or [None] * len(questions)
    texts = [models.prompt_text(processor, q, p) for q, p in zip(questions, partials, strict=True)]
    processor.tokenizer.padding_side = "left"  # generation appends on the right
    inputs = processor(images=list(images), text=texts, padding=True, return_tensors="pt",
                       add_special_tokens=models.add_special_tokens(processor, texts[0]))
    return inputs.to(loaded.device)


def _decode_new(loaded: models.Loaded, sequences: Any, prompt_len: int) -> list[Generation]:
    tok = loaded.processor.tokenizer
    pad = tok.pad_token_id
    outs = []
    for seq in sequences[:, prompt_len:]:
        ids = [int(t) for t in seq if int(t) != pad]
        outs.append(Generation(tok.decode(ids, skip_special_tokens=True).strip(), len(ids)))
    return outs


def generate(loaded: models.Loaded, images: Sequence[Any], questions: Sequence[str],
             max_new_tokens: int = 1024, on_text: Callable[[str], None] | None = None,
             **sampling: Any) -> list[Generation]:
    """Generate for a batch; greedy unless sampling arguments say otherwise. With `on_text`
    (one item only), each new piece of text is passed to it as soon as it is decoded."""
    import torch
    from transformers import TextIteratorStreamer

    inputs = encode(loaded, images, questions)
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": False, **sampling}
    if on_text is None:
        with torch.inference_mode():
            out = loaded.model.generate(**inputs, **kwargs)
        return _decode_new(loaded, out, inputs["input_ids"].shape[1])
    if len(questions) != 1:
        raise ValueError("streaming works on one item at a time")
    streamer = TextIteratorStreamer(loaded.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            with torch.inference_mode():
                result["out"] = loaded.model.generate(**inputs, **kwargs, streamer=streamer)
        except BaseException as e:  # re-raised in the caller's thread; end the stream so it stops waiting
            result["error"] = e
            streamer.end()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    for piece in streamer:
        on_text(piece)
    worker.join()
    if "error" in result:
        raise result["error"]
    return _decode_new(loaded, result["out"], inputs["input_ids"].shape[1])
