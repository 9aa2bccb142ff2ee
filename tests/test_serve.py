"""`llava-cot serve` answered by the official `openai` client (sync, async, streaming) over a real
uvicorn server holding the embedded model: the stages come back as reasoning and content, every
parameter does what the engine does with it, searches run on request, and a client that goes
away frees its row."""

import asyncio
import time

import pytest
from openai import AsyncOpenAI, OpenAI
from tests.serve_server import data_url, get, running

from llava_cot import models, stages
from llava_cot.engines import Prompt, Sampling
from llava_cot.engines.hf import HFEngine
from llava_cot.search import SearchConfig, run
from llava_cot.serve import ServeConfig, build

QUESTION = "How many circles are there?"
IMAGE = models.open_image("examples/scene1.png")


@pytest.fixture(scope="module")
def engine():
    e = HFEngine(max_batch=16)
    yield e
    e.close()


@pytest.fixture(scope="module")
def url(engine):
    with running(build(ServeConfig(max_tokens=1024), engine)) as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    return OpenAI(base_url=url, api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def local(engine):
    """The engine's own greedy answer to QUESTION."""
    return engine.generate([Prompt(IMAGE, QUESTION)], Sampling(max_new_tokens=1024))[0][0]


def user(question=QUESTION, image=IMAGE):
    parts = [{"type": "image_url", "image_url": {"url": data_url(image)}}] if image is not None else []
    return {"role": "user", "content": [*parts, {"type": "text", "text": question}]}


def fields(message):
    return message.model_dump()


def test_the_answer_comes_as_content_and_the_stages_before_it_as_reasoning(client, local):
    r = client.chat.completions.create(model="embedded", messages=[user()], temperature=0)
    expected = stages.parse(local.text)
    assert expected.ok  # the embedded model answers in the format: what the split is about
    m = fields(r.choices[0].message)
    assert m["content"] == expected.stages["CONCLUSION"]
    assert m["reasoning"] == m["reasoning_content"] == "\n\n".join(expected.stages[s] for s in stages.STAGES[:3])
    assert m["stages"] == expected.stages
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == local.tokens and r.usage.prompt_tokens > 16


def test_streaming_sends_the_reasoning_stage_by_stage_then_the_content(client):
    whole = fields(client.chat.completions.create(messages=[user()], model="embedded", temperature=0).choices[0].message)
    chunks = list(client.chat.completions.create(model="embedded", messages=[user()], temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta.model_dump() for c in chunks if c.choices]
    kinds = [("reasoning" if d.get("reasoning") else "content") for d in deltas if d.get("reasoning") or d.get("content")]
    assert kinds == sorted(kinds, key=lambda k: k == "content")  # all reasoning first
    order = [d["stage"] for d in deltas if d.get("stage")]
    assert list(dict.fromkeys(order)) == list(stages.STAGES)  # each stage named, in order
    assert "".join(d.get("reasoning") or "" for d in deltas) == whole["reasoning"]
    assert "".join(d.get("content") or "" for d in deltas) == whole["content"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens > 0 and not chunks[-1].choices


def test_concurrent_async_requests_decode_in_one_batch(url, client):
    expected = client.chat.completions.create(model="embedded", messages=[user()], temperature=0).choices[0].message

    async def ask_all():
        async with AsyncOpenAI(base_url=url, api_key="unused", max_retries=0) as aclient:
            return await asyncio.gather(*[aclient.chat.completions.create(
                model="embedded", messages=[user()], temperature=0) for _ in range(6)])

    answers = asyncio.run(ask_all())
    assert all(a.choices[0].message.content == expected.content for a in answers)
    _, text = get(url.removesuffix("/v1") + "/metrics")
    sizes = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("llava_cot_request_batch_size_b"))
    # some requests finished while others' rows were still decoding beside them
    assert int(sizes['llava_cot_request_batch_size_bucket{le="1"}']) < int(sizes['llava_cot_request_batch_size_bucket{le="+Inf"}'])


def test_n_seed_and_logprobs_are_the_engines(client, engine):
    r = client.chat.completions.create(model="embedded", messages=[user()], n=3, temperature=1.0, seed=7,
                                       max_completion_tokens=12, logprobs=True, top_logprobs=2,
                                       extra_body={"reasoning_format": "none"})
    mine = engine.generate([Prompt(IMAGE, QUESTION)], Sampling(n=3, temperature=1.0, seed=7, max_new_tokens=12))[0]
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert [c.message.content for c in r.choices] == [c.text for c in mine]
    for choice, completion in zip(r.choices, mine, strict=True):
        tokens = choice.logprobs.content
        assert len(tokens) == completion.tokens == 12 and choice.finish_reason == "length"
        assert sum(t.logprob for t in tokens) == pytest.approx(completion.logprob, abs=1e-3)
        assert all(len(t.top_logprobs) == 2 for t in tokens)


def test_a_stop_string_ends_the_choice_and_is_named_not_shown(client, local):
    stop = stages.close_tag("SUMMARY")
    head = local.text[: local.text.index(stop)]
    raw = {"reasoning_format": "none"}
    r = client.chat.completions.create(model="embedded", messages=[user()], temperature=0, stop=[stop], extra_body=raw)
    choice = fields(r.choices[0])
    assert (choice["message"]["content"], choice["finish_reason"], choice["stop_reason"]) == (head, "stop", stop)
    kept = client.chat.completions.create(model="embedded", messages=[user()], temperature=0, stop=stop,
                                          extra_body={**raw, "include_stop_str_in_output": True})
    assert kept.choices[0].message.content == head + stop
    streamed = client.chat.completions.create(model="embedded", messages=[user()], temperature=0, stop=[stop],
                                              stream=True, extra_body=raw)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == head


def test_a_final_assistant_message_is_continued(client, engine, local):
    partial = local.text[: local.text.index(stages.close_tag("SUMMARY"))]
    r = client.chat.completions.create(
        model="embedded", temperature=0, messages=[user(), {"role": "assistant", "content": partial}],
        extra_body={"continue_final_message": True, "add_generation_prompt": False, "reasoning_format": "none"})
    expected = engine.generate([Prompt(IMAGE, QUESTION, partial)], Sampling(max_new_tokens=1024))[0][0]
    assert r.choices[0].message.content == expected.text


def test_text_not_in_the_four_stage_format_comes_back_whole_as_content(client, engine):
    # continued from inside the first stage, the text opens with no tag: not a four-stage response
    partial = stages.open_tag("SUMMARY") + " I will"
    r = client.chat.completions.create(
        model="embedded", temperature=0, messages=[user(), {"role": "assistant", "content": partial}],
        extra_body={"continue_final_message": True, "add_generation_prompt": False})
    expected = engine.generate([Prompt(IMAGE, QUESTION, partial)], Sampling(max_new_tokens=1024))[0][0]
    m = fields(r.choices[0].message)
    assert m["content"] == expected.text and m.get("reasoning") is None


def test_a_system_message_and_earlier_turns_reach_the_model(client, engine, local):
    system = "You are a careful counter."
    history = [user(), {"role": "assistant", "content": local.text}, user("How many objects are there?", None)]
    r = client.chat.completions.create(model="embedded", temperature=0, extra_body={"reasoning_format": "none"},
                                       messages=[{"role": "system", "content": system}, *history])
    prompt = Prompt(IMAGE, "How many objects are there?", history=((QUESTION, local.text),), system=system)
    expected = engine.generate([prompt], Sampling(max_new_tokens=1024))[0][0]
    assert r.choices[0].message.content == expected.text
    single = client.chat.completions.create(model="embedded", messages=[user()], max_tokens=1)
    assert r.usage.prompt_tokens > single.usage.prompt_tokens + len(local.text) // 8


def test_include_reasoning_false_leaves_the_reasoning_out(client, local):
    extra = {"include_reasoning": False}
    m = fields(client.chat.completions.create(model="embedded", messages=[user()], temperature=0,
                                              extra_body=extra).choices[0].message)
    assert m["content"] == stages.parse(local.text).stages["CONCLUSION"]
    assert m.get("reasoning") is None and m.get("reasoning_content") is None and m.get("stages") is None
    streamed = list(client.chat.completions.create(model="embedded", messages=[user()], temperature=0, stream=True,
                                                   extra_body=extra))
    assert not any(c.choices[0].delta.model_dump().get("reasoning") for c in streamed if c.choices)
    raw = client.chat.completions.create(model="embedded", messages=[user()], temperature=0,
                                         extra_body={"reasoning_format": "none"})
    assert raw.choices[0].message.content == local.text


def test_a_search_runs_on_request_and_usage_reports_its_cost(client, engine):
    extra = {"search": "stage_beam", "beam": 2, "judge": "likelihood"}
    r = client.chat.completions.create(model="embedded", messages=[user()], seed=3, extra_body=extra)
    mine = run("stage_beam", engine, Prompt(IMAGE, QUESTION), SearchConfig(beam=2, judge="likelihood", seed=3))
    assert r.choices[0].message.content == mine.stages["CONCLUSION"]
    usage = r.usage.model_dump()
    assert usage["completion_tokens"] == mine.tokens_generated
    assert usage["judge_calls"] == mine.judge_calls
    # the same passes, but for prompts the local run found in the prefix cache the server filled
    assert mine.forward_passes <= usage["forward_passes"] <= mine.forward_passes + 2 * len(stages.STAGES)
    assert usage["judge_calls"] > 0 and usage["seconds"] > 0
    assert r.model_dump()["search"]["name"] == "stage_beam"


def test_a_streamed_search_sends_its_stages_and_cost(client):
    chunks = list(client.chat.completions.create(
        model="embedded", messages=[user()], stream=True, stream_options={"include_usage": True},
        extra_body={"search": "best_of_n", "beam": 2, "judge": "majority"}))
    deltas = [c.choices[0].delta.model_dump() for c in chunks if c.choices]
    assert list(dict.fromkeys(d["stage"] for d in deltas if d.get("stage"))) == list(stages.STAGES)
    assert chunks[-1].usage.completion_tokens > 0 and chunks[-1].usage.model_dump()["seconds"] > 0


def test_a_client_that_goes_away_mid_stream_frees_its_row(url, client, engine):
    stream = client.chat.completions.create(model="embedded", messages=[user()], temperature=0, stream=True)
    chunks = iter(stream)
    for _ in range(4):
        next(chunks)
    assert engine.stats()["running"] == 1  # decoding, far from its end
    stream.close()
    deadline = time.monotonic() + 10
    while engine.stats()["running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.stats() == {"running": 0, "waiting": 0, "kv_tokens": 0}
    _, text = get(url.removesuffix("/v1") + "/metrics")
    assert 'llava_cot_requests_total{status="499"} 1' in text


def test_health_models_and_metrics(url, client):
    assert get(url.removesuffix("/v1") + "/health")[0] == 200
    assert [m.id for m in client.models.list()] == ["embedded"]
    status, text = get(url.removesuffix("/v1") + "/metrics")
    assert status == 200
    for name in ("requests_total", "prompt_tokens_total", "generation_tokens_total", "queue_depth", "batch_size",
                 "request_seconds_bucket"):
        assert f"llava_cot_{name}" in text
