"""Every search of llava_cot.search run through the `openai` engine against `llava-cot serve`
gives, at temperature 0, the answer the local `hf` engine gives: the server takes what the
engine sends (n, logprobs, stop strings, a continued final assistant message, top_logprobs for
the judges' verdicts) and answers as vLLM does (stop_reason, logprobs)."""

import pytest
from tests.serve_server import running

from llava_cot import models
from llava_cot.engines import Prompt, load_engine
from llava_cot.engines.hf import HFEngine
from llava_cot.search import SEARCHES, SearchConfig, run
from llava_cot.serve import ServeConfig, build


@pytest.fixture(scope="module")
def engines():
    local = HFEngine()
    # A server with its default settings (content: the conclusion; the stages as reasoning): the
    # openai engine asks for the raw tagged text itself ("reasoning_format": "none").
    with running(build(ServeConfig(), local)) as url:
        yield local, load_engine("openai", base_url=url, model="embedded", max_retries=0)
    local.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SEARCHES))
def test_each_search_through_the_server_gives_the_local_answer(name, engines):
    local, remote = engines
    prompt = Prompt(models.open_image("examples/scene2.png"), "How many cubes are there?")
    cfg = SearchConfig(beam=2, temperature=0.0, seed=0)
    here, there = run(name, local, prompt, cfg), run(name, remote, prompt, cfg)
    assert there.answer == here.answer
    assert there.text == here.text
    assert there.format_ok
