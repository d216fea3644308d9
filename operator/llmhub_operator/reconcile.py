"""One pass of the pipeline: spec → Key Vault → validate → Secret → gateway rollout → status."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client

from llmhub_common.contract import API_GROUP, API_VERSION, PLURAL
from llmhub_common.logging import secrets
from llmhub_common.tokens import TokenHealth, TokenStatus, classify, format_rfc3339
from llmhub_operator import events, metrics, notify
from llmhub_operator.access_policy import AccessPolicy
from llmhub_operator.credential import (
    InvalidCredential,
    content_hash,
    expiry,
    sensitive_parts,
    validate,
)
from llmhub_operator.event_versions import EventVersions
from llmhub_operator.gateway_accounts import GatewayAccounts
from llmhub_operator.identity import Identities, IdentityError
from llmhub_operator.kube import api_failure, is_not_found, raw_json
from llmhub_operator.model import InvalidSpec, ProviderSpec, parse_spec, refresh_seconds
from llmhub_operator.rollout import Roller, RollRequest, refusal_detail
from llmhub_operator.secret_writer import (
    SecretConflict,
    SecretWrite,
    WriteAction,
    apply_secret,
    build_secret,
    delete_if_ours,
)
from llmhub_operator.source import Fetched, SecretSource, describe_failure
from llmhub_operator.status import (
    ACCOUNT_USABLE,
    GATEWAY_ROLLED,
    SYNCED,
    Condition,
    Phase,
    Summary,
    find_condition,
    merge_conditions,
    pending_summary,
    phase_for,
    summarize,
    token_condition,
    token_status,
)

log = logging.getLogger(__name__)


Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class _Cached:
    """The last good read of an object's source, to repair its Secret without Key Vault."""

    where: tuple[str, str, str | None, str | None]  # (vault, secret, version, identity) read for
    fetched: Fetched


@dataclass
class Deps:
    """Runtime objects shared by all syncs (kept in kopf's operator memo)."""

    source: SecretSource
    api: client.ApiClient
    roller: Roller | None = None
    policy: AccessPolicy = field(default_factory=AccessPolicy)
    identities: Identities | None = None
    accounts: GatewayAccounts | None = None  # the gateway's account refusals, when configured
    # Key Vault's Retry-After per object, honoured by every pass, not only the one throttled.
    not_before: dict[Key, float] = field(default_factory=dict)
    fetched: dict[Key, _Cached] = field(default_factory=dict)
    # The data last written per object: a Secret event that shows other data needs a repair.
    written: dict[Key, dict[str, str]] = field(default_factory=dict)
    # When the current run of failed syncs began (unset after a success), for the alert.
    failing_since: dict[Key, float] = field(default_factory=dict)
    # Push rotation on: its PushRotation condition (Event Grid receiving or not), else None.
    push_condition: Callable[[], Condition] | None = None
    # Push rotation on: versions Key Vault events named, which a fresh read must reach.
    event_versions: EventVersions | None = None

    def __post_init__(self) -> None:
        if self.roller is None:
            self.roller = Roller(self.api)
        if self.identities is None:
            self.identities = Identities(self.api)

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted object's state, so create/delete cycles leak nothing."""
        for state in (self.not_before, self.fetched, self.written, self.failing_since):
            state.pop((namespace, name), None)
        if self.event_versions is not None:
            self.event_versions.forget((namespace, name))
        metrics.forget_provider(namespace, name)


@dataclass(frozen=True, slots=True)
class Outcome:
    phase: Phase | None
    message: str
    transient: bool = False  # a failure worth retrying soon (throttling, 5xx, API errors)
    retry_after: float | None = None  # the source asked us to wait at least this long
    body: Mapping[str, Any] | None = None  # the object as our last status write left it
    gone: bool = False  # deleted, or re-created under its name: the scheduler drops this one


