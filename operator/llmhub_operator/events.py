"""Kubernetes Events for what an admin must notice: rotations, failures, token state changes.

Each is posted once per state change (the caller compares with the previous status), never on
every refresh interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import kopf

from llmhub_common.tokens import TokenStatus


def rotated(
    body: Mapping[str, Any], *, created: bool, secret: str, version: str, digest: str
) -> None:
    reason = "SecretCreated" if created else "Rotated"
    verb = "created" if created else "updated"
    kopf.event(
        _ref(body),
        type="Normal",
        reason=reason,
        message=f"Secret {secret} {verb}: version {version}, {digest}",
    )


def gateway_rolled(body: Mapping[str, Any], *, deployment: str, digest: str) -> None:
    kopf.event(
        _ref(body),
        type="Normal",
        reason="GatewayRolled",
        message=f"Deployment {deployment} rolled for {digest}",
    )


def sync_failed(body: Mapping[str, Any], *, reason: str, message: str) -> None:
    kopf.event(_ref(body), type="Warning", reason="SyncFailed", message=f"{reason}: {message}")


def token_state(body: Mapping[str, Any], *, status: TokenStatus, message: str) -> None:
    reason = "TokenExpired" if status is TokenStatus.EXPIRED else "TokenExpiring"
    kopf.event(_ref(body), type="Warning", reason=reason, message=message)


def _ref(body: Mapping[str, Any]) -> kopf.Body:
    return cast(kopf.Body, dict(body))
