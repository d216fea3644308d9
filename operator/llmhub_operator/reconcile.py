"""One pass of the pipeline: spec → Key Vault → validate → Secret → gateway rollout → status."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client

from llmhub_common.contract import API_GROUP, API_VERSION, PLURAL
from llmhub_common.logging import secrets
from llmhub_common.tokens import TokenHealth, TokenStatus, classify, format_rfc3339
from llmhub_operator import events, metrics
from llmhub_operator.credential import InvalidCredential, content_hash, expiry, validate
from llmhub_operator.kube import is_not_found
from llmhub_operator.model import InvalidSpec, ProviderSpec, parse_spec
from llmhub_operator.rollout import RolloutResult, ensure_rolled
from llmhub_operator.secret_writer import WriteAction, apply_secret, build_secret
from llmhub_operator.source import SecretSource, describe_failure
from llmhub_operator.status import (
    GATEWAY_ROLLED,
    SYNCED,
    Condition,
    Phase,
    find_condition,
    merge_conditions,
    phase_for,
    token_condition,
    token_status,
)

log = logging.getLogger(__name__)


@dataclass
class Deps:
    """Runtime objects shared by all handlers (kept in kopf's operator memo)."""

    source: SecretSource
    api: client.ApiClient
    locks: defaultdict[tuple[str, str], asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )
    # Key Vault's Retry-After per object, honoured by every handler, not only the one throttled.
    not_before: dict[tuple[str, str], float] = field(default_factory=dict)

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted object's state, so create/delete cycles leak nothing."""
        self.locks.pop((namespace, name), None)
        self.not_before.pop((namespace, name), None)
        metrics.forget_provider(namespace, name)


@dataclass(frozen=True, slots=True)
class Outcome:
    phase: Phase | None
    message: str
    transient: bool = False  # a failure worth retrying soon (throttling, 5xx, API errors)
    retry_after: float | None = None  # the source asked us to wait at least this long


async def reconcile(namespace: str, name: str, deps: Deps) -> Outcome:
    """Serialised per object, always on the live object, so handlers and the daemon agree."""
    async with deps.locks[namespace, name]:
        wait = deps.not_before.get((namespace, name), 0.0) - time.monotonic()
        if wait > 0:
            return Outcome(None, "Key Vault asked us to wait", transient=True, retry_after=wait)
        body = await _read_provider(deps.api, namespace, name)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            deps.forget(namespace, name)  # a late pass must not bring the state back
            return Outcome(None, "LLMProvider is gone")
        sync = _Pass(body, deps)
        if not sync.previous.get("phase"):
            await sync.pending()
        outcome = await sync.run()
        if outcome.retry_after:
            deps.not_before[namespace, name] = time.monotonic() + outcome.retry_after
        return outcome


class _Pass:
    """The state of one reconciliation; methods are the pipeline's steps."""

    def __init__(self, body: Mapping[str, Any], deps: Deps) -> None:
        self.body, self.deps = body, deps
        self.meta = body["metadata"]
        self.namespace, self.name = self.meta["namespace"], self.meta["name"]
        self.previous: Mapping[str, Any] = body.get("status") or {}
        self.now = datetime.now(UTC)

    async def pending(self) -> None:
        """First sight: show ``Pending`` while the first Key Vault read is under way."""
        syncing = Condition(SYNCED, "Unknown", "Syncing", "First sync from Key Vault under way")
        conditions = await self._write_status({"phase": "Pending"}, [syncing])
        self.previous = {"phase": "Pending", "conditions": conditions}

    async def run(self) -> Outcome:
        try:
            spec = parse_spec(self.name, self.namespace, self.body.get("spec") or {})
        except InvalidSpec as exc:
            return await self._failed("InvalidSpec", str(exc))
        started = time.monotonic()
        try:
            fetched = await self.deps.source.fetch(spec.vault_url, spec.secret_name, spec.version)
        except Exception as exc:
            failure = describe_failure(exc)
            elapsed = time.monotonic() - started
            metrics.KEYVAULT_REQUEST_SECONDS.labels(failure.reason).observe(elapsed)
            return await self._failed(
                _camel(failure.reason),
                failure.message,
                transient=not failure.permanent,
                retry_after=failure.retry_after,
            )
        secrets.add(fetched.value)
        metrics.KEYVAULT_REQUEST_SECONDS.labels("ok").observe(time.monotonic() - started)
        try:
            validate(spec.provider, fetched.value)
        except InvalidCredential as exc:
            return await self._failed("InvalidCredential", str(exc))
        digest = content_hash(fetched.value)
        expires_at = expiry(
            expires=fetched.expires, created=fetched.created, max_age_days=spec.max_age_days
        )
        desired = build_secret(
            name=spec.target_secret,
            provider=spec.provider,
            value=fetched.value,
            source_version=fetched.version,
            content_hash=digest,
            expires_at=expires_at,
            owner=self.body,
        )
        try:
            action = await apply_secret(self.deps.api, desired)
        except client.ApiException as exc:
            msg = f"writing Secret {spec.target_secret} failed: HTTP {exc.status}"
            return await self._failed("SecretWriteFailed", msg, transient=True)
        rolled = await self._roll(spec, digest)
        health = classify(expires_at, now=self.now, warn_before_days=spec.warn_before_days)
        return await self._synced(spec, fetched.version, digest, action, rolled, health)

    async def _roll(self, spec: ProviderSpec, digest: str) -> Condition:
        if spec.deployment is None:
            return Condition(GATEWAY_ROLLED, "True", "NotConfigured", "No gateway Deployment set")
        try:
            result: RolloutResult = await ensure_rolled(
                self.deps.api,
                namespace=self.namespace,
                deployment=spec.deployment,
                provider_resource_name=self.name,
                content_hash=digest,
            )
        except client.ApiException as exc:
            msg = f"patching Deployment {spec.deployment} failed: HTTP {exc.status}"
            return Condition(GATEWAY_ROLLED, "False", "PatchFailed", msg)
        if not result.found:
            msg = f"Deployment {spec.deployment} not found; will roll it once it exists"
            return Condition(GATEWAY_ROLLED, "False", "DeploymentNotFound", msg)
        if result.rolled:
            events.gateway_rolled(self.body, deployment=spec.deployment, digest=digest)
            return Condition(GATEWAY_ROLLED, "True", "Rolled", f"Rolled for {digest}")
        return Condition(GATEWAY_ROLLED, "True", "UpToDate", f"Pod template carries {digest}")

    async def _synced(
        self,
        spec: ProviderSpec,
        version: str,
        digest: str,
        action: WriteAction | None,
        rolled: Condition,
        health: TokenHealth,
    ) -> Outcome:
        # A rotation is a new value; a new version or expiry of the same value is not.
        rotated = action == "create" or (
            action == "update" and self.previous.get("contentHash") != digest
        )
        if rotated:
            events.rotated(
                self.body,
                created=action == "create",
                secret=spec.target_secret,
                version=version,
                digest=digest,
            )
        previous_token = (self.previous.get("token") or {}).get("status")
        entered = previous_token != health.status.value
        if entered and health.status in (TokenStatus.WARNING, TokenStatus.EXPIRED):
            events.token_state(self.body, status=health.status, message=health.message)
        phase = phase_for(synced=True, token=health.status)
        failed_roll = rolled.reason == "PatchFailed"
        synced = Condition(SYNCED, "True", "Synced", f"Secret {spec.target_secret} is up to date")
        status: dict[str, Any] = {
            "phase": phase,
            "sourceVersion": version,
            "contentHash": digest,
            "targetSecret": spec.target_secret,
            "lastSyncTime": format_rfc3339(self.now),
            "token": token_status(health),
        }
        if rotated:
            status["lastRotationTime"] = format_rfc3339(self.now)
        await self._write_status(status, [synced, token_condition(health), rolled])
        metrics.SYNCS.labels("ok").inc()
        _export_token(self.namespace, self.name, spec.provider, health)
        # A failed Deployment patch is retried with backoff, not a whole refresh interval later.
        return Outcome(phase, rolled.message if failed_roll else synced.message, failed_roll)

    async def _failed(
        self,
        reason: str,
        message: str,
        *,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> Outcome:
        """Degraded, with the reason visible; the last good Secret is left exactly as it was."""
        metrics.SYNCS.labels("error").inc()
        metrics.SYNC_ERRORS.labels(reason).inc()
        log.warning("sync of %s/%s failed: %s: %s", self.namespace, self.name, reason, message)
        before = find_condition(self.previous.get("conditions"), SYNCED)
        if before is None or before.get("status") != "False" or before.get("reason") != reason:
            events.sync_failed(self.body, reason=reason, message=message)
        previous_token = (self.previous.get("token") or {}).get("status")
        token = TokenStatus(previous_token) if previous_token in set(TokenStatus) else None
        phase = phase_for(synced=False, token=token)
        synced = Condition(SYNCED, "False", reason, message)
        await self._write_status({"phase": phase}, [synced])
        return Outcome(phase, message, transient=transient, retry_after=retry_after)

    async def _write_status(
        self, fields: dict[str, Any], conditions: list[Condition]
    ) -> list[dict[str, Any]]:
        """Merge-patch the status subresource; returns the conditions as written."""
        generation = self.meta.get("generation")
        merged = merge_conditions(
            self.previous.get("conditions") or [], conditions, now=self.now, generation=generation
        )
        body = {"status": {**fields, "observedGeneration": generation, "conditions": merged}}
        api = client.CustomObjectsApi(self.deps.api)
        await api.patch_namespaced_custom_object_status(  # type: ignore[call-arg]
            API_GROUP,
            API_VERSION,
            self.namespace,
            PLURAL,
            self.name,
            body,
            _content_type="application/merge-patch+json",
        )
        return merged


async def _read_provider(api: client.ApiClient, namespace: str, name: str) -> Any:
    try:
        return await client.CustomObjectsApi(api).get_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, PLURAL, name
        )
    except client.ApiException as exc:
        if is_not_found(exc):
            return None
        raise


def _export_token(namespace: str, name: str, provider: str, health: TokenHealth) -> None:
    labels = (namespace, name, provider)
    if health.days_remaining is not None:
        metrics.TOKEN_DAYS_REMAINING.labels(*labels).set(health.days_remaining)
    if health.expires_at is not None:
        metrics.TOKEN_EXPIRY_TIMESTAMP.labels(*labels).set(health.expires_at.timestamp())


def _camel(reason: str) -> str:
    """``not_found`` → ``NotFound``: condition reasons are CamelCase in Kubernetes."""
    parts = [p for p in reason.replace("-", "_").split("_") if p]
    return "".join(p[:1].upper() + p[1:] for p in parts) or "Unknown"
