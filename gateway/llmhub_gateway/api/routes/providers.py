"""GET /v1/providers/{name}/status: one provider's credential health and its subscription's
rate-limit state, as the CLI last reported it to any replica (subscription_state.py)."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from llmhub_gateway.api import errors
from llmhub_gateway.api.deps import ChatDep, PrincipalDep
from llmhub_gateway.api.routes.health import TokenHealthPublic
from llmhub_gateway.subscription_state import Window, judge

router = APIRouter(prefix="/v1/providers", tags=["providers"])


class WindowPublic(BaseModel):
    window: str  # five_hour, seven_day, ... (subscription_state.WINDOWS)
    status: str  # allowed | allowed_warning | rejected
    utilization: float | None
    resets_at: float | None  # Unix seconds
    overage_status: str | None
    overage_resets_at: float | None
    observed_at: float


class RefusalPublic(BaseModel):
    type: Literal["subscription_rate_limited", "subscription_overage_blocked"]
    message: str
    retry_after: int


class ProviderStatus(BaseModel):
    provider: str
    configured: bool
    token: TokenHealthPublic | None  # None when no credential is configured
    limited: bool  # turns are refused now (``refusal`` says why and until when)
    overage: bool  # the CLI reports the subscription in (or going into) paid overage
    overage_allowed: bool  # LIMIT_ALLOW_OVERAGE
    refusal: RefusalPublic | None
    current: WindowPublic | None  # the latest report: the currently limiting window
    windows: list[WindowPublic]  # the latest report per window, until each resets


def _public(window: Window) -> WindowPublic:
    return WindowPublic.model_validate(asdict(window))  # expires_at is internal: dropped


@router.get(
    "/{name}/status",
    response_model=ProviderStatus,
    responses=errors.responses(401, 403, 404),
)
async def status(name: str, chat: ChatDep, principal: PrincipalDep) -> ProviderStatus:
    """404 for a provider this gateway does not know; a known one that is not configured
    answers with ``configured: false``."""
    provider = chat.registry.get(name)
    guard = chat.subscriptions
    current = await guard.state.current(provider.name)
    windows = await guard.state.windows(provider.name)
    refusal = judge(provider.name, current, guard.allow_overage, time.time())
    health = chat.registry.token_health().get(provider.name)
    token = None
    if health is not None:
        fields = health.as_dict()
        refused = chat.registry.account_problems()
        if provider.name in refused:  # as /health/tokens shows it
            fields["error"], fields["message"] = refused[provider.name]
        token = TokenHealthPublic.model_validate(fields)
    return ProviderStatus(
        provider=provider.name,
        configured=provider.configured(),
        token=token,
        limited=refusal is not None,
        overage=current is not None and current.in_overage(),
        overage_allowed=guard.allow_overage,
        refusal=None
        if refusal is None or refusal.retry_after is None
        else RefusalPublic.model_validate(
            {
                "type": refusal.error_type,
                "message": str(refusal),
                "retry_after": refusal.retry_after,
            }
        ),
        current=None if current is None else _public(current),
        windows=[_public(w) for w in windows],
    )
