"""The `hf` engine: a local transformers model behind the engine interface, decoding every
answer (greedy or sampled, one prompt or many, streamed or not) with continuous batching.

    engine = HFEngine()                       # the embedded model; or HFEngine("path/or/hub-id")
    [outs] = engine.generate([Prompt(image, "How many cubes?")], Sampling(n=4, temperature=0.7, seed=0))
    req = engine.submit(Prompt(image, "How many cubes?"), Sampling(max_new_tokens=256))  # any thread
    for delta in req.stream(): print(delta.text, end="")

The parts, after nano-vllm's shape:

- `engines/sequence.py`: a Request (a prompt, its sampling settings, its stream) and its Rows (one
  per sample: own generator, stop strings, budget, detokenizer, KV slot);
- `engines/scheduler.py`: the running batch; rows join once prefilled and leave at their stop
  string, end of turn or length, between steps;
- `engines/kv.py`: the batch's KV memory, allocated once and written in place;
- `engines/runner.py`: the only code that calls the model (prefill through a prefix cache keyed
  by token ids and image, one decoding step, teacher-forced scoring), positions per row.

Scoring has one primitive, `score` (each text's per-token log-probabilities as the continuation
of its prompt, teacher-forced); `token_logprobs` and `choice_logprobs` (the judges' verdicts)
are read from it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from llava_cot import models
from llava_cot.engines import Completion, Cost, Prompt, Sampling
from llava_cot.engines.runner import PER_TOKEN, Entry, Runner, image_key, on
from llava_cot.engines.scheduler import Scheduler
from llava_cot.engines.sequence import Request

JUDGE_BATCH = 16  # scored texts per padded forward pass
_ENCODED = 64  # processor outputs remembered (judges encode the same prompts again and again)


def _common_prefix(rows: Sequence[Sequence[int]], most: int) -> int:
    """How many leading tokens all rows share, at most `most`."""
    return next((i for i in range(most) if any(r[i] != rows[0][i] for r in rows[1:])), most)


class HFEngine:
    """A local model behind the engine interface (see the module docstring)."""

    def __init__(self, model: Any = None, device: str = "auto", dtype: str = "auto", cache_size: int = 16,
                 max_batch: int = 32, max_kv_tokens: int = 1 << 20, max_queue: int = 1024) -> None:
        self.loaded = model if isinstance(model, models.Loaded) else models.load(model, device=device, dtype=dtype)
        self.model = self.loaded.model.eval()
        self.processor = self.loaded.processor
        self.tokenizer = self.processor.tokenizer
        self._costs = threading.local()
        self.lock = threading.RLock()  # one model call at a time: the scheduler's, or a scorer's
        self.runner = Runner(self.model, cache_size)
        self.scheduler = Scheduler(self, max_batch, max_kv_tokens, max_queue)
        self._encoded: OrderedDict[tuple[str, str], tuple[tuple[int, ...], Any]] = OrderedDict()
        config = self.model.config
        self.image_token = getattr(config, "image_token_id", None)
        if self.image_token is None:
            self.image_token = getattr(config, "image_token_index", None)
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos = set(eos) | ({self.tokenizer.eos_token_id} if self.tokenizer.eos_token_id is not None else set())

    @property
    def cost(self) -> Cost:
        """What this thread's calls have cost so far: requests it submitted (counted once they
        end) and its scoring. Per thread, so that concurrent searches each see their own."""
        if not hasattr(self._costs, "cost"):
            self._costs.cost = Cost()
        return self._costs.cost

    @property
    def model_dir(self) -> str | None:
        """The model's local directory (where search calibration is kept), if it has one."""
        from pathlib import Path

        return self.loaded.name if Path(self.loaded.name).is_dir() else None

    # -- decoding -----------------------------------------------------------------------------

    def submit(self, prompt: Prompt, sampling: Sampling, on_done: Any = None) -> Request:
        """Queue a request (from any thread); its rows join the running batch at the next step.
        `on_done(request)` is called (in the scheduler's thread) once it has ended."""
        return self.scheduler.submit(Request(prompt, sampling, on_done, owner=self.cost))

    def generate(self, prompts: Sequence[Prompt], sampling: Sampling) -> list[list[Completion]]:
        """For each prompt, `sampling.n` completions: all prompts decode in one running batch."""
        requests = [self.submit(p, sampling) for p in prompts]
        return [r.result() for r in requests]

    def stats(self) -> dict[str, int]:
        """Rows running, requests waiting, KV tokens reserved."""
        return self.scheduler.stats()

    def close(self) -> None:
        """Stop decoding (anything unfinished is cancelled)."""
        self.scheduler.close()

    def prefill(self, request: Request) -> Entry:
        """The request's prompt run through the model (called by the scheduler, under the lock)."""
        ids, inputs = self.encode(request.prompt)
        request.prompt_tokens = len(ids)
        return self.runner.prefill(ids, inputs, image_key(request.prompt.image), self.image_token, request.cost)

    # -- prompts ------------------------------------------------------------------------------

    def encode(self, prompt: Prompt) -> tuple[tuple[int, ...], Any]:
        """The prompt's token ids, and the processor's tensors for it on the model's device."""
        text = models.prompt_text(self.processor, prompt.question, prompt.partial or None,
                                  image=prompt.image is not None, history=prompt.history, system=prompt.system)
        key = (image_key(prompt.image), text)
        if key in self._encoded:
            self._encoded.move_to_end(key)
            return self._encoded[key]
        inputs = self.processor(images=[prompt.image] if prompt.image is not None else None, text=[text],
                                return_tensors="pt", add_special_tokens=models.add_special_tokens(self.processor, text))
        found = (tuple(inputs["input_ids"][0].tolist()), on(inputs, self.loaded.device))
        self._encoded[key] = found
        while len(self._encoded) > _ENCODED:
            self._encoded.popitem(last=False)
        return found

    # -- scoring ------------------------------------------------------------------------------

    def score(self, items: Sequence[tuple[Prompt, str]]) -> list[list[float]]:
        """For each (prompt, text), the log-probability of each of the text's tokens as the
        continuation of the prompt, teacher-forced. The text is tokenised inside the rendered chat
        text, as in training; where the boundary merges with the prompt's last token (a trailing
        space and "1" into " 1"), the merged token is the text's first. Items about one image
        share their common prefix (run once, through the prefix cache); the rest of each runs in
        right-padded batches of JUDGE_BATCH."""
        import torch

        out: list[list[float]] = [[] for _ in items]
        groups: dict[str, list[int]] = {}
        for i, (prompt, _) in enumerate(items):
            groups.setdefault(image_key(prompt.image), []).append(i)
        with self.lock, torch.inference_mode():
            for image, members in groups.items():
                for k in range(0, len(members), JUDGE_BATCH):
                    chunk = members[k:k + JUDGE_BATCH]
                    for i, logps in zip(chunk, self._score_chunk([items[i] for i in chunk], image), strict=True):
                        out[i] = logps
        return out

    def _score_chunk(self, items: Sequence[tuple[Prompt, str]], image: str) -> list[list[float]]:
        import torch

        rows, starts, inputs = [], [], None
        for prompt, text in items:
            head = self.encode(prompt)[0]
            ids, inputs_i = self.encode(Prompt(prompt.image, prompt.question, prompt.partial + text,
                                               prompt.history, prompt.system))
            inputs = inputs if inputs is not None else inputs_i
            rows.append(ids)
            starts.append(_common_prefix([ids, head], min(len(ids), len(head))))
        common = _common_prefix(rows, min([*starts, *(len(r) - 1 for r in rows)]))
        if self.image_token is not None and len(rows) > 1 and any(self.image_token in r[common:] for r in rows):
            # the image sits where the rows differ: each row on its own (its image in its prefix)
            return [lp for item in items for lp in self._score_chunk([item], image)]
        head = {key: (v[:, :common] if key in PER_TOKEN else v) for key, v in inputs.items()}
        cost = self.cost
        entry = self.runner.prefill(rows[0][:common], on(head, self.loaded.device), image, self.image_token, cost)
        reads = [range(s, len(r)) for s, r in zip(starts, rows, strict=True)]
        logps = self.runner.teacher_forced(entry, rows, common, reads, cost)
        return [lp.gather(-1, torch.tensor(r[read.start:], device=lp.device)[:, None])[:, 0].tolist()
                for lp, read, r in zip(logps, reads, rows, strict=True)]

    def token_logprobs(self, prompt: Prompt, texts: Sequence[str]) -> list[list[float]]:
        """For each text, the log-probability of each of its tokens after `prompt` (see `score`)."""
        return self.score([(prompt, t) for t in texts])

    def choice_logprobs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> list[list[float]]:
        """For each prompt, the log-probability of each choice as the start of the answer."""
        scores = self.score([(p, c) for p in prompts for c in choices])
        k = len(choices)
        return [[sum(s) for s in scores[i * k:(i + 1) * k]] for i in range(len(prompts))]
