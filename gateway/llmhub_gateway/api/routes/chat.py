"""POST /v1/chat: the native REST API, with server-side sessions and optional SSE."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from llmhub_gateway.api import errors
from llmhub_gateway.api.deps import ChatDep, PrincipalDep
from llmhub_gateway.api.disconnect import unless_disconnected
from llmhub_gateway.api.sse import SSE_HEADERS, SSE_RESPONSE, event
from llmhub_gateway.chat import ChatService, PreparedChat

router = APIRouter(prefix="/v1", tags=["chat"])


class ChatCreate(BaseModel):
    provider: Literal["claude", "gemini"]
    prompt: str = Field(min_length=1, max_length=200_000)
    session_id: str | None = Field(default=None, min_length=1, max_length=128)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    system: str | None = Field(default=None, max_length=100_000)
    stream: bool = False


class ChatPublic(BaseModel):
    session_id: str
    provider: str
    model: str
    text: str
    duration_ms: int


SSE_DOC = (
    "With `stream: true`: `text/event-stream` with events `session` (ids), `delta` "
    "(`{text}`), then `done` (the full ChatPublic) or `error` (`{error: {type, message}}`)."
)


@router.post(
    "/chat",
    response_model=ChatPublic,
    responses={
        200: SSE_RESPONSE,
        **errors.responses(400, 404, 409, 422, 429, 502, 503, 504),
    },
    description=SSE_DOC,
)
async def chat(
    body: ChatCreate, request: Request, chat: ChatDep, principal: PrincipalDep
) -> ChatPublic | StreamingResponse:
    prepared = await chat.prepare(
        provider=body.provider,
        prompt=body.prompt,
        session_id=body.session_id,
        model=body.model,
        system=body.system,
    )
    if body.stream:
        return StreamingResponse(
            _sse(chat, prepared), media_type="text/event-stream", headers=SSE_HEADERS
        )
    result = await unless_disconnected(request, chat.complete(prepared))
    return ChatPublic(
        session_id=result.session_id,
        provider=result.provider,
        model=result.model,
        text=result.text,
        duration_ms=result.duration_ms,
    )


async def _sse(chat: ChatService, prepared: PreparedChat) -> AsyncIterator[str]:
    started = time.perf_counter()
    request = prepared.request
    yield event(
        {
            "session_id": request.session_id,
            "provider": prepared.provider.name,
            "model": request.model,
        },
        "session",
    )
    parts: list[str] = []
    try:
        async with aclosing(chat.stream(prepared)) as deltas:
            async for delta in deltas:
                parts.append(delta)
                yield event({"text": delta}, "delta")
    except Exception as exc:  # the status line is gone: report in-band
        _, error_type, message, _ = errors.describe(exc)
        yield event(errors.error_payload(error_type, message), "error")
        return
    yield event(chat.result(prepared, "".join(parts), started).as_dict(), "done")
