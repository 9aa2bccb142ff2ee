"""`llava-cot demo`: a web page where the four stages stream as the model writes them.

    pip install -e ".[demo]"
    llava-cot demo                                     # the embedded model, on http://127.0.0.1:7860
    llava-cot demo --model runs/tiny --port 7861
    llava-cot demo --base-url http://127.0.0.1:8000/v1 # in front of `llava-cot serve`, vLLM, ...

Upload, paste or pick an image, ask; each stage fills its own box, then the answer, with what it
cost. Follow-up questions keep the chat (and go to the model with the earlier turns). A search
(the controls: search, beam, judge, temperature, max tokens) shows each stage's candidates, the
judge's scores or pairwise wins, the chosen one and any retrace. Its API, for `gradio_client`:

    from gradio_client import Client, handle_file
    Client("http://127.0.0.1:7860/").predict(handle_file("examples/scene1.png"),
                                              "How many circles are there?", api_name="/ask")
    # -> the object `llava-cot ask --json` prints (other controls optional: search=..., beam=...)

The package: `images` (uploads opened within limits; the examples), `view` (the chat's boxes,
as plain message dicts), `app` (the page, its handler, `/ask`). Gradio is imported only here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from llava_cot.errors import LlavaCotError


@dataclass
class DemoConfig:
    """Serve a web page that streams the four stages of each answer and shows what a search weighed."""

    model: str | None = field(default=None, metadata={"help": "model directory or hub id (default: the embedded model)"})
    base_url: str | None = field(default=None, metadata={
        "help": "an OpenAI-compatible server to ask instead of a local model (llava-cot serve, vLLM)"})
    served_model: str | None = field(default=None, metadata={"help": "the model's name on that server"})
    api_key: str | None = field(default=None, metadata={"help": "that server's API key (default: $OPENAI_API_KEY)"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to bind (0.0.0.0: every interface)"})
    port: int = field(default=7860, metadata={"help": "port to listen on"})
    examples: str | None = field(default=None, metadata={"help": "folder of example images (default: examples/)"})
    max_image_mb: float = field(default=20, metadata={"help": "largest upload, in MiB"})
    max_image_pixels: int = field(default=4096 * 4096, metadata={"help": "largest image, width x height"})
    concurrency: int = field(default=8, metadata={"help": "questions answered at once (they decode in one batch)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, or auto"})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16 or float16"})

    def __post_init__(self) -> None:
        if self.model and self.base_url:
            raise LlavaCotError("give --model (a local model) or --base-url (a server), not both")
        if not 0 < self.port < 65536:
            raise LlavaCotError(f"--port must be between 1 and 65535, not {self.port}")
        if self.max_image_mb <= 0 or self.max_image_pixels < 1 or self.concurrency < 1:
            raise LlavaCotError("--max-image-mb, --max-image-pixels and --concurrency must be positive")


def engine_for(cfg: DemoConfig) -> object:
    """The engine the page asks: a remote server's with --base-url, else a local model's."""
    if cfg.base_url:
        from llava_cot.engines.remote import OpenAIEngine

        options = {"model": cfg.served_model} if cfg.served_model else {}
        return OpenAIEngine(base_url=cfg.base_url, api_key=cfg.api_key, **options)
    from llava_cot.engines.hf import HFEngine

    return HFEngine(cfg.model, device=cfg.device, dtype=cfg.dtype)


def main(cfg: DemoConfig) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry, no version check
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise LlavaCotError('llava-cot demo needs the demo extra: pip install -e ".[demo]"') from None
    from llava_cot.demo.app import Demo, build, theme
    from llava_cot.demo.images import Limits, examples

    shown = examples(cfg.examples)
    limits = Limits(max_bytes=int(cfg.max_image_mb * 2**20), max_pixels=cfg.max_image_pixels)
    page = build(Demo(engine_for(cfg), limits, shown), cfg.concurrency)
    folders = sorted({os.path.dirname(p) for p in shown})
    try:
        page.queue(default_concurrency_limit=cfg.concurrency).launch(
            server_name=cfg.host, server_port=cfg.port, max_file_size=limits.max_bytes, allowed_paths=folders,
            theme=theme(), footer_links=["api"], show_error=True, share=False)
    except OSError as e:  # the port is taken, or the address cannot be bound
        raise LlavaCotError(f"cannot serve the demo on {cfg.host}:{cfg.port}: {e}") from None
    return 0
