"""The `hf` engine: a local transformers model, with the search-friendly decoding loop.

    engine = HFEngine()                       # the embedded model; or HFEngine("path/or/hub-id")
    [outs] = engine.generate([Prompt(image, "How many cubes?")], Sampling(n=4, temperature=0.7, seed=0))

Why its own loop rather than `model.generate`: a search asks many times for N continuations of
one prompt whose prefix only grows. Here

- the prompt (image included) is encoded once, and the N samples attend to that one copy of its
  keys and values (shared-prefix attention, `engines/cascade.py`) instead of encoding the
  prompt N times or copying its cache N ways;
- prompts are kept in a small prefix cache keyed by their token ids and image: a later prompt that
  extends a cached one (the next stage, a judge's second choice) runs only its new tokens;
- stop strings are found incrementally: each step decodes only the new token of each sequence
  (with a few tokens of left context, as vLLM's detokenizer does) and searches only the tail;
- a finished sequence leaves the batch, so the remaining steps get cheaper.

The model is any image-text-to-text checkpoint `models.load` accepts. Multimodal position state
(Qwen2-VL's `rope_deltas`) and Mllama's cross-attention mask are carried with each cache entry.
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llava_cot import models
from llava_cot.engines import Completion, Cost, Prompt, Sampling, cascade
from llava_cot.engines.decoding import Detokenizer, first_stop, pick
from llava_cot.engines.kv import GrowingLayer, grow_in_place

JUDGE_BATCH = 16  # judge prompts per padded forward pass
# processor outputs with one entry per token (cut with the tokens); the rest are per image
_PER_TOKEN = ("input_ids", "attention_mask", "cross_attention_mask", "token_type_ids", "mm_token_type_ids")
_CONTEXT = 6  # prompt tokens kept as left context when decoding the first new tokens


@dataclass
class _Entry:
    """A prompt run through the model: its ids, keys and values, and the next-token logits."""

    ids: tuple[int, ...]
    image: str  # a digest of the image (ids alone do not tell two images apart)
    cache: Any
    logits: Any  # [vocab], float32
    rope_deltas: Any = None
    xmask: Any = None  # Mllama: the cross-attention mask row for text after the prompt


def _fork(cache: Any) -> Any:
    """A copy of a cache that can grow without touching the original: the layer objects are
    copied, the tensors shared. A GrowingLayer copy does not own the shared tensors, so its
    first write goes to a buffer of its own (engines/kv.py); other layers replace their tensors
    when they grow (torch.cat) rather than write into them."""
    new = copy.copy(cache)
    new.layers = [copy.copy(layer).adopt() if isinstance(layer, GrowingLayer) else copy.copy(layer)
                  for layer in cache.layers]
    return new


def _on(inputs: Any, device: Any) -> Any:
    """A processor's output on `device` (a plain dict from a processor-like callable included)."""
    from transformers import BatchFeature

    return (inputs if isinstance(inputs, BatchFeature) else BatchFeature(dict(inputs))).to(device)


def _common_prefix(rows: Sequence[Sequence[int]], most: int | None = None) -> int:
    """How many leading tokens all rows share: at most `most`, and by default at most one less
    than the shortest row (so that every row has a token of its own to run)."""
    limit = min(len(r) for r in rows) - 1 if most is None else most
    return next((i for i in range(limit) if any(r[i] != rows[0][i] for r in rows[1:])), limit)


def _image_key(image: Any) -> str:
    if image is None:
        return ""
    return f"{image.size}:{image.mode}:" + hashlib.sha1(image.tobytes()).hexdigest()