async def reconcile(
    key: Key, body: Mapping[str, Any], deps: Deps, reuse_fetch: bool = False
) -> Outcome:
    """One pass on the latest object the watch delivered; ``reuse_fetch`` only repairs.

    The scheduler runs one pass per object at a time, so passes never interleave.
    """
    namespace, name = key
    if body.get("metadata", {}).get("deletionTimestamp"):
        deps.forget(namespace, name)  # a late pass must not bring the state back
        return Outcome(None, "LLMProvider is being deleted")
    wait = deps.not_before.get(key, 0.0) - time.monotonic()
    if wait > 0 and not (reuse_fetch and key in deps.fetched):
        return Outcome(None, "Key Vault asked us to wait", transient=True, retry_after=wait)
    live = await _still_there(key, body, deps)  # the watch can miss a deletion (410, re-list)
    if live is None:
        return _gone(key, deps)
    sync = _Pass(live, deps, reuse_fetch=reuse_fetch)
    try:
        if not sync.previous.get("phase"):
            await sync.pending()
        outcome = await sync.run()
    except client.ApiException as exc:
        if exc.status == 404:  # deleted since the check
            return _gone(key, deps)
        raise
    if outcome.retry_after:
        deps.not_before[key] = time.monotonic() + outcome.retry_after
    return outcome


async def _still_there(key: Key, body: Mapping[str, Any], deps: Deps) -> Mapping[str, Any] | None:
    """The object as the API server has it now, if it is still the one scheduled (same uid)
    and not being deleted; nothing is written for an object that is not."""
    api = client.CustomObjectsApi(deps.api)
    try:
        live = await raw_json(
            api.get_namespaced_custom_object(
                API_GROUP, API_VERSION, key[0], PLURAL, key[1], _preload_content=False
            )
        )
    except client.ApiException as exc:
        if is_not_found(exc):
            return None
        raise
    meta = live.get("metadata") or {}
    if meta.get("uid") != body["metadata"].get("uid") or meta.get("deletionTimestamp"):
        return None
    return live


def _gone(key: Key, deps: Deps) -> Outcome:
    deps.forget(*key)
    log.info("LLMProvider %s/%s no longer exists (or was re-created); forgot it", *key)
    return Outcome(None, "LLMProvider is gone", gone=True)


