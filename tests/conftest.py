"""Shared fixtures: a small synthetic data set and an (untrained) tiny model saved to disk."""

import pytest
import torch

from llava_cot import records


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    # Tiny matrices on a shared 2-core machine (and pytest -n 2 runs two workers): OpenMP's
    # second thread costs far more than it gives.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A directory for the tiny architectures of tests/tiny_vlms.py, built once per module."""
    return tmp_path_factory.mktemp("vlms")


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    from llava_cot.synth.generate import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(out=str(out), n=24, split="train", seed=0))
    generate(SynthConfig(out=str(out), n=8, split="test", seed=0))
    return out


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, synth_dir):
    """A randomly initialised tiny Llava built by llava_cot.tiny, saved as an HF checkpoint."""
    from llava_cot import tiny

    recs = list(records.read(synth_dir / "train.jsonl"))
    size = tiny.TinySize(vision_hidden=32, vision_layers=1, vision_heads=2, text_hidden=32, text_layers=1,
                         text_heads=2, text_intermediate=64, vocab_size=300)
    model, processor = tiny.build((r.question + "\n" + r.response for r in recs), seed=0, size=size)
    out = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
