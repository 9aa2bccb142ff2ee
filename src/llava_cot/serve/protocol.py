"""The server's wire format: pydantic models of the OpenAI chat-completions API as vLLM extends it.

Requests are read as OpenAI's API and vLLM take them, with the extras this server adds:

- vLLM's `continue_final_message` / `add_generation_prompt` (continue a final assistant message)
  and `include_reasoning`; llama.cpp's `reasoning_format` ("none": the raw tagged text);
  vLLM's `include_stop_str_in_output`;
- `search`, `beam`, `judge`: run a search of `llava_cot.search` instead of plain sampling.

Responses put the four stages where reasoning models put their thinking: `message.content` is the
CONCLUSION, `message.reasoning` (vLLM) and `message.reasoning_content` (SGLang, llama.cpp,
`transformers serve`) the first three stages, `message.stages` each stage by name. Unknown request
fields are ignored, as vLLM ignores them; every field known here is checked, and what is wrong comes
back as one `ErrorResponse`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------------------------------------
# Requests


class ImageURL(_Lenient):
    url: str
    detail: str | None = None  # OpenAI's "low" / "high" / "auto": the processor decides here


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ImagePart(_Lenient):
    type: Literal["image_url"]
    image_url: ImageURL | str  # some clients send the URL itself


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(_Lenient):
    # "developer" is OpenAI's newer name for the system role
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[Part] | None = None
    name: str | None = None


class StreamOptions(_Lenient):
    include_usage: bool = False


class ChatCompletionRequest(_Lenient):
    model: str | None = None  # the served model when left out, as vLLM does
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)  # OpenAI's newer name
    n: int = Field(default=1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    stream: bool = False
    stream_options: StreamOptions | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    tools: list[Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    # vLLM's extras
    continue_final_message: bool = False
    add_generation_prompt: bool = True
    include_reasoning: bool = True
    include_stop_str_in_output: bool = False
    # llama.cpp's: "none" returns the raw tagged text as content; None: the server's default
    reasoning_format: Literal["auto", "stages", "none"] | None = None
    # this server's: a search of llava_cot.search, with its width and judge
    search: str | None = None
    beam: int | None = Field(default=None, ge=1)
    judge: str | None = None

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


# ---------------------------------------------------------------------------------------------
# Responses


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class LogprobToken(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(BaseModel):
    content: list[LogprobToken] | None = None


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None
    stages: dict[str, str] | None = None


class Choice(BaseModel):
    index: int
    message: ResponseMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None
    stop_reason: str | None = None  # vLLM's: the stop string that ended the choice


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    # beside the standard counts, what a search cost (absent for plain sampling)
    forward_passes: int | None = None
    judge_calls: int | None = None
    seconds: float | None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    search: dict[str, Any] | None = None  # a search's name, cost and trace (its notes)


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None
    stage: str | None = None  # the stage this delta's text belongs to


class StreamChoice(BaseModel):
    index: int
    delta: DeltaMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None
    stop_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[StreamChoice]
    usage: Usage | None = None
    search: dict[str, Any] | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llava-cot"
    max_model_len: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


def dump(model: BaseModel) -> dict[str, Any]:
    """A response as JSON data, fields that are None left out (as vLLM leaves out unset ones)."""
    return model.model_dump(exclude_none=True)
