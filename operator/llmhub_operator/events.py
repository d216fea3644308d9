"""Kubernetes Events for what an admin must notice: rotations, failures, token state changes.

Each is posted once per state change (the caller compares with the previous status), never on
every refresh interval. Syncs run in the operator's scheduler, outside kopf's handler context,
so Events are created through the API here: in the background, and a failure only logs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes_asyncio import client

from llmhub_common.tokens import TokenStatus
from llmhub_operator.kube import raw_json

log = logging.getLogger(__name__)
COMPONENT = "llm-mcp-hub-operator"
_api: client.ApiClient | None = None
_pending: set[asyncio.Task[None]] = set()


def use(api: client.ApiClient | None) -> None:
    """Post with this client (None stops posting, e.g. at shutdown)."""
    global _api
    _api = api


async def drain(seconds: float = 5.0) -> None:
    """Wait for Events still being posted, so a shutdown does not drop the last ones."""
    if _pending:
        await asyncio.wait(list(_pending), timeout=seconds)


def rotated(
    body: Mapping[str, Any], *, created: bool, secret: str, version: str, digest: str
) -> None:
    reason = "SecretCreated" if created else "Rotated"
    verb = "created" if created else "updated"
    _post(body, "Normal", reason, f"Secret {secret} {verb}: version {version}, {digest}")


def gateway_rolled(body: Mapping[str, Any], *, deployment: str, digest: str) -> None:
    _post(body, "Normal", "GatewayRolled", f"Deployment {deployment} rolled for {digest}")


def sync_failed(body: Mapping[str, Any], *, reason: str, message: str) -> None:
    _post(body, "Warning", "SyncFailed", f"{reason}: {message}")


def secret_renamed(body: Mapping[str, Any], *, old: str, new: str, deleted: bool) -> None:
    if deleted:
        _post(body, "Normal", "SecretRenamed", f"Secret {old} deleted: the target is now {new}")
    else:
        msg = f"Secret {old} is stale (the target is now {new}) and could not be deleted"
        _post(body, "Warning", "StaleSecret", msg + "; delete it by hand")


def token_state(body: Mapping[str, Any], *, status: TokenStatus, message: str) -> None:
    reason = "TokenExpired" if status is TokenStatus.EXPIRED else "TokenExpiring"
    _post(body, "Warning", reason, message)


def token_renewed(body: Mapping[str, Any], *, message: str) -> None:
    _post(body, "Normal", "TokenRenewed", message)


def account_refused(body: Mapping[str, Any], *, reason: str, message: str) -> None:
    _post(body, "Warning", reason, message)


def account_usable(body: Mapping[str, Any], *, message: str) -> None:
    _post(body, "Normal", "AccountUsable", message)


def _post(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    if _api is None:
        return
    task = asyncio.create_task(_create(_api, body, type_, reason, message))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _create(
    api: client.ApiClient, body: Mapping[str, Any], type_: str, reason: str, message: str
) -> None:
    meta = body.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    now = datetime.now(UTC)
    event = {
        "metadata": {"generateName": f"{meta.get('name', 'llmprovider')}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "name": meta.get("name"),
            "namespace": namespace,
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT, "host": os.environ.get("POD_NAME", "")},
        "reportingComponent": COMPONENT,
        "reportingInstance": os.environ.get("POD_NAME") or COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await raw_json(
            client.CoreV1Api(api).create_namespaced_event(
                namespace, cast(Any, event), _preload_content=False
            )
        )
    except Exception as exc:  # an Event is a courtesy: never fail or slow a sync for one
        why = getattr(exc, "status", None) or type(exc).__name__
        name = meta.get("name")
        log.warning("posting Event %s for %s/%s failed (%s)", reason, namespace, name, why)
