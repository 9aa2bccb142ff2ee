"""The `hf` engine on tiny models of three architectures: batched and cached decoding gives what
plain `generate` gives, stop strings, seeds, log-probabilities and choice scores are exact, and a
row's result does not depend on what else is in the running batch."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from tests import tiny_vlms

from llava_cot import models
from llava_cot.engines import Prompt, Sampling, load_engine
from llava_cot.engines.decoding import Detokenizer, first_stop
from llava_cot.engines.hf import HFEngine
from llava_cot.errors import LlavaCotError

ARCHS = ["llava", "mllama", "qwen2_vl"]


@pytest.fixture(scope="module")
def engines(root):
    """One engine per architecture (Qwen2-VL through the stand-in processor where needed)."""
    out = {}
    for arch in ARCHS:
        if tiny_vlms.unavailable(arch):
            torch.manual_seed(0)
            model, tok, images = tiny_vlms.qwen2_vl_parts()
            loaded = models.Loaded(model.eval(), tiny_vlms.Qwen2VLStandIn(tok, images), arch)
        else:
            loaded = models.load(tiny_vlms.cached(arch, root), device="cpu")
        out[arch] = HFEngine(loaded)
    return out


def picture(colour="red"):
    img = Image.new("RGB", (64, 64), "white")
    img.paste(Image.new("RGB", (16, 16), colour), (16, 16))
    return img


def reference(engine, prompt, max_new_tokens):
    """Greedy continuation ids from transformers' own generate, for comparison."""
    _, inputs = engine.encode(prompt)
    with torch.inference_mode():
        out = engine.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    ids = [int(t) for t in out[0, inputs["input_ids"].shape[1]:]]
    if any(t in engine.eos for t in ids):
        ids = ids[: next(i for i, t in enumerate(ids) if t in engine.eos) + 1]
    return ids


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_matches_generate_and_batches_agree(engines, arch):
    engine = engines[arch]
    prompt = Prompt(picture(), "What is in the image?")
    ids = reference(engine, prompt, 12)
    want = engine.tokenizer.decode([t for t in ids if t not in engine.eos], skip_special_tokens=True)
    [[one]] = engine.generate([prompt], Sampling(max_new_tokens=12))
    assert (one.text, one.tokens) == (want, len(ids))
    [four] = engine.generate([prompt], Sampling(n=4, max_new_tokens=12))
    assert [(c.text, c.tokens, c.finish) for c in four] == [(one.text, one.tokens, one.finish)] * 4
    assert [c.logprob for c in four] == pytest.approx([one.logprob] * 4, abs=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_prefix_cache_changes_nothing_but_the_cost(engines, arch):
    cached, loaded = engines[arch], engines[arch].loaded
    fresh = HFEngine(loaded, cache_size=0)
    image = picture("blue")
    first = Prompt(image, "Describe it.")
    [[a]] = cached.generate([first], Sampling(max_new_tokens=6))
    longer = Prompt(image, "Describe it.", a.text)
    before = cached.cost.copy()
    [[b]] = cached.generate([longer], Sampling(max_new_tokens=6))
    [[c]] = fresh.generate([longer], Sampling(max_new_tokens=6))
    assert (b.text, b.tokens) == (c.text, c.tokens)
    assert b.logprob == pytest.approx(c.logprob, abs=1e-3)
    spent = cached.cost - before
    assert spent.cached_tokens > 0 and spent.prompt_tokens < fresh.cost.prompt_tokens
    # another image with the same prompt text must not reuse the first image's cache
    [[d]] = cached.generate([Prompt(picture("green"), "Describe it.", a.text)], Sampling(max_new_tokens=6))
    [[e]] = fresh.generate([Prompt(picture("green"), "Describe it.", a.text)], Sampling(max_new_tokens=6))
    assert d.text == e.text


def test_stop_strings_end_the_text_where_they_first_appear(engines):
    engine = engines["llava"]
    prompt = Prompt(picture(), "Say something.")
    [[full]] = engine.generate([prompt], Sampling(max_new_tokens=24))
    assert len(full.text) > 6, "the tiny model should say something to cut"
    stop = full.text[3:5]
    [[cut]] = engine.generate([prompt], Sampling(max_new_tokens=24, stop=(stop, "never appears")))
    assert cut.finish == "stop"
    assert cut.text == full.text[: full.text.index(stop) + len(stop)]
    assert cut.tokens <= full.tokens


def test_length_limit_and_logprob_of_the_tokens(engines):
    engine = engines["llava"]
    prompt = Prompt(picture(), "Say something.")
    [[out]] = engine.generate([prompt], Sampling(max_new_tokens=5))
    ids = reference(engine, prompt, 5)
    assert out.tokens == len(ids) and (out.finish == "length") == (len(ids) == 5)
    _, inputs = engine.encode(prompt)
    n = inputs["input_ids"].shape[1]
    full = torch.cat([inputs["input_ids"], torch.tensor([ids])], 1)
    with torch.inference_mode():
        logits = engine.model(**{**inputs, "input_ids": full, "attention_mask": torch.ones_like(full)}).logits[0]
    want = sum(torch.log_softmax(logits[n - 1 + i].float(), -1)[t].item() for i, t in enumerate(ids))
    assert out.logprob == pytest.approx(want, abs=1e-3)


def test_sampling_is_seeded(engines):
    engine = engines["llava"]
    prompt = Prompt(picture(), "Say something.")
    hot = dict(n=3, temperature=1.5, max_new_tokens=8)
    [a] = engine.generate([prompt], Sampling(**hot, seed=1))
    [b] = engine.generate([prompt], Sampling(**hot, seed=1))
    [c] = engine.generate([prompt], Sampling(**hot, seed=2))
    assert [x.text for x in a] == [x.text for x in b]
    assert [x.text for x in a] != [x.text for x in c]
    assert len({x.text for x in a}) > 1, "three samples at temperature 1.5 should differ"


SAME_IMAGE = [Prompt(picture(), "Judge this. Candidate 1: a red cube. Candidate 2: a blue one."),
              Prompt(picture(), "Judge this. Candidate 1: a blue one. Candidate 2: a red cube."),
              Prompt(picture(), "Judge this.")]
MIXED = [Prompt(picture(), "Is it red? Answer yes or no."), Prompt(picture("blue"), "A longer question, is it?", "I think")]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("prompts,choices", [(MIXED, ["1", "yes", "no way"]), (SAME_IMAGE, ["1", "2"])],
                         ids=["padded-batch", "shared-prefix"])
def test_choice_logprobs_equal_a_full_forward(engines, arch, prompts, choices):
    engine = engines[arch]
    got = engine.choice_logprobs(prompts, choices)
    for prompt, row in zip(prompts, got, strict=True):
        head = engine.encode(prompt)[0]
        for choice, value in zip(choices, row, strict=True):
            ids, inputs = engine.encode(Prompt(prompt.image, prompt.question, prompt.partial + choice))
            first = next((i for i, (x, y) in enumerate(zip(ids, head, strict=False)) if x != y), len(head))
            with torch.inference_mode():
                logits = engine.model(**inputs).logits[0].float()
            want = sum(torch.log_softmax(logits[j - 1], -1)[ids[j]].item() for j in range(first, len(ids)))
            assert value == pytest.approx(want, abs=2e-3), (arch, choice)


@pytest.mark.parametrize("arch", ARCHS)
def test_token_logprobs_equal_a_full_forward(engines, arch):
    engine = engines[arch]
    prompt = Prompt(picture(), "Say something.", "I see")
    texts = [" a red cube.", " it", "", " a much longer text than the others, to pad the batch"]
    got = engine.token_logprobs(prompt, texts)
    head = engine.encode(prompt)[0]
    for text, row in zip(texts, got, strict=True):
        ids, inputs = engine.encode(Prompt(prompt.image, prompt.question, prompt.partial + text))
        first = next((i for i, (x, y) in enumerate(zip(ids, head, strict=False)) if x != y), min(len(ids), len(head)))
        with torch.inference_mode():
            logits = engine.model(**inputs).logits[0].float()
        want = [torch.log_softmax(logits[j - 1], -1)[ids[j]].item() for j in range(first, len(ids))]
        assert row == pytest.approx(want, abs=2e-3), (arch, text)
    assert got[2] == []


def test_unknown_engine_is_a_user_error():
    with pytest.raises(LlavaCotError, match="unknown engine"):
        load_engine("nope")


def test_first_stop_finds_the_earliest_end_in_the_new_text():
    assert first_stop("abc</S> x", " x", ["</S>"]) is None  # ended before the new piece
    assert first_stop("abc</S", "</S", ["</S>"]) is None
    assert first_stop("abc</S>", ">", ["</S>"]) == 7  # completed by the new piece
    assert first_stop("a. b</S>", ". b</S>", ["</S>", "."]) == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=599), min_size=1, max_size=30))
