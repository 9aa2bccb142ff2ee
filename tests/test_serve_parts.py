"""The pieces of `llava-cot serve` that need no model: a response split into reasoning and
content the same way streamed or whole, and chat messages turned into the engine's Prompt."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from tests.serve_server import data_url

from llava_cot import stages
from llava_cot.serve import reasoning
from llava_cot.serve.errors import ApiError
from llava_cot.serve.images import ImageLimits, load_image
from llava_cot.serve.inputs import to_prompt
from llava_cot.serve.protocol import ChatCompletionRequest

ANSWER = stages.render({"SUMMARY": "Count the cubes.", "CAPTION": "Two red cubes.", "REASONING": "1 + 1 = 2.",
                        "CONCLUSION": "2"})


def streamed(text, cuts):
    sp = reasoning.Splitter()
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    pieces = [p for a, b in itertools.pairwise(bounds) for p in sp.feed(text[a:b])]
    return reasoning.join(pieces + sp.close())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10_000), max_size=30),
       st.sampled_from([ANSWER, "Just 2.", ANSWER[:70], "  \n" + ANSWER, ANSWER.replace("<", "< ")]))
def test_a_response_splits_the_same_in_any_chunks_as_whole(cuts, text):
    assert streamed(text, cuts) == reasoning.split(text)


def test_the_stages_split_into_reasoning_and_content_and_other_text_stays_whole():
    found = reasoning.split(ANSWER)
    assert found.content == "2" and found.reasoning == "Count the cubes.\n\nTwo red cubes.\n\n1 + 1 = 2."
    assert found.stages == stages.parse(ANSWER).stages
    for plain in ("There are 2 cubes.", "2 </SUMMARY> <CONCLUSION> 3"):
        assert reasoning.split(plain) == reasoning.Split(plain, None, None)


def request(*messages, **extra):
    return ChatCompletionRequest(messages=list(messages), **extra)


def test_messages_become_system_history_question_and_partial():
    image = Image.new("RGB", (8, 8), "red")
    first = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(image)}},
                                         {"type": "text", "text": "What colour?"}]}
    prompt = to_prompt(request({"role": "system", "content": "Be brief."}, first,
                               {"role": "assistant", "content": "Red."}, {"role": "user", "content": "Sure?"},
                               {"role": "user", "content": "Really?"}, {"role": "assistant", "content": "<SUMMARY>"},
                               continue_final_message=True, add_generation_prompt=False), ImageLimits())
    assert (prompt.system, prompt.history, prompt.question, prompt.partial) == (
        "Be brief.", (("What colour?", "Red."),), "Sure?\nReally?", "<SUMMARY>")
    assert prompt.image.size == (8, 8) and prompt.image.mode == "RGB"


def test_an_image_after_the_first_turn_is_refused_with_the_reason():
    late = {"role": "user", "content": [{"type": "image_url", "image_url": data_url(Image.new("L", (4, 4)))},
                                        {"type": "text", "text": "And this?"}]}
    with pytest.raises(ApiError, match="first user message"):
        to_prompt(request({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, late),
                  ImageLimits())


def test_a_jpeg_data_url_decodes_and_a_remote_url_needs_the_flag():
    assert load_image(data_url(Image.new("RGB", (9, 7), "blue"), "JPEG"), ImageLimits()).size == (9, 7)
    with pytest.raises(ApiError, match="allow-remote-images"):
        load_image("https://example.com/cat.png", ImageLimits())
