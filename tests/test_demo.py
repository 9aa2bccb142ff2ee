"""`llava-cot demo`, its parts: the chat's boxes built from streamed text, uploads opened within
limits, and the page's handler on the embedded model: stages streamed before the answer,
follow-ups that reach the model with the earlier turns, every user error a message in the chat
with the session left working. (The page in a browser: test_demo_browser.py; `/ask`:
test_demo_client.py.)"""

import socket
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the demo extra: pip install -e '.[demo]'")

from llava_cot import models, stages
from llava_cot.ask import ask
from llava_cot.cli import main
from llava_cot.demo import view
from llava_cot.demo.app import Conversation, Demo, stream
from llava_cot.demo.images import Limits, examples, load_image
from llava_cot.engines.hf import HFEngine
from llava_cot.errors import LlavaCotError

ROOT = Path(__file__).resolve().parents[1]
SCENE = str(ROOT / "examples" / "scene1.png")
QUESTION = "How many circles are there?"
GREEDY = ("greedy", 4, "default", 0.7, 768)  # the page's controls: search, beam, judge, temperature, max tokens


def text_of(stage_texts):
    return stages.render(stage_texts)


def titles(messages):
    return [m["metadata"]["title"] for m in messages if m.get("metadata")]


def test_boxes_fill_as_the_stages_stream_whatever_the_chunking():
    text = text_of({"SUMMARY": "I will count.", "CAPTION": "Two circles.", "REASONING": "1 and 1 is 2.",
                    "CONCLUSION": "2"})
    answer = view.Answer()
    seen = []
    for i in range(0, len(text), 3):  # tags split across chunks
        answer.feed(text[i:i + 3])
        seen.append(answer.messages())
    answer.close()
    assert titles(answer.messages()) == ["Summary", "Caption", "Reasoning", "Conclusion"]
    assert [m["content"] for m in answer.messages()] == ["I will count.", "Two circles.", "1 and 1 is 2.", "2"]
    # the caption's box was there, streaming (pending), while the summary was already done
    during = next(ms for ms in seen if titles(ms) == ["Summary", "Caption"])
    assert "status" not in during[0]["metadata"] and during[1]["metadata"]["status"] == "pending"
    assert not any("<" in m["content"] for ms in seen for m in ms)  # no tag, whole or half, shown


def test_final_view_shows_the_stages_what_the_search_weighed_and_the_answer_with_its_cost():
    trace = [{"stage": "CAPTION", "candidates": [{"text": "<CAPTION> a *red* <b>circle</b> </CAPTION>", "wins": 1,
                                                  "chosen": True},
                                                 {"text": "<CAPTION> a square </CAPTION>", "wins": 0, "chosen": False}],
              "matches": [{"pair": [0, 1], "log_odds": 1.5, "winner": 0, "tie": False}], "retrace": False},
             {"stage": "REASONING", "candidates": [{"text": "<REASONING> so </REASONING>", "score": 0.1,
                                                    "chosen": False}], "retrace": True}]
    result = {"text": text_of({"SUMMARY": "s", "CAPTION": "c", "REASONING": "r", "CONCLUSION": "3"}), "answer": "3",
              "format_ok": True, "trace": trace,
              "search": {"name": "stage_beam", "tokens_generated": 42, "judge_calls": 2, "seconds": 1.5}}
    shown = view.Answer().final(result)
    assert titles(shown)[:4] == ["Summary", "Caption", "Reasoning", "Conclusion"]
    weighed = shown[4]
    assert weighed["metadata"]["title"].startswith("What stage_beam weighed: 2 steps, 3 candidates, 1 retraces")
    lines = weighed["content"].splitlines()
    assert any("✓ **chosen**" in ln and "wins 1" in ln and r"a \*red\* \<b\>circle\</b\>" in ln for ln in lines)
    assert any("#1 against #2: #1 won (log-odds +1.50 for #1)" in ln for ln in lines)
    assert any("retraced" in ln for ln in lines)
    assert shown[-1]["content"].startswith("## Answer: 3")
    assert "stage_beam · 42 tokens generated · 2 judge calls · 1.50 s" in shown[-1]["content"]


def test_uploads_are_opened_within_limits_and_errors_name_the_users_file(tmp_path):
    assert load_image({"path": SCENE, "orig_name": "mine.png"}, Limits()).size == (64, 64)
    junk = tmp_path / "upload123.png"
    junk.write_text("not an image")
    with pytest.raises(LlavaCotError, match=r"mine\.png cannot be read") as e:
        load_image({"path": str(junk), "orig_name": "mine.png"}, Limits())
    assert str(junk) not in str(e.value)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(Path(SCENE).read_bytes()[:300])
    with pytest.raises(LlavaCotError, match="cannot be read"):
        load_image(str(truncated), Limits())
    with pytest.raises(LlavaCotError, match=r"64 x 64 pixels, more than the 1,000"):
        load_image(SCENE, Limits(max_pixels=1000))
    with pytest.raises(LlavaCotError, match="bytes, more than the 100"):
        load_image(SCENE, Limits(max_bytes=100))
    with pytest.raises(LlavaCotError, match="no image"):
        load_image(None, Limits())
    assert [Path(p).name for p in examples()] == ["scene1.png", "scene2.png", "scene3.png"]