def test_incremental_detokenizer_agrees_with_a_full_decode(engines, ids):
    tok = engines["llava"].tokenizer
    detok = Detokenizer(tok, [])
    for t in ids:
        detok.add(t)
    full = tok.decode(ids, skip_special_tokens=True)
    assert detok.final() == full
    if not full.endswith("\ufffd"):
        assert detok.text == full


def _alone(engine, prompt, sampling):
    """What `prompt` decodes to on a fresh engine over the same model (nothing else running)."""
    [out] = HFEngine(engine.loaded).generate([prompt], sampling)
    return [(c.text, c.tokens, c.finish) for c in out], [c.logprob for c in out]


@pytest.mark.parametrize("arch", ARCHS)
def test_a_row_joining_a_running_batch_decodes_as_it_would_alone(engines, arch):
    engine = engines[arch]
    first = Prompt(picture(), "Say something long.")
    later = [Prompt(picture("blue"), "What is it?"), Prompt(None, "No image here, is there?")]
    greedy, hot = Sampling(max_new_tokens=40), Sampling(n=3, temperature=1.2, max_new_tokens=20, seed=7)
    running = engine.submit(first, greedy)
    stream = running.stream()
    next(stream)  # the first row is decoding: the others join it mid-way
    joined = [engine.submit(p, s) for p in later for s in (greedy, hot)]
    for prompt, sampling, request in zip([p for p in later for _ in range(2)], [greedy, hot] * 2, joined, strict=True):
        got = request.result()
        want, logps = _alone(engine, prompt, sampling)
        assert [(c.text, c.tokens, c.finish) for c in got] == want, (arch, prompt.question, sampling.n)
        assert [c.logprob for c in got] == pytest.approx(logps, abs=1e-4)
    assert [(c.text, c.tokens) for c in running.result()] == [x[:2] for x in _alone(engine, first, greedy)[0]]


