"""Request dependencies as Annotated aliases; routes never write ``Depends`` themselves.

All are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, a thread hop
per request for a mere attribute lookup.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from llmhub_gateway.auth.callers import CallerAuth
from llmhub_gateway.auth.principal import Principal
from llmhub_gateway.chat import ChatService
from llmhub_gateway.core.config import Settings
from llmhub_gateway.errors import GatewayError
from llmhub_gateway.metrics import Metrics
from llmhub_gateway.registry import Registry
from llmhub_gateway.sessions.base import SessionStore
from llmhub_gateway.usage import refused_caller


async def get_principal(request: Request) -> Principal:
    """The caller, from the ``Authorization`` header by the enabled modes (AUTH_MODES);
    raises Unauthenticated (401) or Forbidden (403)."""
    auth: CallerAuth = request.app.state.auth
    try:
        return await auth.authenticate(request.headers.get("authorization"))
    except GatewayError as exc:
        refused_caller(request.method, request.url.path, exc)
        raise


async def get_chat(request: Request) -> ChatService:
    chat: ChatService = request.app.state.chat
    return chat


async def get_store(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.chat.store
    return store


async def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.chat.registry
    return registry


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


__all__ = ["Principal"]

PrincipalDep = Annotated[Principal, Depends(get_principal)]
ChatDep = Annotated[ChatService, Depends(get_chat)]
SessionStoreDep = Annotated[SessionStore, Depends(get_store)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
