"""OpenAI-compatible /v1/chat/completions and /v1/models, so the openai SDK and n8n just work.

Stateless like OpenAI's own API: the client sends the whole conversation each time, the model
id's prefix picks the provider, nothing is written to the session store. What client libraries
rely on is kept as OpenAI does it: errors in OpenAI's shape (``api/errors.py``), the usage chunk
with ``stream_options.include_usage``, and a 400 naming any content part that is not text (the
CLIs get text only: an image silently dropped would be answered as if it was never sent).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from llmhub_gateway.api import errors
from llmhub_gateway.api.deps import ChatDep, PrincipalDep, RegistryDep, SettingsDep
from llmhub_gateway.api.disconnect import unless_disconnected
from llmhub_gateway.api.sse import HEARTBEAT_COMMENT, SSE_HEADERS, SSE_RESPONSE, event
from llmhub_gateway.chat import ChatResult, ChatService, PreparedChat
from llmhub_gateway.errors import BadRequest
from llmhub_gateway.providers.base import Turn
from llmhub_gateway.text_rules import MODEL_PATTERN, TEXT_PATTERN, check_model
from llmhub_gateway.usage import audited

router = APIRouter(prefix="/v1", tags=["openai"])


class ContentPart(BaseModel):
    """Any part is accepted by the schema; parts other than text are refused by name (400)."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = Field(default=None, json_schema_extra={"pattern": TEXT_PATTERN})
    refusal: str | None = Field(default=None, json_schema_extra={"pattern": TEXT_PATTERN})


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: (
        Annotated[str, Field(json_schema_extra={"pattern": TEXT_PATTERN})]
        | list[ContentPart]
        | None
    ) = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class CompletionCreate(BaseModel):
    """The fields we honour; others (temperature, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200, json_schema_extra={"pattern": MODEL_PATTERN})
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None


class BadMessages(BadRequest):
    """``messages`` the gateway cannot turn into a turn (400; ``param`` names the field)."""

    def __init__(self, message: str, param: str = "messages") -> None:
        super().__init__(message)
        self.param = param


class UnsupportedContent(BadMessages):
    """A content part the CLIs cannot take (image, audio, file): refused, never dropped."""

    error_type = "unsupported_content"


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop"]


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Completion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


@router.get("/models", response_model=ModelList, responses=errors.responses(401, 403, openai=True))
async def list_models(registry: RegistryDep, principal: PrincipalDep) -> ModelList:
    with audited("read", principal.name, "/v1/models"):
        cards = [
            ModelCard(id=model, owned_by=provider.name)
            for provider in registry.configured()
            for model in provider.models()
        ]
    return ModelList(data=cards)


@router.post(
    "/chat/completions",
    response_model=Completion,
    responses={
        200: SSE_RESPONSE,
        **errors.responses(400, 401, 403, 404, 413, 429, 502, 503, 504, openai=True),
    },
    description="`stream: true` answers `chat.completion.chunk` events ending in `data: [DONE]`"
    "; with `stream_options.include_usage` the last chunk before it has `choices: []` and "
    "`usage`.",
)
async def chat_completions(
    body: CompletionCreate,
    request: Request,
    chat: ChatDep,
    registry: RegistryDep,
    principal: PrincipalDep,
    settings: SettingsDep,
) -> Completion | StreamingResponse:
    provider = registry.for_model(check_model(body.model))
    model = registry.canonical(body.model)
    system, history, prompt = _split(body.messages)
    prepared = await chat.prepare_stateless(
        provider=provider,
        prompt=prompt,
        history=history,
        model=model,
        system=system,
        caller=principal,
    )
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.stream:
        usage = body.stream_options is not None and body.stream_options.include_usage
        return StreamingResponse(
            _chunks(chat, prepared, completion_id, settings.sse_heartbeat_seconds, usage),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    result = await unless_disconnected(request, chat.complete(prepared))
    return Completion(
        id=completion_id,
        created=int(time.time()),
        model=model,
        choices=[
            Choice(index=0, message=AssistantMessage(content=result.text), finish_reason="stop")
        ],
        usage=_usage(result),
    )


def _usage(result: ChatResult) -> Usage:
    return Usage(
        prompt_tokens=result.usage.tokens_in,
        completion_tokens=result.usage.tokens_out,
        total_tokens=result.usage.tokens_in + result.usage.tokens_out,
    )


def _text(message: Message) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "".join(part.text or part.refusal or "" for part in message.content)


def _check_parts(messages: list[Message]) -> None:
    """Text parts only (and an assistant's ``refusal``): anything else is named in a 400."""
    for i, message in enumerate(messages):
        if not isinstance(message.content, list):
            continue
        for j, part in enumerate(message.content):
            allowed = ("text", "refusal") if message.role == "assistant" else ("text",)
            if part.type not in allowed:
                shown = part.type[:40].encode("unicode_escape").decode("ascii")
                raise UnsupportedContent(
                    f"content part type '{shown}' (messages[{i}].content[{j}]) is not "
                    "supported: this gateway sends text only; send the content as text",
                    param=f"messages[{i}].content[{j}].type",
                )


def _split(messages: list[Message]) -> tuple[str | None, list[Turn], str]:
    """System text, earlier turns, and the final user prompt (which must come last)."""
    _check_parts(messages)
    system = "\n\n".join(_text(m) for m in messages if m.role in ("system", "developer")) or None
    dialogue = [m for m in messages if m.role in ("user", "assistant")]
    if not dialogue or dialogue[-1].role != "user" or not _text(dialogue[-1]).strip():
        raise BadMessages("the last message must be a non-empty user message")
    history = [Turn("user" if m.role == "user" else "assistant", _text(m)) for m in dialogue[:-1]]
    return system, history, _text(dialogue[-1])


async def _chunks(
    chat: ChatService,
    prepared: PreparedChat,
    completion_id: str,
    heartbeat_s: float,
    include_usage: bool,
) -> AsyncIterator[str]:
    """OpenAI's chunk sequence. With ``include_usage`` every chunk has ``usage: null`` and the
    last one before ``[DONE]`` has ``choices: []`` and the turn's usage, as OpenAI sends it;
    without it no usage is sent (clients that read ``choices[0]`` of every chunk keep working)."""
    base: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": prepared.request.model,
    }
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, str], finish: str | None = None) -> str:
        return event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    yield chunk({"role": "assistant", "content": ""})
    result: ChatResult | None = None
    try:
        async with aclosing(chat.run(prepared, heartbeat_s)) as events:
            async for item in events:
                if isinstance(item, str):
                    yield chunk({"content": item})
                elif isinstance(item, ChatResult):
                    result = item
                else:
                    yield HEARTBEAT_COMMENT
    except Exception as exc:  # headers are sent: report in-band, as OpenAI does
        yield event(errors.openai_error(exc))
        yield event("[DONE]")
        return
    yield chunk({}, "stop")
    if include_usage and result is not None:
        yield event({**base, "choices": [], "usage": _usage(result).model_dump()})
    yield event("[DONE]")