def test_a_sample_depends_on_its_seed_and_index_only(engines):
    engine = engines["llava"]
    prompt = Prompt(picture(), "Say something.")
    [three] = engine.generate([prompt], Sampling(n=3, temperature=1.5, max_new_tokens=10, seed=3))
    [five] = engine.generate([prompt], Sampling(n=5, temperature=1.5, max_new_tokens=10, seed=3))
    assert [c.text for c in three] == [c.text for c in five[:3]]


def test_qwen2_vl_positions_belong_to_each_prompt(engines):
    """Qwen2-VL offsets the rotary positions of text after an image; the offset of the last image
    prompt must not leak into a text-only prompt that follows it (it decoded at positions 28, 29
    instead of 40, 41), nor into a cached text-only prefix being extended."""
    engine = engines["qwen2_vl"]
    text = Prompt(None, "A question without a picture, answered at its own positions.")
    greedy = Sampling(max_new_tokens=8)
    want = _alone(engine, text, greedy)
    engine.generate([Prompt(picture(), "Look at this.")], greedy)
    [got] = engine.generate([text], greedy)
    assert [(c.text, c.tokens, c.finish) for c in got] == want[0]
    assert [c.logprob for c in got] == pytest.approx(want[1], abs=1e-4)
    ids = reference(engine, text, 8)  # transformers' own generate, from a clean model state
    assert got[0].tokens == len(ids)
    # a text-only prefix cached earlier, extended after an image prompt ran
    longer = Prompt(None, text.question, got[0].text)
    want = _alone(engine, longer, greedy)
    engine.generate([Prompt(picture("blue"), "And this?")], greedy)
    [got] = engine.generate([longer], greedy)
    assert [c.logprob for c in got] == pytest.approx(want[1], abs=1e-4)


