"""Stage-level search speed: our engine and search against the reference implementation's strategy.

The reference LLaVA-CoT code searches stage by stage like this (written out below, for
comparison only): every candidate is a separate `generate` call that re-encodes the image and
the prompt; its stop criterion decodes the whole generated sequence at every new token to look
for the stage's closing tag; every judge comparison is its own forward pass. Ours samples the N
candidates of a stage in one batch from one prefill of the prompt (kept in the engine's prefix
cache across stages), finds stop strings incrementally, and judges each knockout round in one batch.

Both run the same search tree (stage_beam: 4 stages x --beam candidates, a pairwise knockout with
both orders per stage; or with --judge likelihood each candidate scored by the model's own token
probabilities, the reference way one forward pass per candidate), with the same per-stage token budget, sampling temperature and seeds per
question, on the same model (default: the embedded one), one thread. After one untimed round,
--repeats rounds are timed and the median round of each strategy is reported. Prints the wall
times, the ratio, and our stage_beam over our greedy; then what one decoding step of --beam rows
costs against one row on this machine (the most batching can save on the model's steps; a tiny
model on a CPU is compute-bound, so little); the last line is one JSON object of the figures.

    python benchmarks/search_speed.py [--beam 4] [--questions 3] [--model DIR] [--device cpu]
    python benchmarks/search_speed.py --arch llama-3.2-11b-vision --device cuda --stage-tokens 64

With --arch llama-3.2-11b-vision (a GPU) the model is the Llama-3.2-11B-Vision architecture with
random weights (config only, nothing downloaded) and a byte-level stand-in tokenizer; a random
model never writes a closing tag, so every candidate runs to the fixed per-stage budget.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from llava_cot import critique, models, stages
from llava_cot.engines import Prompt
from llava_cot.engines.hf import HFEngine
from llava_cot.judges import LikelihoodJudge, PairwiseJudge, stage_text
from llava_cot.search import SearchConfig, run

QUESTIONS = [
    ("scene1.png", "How many circles are there?"),
    ("scene2.png", "Subtract all small objects. How many objects are left?"),
    ("scene3.png", "Is there a red square?"),
]


# ---------------------------------------------------------------------------------------------
# The reference strategy (for comparison only)


class WholeSequenceStop:
    """The reference stop criterion: decode everything generated so far at every step."""

    def __init__(self, tokenizer, stop: str, prompt_len: int):
        self.tokenizer, self.stop, self.prompt_len = tokenizer, stop, prompt_len

    def __call__(self, input_ids, scores, **kwargs):
        text = self.tokenizer.decode(input_ids[0, self.prompt_len:], skip_special_tokens=True)
        return torch.tensor([self.stop in text])


def encode(loaded, image, text: str):
    """The processor's inputs for one image and one rendered prompt, on the model's device."""
    return loaded.processor(images=[image], text=[text], return_tensors="pt",
                            add_special_tokens=models.add_special_tokens(loaded.processor, text)).to(loaded.device)


def reference_candidate(loaded, image, question, partial, stop, budget, temperature, seed):
    from transformers import StoppingCriteriaList

    torch.manual_seed(seed)
    text = models.prompt_text(loaded.processor, question, partial or None)
    inputs = encode(loaded, image, text)
    n = inputs["input_ids"].shape[1]
    criteria = StoppingCriteriaList([WholeSequenceStop(loaded.processor.tokenizer, stop, n)])
    out = loaded.model.generate(**inputs, do_sample=True, temperature=temperature, max_new_tokens=budget,
                                stopping_criteria=criteria)
    new = out[0, n:]
    got = loaded.processor.tokenizer.decode(new, skip_special_tokens=True)
    return (got[: got.index(stop) + len(stop)] if stop in got else got), len(new)


def reference_verdict(loaded, image, question, previous, stage, first, second) -> float:
    """log P("1") - log P("2") for one order, one forward pass of its own."""
    q = critique.pairwise(question, previous, stage, first, second)
    text = models.prompt_text(loaded.processor, q)
    inputs = encode(loaded, image, text)
    logp = torch.log_softmax(loaded.model(**inputs).logits[0, -1].float(), -1)
    one, two = (loaded.processor.tokenizer(" " + c, add_special_tokens=False)["input_ids"][-1] for c in critique.PAIR_CHOICES)
    return float(logp[one] - logp[two])


def reference_likelihood(loaded, image, question, partial, candidate) -> float:
    """The likelihood judge's score, the reference way: one forward pass per candidate over the
    whole prompt, image included."""
    head = models.prompt_text(loaded.processor, question, partial or None)
    text = models.prompt_text(loaded.processor, question, partial + candidate)
    n = encode(loaded, image, head)["input_ids"].shape[1]
    inputs = encode(loaded, image, text)
    logp = torch.log_softmax(loaded.model(**inputs).logits[0, n - 1:-1].float(), -1)
    ids = inputs["input_ids"][0, n:]
    return float(logp.gather(-1, ids[:, None]).min().exp()) if len(ids) else 0.0


def reference_stage_beam(loaded, image, question, cfg: SearchConfig, orders: str = "both",
                         judge: str = "pairwise") -> tuple[str, int]:
    text, tokens = "", 0
    for k, stage in enumerate(stages.STAGES):
        cands = []
        for i in range(cfg.beam):  # one generate per candidate, the prompt re-encoded each time
            c, n = reference_candidate(loaded, image, question, text, stages.close_tag(stage), cfg.step_tokens,
                                       cfg.temperature, cfg.seed + 1000 * k + i)
            cands.append(c)
            tokens += n
        if judge == "likelihood":  # every candidate scored on its own, the best kept
            scores = [reference_likelihood(loaded, image, question, text, c) for c in cands]
            text += cands[max(range(len(cands)), key=lambda i: (scores[i], -i))]
            continue
        previous = stages.parse(text).stages
        pool = list(range(len(cands)))
        while len(pool) > 1:  # the same knockout, every comparison and order on its own
            nxt = []
            for a, b in zip(pool[::2], pool[1::2], strict=False):
                ta, tb = stage_text(cands[a], stage), stage_text(cands[b], stage)
                odds = reference_verdict(loaded, image, question, previous, stage, ta, tb)
                if orders == "both":
                    odds -= reference_verdict(loaded, image, question, previous, stage, tb, ta)
                nxt.append(a if odds >= 0 else b)
            pool = nxt + pool[2 * len(nxt):]
        text += cands[pool[0]]
        if stages.parse(text).stages.get(stages.STAGES[-1]) is not None and stage == stages.STAGES[-1]:
            break
    return text, tokens


# ---------------------------------------------------------------------------------------------


def random_11b(device: str):
    """Llama-3.2-11B-Vision's architecture with random weights, and a processor for it: the
    11B's vision encoder, tiling and layer shapes (MllamaConfig's defaults), with a byte-level
    stand-in tokenizer (ours, 4k tokens) whose size replaces the 128k-row embedding and head."""
    from tests import tiny_vlms
    from transformers import (
        MllamaConfig,
        MllamaForConditionalGeneration,
        MllamaImageProcessorPil,
        MllamaProcessor,
    )

    tok = tiny_vlms.llama3_tokenizer(vocab_size=4096)
    processor = MllamaProcessor(image_processor=MllamaImageProcessorPil(), tokenizer=tok,
                                chat_template=tiny_vlms.MLLAMA_TEMPLATE)
    config = MllamaConfig(image_token_index=tok.convert_tokens_to_ids("<|image|>"))
    config.text_config.vocab_size = len(tok)
    config.text_config.eos_token_id = tok.eos_token_id
    with torch.device(device):
        model = MllamaForConditionalGeneration(config).to(torch.bfloat16).eval()
    return models.Loaded(model, processor, "random Llama-3.2-11B-Vision")


def step_cost(loaded, image, question, rows: int, steps: int = 64) -> float:
    """Seconds per decoding step of `rows` sequences over one prompt's cache (plain attention,
    the model alone): how a batch's cost grows with its rows on this machine. Where N rows cost
    N times one row (compute-bound, as a tiny model is on a CPU), batching N candidates cannot
    save what N sequential calls spend."""
    import copy

    text = models.prompt_text(loaded.processor, question)
    inputs = encode(loaded, image, text)
    length = inputs["input_ids"].shape[1]
    prefix = loaded.model(**inputs, use_cache=True).cache
    best = float("inf")
    for _ in range(3):  # the fastest of three runs: the machine's cost, not its interruptions
        cache = copy.deepcopy(prefix)
        cache.batch_repeat_interleave(rows)
        token = torch.zeros(rows, 1, dtype=torch.long, device=loaded.device)
        extra = {}
        if "cross_attention_mask" in inputs:
            extra["cross_attention_mask"] = inputs["cross_attention_mask"][:, -1:].expand(rows, 1, *inputs["cross_attention_mask"].shape[2:])
        def decode(cache=cache, token=token, extra=extra):
            for s in range(steps):
                loaded.model(input_ids=token, cache=cache, use_cache=True,
                             position_ids=torch.full((rows, 1), length + s, device=loaded.device), **extra)
        best = min(best, timed(decode)[1] / steps)
    return best


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="model directory (default: the embedded model)")
    ap.add_argument("--arch", default=None, choices=["llama-3.2-11b-vision"], help="a random model of this architecture")
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--questions", type=int, default=3)
    ap.add_argument("--stage-tokens", type=int, default=384, help="per-stage token budget")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds over the questions; the median is reported")
    ap.add_argument("--orders", default="both", choices=["both", "random"],
                    help="pairwise judge: both orders of each pair, or one random order (both strategies)")
    ap.add_argument("--judge", default="pairwise", choices=["pairwise", "likelihood"],
                    help="stage_beam's judge (both strategies): the paper's pairwise knockout, or the model's "
                         "own token probabilities")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    torch.set_num_threads(args.threads)
    loaded = random_11b(args.device) if args.arch else models.load(args.model, device=args.device, dtype="float32")
    examples = Path(__file__).resolve().parents[1] / "examples"
    items = [(models.open_image(examples / f), q) for f, q in QUESTIONS[: args.questions]]
    cfg = SearchConfig(beam=args.beam, temperature=args.temperature, step_tokens=args.stage_tokens,
                       max_new_tokens=4 * args.stage_tokens)
    rounds: list[dict[str, list[float]]] = []  # per timed round: {strategy: [seconds, tokens]}
    def judge():
        return PairwiseJudge(args.orders) if args.judge == "pairwise" else LikelihoodJudge()

    with torch.inference_mode():
        # one untimed round of all three first: one-time costs (kernels, lazy set-up) are not search speed
        image, question = items[0]
        run("greedy", HFEngine(loaded), Prompt(image, question), cfg)
        run("stage_beam", HFEngine(loaded), Prompt(image, question), cfg, judge())
        reference_stage_beam(loaded, image, question, cfg, args.orders, args.judge)
        for _ in range(args.repeats):
            got = {"greedy": [0.0, 0], "stage_beam": [0.0, 0], "reference": [0.0, 0]}
            judge_calls = 0
            for image, question in items:
                engine = HFEngine(loaded)  # a fresh prefix cache per question: nothing carried over
                greedy, t = timed(lambda: run("greedy", engine, Prompt(image, question), cfg))  # noqa: B023
                got["greedy"][0] += t
                got["greedy"][1] += greedy.tokens_generated
                engine = HFEngine(loaded)
                ours, t = timed(lambda: run("stage_beam", engine, Prompt(image, question), cfg, judge()))  # noqa: B023
                got["stage_beam"][0] += t
                got["stage_beam"][1] += ours.tokens_generated
                judge_calls += ours.judge_calls
                (_, tokens), t = timed(lambda: reference_stage_beam(loaded, image, question, cfg, args.orders, args.judge))  # noqa: B023
                got["reference"][0] += t
                got["reference"][1] += tokens
            rounds.append(got)
    # the median round of each strategy (the same seeds every round: the tokens do not change)
    figures = {k: [statistics.median(r[k][0] for r in rounds), rounds[0][k][1]] for k in rounds[0]}
    with torch.inference_mode():
        one, many = (step_cost(loaded, *items[0], rows) for rows in (1, args.beam))
    for name, (seconds, tokens) in figures.items():
        print(f"{name:>11}: {seconds:7.2f} s, {tokens:6d} tokens generated, {tokens / seconds:7.1f} tokens/s")
    speedup = figures["reference"][0] / figures["stage_beam"][0]
    over = figures["stage_beam"][0] / figures["greedy"][0]
    print(f"stage_beam --beam {args.beam}: {speedup:.1f}x faster than the reference strategy; "
          f"{over:.2f}x the wall time of greedy")
    print(f"one decoding step of {args.beam} rows: {many / one:.2f}x the time of one row ({1e3 * many:.2f} ms and "
          f"{1e3 * one:.2f} ms): batching {args.beam} candidates saves at most {args.beam * one / many:.2f}x on the model's steps")
    print(json.dumps({
        "model": loaded.name, "device": args.device, "beam": args.beam, "questions": len(items), "repeats": args.repeats,
        "orders": args.orders, "judge": args.judge,
        "greedy_s": round(figures["greedy"][0], 3), "stage_beam_s": round(figures["stage_beam"][0], 3),
        "reference_s": round(figures["reference"][0], 3), "tokens": {k: v[1] for k, v in figures.items()},
        "judge_calls": judge_calls, "speedup_vs_reference": round(speedup, 2),
        f"stage_beam{args.beam}_over_greedy": round(over, 3),
        "step_ms": {"1": round(1e3 * one, 3), str(args.beam): round(1e3 * many, 3)},
    }))


if __name__ == "__main__":
    main()
