"""The FastAPI application: ``create_app(settings)`` wires config, store, providers and routes;
its ``state.admin`` is the admin app (/metrics, /health/tokens) served on a port of its own."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from llmhub_common.logging import secrets
from llmhub_gateway.api import errors
from llmhub_gateway.api.body_limit import BodyLimitMiddleware
from llmhub_gateway.api.routes import chat, health, masking, openai, sessions, usage
from llmhub_gateway.api.routes import providers as provider_routes
from llmhub_gateway.auth.callers import CallerAuth, build_auth
from llmhub_gateway.auth.mcp import (
    CallerTokenVerifier,
    auth_settings,
    metadata_routes,
    metadata_url,
)
from llmhub_gateway.auth.transport import HostOriginMiddleware
from llmhub_gateway.chat import ChatService
from llmhub_gateway.core.config import Settings, split
from llmhub_gateway.drain import Drain
from llmhub_gateway.limits.base import Limiter, Limits
from llmhub_gateway.limits.memory import MemoryLimiter
from llmhub_gateway.limits.redis import RedisLimiter
from llmhub_gateway.masking.config import build_stage
from llmhub_gateway.masking.stage import MaskingStage
from llmhub_gateway.masking.store import MaskStore, MemoryMaskStore, RedisMaskStore
from llmhub_gateway.mcp_gate import McpGate
from llmhub_gateway.mcp_server import MCP_PATH, build_mcp, mcp_route
from llmhub_gateway.metrics import Metrics, RequestMetricsMiddleware
from llmhub_gateway.providers.base import Provider
from llmhub_gateway.providers.procs import drain_cleanups
from llmhub_gateway.readiness import ReadinessCheck
from llmhub_gateway.registry import Registry, build_providers
from llmhub_gateway.sessions.base import SessionStore
from llmhub_gateway.sessions.caps import SessionCaps
from llmhub_gateway.sessions.memory import MemorySessionStore
from llmhub_gateway.sessions.redis import RedisSessionStore
from llmhub_gateway.subscription_state import (
    MemorySubscriptionState,
    RedisSubscriptionState,
    SubscriptionState,
)

log = logging.getLogger(__name__)
CLEANUP_DRAIN_S = 15.0  # CLI kills take at most ~4 s each (TERM grace, then KILL)


def build_store(settings: Settings) -> SessionStore:
    """Redis when REDIS_URL is set (many replicas), else this process's memory."""
    if settings.redis_url is not None:
        return RedisSessionStore(
            settings.redis_url.get_secret_value(), settings.session_ttl_seconds
        )
    return MemorySessionStore(settings.session_ttl_seconds)


def build_masking(settings: Settings, store: SessionStore, metrics: Metrics) -> MaskingStage:
    """Placeholders kept where the sessions live (their Redis or this process), for as long."""
    # In memory, the table's TTL restarts when a turn loads it, the session's when the turn
    # commits: the longest turn on top keeps the table at least as long as its session.
    longest_turn = max(settings.claude_timeout_seconds, settings.gemini_timeout_seconds)
    masks: MaskStore = MemoryMaskStore(settings.session_ttl_seconds + int(longest_turn) + 60)
    if isinstance(store, RedisSessionStore):
        masks = RedisMaskStore(store.redis, settings.session_ttl_seconds, store.prefix)
    return build_stage(
        enabled=settings.masking_enabled,
        names=settings.masking_recognizers,
        extras=settings.masking_extra_patterns,
        providers=settings.masking_providers,
        store=masks,
        metrics=metrics,
    )


def build_limiter(settings: Settings) -> Limiter:
    """Limits and usage shared through Redis when REDIS_URL is set, else this process's."""
    limits = Limits.from_settings(settings)
    if settings.redis_url is not None:
        return RedisLimiter(settings.redis_url.get_secret_value(), limits)
    return MemoryLimiter(limits)


def build_subscriptions(settings: Settings) -> SubscriptionState:
    """The subscriptions' rate-limit state, shared through Redis when REDIS_URL is set."""
    if settings.redis_url is not None:
        return RedisSubscriptionState(settings.redis_url.get_secret_value())
    return MemorySubscriptionState()


