"""The `hf` engine on tiny models of three architectures: batched and cached decoding gives what
plain `generate` gives, stop strings, seeds, log-probabilities and choice scores are exact."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from tests import tiny_vlms

from llava_cot import generation, models
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
    _, inputs = engine._encode(prompt)
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
    _, inputs = engine._encode(prompt)
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
        head = engine._encode(prompt)[0]
        for choice, value in zip(choices, row, strict=True):
            ids, inputs = engine._encode(Prompt(prompt.image, prompt.question, prompt.partial + choice))
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
    head = engine._encode(prompt)[0]
    for text, row in zip(texts, got, strict=True):
        ids, inputs = engine._encode(Prompt(prompt.image, prompt.question, prompt.partial + text))
        first = next((i for i, (x, y) in enumerate(zip(ids, head, strict=False)) if x != y), min(len(ids), len(head)))
        with torch.inference_mode():
            logits = engine.model(**inputs).logits[0].float()
        want = [torch.log_softmax(logits[j - 1], -1)[ids[j]].item() for j in range(first, len(ids))]
        assert row == pytest.approx(want, abs=2e-3), (arch, text)
    assert got[2] == []


def test_engine_matches_batched_generation_module(engines):
    engine = engines["llava"]
    image = picture()
    [[out]] = engine.generate([Prompt(image, "What colour?")], Sampling(max_new_tokens=10))
    [gen] = generation.generate(engine.loaded, [image], ["What colour?"], max_new_tokens=10)
    assert (out.text.strip(), out.tokens) == (gen.text, gen.tokens)  # generation.generate strips the text


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


@pytest.mark.parametrize("arch", ARCHS)
def test_samples_read_one_copy_of_the_prompt(engines, arch):
    """N samples of one prompt attend to a single copy of its keys and values (engines/cascade.py)
    and sample exactly what N copies sample, on every architecture."""
    engine, prompt = engines[arch], Prompt(picture("blue"), "Describe the image.")
    sampling = Sampling(n=3, temperature=1.0, seed=5, max_new_tokens=10)
    engine.model._llava_cot_cascade = None  # checked afresh against the plain path
    shared = engine.generate([prompt], sampling)
    assert engine.model._llava_cot_cascade is True
    engine.model._llava_cot_cascade = False
    try:
        plain = engine.generate([prompt], sampling)
    finally:
        engine.model._llava_cot_cascade = True
    assert [(c.text, c.tokens) for c in shared[0]] == [(c.text, c.tokens) for c in plain[0]]
    assert [c.logprob for c in shared[0]] == pytest.approx([c.logprob for c in plain[0]], abs=1e-4)


def test_a_model_that_fails_the_check_samples_the_plain_way(engines, monkeypatch):
    from llava_cot.engines import cascade
    from llava_cot.engines.kv import GrowingLayer

    engine, prompt = engines["llava"], Prompt(picture("green"), "Describe the image.")
    sampling = Sampling(n=3, temperature=1.0, seed=7, max_new_tokens=10)
    engine.model._llava_cot_cascade = False
    try:
        plain = engine.generate([prompt], sampling)
        engine.model._llava_cot_cascade = None
        # as if the model's attention code lost the shared prefix on the way to the attention function
        monkeypatch.setattr(cascade.PrefixLayer, "update", GrowingLayer.update)
        checked = engine.generate([prompt], sampling)  # the first step's plain output carries on
        assert engine.model._llava_cot_cascade is False
    finally:
        engine.model._llava_cot_cascade = True
    assert [(c.text, c.tokens) for c in checked[0]] == [(c.text, c.tokens) for c in plain[0]]
    assert [c.logprob for c in checked[0]] == pytest.approx([c.logprob for c in plain[0]], abs=1e-4)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 4), kv_heads=st.sampled_from([1, 2]), group=st.sampled_from([1, 3]),
       prefix=st.integers(1, 9), own=st.integers(0, 5), masked=st.booleans())
def test_shared_prefix_attention_equals_attention_over_copies(rows, kv_heads, group, prefix, own, masked):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from llava_cot.engines import cascade

    torch.manual_seed(rows * 100 + prefix * 10 + own)
    dim, heads = 8, kv_heads * group
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = group, True
    query = torch.randn(rows, heads, 1, dim)
    pk, pv = torch.randn(1, kv_heads, prefix, dim), torch.randn(1, kv_heads, prefix, dim)
    k, v = torch.randn(rows, kv_heads, own + 1, dim), torch.randn(rows, kv_heads, own + 1, dim)
    mask = None
    if masked:  # some rows may not see some prefix positions (left padding, say)
        mask = torch.ones(rows, 1, 1, prefix + own + 1, dtype=torch.bool)
        mask[0, ..., 0] = prefix == 1  # never mask a row's only key
    full_k, full_v = torch.cat([pk.expand(rows, -1, -1, -1), k], 2), torch.cat([pv.expand(rows, -1, -1, -1), v], 2)
    want, _ = sdpa_attention_forward(module, query, full_k, full_v, mask, scaling=0.3)
    setattr(k, cascade._PREFIX, (pk, pv))
    got, _ = cascade.attention(module, query, k, v, mask, scaling=0.3)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5)
