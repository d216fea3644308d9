"""The FastAPI application: ``create_app(settings)`` wires config, store, providers and routes."""

from __future__ import annotations

import gc
import logging
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from llmhub_common.logging import secrets
from llmhub_gateway.api import errors
from llmhub_gateway.api.routes import chat, health, openai, sessions
from llmhub_gateway.chat import ChatService
from llmhub_gateway.core.config import Settings
from llmhub_gateway.drain import Drain
from llmhub_gateway.mcp_server import build_mcp, mcp_route
from llmhub_gateway.metrics import Metrics, RequestMetricsMiddleware
from llmhub_gateway.providers.base import Provider
from llmhub_gateway.providers.procs import drain_cleanups
from llmhub_gateway.registry import Registry, build_providers
from llmhub_gateway.sessions.base import SessionStore
from llmhub_gateway.sessions.memory import MemorySessionStore
from llmhub_gateway.sessions.redis import RedisSessionStore

log = logging.getLogger(__name__)
CLEANUP_DRAIN_S = 15.0  # CLI kills take at most ~4 s each (TERM grace, then KILL)


def build_store(settings: Settings) -> SessionStore:
    """Redis when REDIS_URL is set (many replicas), else this process's memory."""
    if settings.redis_url is not None:
        return RedisSessionStore(
            settings.redis_url.get_secret_value(), settings.session_ttl_seconds
        )
    return MemorySessionStore(settings.session_ttl_seconds)


def sweep_scratch(settings: Settings) -> int:
    """Remove per-call working directories a killed process left behind (they live in the
    pod's emptyDir, which survives a container restart). These roots belong to this gateway
    process alone: nothing else may be running in them at start."""
    swept = 0
    for root in (settings.scratch_dir, settings.gemini_cli_home / "work"):
        try:
            leftovers = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
        except OSError:
            continue
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)
        swept += len(leftovers)
    if swept:
        log.info("swept %d scratch directories left by an earlier process", swept)
    return swept


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
    service = ChatService(registry, build_store(settings), metrics, drain=Drain())
    mcp = build_mcp(service)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweep_scratch(settings)
        async with mcp.session_manager.run():
            # Imports leave ~100 MB of long-lived objects; freezing them keeps full GC passes
            # (tail-latency spikes) from walking them on every collection.
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                service.drain.begin()
                left = await drain_cleanups(CLEANUP_DRAIN_S)  # they may release leases
                if left:
                    log.warning("%d cleanup task(s) still running at shutdown", left)
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
    app.router.routes.append(mcp_route(mcp, settings.mcp_hosts()))
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    return app
