"""POST /v1/chat: the native REST API, with server-side sessions and optional SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from llmhub_gateway.api import errors
from llmhub_gateway.api.deps import ChatDep, PrincipalDep, SettingsDep
from llmhub_gateway.api.disconnect import unless_disconnected
from llmhub_gateway.api.sse import HEARTBEAT_COMMENT, SSE_HEADERS, SSE_RESPONSE, event
from llmhub_gateway.chat import ChatResult, ChatService, PreparedChat
from llmhub_gateway.sessions.ids import check_idempotency_key
from llmhub_gateway.text_rules import MODEL_PATTERN, TEXT_PATTERN

router = APIRouter(prefix="/v1", tags=["chat"])


class ChatCreate(BaseModel):
    provider: Literal["claude", "gemini"]
    # Checked by the turn runner (chat.check_text, 400): no control characters but tab,
    # newline and carriage return; with ``system``, at most MAX_PROMPT_BYTES of UTF-8.
    prompt: str = Field(min_length=1, json_schema_extra={"pattern": TEXT_PATTERN})
    # Checked as a UUID by the turn runner (400 invalid_session_id), as for MCP arguments.
    session_id: str | None = Field(
        default=None, min_length=1, max_length=128, json_schema_extra={"format": "uuid"}
    )
    model: str | None = Field(
        default=None, min_length=1, max_length=200, json_schema_extra={"pattern": MODEL_PATTERN}
    )
    system: str | None = Field(default=None, json_schema_extra={"pattern": TEXT_PATTERN})
    stream: bool = False


class UsagePublic(BaseModel):
    """Tokens of this turn as the provider's CLI reported them (0 when it reports none, and
    for a stored answer replayed for a retried request)."""

    tokens_in: int
    tokens_out: int


class ChatPublic(BaseModel):
    session_id: str
    provider: str
    model: str
    text: str
    duration_ms: int
    usage: UsagePublic


SSE_DOC = (
    "With `stream: true`: `text/event-stream` with events `session` (ids), `delta` "
    "(`{text}`), then `done` (the full ChatPublic) or `error` (`{error: {type, message}}`); "
    "a `: keepalive` comment line while the provider is silent. With an `Idempotency-Key` "
    "header a retried request gets the stored answer of its first success, without running "
    "the provider again."
)


@router.post(
    "/chat",
    response_model=ChatPublic,
    responses={
        200: SSE_RESPONSE,
        **errors.responses(400, 401, 403, 404, 409, 413, 422, 429, 502, 503, 504),
    },
    description=SSE_DOC,
)
async def chat(
    body: ChatCreate,
    request: Request,
    chat: ChatDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> ChatPublic | StreamingResponse:
    prepared = await chat.prepare(
        provider=body.provider,
        prompt=body.prompt,
        session_id=body.session_id,
        model=body.model,
        system=body.system,
        idempotency_key=None if idempotency_key is None else check_idempotency_key(idempotency_key),
        caller=principal,
    )
    if body.stream:
        return StreamingResponse(
            _sse(chat, prepared, settings.sse_heartbeat_seconds),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    result = await unless_disconnected(request, chat.complete(prepared))
    return ChatPublic(
        session_id=result.session_id,
        provider=result.provider,
        model=result.model,
        text=result.text,
        duration_ms=result.duration_ms,
        usage=UsagePublic(tokens_in=result.usage.tokens_in, tokens_out=result.usage.tokens_out),
    )


async def _sse(chat: ChatService, prepared: PreparedChat, heartbeat_s: float) -> AsyncIterator[str]:
    request = prepared.request
    yield event(
        {
            "session_id": request.session_id,
            "provider": prepared.provider.name,
            "model": request.model,
        },
        "session",
    )
    try:
        async with aclosing(chat.run(prepared, heartbeat_s)) as events:
            async for item in events:
                if isinstance(item, str):
                    yield event({"text": item}, "delta")
                elif isinstance(item, ChatResult):
                    yield event(item.as_dict(), "done")
                else:
                    yield HEARTBEAT_COMMENT
    except Exception as exc:  # the status line is gone: report in-band
        _, error_type, message, _ = errors.describe(exc)
        yield event(errors.error_payload(error_type, message), "error")