def test_stream_hands_over_text_as_it_comes_then_the_result_or_the_error():
    def work(on_text):
        for piece in ("a", "b", "c"):
            on_text(piece)
        return 7

    got = list(stream(work))
    assert "".join(v for k, v in got if k == "text") == "abc" and got[-1] == ("done", 7)

    def fail(on_text):
        on_text("x")
        raise LlavaCotError("server down")

    with pytest.raises(LlavaCotError, match="server down"):
        list(stream(fail))


@pytest.fixture(scope="module")
def demo():
    return Demo(HFEngine(models.load(None, device="cpu", dtype="float32")), Limits(max_pixels=64 * 64))


def respond(demo, image, question, convo, controls=GREEDY):
    return list(demo.respond({"path": image, "orig_name": Path(image).name}, question, *controls, convo))


def test_the_page_streams_stages_before_the_answer_and_follow_ups_carry_the_chat(demo):
    frames = respond(demo, SCENE, QUESTION, None)
    messages, convo, _ = frames[-1]
    image = models.open_image(SCENE)
    want = ask(image, QUESTION, demo.engine, 768)
    assert titles(messages) == ["Summary", "Caption", "Reasoning", "Conclusion"]
    assert messages[-1]["content"].startswith(f"## Answer: {want['answer']}") and want["answer"] == "4"
    assert "greedy · " in messages[-1]["content"] and " tokens generated · 0 judge calls · " in messages[-1]["content"]
    # frames before the last showed a stage still being written, and no answer yet
    assert any(m.get("metadata", {}).get("status") == "pending" for ms, _, _ in frames[:-1] for m in ms)
    assert not any("Answer:" in m["content"] for ms, _, _ in frames[:-1] for m in ms)
    # a follow-up about the same image: the same chat, and the model sees the first turn
    follow = "How many squares are there?"
    messages, convo, _ = respond(demo, SCENE, follow, convo)[-1]
    again = ask(image, follow, demo.engine, 768, history=[(QUESTION, want["text"])])
    assert convo.turns == [(QUESTION, want["text"]), (follow, again["text"])]
    assert [m["content"] for m in messages if m["role"] == "user"] == [QUESTION, follow]
    assert messages[-1]["content"].startswith(f"## Answer: {view.escape(again['answer'])}")
    # another image: another chat
    messages, convo, _ = respond(demo, str(ROOT / "examples" / "scene2.png"), QUESTION, convo)[-1]
    assert len(convo.turns) == 1 and [m["content"] for m in messages if m["role"] == "user"] == [QUESTION]


def test_a_search_on_the_page_shows_its_candidates(demo):
    messages, _, _ = respond(demo, SCENE, QUESTION, None, ("stage_beam", 2, "default", 0.7, 768))[-1]
    [weighed] = [m for m in messages if m.get("metadata", {}).get("title", "").startswith("What stage_beam weighed")]
    assert weighed["content"].count("✓ **chosen**") == 4
    assert "judge calls" in messages[-1]["content"]


def test_user_errors_are_messages_in_the_chat_and_the_session_goes_on(demo, tmp_path):
    messages, convo, _ = respond(demo, SCENE, QUESTION, None)[-1]
    before = list(convo.messages)
    junk = tmp_path / "junk.png"
    junk.write_text("no")
    big = tmp_path / "big.png"
    from PIL import Image

    Image.new("RGB", (65, 64)).save(big)
    cases = [(SCENE, "   ", "the question is empty"), (str(big), QUESTION, "65 x 64 pixels"),
             (str(junk), QUESTION, "junk.png cannot be read"),
             (SCENE, QUESTION, "unknown judge")]
    for image, question, why in cases:
        controls = ("greedy", 4, "nobody", 0.7, 768) if why == "unknown judge" else GREEDY
        [(shown, _, _)] = respond(demo, image, question, convo if image == SCENE else None, controls)
        assert shown[-1]["content"].startswith("**Error:**") and why in shown[-1]["content"]
        assert "metadata" not in shown[-1]
    # the conversation about the scene is untouched by its errors, and goes on
    assert convo.messages == before
    messages, convo, _ = respond(demo, SCENE, QUESTION, convo)[-1]
    assert len(convo.turns) == 2 and messages[-1]["content"].startswith("## Answer:")


def test_an_unreachable_server_is_a_message_in_the_chat():
    from llava_cot.engines.remote import OpenAIEngine

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the socket is: nothing listens there
    demo = Demo(OpenAIEngine(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=5))
    frames = respond(demo, SCENE, QUESTION, Conversation())
    shown, convo, question_box = frames[-1]
    assert shown[-1]["content"].startswith("**Error:**") and "cannot reach" in shown[-1]["content"]
    assert convo.turns == [] and question_box == QUESTION  # the question is back in its box, to retry


def test_demo_command_checks_its_options(capsys):
    assert main(["demo", "--model", "m", "--base-url", "http://x/v1"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["--help"]) == 0 and "demo" in capsys.readouterr().out
