"""`llava-cot serve`: an OpenAI-compatible server that returns the four stages as reasoning.

    pip install -e ".[serve]"
    llava-cot serve                                   # the embedded model, on 127.0.0.1:8000
    llava-cot serve --model runs/tiny --port 8001 --api-key secret

Then any OpenAI client talks to it (`base_url="http://127.0.0.1:8000/v1"`): `message.content` is
the CONCLUSION, `message.reasoning` / `message.reasoning_content` the stages before it,
`message.stages` each stage by name; `extra_body={"search": "stage_beam", "beam": 4}` runs a
search of llava_cot.search instead of plain sampling. Concurrent requests decode together in the
engine's running batch.

The package: `protocol` (the wire format, pydantic), `inputs` and `images` (a request checked
and turned into a Prompt and a Sampling), `reasoning` (a response split into its stages),
`serving` and `streaming` (the answers), `app` (thin FastAPI routes, key, limits, errors),
`metrics` (Prometheus text). FastAPI and uvicorn are imported only when the server starts.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from llava_cot.errors import LlavaCotError

log = logging.getLogger("llava_cot.serve")
KEY_VARIABLE = "LLAVA_COT_API_KEY"


@dataclass
class ServeConfig:
    """Serve a model over an OpenAI-compatible HTTP API (chat completions, streaming, the stages as reasoning)."""

    model: str | None = field(default=None, metadata={"help": "model directory or hub id (default: the embedded model)"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to bind (0.0.0.0: every interface)"})
    port: int = field(default=8000, metadata={"help": "port to listen on"})
    api_key: str | None = field(default=None, metadata={
        "help": f"key clients must send as 'Authorization: Bearer KEY' (default: ${KEY_VARIABLE}; none: open)"})
    served_model_name: str | None = field(default=None, metadata={
        "help": "the model's name in the API (default: --model, or 'embedded')"})
    max_batch: int = field(default=32, metadata={"help": "rows decoded together at most"})
    max_queue: int = field(default=256, metadata={"help": "requests waiting at most; beyond, 429"})
    allow_remote_images: bool = field(default=False, metadata={"help": "fetch http(s) image URLs"})
    cors: str | None = field(default=None, metadata={"help": "allowed CORS origin(s), comma-separated (default: off)"})
    reasoning_format: str = field(default="stages", metadata={
        "help": "default answer layout: stages (content = CONCLUSION, the rest as reasoning) or none (raw text)",
        "choices": ["stages", "none"]})
    max_tokens: int = field(default=4096, metadata={"help": "most tokens a request may generate per choice"})
    max_n: int = field(default=16, metadata={"help": "most choices per request (and a search's beam)"})
    max_body_mb: float = field(default=32, metadata={"help": "largest request body, in MiB (413 beyond)"})
    max_image_mb: float = field(default=20, metadata={"help": "largest encoded image, in MiB (413 beyond)"})
    max_image_pixels: int = field(default=4096 * 4096, metadata={"help": "largest image, width x height (413 beyond)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, or auto"})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16 or float16"})

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_queue", "max_tokens", "max_n", "max_image_pixels"):
            if getattr(self, name) < 1:
                raise LlavaCotError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0 < self.port < 65536:
            raise LlavaCotError(f"--port must be between 1 and 65535, not {self.port}")
        self.api_key = self.api_key or os.environ.get(KEY_VARIABLE) or None


def context_length(engine: Any) -> int:
    """The model's context length in tokens (its text model's position limit)."""
    config = engine.model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for value in (getattr(text, "max_position_embeddings", None), getattr(config, "max_position_embeddings", None),
                  getattr(engine.tokenizer, "model_max_length", None)):
        if isinstance(value, int) and 0 < value < 10**8:
            return value
    return 4096


def build(cfg: ServeConfig, engine: Any = None) -> Any:
    """The ASGI app for a config (the engine built from it unless given)."""
    try:
        from llava_cot.serve.app import build_app
    except ImportError as e:
        raise LlavaCotError(f"llava-cot serve needs the serve extra ({e.name} is missing): "
                            "pip install -e \".[serve]\"") from None
    from llava_cot.serve.images import ImageLimits
    from llava_cot.serve.inputs import Caps
    from llava_cot.serve.serving import ChatService, Settings

    if engine is None:
        from llava_cot.engines.hf import HFEngine

        engine = HFEngine(cfg.model, device=cfg.device, dtype=cfg.dtype, max_batch=cfg.max_batch,
                          max_queue=cfg.max_queue)
    settings = Settings(
        served_name=cfg.served_model_name or cfg.model or "embedded",
        caps=Caps(context=context_length(engine), max_n=cfg.max_n, max_tokens=cfg.max_tokens),
        images=ImageLimits(max_bytes=int(cfg.max_image_mb * 2**20), max_pixels=cfg.max_image_pixels,
                           allow_remote=cfg.allow_remote_images),
        reasoning_format=cfg.reasoning_format)
    origins = [o.strip() for o in cfg.cors.split(",") if o.strip()] if cfg.cors else None
    return build_app(ChatService(engine, settings), cfg.api_key, origins, int(cfg.max_body_mb * 2**20))


def _exposed(host: str) -> bool:
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host not in ("localhost",)


def main(cfg: ServeConfig) -> int:
    app = build(cfg)
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    if _exposed(cfg.host) and cfg.api_key is None:
        log.warning("serving on %s without an API key: anyone who can reach this port can use the model "
                    "(set --api-key or $%s)", cfg.host, KEY_VARIABLE)
    name = app.state.service.settings.served_name
    log.info("serving %r on http://%s:%d/v1", name, cfg.host, cfg.port)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
    return 0