def resource_url(settings: Settings) -> str:
    """The RFC 9728 resource (the public URL of /mcp); localhost when not configured."""
    return settings.mcp_resource_url or f"http://localhost:8000{MCP_PATH}"


def issuer_url(settings: Settings) -> str:
    """The authorization server MCP clients are sent to: the first allowed Entra tenant."""
    tenants = split(settings.auth_entra_tenants)
    authority = settings.auth_entra_authority.rstrip("/")
    return f"{authority}/{tenants[0]}/v2.0" if tenants else authority


def sweep_scratch(settings: Settings) -> int:
    """Remove the scratch directories and CLI homes that gateway processes now gone left
    behind (the pod's emptyDir survives a container restart). Another gateway on this machine
    may be using the same roots: only dead owners' directories go (``providers/owners.py``;
    the warm Gemini pool sweeps its own root the same way)."""
    from llmhub_gateway.providers.owners import sweep

    home = settings.gemini_cli_home
    return sum(sweep(root) for root in (settings.scratch_dir, home / "work", home / "pty"))


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
    resource = resource_url(settings)
    issuer = issuer_url(settings)
    scopes = split(settings.mcp_required_scopes)
    challenge = f'Bearer realm="llm-mcp-hub", resource_metadata="{metadata_url(resource)}"'
    auth: CallerAuth = build_auth(settings, challenge)
    store = build_store(settings)
    service = ChatService(
        registry,
        store,
        metrics,
        drain=Drain(),
        limiter=build_limiter(settings),
        subscriptions=build_subscriptions(settings),
        allow_overage=settings.limit_allow_overage,
        max_prompt_bytes=settings.max_prompt_bytes,
        admins=frozenset(split(settings.auth_admin_callers)),
        caps=SessionCaps(settings.session_max_bytes, settings.session_max_turns),
        masking=build_masking(settings, store, metrics),
    )
    if auth.open:  # "none": /mcp serves callers without a token, as anonymous
        mcp = build_mcp(service)
    else:
        mcp = build_mcp(
            service,
            auth_settings(resource, issuer, scopes),
            CallerTokenVerifier(auth, resource, scopes),
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweep_scratch(settings)
        await registry.start()  # pre-start warm CLIs before traffic
        readiness.start()  # the first probe finds a result (checks run off the loop)
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
                await service.masking.aclose()
                await service.limiter.aclose()
                await service.subscriptions.state.aclose()
                await auth.aclose()
                await registry.aclose()

    app = FastAPI(
        title="llm-mcp-hub gateway",
        version="0.1.0",
        description="Claude and Gemini subscriptions as REST, OpenAI-compatible and MCP APIs.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.readiness = readiness = ReadinessCheck(registry, fresh_s=settings.ready_check_seconds)
    app.state.metrics = metrics
    app.state.chat = service
    app.state.auth = auth
    errors.install(app)
    for router in (chat.router, openai.router, sessions.router, usage.router, health.router):
        app.include_router(router)
    app.include_router(masking.router)
    app.include_router(provider_routes.router)
    app.router.routes.append(
        mcp_route(
            mcp,
            settings.mcp_hosts(),
            settings.max_body_bytes,
            gate=lambda inner: McpGate(inner, service, auth, scopes),
        )
    )
    app.router.routes.extend(metadata_routes(resource, issuer, scopes))
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(HostOriginMiddleware, extra_hosts=settings.mcp_hosts())
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.state.admin = create_admin_app(app)
    return app


def create_admin_app(app: FastAPI) -> FastAPI:
    """/metrics and /health/tokens over ``app``'s state, for the admin port: per-caller
    counters, subscription utilisation and account refusals are for Prometheus and the operator
    (admitted by the chart's NetworkPolicy), not for whoever reaches the callers' Service.
    No caller auth here: Prometheus and the operator hold no caller credential."""
    admin = FastAPI(title="llm-mcp-hub gateway admin", openapi_url=None)
    for name in ("settings", "metrics", "chat", "auth"):
        setattr(admin.state, name, getattr(app.state, name))
    errors.install(admin)
    admin.include_router(health.admin_router)
    admin.add_middleware(HostOriginMiddleware, extra_hosts=app.state.settings.mcp_hosts())
    return admin
