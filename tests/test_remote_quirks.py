"""The `openai` engine against a server that is not ours: one that answers as `transformers serve`
was seen to (tests/openai_fake.py): one choice for any n, no log-probabilities (or a 500 when
asked for them), a 500 for stop strings, a 422 for vLLM's extras."""

import threading

import pytest
from tests.openai_fake import MODEL, TransformersLike, four_stages, serving

from llava_cot import stages
from llava_cot.engines import Prompt, Sampling, load_engine
from llava_cot.errors import LlavaCotError
from llava_cot.judges import PairwiseJudge, PointwiseJudge
from llava_cot.search import SearchConfig, run


def engine_on(server, **options):
    return load_engine("openai", base_url=server.url, model=MODEL, max_retries=0, **options)


@pytest.fixture
def server():
    s = TransformersLike()
    with serving(s) as s.url:
        yield s


@pytest.fixture
def failing_logprobs():
    s = TransformersLike(logprobs_status=500)  # as issue 17 saw transformers serve answer
    with serving(s) as s.url:
        yield s


def test_fewer_choices_than_n_are_made_up_by_seeded_requests(server):
    engine = engine_on(server)
    (outs,) = engine.generate([Prompt(None, "How many?")], Sampling(n=3, temperature=0.7, seed=5))
    assert [stages.answer_text(o.text) for o in outs] == ["5", "6", "7"]  # request i seeded 5 + i
    first, *rest = server.chats()
    assert (first["n"], first["seed"]) == (3, 5)
    assert sorted((r["n"], r["seed"]) for r in rest) == [(1, 6), (1, 7)]
    assert engine.cost.forward_passes == 3 and engine.cost.tokens_generated == sum(o.tokens for o in outs) > 0
    # Learned once: the next call asks one choice per request from the start.
    server.requests.clear()
    (outs,) = engine.generate([Prompt(None, "How many?")], Sampling(n=2, temperature=0.7, seed=0))
    assert [stages.answer_text(o.text) for o in outs] == ["0", "1"]
    assert sorted((r["n"], r["seed"]) for r in server.chats()) == [(1, 0), (1, 1)]
    assert any("fewer choices" in line for line in engine.notes())


def test_no_logprobs_sampling_runs_and_a_judge_says_once_what_the_server_lacks(server):
    engine = engine_on(server)
    [[out]] = engine.generate([Prompt(None, "q")], Sampling())
    assert out.text == four_stages(None) and out.logprob == 0.0
    with pytest.raises(LlavaCotError) as info:
        PointwiseJudge().pick(engine, Prompt(None, "q"), "CAPTION", ["a", "b"])
    message = str(info.value)
    assert server.url in message and "log-probabilities" in message and "--judge majority" in message
    assert "\n" not in message
    # Said once: a second judge fails at once, asking the server nothing more.
    asked = len(server.chats())
    with pytest.raises(LlavaCotError, match="log-probabilities"):
        PairwiseJudge().pick(engine, Prompt(None, "q"), "CAPTION", ["a", "b"])
    assert len(server.chats()) == asked


def test_a_server_that_fails_on_logprobs_still_answers_the_text_only_searches(failing_logprobs):
    server = failing_logprobs
    # conclusions 0, 1, 0, 1, 0 for seeds 0..4: the majority says 0
    server.answer = lambda seed: four_stages((seed or 0) % 2)
    engine = engine_on(server)
    prompt = Prompt(None, "How many?")
    greedy = run("greedy", engine, prompt)
    assert greedy.format_ok
    for name in ("best_of_n", "self_consistency"):
        cfg = SearchConfig(beam=5, seed=0, judge="majority" if name == "best_of_n" else None)
        assert run(name, engine, prompt, cfg).answer == "0"
    # Asked for log-probabilities once; every later request leaves them out.
    assert sum(bool(r.get("logprobs")) for r in server.chats()) == 1
    with pytest.raises(LlavaCotError, match=r"log-probabilities \(it answered 500"):
        engine.choice_logprobs([prompt], ["yes", "no"])


def test_refused_extras_continue_in_a_fresh_turn_and_refused_stops_apply_to_the_text(server):
    engine = engine_on(server)
    partial = stages.render_stage("SUMMARY", "I will count.")
    prompt = Prompt(None, "How many?", partial=partial)
    [[out]] = engine.generate([prompt], Sampling(stop=(stages.close_tag("CAPTION"),)))
    # the server's fresh turn holds the whole answer: cut after the stop string, client side
    assert out.text.endswith(stages.close_tag("CAPTION")) and out.finish == "stop"
    assert out.stop_reason == stages.close_tag("CAPTION")
    sent = server.chats()[-1]
    assert sent["messages"][-1] == {"role": "assistant", "content": partial}
    assert "continue_final_message" not in sent and "stop" not in sent
    notes = " ".join(engine.notes())
    assert "fresh assistant turn" in notes and "422" in notes and "stop strings" in notes and "500" in notes
    # learned: the next request sends neither
    server.requests.clear()
    engine.generate([prompt], Sampling(stop=(stages.close_tag("CAPTION"),)))
    assert len(server.chats()) == 1


def test_a_request_refused_for_another_reason_is_still_an_error(server):
    engine = load_engine("openai", base_url=server.url, model="not/served", max_retries=0)
    with pytest.raises(LlavaCotError, match="answered 400: Server is pinned"):
        engine.generate([Prompt(None, "q")], Sampling(stop=("x",)))
    assert engine.refused == {}  # nothing learned from it


def test_concurrent_callers_each_see_their_own_cost(server):
    engine = engine_on(server)
    seen = {}

    def ask(name, n):
        before = engine.cost.copy()
        engine.generate([Prompt(None, f"q{i}") for i in range(n)], Sampling())
        seen[name] = (engine.cost - before).forward_passes

    threads = [threading.Thread(target=ask, args=(k, n)) for k, n in (("a", 2), ("b", 3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": 2, "b": 3}


def test_the_system_message_and_earlier_turns_are_sent(server):
    from PIL import Image

    prompt = Prompt(Image.new("RGB", (2, 2)), "And now?", history=(("How many?", "2"),), system="Be brief.")
    engine_on(server).generate([prompt], Sampling())
    system, first, answer, last = server.chats()[0]["messages"]
    assert system == {"role": "system", "content": "Be brief."}
    assert [part["type"] for part in first["content"]] == ["image_url", "text"]  # the image with the first turn
    assert answer == {"role": "assistant", "content": "2"}
    assert last == {"role": "user", "content": [{"type": "text", "text": "And now?"}]}
