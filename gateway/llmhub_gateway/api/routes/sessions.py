"""GET/DELETE /v1/sessions/{id}: inspect or forget a conversation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel

from llmhub_gateway.api import errors
from llmhub_gateway.api.deps import PrincipalDep, SessionStoreDep
from llmhub_gateway.errors import SessionNotFound
from llmhub_gateway.sessions.ids import parse_session_id

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
# Any string reaches the handler, which answers 400 invalid_session_id unless it is a UUID.
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
    session_id: SessionIdPath, store: SessionStoreDep, principal: PrincipalDep
) -> SessionPublic:
    session = await store.get(parse_session_id(session_id))
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
async def delete_session(
    session_id: SessionIdPath, store: SessionStoreDep, principal: PrincipalDep
) -> None:
    """Forget the session. A turn running on it finds it gone when it ends: its answer is
    not stored (the turn answers 404), so the session never comes back half-written."""
    if not await store.delete(parse_session_id(session_id)):
        raise SessionNotFound(f"session '{session_id}' not found")
