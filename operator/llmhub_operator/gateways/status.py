"""The LLMGateway status: kstatus conditions, the providers served with their token health, and
the URLs to call.

``Ready`` is True only when the Deployment has rolled out its current pod template and is
Available; while it rolls, ``Reconciling`` is True (kstatus InProgress); a spec or ownership
problem a person must fix is ``Stalled`` (kstatus Failed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from llmhub_operator.gateways.model import ServedProvider
from llmhub_operator.status import (
    READY,
    RECONCILING,
    STALLED,
    Condition,
    Summary,
    find_condition,
    merge_conditions,
    summarize,
)


def rollout_problem(deployment: Mapping[str, Any]) -> Condition | None:
    """None when the Deployment serves its current template with every replica Available."""
    meta, spec = deployment.get("metadata") or {}, deployment.get("spec") or {}
    status = deployment.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        message = "the Deployment's change is not seen yet"
        return Condition(READY, "False", "RolloutPending", message)
    updated, available = status.get("updatedReplicas") or 0, status.get("availableReplicas") or 0
    if updated < wanted or available < wanted:
        message = f"{available}/{wanted} replicas available, {updated} with the current template"
        return Condition(READY, "False", "RolloutInProgress", message)
    available_cond = find_condition(status.get("conditions"), "Available") or {}
    if wanted and available_cond.get("status") != "True":
        return Condition(READY, "False", "Unavailable", "the Deployment is not Available")
    return None


def summary(problem: Condition | None, *, stalled: bool) -> Summary:
    return summarize(problem, retrying=not stalled, ready_message="the gateway serves")


def status_patch(
    previous: Mapping[str, Any],
    result: Summary,
    *,
    now: datetime,
    generation: int | None,
    providers: Sequence[ServedProvider],
    urls: Mapping[str, str],
    ready_replicas: int,
) -> dict[str, Any]:
    """The whole status as a merge patch (a condition's time moves only when it changes)."""
    conditions = merge_conditions(
        previous.get("conditions") or [],
        result.conditions,
        now=now,
        generation=generation,
        drop=result.drop,
    )
    return {
        "observedGeneration": generation,
        "readyReplicas": ready_replicas,
        "providerNames": ",".join(p.name for p in providers),
        "providers": [_provider(p) for p in providers],
        "urls": dict(urls),
        "conditions": [c for c in conditions if c["type"] in (READY, RECONCILING, STALLED)],
    }


def _provider(p: ServedProvider) -> dict[str, str]:
    shown = {"name": p.name, "provider": p.provider, "secretName": p.secret_name}
    shown["token"] = p.token or "unknown"
    if p.expires_at:
        shown["expiresAt"] = p.expires_at
    return shown


def unchanged(previous: Mapping[str, Any], patch: Mapping[str, Any]) -> bool:
    """True when writing ``patch`` would change nothing a reader sees (no needless writes)."""

    def strip(status: Mapping[str, Any]) -> dict[str, Any]:
        conditions = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"}
            for c in status.get("conditions") or []
        ]
        return {**status, "conditions": conditions}

    return all(strip(previous).get(k) == v for k, v in strip(patch).items())