class _Pass:
    """The state of one reconciliation; methods are the pipeline's steps."""

    def __init__(self, body: Mapping[str, Any], deps: Deps, *, reuse_fetch: bool) -> None:
        self.body, self.deps, self.reuse_fetch = body, deps, reuse_fetch
        self.meta = body["metadata"]
        self.namespace, self.name = self.meta["namespace"], self.meta["name"]
        self.key: Key = (self.namespace, self.name)
        self.previous: Mapping[str, Any] = body.get("status") or {}
        self.now = datetime.now(UTC)
        self.written_body: Mapping[str, Any] | None = None

    async def pending(self) -> None:
        """First sight: show ``Pending`` while the first Key Vault read is under way."""
        syncing = Condition(SYNCED, "Unknown", "Syncing", "First sync from Key Vault under way")
        conditions = await self._write_status(
            {"phase": "Pending"}, [syncing], pending_summary(), finished=False
        )
        self.previous = {"phase": "Pending", "conditions": conditions}

    async def run(self) -> Outcome:
        try:
            spec = parse_spec(self.name, self.namespace, self.body.get("spec") or {})
        except InvalidSpec as exc:
            return await self._failed("InvalidSpec", str(exc))
        refusal = self.deps.policy.check(
            self.namespace, spec.vault_url, spec.secret_name, spec.service_account
        )
        if refusal is not None:  # decided before any request: nothing reaches that host
            return await self._failed(refusal.reason, refusal.message)
        try:
            fetched = await self._fetch(spec)
        except IdentityError as exc:
            return await self._failed(exc.reason, exc.message, transient=exc.transient)
        except Exception as exc:
            failure = describe_failure(exc)
            return await self._failed(
                _camel(failure.reason),
                failure.message,
                transient=not failure.permanent,
                retry_after=failure.retry_after,
            )
        secrets.add(fetched.value, *sensitive_parts(fetched.value))
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
            gemini_project=spec.gemini_project,
        )
        self.deps.written[self.key] = dict(desired["data"])
        try:
            write = await apply_secret(self.deps.api, desired)
        except SecretConflict as exc:
            return await self._failed("SecretConflict", str(exc))
        except client.ApiException as exc:
            refused = api_failure(exc, f"writing Secret {spec.target_secret}")
            return await self._failed(
                "SecretWriteFailed", refused.message, transient=refused.transient
            )
        await self._drop_renamed(spec.target_secret)
        rolled, roll_transient = await self._roll(spec, digest, write)
        health = classify(expires_at, now=self.now, warn_before_days=spec.warn_before_days)
        return await self._synced(
            spec, fetched.version, digest, write.action, rolled, roll_transient, health
        )

    async def _drop_renamed(self, target: str) -> None:
        """spec.target.secretName changed: the Secret under the old name is ours and stale."""
        old = self.previous.get("targetSecret")
        if not old or old == target:
            return
        try:
            deleted = await delete_if_ours(self.deps.api, self.namespace, old, self.meta["uid"])
        except client.ApiException as exc:  # the status moves on: say so once, loudly
            log.warning("could not delete the renamed Secret %s: HTTP %s", old, exc.status)
            events.secret_renamed(self.body, old=old, new=target, deleted=False)
            return
        if deleted:
            events.secret_renamed(self.body, old=old, new=target, deleted=True)

    async def _fetch(self, spec: ProviderSpec) -> Fetched:
        """A fresh Key Vault read, except for a repair that may reuse the last good one."""
        where = (spec.vault_url, spec.secret_name, spec.version, spec.service_account)
        cached = self.deps.fetched.get(self.key)
        if self.reuse_fetch and cached is not None and cached.where == where:
            return cached.fetched
        identity = None
        if spec.service_account is not None:
            assert self.deps.identities is not None
            identity = await self.deps.identities.get(self.namespace, spec.service_account)

        def fetch(version: str | None) -> Awaitable[Fetched]:
            return self.deps.source.fetch(spec.vault_url, spec.secret_name, version, identity)

        fetched = await fetch(spec.version)
        if self.deps.event_versions is not None and spec.version is None:
            previous = cached.fetched if cached is not None and cached.where == where else None
            fetched = await self.deps.event_versions.at_least(self.key, fetched, fetch, previous)
        self.deps.fetched[self.key] = _Cached(where, fetched)
        return fetched

    async def _roll(
        self, spec: ProviderSpec, digest: str, write: SecretWrite
    ) -> tuple[Condition, bool]:
        """The GatewayRolled condition, and whether its failure is worth a quick retry."""
        if spec.deployment is None:
            no_roll = Condition(
                GATEWAY_ROLLED, "True", "NotConfigured", "No gateway Deployment set"
            )
            return no_roll, False
        assert self.deps.roller is not None
        request = RollRequest(self.name, digest, write.uid)
        try:
            result = await self.deps.roller.ensure(self.namespace, spec.deployment, request)
        except client.ApiException as exc:
            failure = api_failure(exc, f"patching Deployment {spec.deployment}")
            detail = refusal_detail(exc)
            message = f"{failure.message} ({detail})" if detail else failure.message
            failed = Condition(GATEWAY_ROLLED, "False", "PatchFailed", message)
            return failed, failure.transient
        if not result.found:
            msg = f"Deployment {spec.deployment} not found; will roll it once it exists"
            return Condition(GATEWAY_ROLLED, "False", "DeploymentNotFound", msg), False
        if result.rolled:
            events.gateway_rolled(self.body, deployment=spec.deployment, digest=digest)
            return Condition(GATEWAY_ROLLED, "True", "Rolled", f"Rolled for {digest}"), False
        up_to_date = Condition(GATEWAY_ROLLED, "True", "UpToDate", f"Pod template carries {digest}")
        return up_to_date, False

    async def _synced(
        self,
        spec: ProviderSpec,
        version: str,
        digest: str,
        action: WriteAction | None,
        rolled: Condition,
        roll_transient: bool,
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
        if previous_token != health.status.value:  # once per change: Event + webhook
            notify.token_changed(self.body, spec, previous_token, health)
        phase = phase_for(synced=True, token=health.status, rolled=rolled.status == "True")
        synced = Condition(SYNCED, "True", "Synced", f"Secret {spec.target_secret} is up to date")
        summary = _summary(synced, rolled, roll_transient, health)
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
        await self._write_status(status, [synced, token_condition(health), rolled], summary)
        metrics.SYNCS.labels("ok").inc()
        _export_token(self.namespace, self.name, spec.provider, health)
        labels = (self.namespace, self.name, spec.provider)
        metrics.LAST_SYNC_SUCCESS.labels(*labels).set(self.now.timestamp())
        metrics.REFRESH_INTERVAL.labels(*labels).set(spec.refresh_seconds)
        metrics.SYNC_FAILING_SINCE.labels(*labels).set(0)
        # The Secret synced, but pods that were not rolled still run the old credential.
        metrics.ROLLOUT_FAILING.labels(*labels).set(int(rolled.reason == "PatchFailed"))
        self.deps.failing_since.pop(self.key, None)
        # A transient Deployment patch failure is retried with backoff; one that needs a person
        # (RBAC, a wrong name, an invalid patch) waits for the next refresh interval.
        message = rolled.message if rolled.reason == "PatchFailed" else synced.message
        return Outcome(phase, message, roll_transient, body=self.written_body)

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
        self._export_failing()
        log.warning("sync of %s/%s failed: %s: %s", self.namespace, self.name, reason, message)
        before = find_condition(self.previous.get("conditions"), SYNCED)
        if before is None or before.get("status") != "False" or before.get("reason") != reason:
            events.sync_failed(self.body, reason=reason, message=message)
        previous_token = (self.previous.get("token") or {}).get("status")
        token = TokenStatus(previous_token) if previous_token in set(TokenStatus) else None
        phase = phase_for(synced=False, token=token)
        synced = Condition(SYNCED, "False", reason, message)
        await self._write_status({"phase": phase}, [synced], summarize(synced, retrying=transient))
        return Outcome(
            phase, message, transient=transient, retry_after=retry_after, body=self.written_body
        )

    def _export_failing(self) -> None:
        """Failing since when, and the interval, from the raw spec: a spec that does not parse
        fails too, and the first sync's failure must alert like any later one."""
        spec = self.body.get("spec") or {}
        labels = (self.namespace, self.name, str(spec.get("provider") or "unknown"))
        since = self.deps.failing_since.setdefault(self.key, self.now.timestamp())
        metrics.SYNC_FAILING_SINCE.labels(*labels).set(since)
        metrics.REFRESH_INTERVAL.labels(*labels).set(refresh_seconds(spec.get("refreshInterval")))

    async def _write_status(
        self,
        fields: dict[str, Any],
        conditions: list[Condition],
        summary: Summary,
        *,
        finished: bool = True,
    ) -> list[dict[str, Any]]:
        """Merge-patch the status subresource; returns the conditions as written.

        ``observedGeneration`` is written only by a finished pass: before that, kstatus must
        still read the new generation as not observed (InProgress).
        """
        generation = self.meta.get("generation")
        account = self.deps.accounts.condition_for(self.body) if self.deps.accounts else None
        if account is not None:
            conditions = [*conditions, account]
            self._announce_account(account)
        if self.deps.push_condition is not None:
            conditions = [*conditions, self.deps.push_condition()]
        merged = merge_conditions(
            self.previous.get("conditions") or [],
            [*summary.conditions, *conditions],
            now=self.now,
            generation=generation,
            drop=summary.drop,
        )
        status = {**fields, "conditions": merged}
        if finished:
            status["observedGeneration"] = generation
        body = {"status": status}
        api = client.CustomObjectsApi(self.deps.api)
        self.written_body = await api.patch_namespaced_custom_object_status(  # type: ignore[call-arg]
            API_GROUP,
            API_VERSION,
            self.namespace,
            PLURAL,
            self.name,
            body,
            _content_type="application/merge-patch+json",
        )
        return merged

    def _announce_account(self, account: Condition) -> None:
        """An Event when the account's state changes (not on every write)."""
        before = find_condition(self.previous.get("conditions"), ACCOUNT_USABLE)
        if before is not None and (before.get("status"), before.get("reason")) == (
            account.status,
            account.reason,
        ):
            return
        if account.status == "False":
            events.account_refused(self.body, reason=account.reason, message=account.message)
        elif before is not None and before.get("status") == "False" and account.status == "True":
            events.account_usable(self.body, message=account.message)


def _summary(
    synced: Condition, rolled: Condition, roll_transient: bool, health: TokenHealth
) -> Summary:
    """Ready after a successful sync: not while the gateway could not be rolled (a Deployment
    not there yet is waited for; a refused patch needs a person), nor with an expired token."""
    if rolled.status != "True":
        retrying = roll_transient or rolled.reason == "DeploymentNotFound"
        return summarize(rolled, retrying=retrying)
    if health.status is TokenStatus.EXPIRED:
        return summarize(token_condition(health), retrying=False)
    carried = "" if rolled.reason == "NotConfigured" else "; the gateway carries it"
    return summarize(None, retrying=False, ready_message=synced.message + carried)


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
