"""Engines: what runs a model. One small interface, chosen by name.

An engine continues prompts. A `Prompt` is an image, a question and the assistant text so far
(empty at the start); `generate(prompts, sampling)` returns, for each prompt, `sampling.n`
`Completion`s, each stopped at the first of `sampling.stop` (the stop string is kept at the end
of the text), at the end of the turn, or at `max_new_tokens`. `choice_logprobs(prompts, choices)`
gives, for each prompt, the log-probability of each short choice (for example "1" / "2", "yes" /
"no") as the model's next words: judges read verdicts from it instead of parsing generated text,
and send all the questions of a round in one call.

    from llava_cot.engines import Prompt, Sampling, load_engine
    engine = load_engine("hf", model=None)          # the embedded model
    outs = engine.generate([Prompt(image, "How many circles?")],
                           Sampling(n=4, temperature=0.7, stop=("</SUMMARY>",), seed=0))

Every engine keeps a running `Cost` (tokens generated, forward passes, prompt tokens encoded,
prompt tokens reused from its prefix cache); searches report the difference over their run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from llava_cot.errors import LlavaCotError


@dataclass(frozen=True)
class Prompt:
    """What the model is asked: the last user turn (`question`, about `image`), optionally after
    a system message and earlier (user, assistant) text turns, and the assistant text so far.
    The image belongs to the first user turn (as in LLaVA-CoT-100k's multi-turn records)."""

    image: Any  # a PIL image (or None for a text-only prompt)
    question: str
    partial: str = ""  # the assistant's text so far; generation continues it
    history: tuple[tuple[str, str], ...] = ()  # earlier (user text, assistant text) turns
    system: str | None = None  # a system message, if any


@dataclass(frozen=True)
class Sampling:
    n: int = 1
    temperature: float = 0.0  # 0 is greedy
    top_p: float = 1.0
    max_new_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int | None = None  # sample i of n draws from its own generator, seeded by (seed, i)
    logprobs: int | None = None  # also return each token's log-probability and this many alternatives

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_new_tokens < 1:
            raise ValueError("Sampling needs n >= 1 and max_new_tokens >= 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("Sampling needs temperature >= 0 and 0 < top_p <= 1")
        if self.logprobs is not None and self.logprobs < 0:
            raise ValueError("Sampling needs logprobs >= 0")


@dataclass
class TokenLogprob:
    token: str  # the token's text
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)  # the most likely alternatives, best first


@dataclass
class Completion:
    text: str  # the continuation, ending with the stop string that ended it, if any
    tokens: int  # tokens generated for it
    logprob: float  # sum of the model's log-probabilities of those tokens (temperature 1)
    finish: str  # "stop" (a stop string), "end" (end of turn), "length" or "cancelled"
    stop_reason: str | None = None  # the stop string that ended it (finish "stop")
    token_logprobs: list[TokenLogprob] | None = None  # with Sampling.logprobs


@dataclass(frozen=True)
class Delta:
    """New text of one of a request's samples, as it is decoded."""

    index: int  # which of the n samples
    text: str


class QueueFull(LlavaCotError):
    """The engine's queue of waiting requests is at its limit; try again later."""


@dataclass
class Cost:
    tokens_generated: int = 0
    forward_passes: int = 0  # model calls: a prefill or a batched decoding step is one
    prompt_tokens: int = 0  # prompt tokens run through the model
    cached_tokens: int = 0  # prompt tokens whose keys and values came from the prefix cache

    def __sub__(self, other: Cost) -> Cost:
        return Cost(**{k: getattr(self, k) - getattr(other, k) for k in vars(self)})

    def copy(self) -> Cost:
        return Cost(**vars(self))

    def add(self, other: Cost) -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))


class Engine(Protocol):
    cost: Cost

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]: ...

    def choice_logprobs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> list[list[float]]: ...

    # Optional (the hf engine has it; the likelihood judge needs it): per-token log-probabilities
    # of each text as the continuation of the prompt, teacher-forced.
    # def token_logprobs(self, prompt: Prompt, texts: Sequence[str]) -> list[list[float]]: ...


ENGINES: dict[str, str] = {
    "hf": "llava_cot.engines.hf:HFEngine",
    "openai": "llava_cot.engines.remote:OpenAIEngine",
}


def load_engine(name: str, **options: Any) -> Engine:
    """The engine called `name` (a key of ENGINES), built with its own options."""
    import importlib

    try:
        module, cls = ENGINES[name].split(":")
    except KeyError:
        raise LlavaCotError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}") from None
    return getattr(importlib.import_module(module), cls)(**options)


__all__ = ["ENGINES", "Completion", "Cost", "Delta", "Engine", "Prompt", "QueueFull", "Sampling", "TokenLogprob",
           "load_engine"]
