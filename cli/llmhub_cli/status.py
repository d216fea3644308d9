"""``status``: the LLMProviders of the current kube context, as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client, config

from llmhub_common.contract import API_GROUP, API_VERSION, PLURAL
from llmhub_common.tokens import parse_rfc3339

NEEDS_ATTENTION = ("warning", "expired")
FAILING_PHASES = ("Degraded", "Expired")  # syncing fails: the Secret may be stale or missing
ACCOUNT_USABLE = "AccountUsable"  # set by the operator from the gateway's /health/tokens


@dataclass(frozen=True)
class Row:
    namespace: str
    name: str
    provider: str
    phase: str
    token: str
    days_left: int | None
    expires_at: str | None
    last_sync: str | None
    last_rotation: str | None
    # "ok", the refusal (AccountUnsupported, ProjectRequired), or None when not reported.
    account: str | None
    message: str


async def fetch(namespace: str | None, all_namespaces: bool, kubeconfig: str | None) -> list[Row]:
    """Read the LLMProviders with the current context's credentials."""
    api = await _client(kubeconfig)
    try:
        custom = client.CustomObjectsApi(api)
        if all_namespaces:
            listed = await custom.list_cluster_custom_object(API_GROUP, API_VERSION, PLURAL)
        else:
            ns = namespace or _context_namespace(kubeconfig)
            listed = await custom.list_namespaced_custom_object(API_GROUP, API_VERSION, ns, PLURAL)
    finally:
        await api.close()
    items = listed.get("items") or []
    return sorted((row(item) for item in items), key=lambda r: (r.namespace, r.name))


def row(body: Mapping[str, Any]) -> Row:
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    token = status.get("token") or {}
    return Row(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        provider=spec.get("provider", ""),
        phase=status.get("phase") or "Pending",
        token=token.get("status") or "unknown",
        days_left=token.get("daysRemaining"),
        expires_at=token.get("expiresAt"),
        last_sync=status.get("lastSyncTime"),
        last_rotation=status.get("lastRotationTime"),
        account=_account(status),
        message=_message(status),
    )


def needs_attention(rows: Sequence[Row]) -> bool:
    """A token that runs out, a provider whose syncing fails, or an account the vendor refuses."""
    return any(
        r.token in NEEDS_ATTENTION or r.phase in FAILING_PHASES or r.account not in (None, "ok")
        for r in rows
    )


def render_json(rows: Sequence[Row]) -> str:
    return json.dumps({"items": [asdict(r) for r in rows]}, indent=2)


def render_table(rows: Sequence[Row], *, with_namespace: bool, now: datetime | None = None) -> str:
    if not rows:
        return "No LLMProviders found."
    now = now or datetime.now(UTC)
    head = ["PROVIDER", "NAME", "PHASE", "TOKEN", "DAYS LEFT", "LAST SYNC", "LAST ROTATION"]
    head = (["NAMESPACE"] if with_namespace else []) + head + ["ACCOUNT", "MESSAGE"]
    lines = [head]
    for r in rows:
        cells = [
            r.provider,
            r.name,
            r.phase,
            r.token,
            "-" if r.days_left is None else str(r.days_left),
            _ago(r.last_sync, now),
            _ago(r.last_rotation, now),
            r.account or "-",
        ]
        lines.append(([r.namespace] if with_namespace else []) + cells + [r.message])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    out = []
    for line in lines:
        padded = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        out.append("  ".join([*padded, line[-1]]).rstrip())
    return "\n".join(out)


def _conditions(status: Mapping[str, Any]) -> dict[Any, Mapping[str, Any]]:
    return {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}


def _account(status: Mapping[str, Any]) -> str | None:
    account = _conditions(status).get(ACCOUNT_USABLE)
    if account is None or account.get("status") == "Unknown":
        return None
    return "ok" if account.get("status") == "True" else str(account.get("reason") or "Refused")


def _message(status: Mapping[str, Any]) -> str:
    """The Synced condition's message when syncing fails, then Ready's when it is False for
    another reason (the gateway could not be rolled), then a refused account's, else the
    TokenValid one."""
    conditions = _conditions(status)
    synced = conditions.get("Synced") or {}
    if synced.get("status") == "False":
        return f"{synced.get('reason', '')}: {synced.get('message', '')}".strip(": ")
    ready = conditions.get("Ready") or {}
    if ready.get("status") == "False" and ready.get("reason") != "Expired":
        return f"{ready.get('reason', '')}: {ready.get('message', '')}".strip(": ")
    account = conditions.get(ACCOUNT_USABLE) or {}
    if account.get("status") == "False":
        return f"{account.get('reason', '')}: {account.get('message', '')}".strip(": ")
    token = conditions.get("TokenValid") or {}
    return str(token.get("message") or synced.get("message") or "")


def _ago(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "-"
    try:
        seconds = int((now - parse_rfc3339(stamp)).total_seconds())
    except ValueError:
        return stamp
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


async def _client(kubeconfig: str | None) -> client.ApiClient:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    return client.ApiClient(configuration=cfg)


def _context_namespace(kubeconfig: str | None) -> str:
    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
    except (config.ConfigException, OSError):
        return "default"
    return str((active or {}).get("context", {}).get("namespace") or "default")
