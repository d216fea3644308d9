"""Probes and metrics: /health, /health/live, /health/ready on the callers' port;
/health/tokens and /metrics (``admin_router``) only on the admin port (main.create_admin_app):
per-caller counters and account state are not for whoever reaches the callers' Service."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from llmhub_gateway.api.deps import ChatDep, MetricsDep, RegistryDep
from llmhub_gateway.readiness import ReadinessCheck
from llmhub_gateway.registry import Registry

router = APIRouter(tags=["health"])
admin_router = APIRouter(tags=["admin"])


class Live(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    providers: list[str]
    reasons: list[str]


class TokenHealthPublic(BaseModel):
    status: str
    expires_at: str | None
    days_remaining: int | None
    message: str
    # Only present when the vendor refused the account on the last call (e.g.
    # provider_account_unsupported); ``message`` then says what to do.
    error: str | None = None


@router.get("/health", response_model=Live)
@router.get("/health/live", response_model=Live)
async def live() -> Live:
    """The process is up and serving; says nothing about Redis or providers."""
    return Live(status="ok")


@router.get("/health/ready", response_model=Ready, responses={503: {"model": Ready}})
async def ready(request: Request, chat: ChatDep, registry: RegistryDep) -> Ready | JSONResponse:
    """Ready when this replica can serve: not draining, at least one provider configured and
    its CLI there (a cached check, refreshed off the event loop: readiness.py). Deliberately
    not the shared Redis: its outage would take every replica out at once, stateless OpenAI
    traffic included; requests that need it answer 503 instead."""
    reasons: list[str] = []
    if chat.drain.draining:
        reasons.append("shutting down")
    problems = await _readiness(request, registry).problems()
    reasons.extend(problems.values())
    providers = [p.name for p in registry.configured() if p.name not in problems]
    if not registry.configured():
        reasons.append("no provider is configured (no Claude token, no Gemini credentials file)")
    elif not providers:
        reasons.append("no configured provider can run")
    body = Ready(status="not_ready" if reasons else "ready", providers=providers, reasons=reasons)
    if reasons:
        return JSONResponse(body.model_dump(), status_code=503)
    return body


def _readiness(request: Request, registry: Registry) -> ReadinessCheck:
    """The app's readiness cache, made on the first probe."""
    check: ReadinessCheck | None = getattr(request.app.state, "readiness", None)
    if check is None:
        fresh_s = request.app.state.settings.ready_check_seconds
        check = request.app.state.readiness = ReadinessCheck(registry, fresh_s=fresh_s)
    return check


@admin_router.get(
    "/health/tokens",
    response_model=dict[str, TokenHealthPublic],
    response_model_exclude_unset=True,  # the seeds' shape; ``error`` only when there is one
)
async def tokens(registry: RegistryDep) -> dict[str, TokenHealthPublic]:
    """Per configured provider: valid | warning | expired | unknown, and days remaining; an
    account the vendor refused shows its error type and what to do instead of the message."""
    refused = registry.account_problems()
    answer = {}
    for name, health in registry.token_health().items():
        fields = health.as_dict()
        if name in refused:
            fields["error"], fields["message"] = refused[name]
        answer[name] = TokenHealthPublic.model_validate(fields)
    return answer


@admin_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(metrics: MetricsDep, registry: RegistryDep, chat: ChatDep) -> Response:
    await chat.subscriptions.export(list(registry.names()))  # the shared state, every replica
    for name, health in registry.token_health().items():
        days = health.days_remaining
        metrics.token_days.labels(name).set(-1 if days is None else days)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