def test_mllama_samples_agree_when_the_prompt_is_as_long_as_the_image_keys(root):
    """A cross-attention layer's keys over the image are never taken for the text's prefix: n=2
    greedy samples score what n=1 scores (they differed, -47.277 against -47.263, when the prompt
    was exactly as long as the image keys)."""
    loaded = models.load(tiny_vlms.cached("mllama", root), device="cpu")
    with torch.no_grad():  # open the cross-attention gates (zero at initialisation: the layers would be no-ops)
        for name, param in loaded.model.named_parameters():
            if "cross_attn" in name and "gate" in name:
                param.fill_(0.5)
    engine = HFEngine(loaded)
    image = picture()
    entry = engine.runner.prefill(*engine.encode(Prompt(image, "x")), "probe", engine.image_token, engine.cost)
    keys = next(layer.keys.shape[-2] for i, layer in enumerate(entry.cache.layers) if i in engine.runner.cross)
    lengths = {len(engine.encode(Prompt(image, q))[0]): q
               for k in range(1, 2 * keys) for q in (" ".join(["x"] * k), " ".join(["x"] * k) + "?")}
    assert keys in lengths, "no question of the image keys' length"
    question = lengths[keys]
    engine.generate([Prompt(image, "A prompt of another length.")], Sampling(n=2, max_new_tokens=2))
    [[one]] = engine.generate([Prompt(image, question)], Sampling(max_new_tokens=8))
    [two] = engine.generate([Prompt(image, question)], Sampling(n=2, max_new_tokens=8))
    assert [c.logprob for c in two] == pytest.approx([one.logprob] * 2, abs=1e-5)


def test_streamed_text_is_the_completion_and_cancel_frees_the_row(engines):
    engine = engines["llava"]
    prompt = Prompt(picture(), "Say something.")
    request = engine.submit(prompt, Sampling(n=2, temperature=1.0, seed=1, max_new_tokens=30, stop=("e",)))
    pieces = ["", ""]
    for delta in request.stream():
        pieces[delta.index] += delta.text
    assert pieces == [c.text for c in request.result()]
    slow = HFEngine(engine.loaded)
    request = slow.submit(prompt, Sampling(max_new_tokens=4000))
    next(request.stream())
    request.cancel()
    [out] = request.result(timeout=30)
    assert out.finish == "cancelled" and out.tokens < 4000
    assert slow.stats()["running"] == 0


def test_a_full_queue_refuses_more(engines):
    from llava_cot.engines import QueueFull

    engine = HFEngine(engines["llava"].loaded, max_batch=1, max_queue=1)
    busy = engine.submit(Prompt(picture(), "Say something."), Sampling(max_new_tokens=4000))
    next(busy.stream())  # running: the next request waits, the one after is refused
    engine.submit(Prompt(picture(), "And then?"), Sampling(max_new_tokens=2))
    with pytest.raises(QueueFull):
        engine.submit(Prompt(picture(), "And then?"), Sampling(max_new_tokens=2))
    busy.cancel()


def test_token_logprobs_and_alternatives_on_request(engines):
    engine = engines["llava"]
    [[out]] = engine.generate([Prompt(picture(), "Say something.")], Sampling(max_new_tokens=6, logprobs=3))
    assert len(out.token_logprobs) == out.tokens
    assert sum(t.logprob for t in out.token_logprobs) == pytest.approx(out.logprob, abs=1e-4)
    for t in out.token_logprobs:
        assert len(t.top) == 3 and t.top[0][1] >= t.top[1][1] >= t.top[2][1]
        assert t.top[0] == (t.token, pytest.approx(t.logprob))  # greedy: the chosen token is the likeliest


@pytest.mark.parametrize("arch", ARCHS)
def test_the_vocabulary_head_runs_only_where_it_is_read(engines, arch):
    """Scoring a long prompt's short continuations projects only the continuations' positions
    (a [batch, length, vocab] float32 tensor is gigabytes at a 128k vocabulary)."""
    engine = HFEngine(engines[arch].loaded)
    seen = []
    hook = engine.model.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.append(i[0].shape[:-1].numel()))
    try:
        prompt = Prompt(picture(), "A long question, " * 20, "I think")
        texts = [" yes", " no, it is not", " a"]
        got = engine.token_logprobs(prompt, texts)
        assert sum(seen) <= sum(map(len, got)) + 1  # the prefix's last position, then only what is read
        seen.clear()
        engine.generate([prompt], Sampling(n=2, max_new_tokens=3))
        assert max(seen) <= 2  # one position per row and step
    finally:
        hook.remove()


def test_no_deprecated_argument_reaches_transformers(engines):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for arch in ARCHS:
            engine = HFEngine(engines[arch].loaded)
            engine.generate([Prompt(picture(), "Hi.")], Sampling(n=2, max_new_tokens=3))
            engine.token_logprobs(Prompt(picture(), "Hi."), [" yes"])
    assert not [w for w in caught if "past_key_values" in str(w.message)]