class HFEngine:
    """A local model behind the engine interface (see the module docstring)."""

    def __init__(self, model: Any = None, device: str = "auto", dtype: str = "auto",
                 cache_size: int = 16) -> None:
        self.loaded = model if isinstance(model, models.Loaded) else models.load(model, device=device, dtype=dtype)
        self.model = self.loaded.model.eval()
        self.processor = self.loaded.processor
        self.tokenizer = self.processor.tokenizer
        self.cost = Cost()
        self.cache_size = cache_size
        self._entries: OrderedDict[tuple[str, tuple[int, ...]], _Entry] = OrderedDict()
        self._shapes: dict[tuple[str, bool, str], tuple[int, int]] = {}
        config = self.model.config
        self.image_token = getattr(config, "image_token_id", None)
        if self.image_token is None:
            self.image_token = getattr(config, "image_token_index", None)
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos = set(eos) | ({self.tokenizer.eos_token_id} if self.tokenizer.eos_token_id is not None else set())
        # shared-prefix attention for N samples of one prompt (engines/cascade.py): checked
        # against the plain path on the model's first sampling step, then remembered on the model
        if not cascade.enable(self.model):
            self.model._llava_cot_cascade = False

    @property
    def model_dir(self) -> str | None:
        """The model's local directory (where search calibration is kept), if it has one."""
        from pathlib import Path

        return self.loaded.name if Path(self.loaded.name).is_dir() else None

    # -- the interface ---------------------------------------------------------------------

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        import torch

        with torch.inference_mode():
            return [self._sample(self._prompt(p), sampling) for p in prompts]

    def choice_logprobs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> list[list[float]]:
        """For each prompt, the log-probability of each choice as the start of the answer (the
        sum over its tokens), the choice tokenised inside the rendered chat text, as in training.
        Prompts run as padded batches: when every choice is one token (the judges' "1"/"2"), one
        forward pass per batch reads them all; otherwise one pass per choice."""
        import torch

        if not prompts:
            return []
        with torch.inference_mode():
            # where the answer starts depends on how the prompt ends: group prompts that agree
            groups: dict[tuple[tuple[int, int], ...], list[int]] = {}
            for i, p in enumerate(prompts):
                groups.setdefault(tuple(self._choice_shape(p, c) for c in choices), []).append(i)
            out: list[list[float]] = [[] for _ in prompts]
            for shapes, members in groups.items():
                for i in range(0, len(members), JUDGE_BATCH):
                    rows = members[i:i + JUDGE_BATCH]
                    for r, logp in zip(rows, self._choice_batch([prompts[r] for r in rows], choices, shapes), strict=True):
                        out[r] = logp
            return out

    def _choice_batch(self, prompts: Sequence[Prompt], choices: Sequence[str],
                      shapes: Sequence[tuple[int, int]]) -> list[list[float]]:
        import torch

        if all(k == 1 for _, k in shapes) and len({cut for cut, _ in shapes}) == 1:
            first = prompts[0]
            ids = [self._encode(Prompt(first.image, first.question, first.partial + c))[0][-1] for c in choices]
            if len({_image_key(p.image) for p in prompts}) == 1:
                logits = self._shared_prefix_logits(prompts, shapes[0][0])
            else:
                logits = self._batch_logits(prompts, "", shapes[0][0])[0][:, -1]
            return torch.log_softmax(logits, -1)[:, ids].tolist()
        columns = []
        for choice, (cut, k) in zip(choices, shapes, strict=True):
            logits, ids = self._batch_logits(prompts, choice, cut - k)
            logp = torch.log_softmax(logits[:, -k - 1:-1], -1).gather(-1, ids[:, -k:, None])
            columns.append(logp.sum((1, 2)).tolist())
        return [list(row) for row in zip(*columns, strict=True)]

    def _shared_prefix_logits(self, prompts: Sequence[Prompt], cut: int) -> Any:
        """Next-token logits after each prompt less its last `cut` tokens, for prompts about
        one image: their common prefix (image, question, context) runs once, through the prefix
        cache, and only the rest of each prompt runs, in one batch (`_suffixes`)."""
        import torch

        encoded = [self._encode(p) for p in prompts]
        rows = [ids[:len(ids) - cut] for ids, _ in encoded]
        common = _common_prefix(rows)
        if self.image_token is not None and any(self.image_token in r[common:] for r in rows):
            return self._batch_logits(prompts, "", cut)[0][:, -1]  # the image itself differs in place
        _, logits = self._suffixes(encoded[0][1], rows, common, _image_key(prompts[0].image))
        last = torch.tensor([len(r) - common - 1 for r in rows], device=logits.device)
        return logits[torch.arange(len(rows), device=logits.device), last].float()

    def token_logprobs(self, prompt: Prompt, texts: Sequence[str]) -> list[list[float]]:
        """For each text, the log-probability of each of its tokens as the continuation of
        `prompt` (teacher-forced; tokenised inside the rendered chat text, as in training). The
        prompt runs once, through the prefix cache; the texts after it in batches of JUDGE_BATCH."""
        import torch

        head = self._encode(prompt)[0]
        out: list[list[float]] = []
        with torch.inference_mode():
            for i in range(0, len(texts), JUDGE_BATCH):
                encoded = [self._encode(Prompt(prompt.image, prompt.question, prompt.partial + t))
                           for t in texts[i:i + JUDGE_BATCH]]
                rows = [ids for ids, _ in encoded]
                # where each text's tokens start: the boundary may merge with the prompt's last token
                starts = [_common_prefix([ids, head], min(len(ids), len(head))) for ids in rows]
                common = min([*starts, *(len(r) - 1 for r in rows)])
                entry, logits = self._suffixes(encoded[0][1], rows, common, _image_key(prompt.image))
                for b, (ids, start) in enumerate(zip(rows, starts, strict=True)):
                    # logits[b, k] predicts token common + k + 1; the prefix's own last logits, token common
                    scores = torch.cat([entry.logits[None], logits[b, :len(ids) - common - 1].float()])
                    logp = torch.log_softmax(scores, -1)[start - common:]
                    out.append(logp.gather(-1, torch.tensor(ids[start:], device=logp.device)[:, None])[:, 0].tolist())
        return out

    def _suffixes(self, inputs: Any, rows: Sequence[tuple[int, ...]], common: int, image: str) -> tuple[_Entry, Any]:
        """Rows of token ids that share their first `common` tokens (the processor's `inputs` for
        the first row): the shared part runs once, through the prefix cache, and the rest of each
        row in one right-padded batch (causal attention: no real token sees the padding after it,
        so no mask is needed). The prefix's entry, and the rest's logits [rows, width, vocab] in
        the model's dtype (a float32 copy of them all could be gigabytes for a large vocabulary)."""
        import torch

        head = {k: (v[:, :common] if k in _PER_TOKEN else v) for k, v in inputs.items()}
        entry = self._run(rows[0][:common], _on(head, self.loaded.device), image)
        self._restore(entry)
        cache = _fork(entry.cache)
        cache.batch_repeat_interleave(len(rows))
        width = max(len(r) for r in rows) - common
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        suffix = torch.tensor([list(r[common:]) + [pad] * (width - len(r) + common) for r in rows], device=self.loaded.device)
        extra = {}
        if entry.xmask is not None:
            extra["cross_attention_mask"] = entry.xmask.expand(len(rows), width, *entry.xmask.shape[2:])
        out = self.model(input_ids=suffix, past_key_values=cache, use_cache=True,
                         cache_position=torch.arange(common, common + width, device=self.loaded.device), **extra)
        self.cost.forward_passes += 1
        self.cost.prompt_tokens += sum(len(r) - common for r in rows)
        return entry, out.logits

    def _choice_shape(self, prompt: Prompt, choice: str) -> tuple[int, int]:
        """(how many of the prompt's last tokens the choice replaces, how many tokens it adds):
        the boundary between prompt and answer may merge (a trailing space and "1" into " 1").
        It depends only on how the prompt ends, so it is remembered by the answer's last words."""
        key = (prompt.partial[-64:], prompt.image is None, choice)
        if key not in self._shapes:
            self._shapes[key] = self._measure_shape(prompt, choice)
        return self._shapes[key]

    def _measure_shape(self, prompt: Prompt, choice: str) -> tuple[int, int]:
        head = self._encode(prompt)[0]
        ids = self._encode(Prompt(prompt.image, prompt.question, prompt.partial + choice))[0]
        first = next((i for i, (x, y) in enumerate(zip(ids, head, strict=False)) if x != y), min(len(ids), len(head)))
        if first == len(ids):
            raise ValueError(f"the choice {choice!r} adds no token to the prompt")
        return len(head) - first, len(ids) - first

    def _batch_logits(self, prompts: Sequence[Prompt], choice: str, cut: int) -> tuple[Any, Any]:
        """Logits and input ids of the prompts with `choice` appended to their answer and their
        last `cut` tokens dropped, in one left-padded batch (every row ends at the last position)."""
        texts = [models.prompt_text(self.processor, p.question, (p.partial + choice) or None, image=p.image is not None)
                 for p in prompts]
        images = [[p.image] for p in prompts if p.image is not None] or None  # one list per sample (Mllama insists)
        self.tokenizer.padding_side = "left"
        inputs = self.processor(images=images, text=texts, padding=True, return_tensors="pt",
                                add_special_tokens=models.add_special_tokens(self.processor, texts[0]))
        if cut > 0:
            for key in _PER_TOKEN:
                if key in inputs:
                    inputs[key] = inputs[key][:, :-cut]
        inputs = _on(inputs, self.loaded.device)
        out = self.model(**inputs)
        self.cost.forward_passes += 1
        self.cost.prompt_tokens += int(inputs["attention_mask"].sum())
        return out.logits.float(), inputs["input_ids"]

    # -- prompts and the prefix cache ---------------------------------------------------------

    def _encode(self, prompt: Prompt) -> tuple[tuple[int, ...], Any]:
        text = models.prompt_text(self.processor, prompt.question, prompt.partial or None, image=prompt.image is not None)
        inputs = self.processor(images=[prompt.image] if prompt.image is not None else None, text=[text],
                                return_tensors="pt", add_special_tokens=models.add_special_tokens(self.processor, text))
        return tuple(inputs["input_ids"][0].tolist()), _on(inputs, self.loaded.device)

    def _prompt(self, prompt: Prompt) -> _Entry:
        ids, inputs = self._encode(prompt)
        return self._run(ids, inputs, _image_key(prompt.image))

    def _lookup(self, ids: tuple[int, ...], image: str) -> _Entry | None:
        best = None
        for (img, key), entry in self._entries.items():
            if img == image and ids[:len(key)] == key and (best is None or len(key) > len(best.ids)):
                best = entry
        if best is not None:
            self._entries.move_to_end((image, best.ids))
        return best

    def _run(self, ids: tuple[int, ...], inputs: Any, image: str) -> _Entry:
        """Run a prompt through the model, reusing the longest cached prefix; its entry."""
        import torch

        base = self._lookup(ids, image)
        if base is not None and len(base.ids) == len(ids):
            self.cost.cached_tokens += len(ids)
            return base
        model = self.model
        if base is not None and (self.image_token is None or self.image_token not in ids[len(base.ids):]):
            start = len(base.ids)
            self._restore(base)
            extra = {"cross_attention_mask": base.xmask.expand(1, len(ids) - start, *base.xmask.shape[2:])} if base.xmask is not None else {}
            # no attention mask: nothing is padded, and without one each model derives its
            # positions from the cache (Qwen2-VL's 3-D positions included)
            out = model(input_ids=torch.tensor([ids[start:]], device=self.loaded.device),
                        past_key_values=_fork(base.cache), use_cache=True,
                        cache_position=torch.arange(start, len(ids), device=self.loaded.device), **extra)
            xmask, self.cost.cached_tokens = base.xmask, self.cost.cached_tokens + start
        else:
            start = 0
            out = model(**inputs, use_cache=True)
            xmask = inputs["cross_attention_mask"][:, -1:] if "cross_attention_mask" in inputs else None
        self.cost.forward_passes += 1
        self.cost.prompt_tokens += len(ids) - start
        entry = _Entry(ids, image, grow_in_place(out.past_key_values), out.logits[0, -1].float(),
                       getattr(model.model, "rope_deltas", None), xmask)
        self._entries[(image, ids)] = entry
        while len(self._entries) > self.cache_size:
            self._entries.popitem(last=False)
        return entry

    def _restore(self, entry: _Entry) -> None:
        # Qwen2-VL keeps the position offset of the last image it saw on the model itself
        if entry.rope_deltas is not None:
            self.model.model.rope_deltas = entry.rope_deltas

    # -- decoding -----------------------------------------------------------------------

    def _sample(self, entry: _Entry, sampling: Sampling) -> list[Completion]:
        import torch

        device = self.loaded.device
        n, length = sampling.n, len(entry.ids)
        cache, shared = _fork(entry.cache), False
        if n > 1 and getattr(self.model, "_llava_cot_cascade", None) is False:
            cache.batch_repeat_interleave(n)
        elif n > 1:
            shared = cascade.split(cache, n, length)
        logits = entry.logits.unsqueeze(0).expand(n, -1)
        generator = None
        if sampling.seed is not None:
            generator = torch.Generator(device=logits.device).manual_seed(sampling.seed)
        detoks = [Detokenizer(self.tokenizer, entry.ids[-_CONTEXT:]) for _ in range(n)]
        counts, logps = [0] * n, [0.0] * n
        results: list[Completion | None] = [None] * n
        alive = list(range(n))  # original row of each batch row
        self._restore(entry)
        for step in range(sampling.max_new_tokens):
            tokens = pick(logits, sampling, generator)
            token_logp = torch.log_softmax(logits, -1).gather(-1, tokens[:, None]).squeeze(-1)
            keep = []
            for b, row in enumerate(alive):
                token = int(tokens[b])
                counts[row] += 1
                logps[row] += float(token_logp[b])
                if token in self.eos:
                    results[row] = Completion(detoks[row].final(), counts[row], logps[row], "end")
                    continue
                delta = detoks[row].add(token)
                end = first_stop(detoks[row].text, delta, sampling.stop) if delta and sampling.stop else None
                if end is not None:
                    results[row] = Completion(detoks[row].text[:end], counts[row], logps[row], "stop")
                    continue
                keep.append(b)
            self.cost.tokens_generated += len(alive)
            if not keep or step == sampling.max_new_tokens - 1:
                for b in keep:
                    row = alive[b]
                    results[row] = Completion(detoks[row].final(), counts[row], logps[row], "length")
                break
            if len(keep) < len(alive):  # finished sequences leave the batch
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                tokens = tokens[index]
                alive = [alive[b] for b in keep]
            extra = {}
            if entry.xmask is not None:
                extra["cross_attention_mask"] = entry.xmask.expand(len(alive), 1, *entry.xmask.shape[2:])
            out = self.model(input_ids=tokens[:, None], past_key_values=cache, use_cache=True,
                             cache_position=torch.tensor([length], device=device), **extra)
            if shared and getattr(self.model, "_llava_cot_cascade", None) is None:
                cache, out = self._check_cascade(entry, tokens, length, extra, cache, out)
            self.cost.forward_passes += 1
            length += 1
            logits = out.logits[:, -1].float()
        return [r for r in results if r is not None]

    def _check_cascade(self, entry: _Entry, tokens: Any, length: int, extra: dict[str, Any],
                       cache: Any, out: Any) -> tuple[Any, Any]:
        """The first shared-prefix step of this model, run again the plain way: if the logits
        disagree (a model whose attention code does not fit), the plain cache and output carry
        on and shared-prefix attention is off for this model."""
        import torch

        plain = _fork(entry.cache)
        plain.batch_repeat_interleave(len(tokens))
        check = self.model(input_ids=tokens[:, None], past_key_values=plain, use_cache=True,
                           cache_position=torch.tensor([length], device=self.loaded.device), **extra)
        ok = cascade.agree(out.logits[:, -1], check.logits[:, -1])
        self.model._llava_cot_cascade = ok
        return (cache, out) if ok else (plain, check)
