"""The LLMProvider status: phase, token health and metav1.Condition-shaped conditions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from llmhub_common.tokens import TokenHealth, TokenStatus, format_rfc3339

Phase = Literal["Pending", "Ready", "Degraded", "Expired"]
SYNCED, TOKEN_VALID, GATEWAY_ROLLED = "Synced", "TokenValid", "GatewayRolled"
ACCOUNT_USABLE = "AccountUsable"  # what the gateway last saw of the vendor account (optional)
CONDITION_TYPES = (SYNCED, TOKEN_VALID, GATEWAY_ROLLED, ACCOUNT_USABLE)


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str


def merge_conditions(
    previous: Sequence[Mapping[str, Any]],
    updates: Sequence[Condition],
    *,
    now: datetime,
    generation: int | None,
) -> list[dict[str, Any]]:
    """Apply ``updates``; lastTransitionTime moves only when a condition's status changes."""
    by_type = {str(c.get("type")): dict(c) for c in previous if isinstance(c, Mapping)}
    for cond in updates:
        old = by_type.get(cond.type)
        changed = old is None or old.get("status") != cond.status
        by_type[cond.type] = {
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": format_rfc3339(now)
            if changed or old is None
            else old.get("lastTransitionTime", format_rfc3339(now)),
        }
        if generation is not None:
            by_type[cond.type]["observedGeneration"] = generation
    order = {t: i for i, t in enumerate(CONDITION_TYPES)}
    return sorted(by_type.values(), key=lambda c: order.get(c["type"], len(order)))


def token_condition(health: TokenHealth) -> Condition:
    if health.status is TokenStatus.EXPIRED:
        return Condition(TOKEN_VALID, "False", "Expired", health.message)
    if health.status is TokenStatus.UNKNOWN:
        return Condition(TOKEN_VALID, "Unknown", "ExpiryUnknown", health.message)
    reason = "ExpiresSoon" if health.status is TokenStatus.WARNING else "Valid"
    return Condition(TOKEN_VALID, "True", reason, health.message)


def token_status(health: TokenHealth) -> dict[str, Any]:
    """The ``status.token`` block; absent fields are deleted by the merge patch (None)."""
    return {
        "status": health.status.value,
        "expiresAt": format_rfc3339(health.expires_at) if health.expires_at else None,
        "daysRemaining": health.days_remaining,
    }


def phase_for(*, synced: bool, token: TokenStatus | None) -> Phase:
    """Expired beats everything; a failed sync is Degraded even while the old token serves."""
    if token is TokenStatus.EXPIRED:
        return "Expired"
    return "Ready" if synced else "Degraded"


def find_condition(
    conditions: Sequence[Mapping[str, Any]] | None, type_: str
) -> Mapping[str, Any] | None:
    for cond in conditions or ():
        if isinstance(cond, Mapping) and cond.get("type") == type_:
            return cond
    return None
