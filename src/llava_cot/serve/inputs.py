"""A chat request checked and turned into what the engine takes: a `Prompt` and a `Sampling`.

Messages become one `Prompt`: a system (or developer) message, earlier user/assistant turns as
`history`, the last user message as the question, and a final assistant message, when the
request asks to continue it (vLLM's `continue_final_message: true, add_generation_prompt:
false`), as the text the model continues. Consecutive messages of one role are joined. The model
takes one image, in the first user message (as LLaVA-CoT-100k's multi-turn records have it).

Every check says what is wrong, in which field, as an ApiError (400, or 413 for sizes):

    prompt = to_prompt(request, ImageLimits())
    sampling = to_sampling(request, Caps(context=2048), prompt_tokens=80)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llava_cot import models
from llava_cot.engines import Prompt, Sampling
from llava_cot.serve.errors import bad
from llava_cot.serve.images import ImageLimits, load_image
from llava_cot.serve.protocol import ChatCompletionRequest, ImagePart, Message, TextPart

MAX_IMAGES = 1  # what the engine's Prompt holds


@dataclass(frozen=True)
class Caps:
    """The most a request may ask for."""

    context: int  # the model's context length, in tokens: prompt and answer together
    max_n: int = 16  # choices per request (and a search's beam)
    max_tokens: int = 4096  # tokens per choice
    max_stops: int = 16  # stop strings (OpenAI's API takes 4; the engine checks any number cheaply)


@dataclass
class _Turn:
    role: str
    texts: list[str]
    images: list[tuple[str, str]]  # (url, the parameter it came from)
    first: int  # index of its first message


def to_prompt(request: ChatCompletionRequest, limits: ImageLimits) -> Prompt:
    """The request's messages as one Prompt, its image decoded (a remote one fetched: blocking)."""
    system, turns = _turns(request.messages)
    if not turns:
        raise bad("messages has no user message: add {\"role\": \"user\", \"content\": \"...\"}", "messages")
    if turns[0].role != "user":
        raise bad(f"messages.{turns[0].first} is the assistant's, before any user message: the conversation "
                  "must open with a user message", f"messages.{turns[0].first}.role")
    partial = ""
    if turns[-1].role == "assistant":
        if not request.continue_final_message:
            raise bad("the last message is the assistant's: end with a user message, or continue it with "
                      "continue_final_message: true and add_generation_prompt: false", "messages")
        if request.add_generation_prompt:
            raise bad("continue_final_message: true needs add_generation_prompt: false (a new assistant turn "
                      "cannot also continue the last one)", "add_generation_prompt")
        partial = "".join(turns.pop().texts)
    elif request.continue_final_message:
        raise bad("continue_final_message: true needs a final assistant message to continue", "continue_final_message")
    elif not request.add_generation_prompt:
        raise bad("add_generation_prompt: false is only taken with continue_final_message: true", "add_generation_prompt")
    last = turns[-1]
    question = "\n".join(last.texts)
    if not question.strip():
        raise bad(f"messages.{last.first} has no text: ask something (about the image)", f"messages.{last.first}.content")
    images = [(u, p, t) for t, turn in enumerate(turns) for u, p in turn.images]
    if len(images) > MAX_IMAGES:
        raise bad(f"the request has {len(images)} images; this model takes {MAX_IMAGES}, in the first user message",
                  images[MAX_IMAGES][1], "too_many_images")
    if images and images[0][2] != 0:
        raise bad("the image must be in the first user message (the model sees it with the first turn)", images[0][1])
    image = load_image(images[0][0], limits, images[0][1]) if images else None
    history = tuple(("\n".join(u.texts), "".join(a.texts)) for u, a in zip(turns[:-1:2], turns[1:-1:2], strict=True))
    return Prompt(image, question, partial=partial, history=history, system=system)


