"""The LLMProvider status: phase, token health and metav1.Condition-shaped conditions.

Besides the detail conditions (Synced, TokenValid, GatewayRolled, AccountUsable) it carries the
summary that tools read, after kstatus' conventions: ``Ready`` (what ``kubectl wait
--for=condition=Ready`` waits for) and the "abnormal-true" ``Reconciling`` (kstatus: InProgress)
and ``Stalled`` (kstatus: Failed), present only while true. Without them kstatus reads a failed
LLMProvider as Current.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from llmhub_common.tokens import TokenHealth, TokenStatus, format_rfc3339

Phase = Literal["Pending", "Ready", "Degraded", "Expired"]
SYNCED, TOKEN_VALID, GATEWAY_ROLLED = "Synced", "TokenValid", "GatewayRolled"
ACCOUNT_USABLE = "AccountUsable"  # what the gateway last saw of the vendor account (optional)
READY, RECONCILING, STALLED = "Ready", "Reconciling", "Stalled"
CONDITION_TYPES = (
    READY,
    RECONCILING,
    STALLED,
    SYNCED,
    TOKEN_VALID,
    GATEWAY_ROLLED,
    ACCOUNT_USABLE,
)


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
    drop: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Apply ``updates`` and remove the ``drop`` types; lastTransitionTime moves only when a
    condition's status changes."""
    by_type = {
        str(c.get("type")): dict(c)
        for c in previous
        if isinstance(c, Mapping) and c.get("type") not in drop
    }
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


def phase_for(*, synced: bool, token: TokenStatus | None, rolled: bool = True) -> Phase:
    """Expired beats everything; a failed sync is Degraded even while the old token serves, and
    so is a gateway that could not be rolled (its pods may not carry the credential)."""
    if token is TokenStatus.EXPIRED:
        return "Expired"
    return "Ready" if synced and rolled else "Degraded"


@dataclass(frozen=True, slots=True)
class Summary:
    """The kstatus conditions to write, and the abnormal-true ones to remove."""

    conditions: tuple[Condition, ...]
    drop: tuple[str, ...]


def pending_summary() -> Summary:
    """First sync under way: not Ready yet, and kstatus must read InProgress, not Current."""
    message = "First sync from Key Vault under way"
    return Summary(
        (
            Condition(READY, "Unknown", "Syncing", message),
            Condition(RECONCILING, "True", "Syncing", message),
        ),
        (STALLED,),
    )


def summarize(problem: Condition | None, *, retrying: bool, ready_message: str = "") -> Summary:
    """Ready from a finished pass's first problem (None: none).

    A problem the operator retries soon on its own (throttling, 5xx, a Deployment not there yet)
    is ``Reconciling``; one that needs a person (a bad spec, refused access, an invalid patch, an
    expired token) is ``Stalled``. Either way ``Ready`` is False with the problem's reason.
    """
    if problem is None:
        return Summary((Condition(READY, "True", "Ready", ready_message),), (RECONCILING, STALLED))
    ready = Condition(READY, "False", problem.reason, problem.message)
    if retrying:
        busy = Condition(RECONCILING, "True", problem.reason, problem.message)
        return Summary((ready, busy), (STALLED,))
    stuck = Condition(STALLED, "True", problem.reason, problem.message)
    return Summary((ready, stuck), (RECONCILING,))


def find_condition(
    conditions: Sequence[Mapping[str, Any]] | None, type_: str
) -> Mapping[str, Any] | None:
    for cond in conditions or ():
        if isinstance(cond, Mapping) and cond.get("type") == type_:
            return cond
    return None
