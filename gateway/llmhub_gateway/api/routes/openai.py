"""OpenAI-compatible /v1/chat/completions and /v1/models, so the openai SDK and n8n just work.

Stateless like OpenAI's own API: the client sends the whole conversation each time, the model
id's prefix picks the provider, nothing is written to the session store.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from llmhub_gateway.api import errors
from llmhub_gateway.api.deps import ChatDep, PrincipalDep, RegistryDep, SettingsDep
from llmhub_gateway.api.disconnect import unless_disconnected
from llmhub_gateway.api.sse import HEARTBEAT_COMMENT, SSE_HEADERS, SSE_RESPONSE, event
from llmhub_gateway.chat import ChatResult, ChatService, PreparedChat
from llmhub_gateway.providers.base import Turn
from llmhub_gateway.text_rules import MODEL_PATTERN, TEXT_PATTERN, check_model
from llmhub_gateway.usage import audited

router = APIRouter(prefix="/v1", tags=["openai"])


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = Field(default=None, json_schema_extra={"pattern": TEXT_PATTERN})


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: (
        Annotated[str, Field(json_schema_extra={"pattern": TEXT_PATTERN})]
        | list[ContentPart]
        | None
    ) = None


class CompletionCreate(BaseModel):
    """The fields we honour; others (temperature, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200, json_schema_extra={"pattern": MODEL_PATTERN})
    messages: list[Message] = Field(min_length=1)
    stream: bool = False


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


@router.get("/models", response_model=ModelList, responses=errors.responses(401, 403))
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
        **errors.responses(400, 401, 403, 404, 413, 422, 429, 502, 503, 504),
    },
    description="`stream: true` answers `chat.completion.chunk` events ending in `data: [DONE]`.",
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
    system, history, prompt = _split(body.messages)
    prepared = await chat.prepare_stateless(
        provider=provider,
        prompt=prompt,
        history=history,
        model=body.model,
        system=system,
        caller=principal,
    )
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.stream:
        return StreamingResponse(
            _chunks(chat, prepared, completion_id, settings.sse_heartbeat_seconds),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    result = await unless_disconnected(request, chat.complete(prepared))
    return Completion(
        id=completion_id,
        created=int(time.time()),
        model=body.model,
        choices=[
            Choice(index=0, message=AssistantMessage(content=result.text), finish_reason="stop")
        ],
        usage=Usage(
            prompt_tokens=result.usage.tokens_in,
            completion_tokens=result.usage.tokens_out,
            total_tokens=result.usage.tokens_in + result.usage.tokens_out,
        ),
    )


def _text(message: Message) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "".join(part.text or "" for part in message.content if part.type == "text")


def _split(messages: list[Message]) -> tuple[str | None, list[Turn], str]:
    """System text, earlier turns, and the final user prompt (which must come last)."""
    system = "\n\n".join(_text(m) for m in messages if m.role in ("system", "developer")) or None
    dialogue = [m for m in messages if m.role in ("user", "assistant")]
    if not dialogue or dialogue[-1].role != "user" or not _text(dialogue[-1]).strip():
        raise HTTPException(400, "the last message must be a non-empty user message")
    history = [Turn("user" if m.role == "user" else "assistant", _text(m)) for m in dialogue[:-1]]
    return system, history, _text(dialogue[-1])


def _chunk(
    completion_id: str, model: str, delta: dict[str, str], finish: str | None
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def _chunks(
    chat: ChatService, prepared: PreparedChat, completion_id: str, heartbeat_s: float
) -> AsyncIterator[str]:
    model = prepared.request.model
    yield event(_chunk(completion_id, model, {"role": "assistant", "content": ""}, None))
    try:
        async with aclosing(chat.run(prepared, heartbeat_s)) as events:
            async for item in events:
                if isinstance(item, str):
                    yield event(_chunk(completion_id, model, {"content": item}, None))
                elif not isinstance(item, ChatResult):
                    yield HEARTBEAT_COMMENT
    except Exception as exc:  # headers are sent: report in-band, as OpenAI does
        _, error_type, message, _ = errors.describe(exc)
        yield event(errors.error_payload(error_type, message))
        yield event("[DONE]")
        return
    yield event(_chunk(completion_id, model, {}, "stop"))
    yield event("[DONE]")
