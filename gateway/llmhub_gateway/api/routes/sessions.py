"""GET/DELETE /v1/sessions/{id}: inspect or forget a conversation -- the caller's own (or any,
for an admin caller); another caller's session answers 404, as an unknown one does."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel

from llmhub_gateway.api import errors
from llmhub_gateway.api.deps import ChatDep, PrincipalDep
from llmhub_gateway.errors import SessionNotFound
from llmhub_gateway.sessions.base import may_access
from llmhub_gateway.sessions.ids import parse_session_id
from llmhub_gateway.usage import audited

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
# Any string reaches the handler, which answers 400 invalid_session_id unless it is a UUID.
PATH = "/v1/sessions/{session_id}"
SessionIdPath = Annotated[str, Path(json_schema_extra={"format": "uuid"})]


class TurnPublic(BaseModel):
    role: str
    text: str


class SessionPublic(BaseModel):
    session_id: str
    provider: str
    model: str
    created_at: float
    updated_at: float
    turns: list[TurnPublic]


@router.get(
    "/{session_id}",
    response_model=SessionPublic,
    responses=errors.responses(400, 401, 403, 404, 503),
)
async def get_session(
    session_id: SessionIdPath, chat: ChatDep, principal: PrincipalDep
) -> SessionPublic:
    with audited("read", principal.name, PATH) as line:
        sid = line["session_id"] = parse_session_id(session_id)
        owner = await chat.store.owner(sid)
        allowed = may_access(owner, principal.name, chat.admins)
        session = await chat.store.get(sid) if allowed else None
        if session is None:
            raise SessionNotFound(f"session '{session_id}' not found")
    return SessionPublic(
        session_id=session.id,
        provider=session.provider,
        model=session.model,
        created_at=session.created_at,
        updated_at=session.updated_at,
        turns=[TurnPublic(role=t.role, text=t.text) for t in session.turns],
    )


@router.delete(
    "/{session_id}",
    status_code=204,
    response_class=Response,
    responses=errors.responses(400, 401, 403, 404, 503),
)
async def delete_session(session_id: SessionIdPath, chat: ChatDep, principal: PrincipalDep) -> None:
    """Forget the session. A turn running on it finds it gone when it ends: its answer is
    not stored (the turn answers 404), so the session never comes back half-written."""
    with audited("delete", principal.name, PATH) as line:
        sid = line["session_id"] = parse_session_id(session_id)
        allowed = may_access(await chat.store.owner(sid), principal.name, chat.admins)
        if not allowed or not await chat.store.delete(sid):
            raise SessionNotFound(f"session '{session_id}' not found")
        await chat.masking.forget(sid)  # its placeholders go with it