def _turns(messages: list[Message]) -> tuple[str | None, list[_Turn]]:
    """The system text, and the user/assistant turns with consecutive same-role messages merged."""
    system: list[str] = []
    turns: list[_Turn] = []
    for i, m in enumerate(messages):
        texts, images = _content(m, i)
        if m.role in ("system", "developer"):
            if turns:
                raise bad(f"messages.{i} is a {m.role} message after the conversation began: put it first",
                          f"messages.{i}.role")
            if images:
                raise bad(f"messages.{i}: images go in a user message, not a {m.role} message", f"messages.{i}.content")
            system += texts
            continue
        if m.role == "assistant" and images:
            raise bad(f"messages.{i}: images go in a user message, not an assistant message", f"messages.{i}.content")
        if turns and turns[-1].role == m.role:
            turns[-1].texts += texts
            turns[-1].images += images
        else:
            turns.append(_Turn(m.role, texts, images, i))
    return ("\n\n".join(system) if system else None), turns


def _content(m: Message, i: int) -> tuple[list[str], list[tuple[str, str]]]:
    """A message's text parts and image URLs (with the parameter each came from)."""
    where = f"messages.{i}.content"
    if m.content is None or m.content == "" or m.content == []:
        raise bad(f"messages.{i} ({m.role}) has no content", where)
    if isinstance(m.content, str):
        return [m.content], []
    texts, images = [], []
    for j, part in enumerate(m.content):
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ImagePart):
            url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
            images.append((url, f"{where}.{j}.image_url"))
    return texts, images


def to_sampling(request: ChatCompletionRequest, caps: Caps, prompt_tokens: int,
                defaults: dict[str, Any] | None = None) -> Sampling:
    """The request's sampling parameters within the caps. `defaults` are the model's own
    (temperature, top_p from its generation config), used where the request gives none."""
    defaults = defaults or {}
    if request.n > caps.max_n:
        raise bad(f"n is {request.n}; this server returns at most {caps.max_n} choices per request", "n")
    stops = request.stops
    if len(stops) > caps.max_stops:
        raise bad(f"stop has {len(stops)} strings; this server takes at most {caps.max_stops}", "stop")
    if any(not s for s in stops):
        raise bad("stop strings must not be empty", "stop")
    param = "max_completion_tokens" if request.max_completion_tokens is not None else "max_tokens"
    limit = request.token_limit
    if limit is not None and limit > caps.max_tokens:
        raise bad(f"{param} is {limit}, over this server's cap of {caps.max_tokens}", param)
    room = caps.context - prompt_tokens
    if room < 1:
        raise bad(f"the prompt is {prompt_tokens} tokens, and this model's context is {caps.context}: shorten the "
                  "messages", "messages", "context_length_exceeded")
    if limit is not None and limit > room:
        raise bad(f"this model's context is {caps.context} tokens: the prompt's {prompt_tokens} and {param} {limit} "
                  f"do not fit; ask for at most {room}", param, "context_length_exceeded")
    if request.top_logprobs is not None and not request.logprobs:
        raise bad("top_logprobs needs logprobs: true", "top_logprobs")
    if request.frequency_penalty or request.presence_penalty:
        raise bad("frequency_penalty and presence_penalty are not supported by this server", "frequency_penalty")
    if request.tools:
        raise bad("this server does not call tools", "tools")
    if request.response_format and request.response_format.get("type", "text") != "text":
        raise bad("response_format other than text is not supported by this server", "response_format")
    temperature = request.temperature if request.temperature is not None else defaults.get("temperature", 1.0)
    top_p = request.top_p if request.top_p is not None else defaults.get("top_p", 1.0)
    return Sampling(n=request.n, temperature=temperature, top_p=top_p,
                    max_new_tokens=limit if limit is not None else min(caps.max_tokens, room),
                    stop=tuple(stops), seed=request.seed,
                    logprobs=(request.top_logprobs or 0) if request.logprobs else None)


def prompt_tokens(processor: Any, prompt: Prompt, image_tokens: int = 0) -> int:
    """How many tokens the prompt takes, from its rendered text (an image counted as
    `image_tokens`, the model's fixed count, where it has one): cheap, for the context check
    before the engine encodes the prompt itself."""
    text = models.prompt_text(processor, prompt.question, prompt.partial or None, image=prompt.image is not None,
                              history=prompt.history, system=prompt.system)
    tokenizer = getattr(processor, "tokenizer", processor)
    ids = tokenizer(text, add_special_tokens=models.add_special_tokens(processor, text))["input_ids"]
    return len(ids) + (max(image_tokens - 1, 0) if prompt.image is not None else 0)
