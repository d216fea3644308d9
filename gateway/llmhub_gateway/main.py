"""The FastAPI application: ``create_app(settings)`` wires config, store, providers and routes."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from llmhub_common.logging import secrets
from llmhub_gateway.api import errors
from llmhub_gateway.api.routes import chat, health, openai, sessions
from llmhub_gateway.chat import ChatService
from llmhub_gateway.core.config import Settings
from llmhub_gateway.mcp_server import build_mcp, mcp_routes
from llmhub_gateway.metrics import Metrics, RequestMetricsMiddleware
from llmhub_gateway.providers.base import Provider
from llmhub_gateway.registry import Registry, build_providers
from llmhub_gateway.sessions.base import SessionStore
from llmhub_gateway.sessions.memory import MemorySessionStore
from llmhub_gateway.sessions.redis import RedisSessionStore


def build_store(settings: Settings) -> SessionStore:
    """Redis when REDIS_URL is set (many replicas), else this process's memory."""
    if settings.redis_url is not None:
        return RedisSessionStore(
            settings.redis_url.get_secret_value(), settings.session_ttl_seconds
        )
    return MemorySessionStore(settings.session_ttl_seconds)


def create_app(
    settings: Settings | None = None, providers: Sequence[Provider] | None = None
) -> FastAPI:
    """The app; ``providers`` replaces the real adapters (tests, benchmarks)."""
    settings = settings or Settings()
    secrets.add(settings.claude_token())
    if settings.redis_url is not None:
        secrets.add(settings.redis_url.get_secret_value())
    registry = Registry(build_providers(settings) if providers is None else providers, settings)
    metrics = Metrics()
    service = ChatService(registry, build_store(settings), metrics)
    mcp = build_mcp(service)
    routes = mcp_routes(mcp, settings.mcp_hosts())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mcp.session_manager.run():
            # Imports leave ~100 MB of long-lived objects; freezing them keeps full GC passes
            # (tail-latency spikes) from walking them on every collection.
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                await service.store.aclose()
                await registry.aclose()

    app = FastAPI(
        title="llm-mcp-hub gateway",
        version="0.1.0",
        description="Claude and Gemini subscriptions as REST, OpenAI-compatible and MCP APIs.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.chat = service
    errors.install(app)
    for router in (chat.router, openai.router, sessions.router, health.router):
        app.include_router(router)
    app.router.routes.extend(routes)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    return app
