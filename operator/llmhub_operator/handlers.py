"""kopf wiring only: watch events feed the scheduler; the scheduler runs reconcile().

No handler here makes kopf add a finalizer (no daemons, timers or mandatory delete handlers),
so deleting an LLMProvider, its namespace or the release never waits for the operator: the
Secret goes with its owner through the garbage collector.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes_asyncio import client

from llmhub_common.contract import API_GROUP, API_VERSION, PLURAL
from llmhub_operator import events, notify
from llmhub_operator.access_policy import AccessPolicy
from llmhub_operator.deployment_watch import DeploymentWatch
from llmhub_operator.gateway_accounts import GatewayAccounts
from llmhub_operator.keyvault_events import EventGridSettings, KeyVaultEvents
from llmhub_operator.kube import DEFAULT_REQUEST_TIMEOUT_S, make_api_client
from llmhub_operator.leader import Leadership, LeaseElector, LeaseSettings
from llmhub_operator.reconcile import Deps, Key, reconcile
from llmhub_operator.resync import Resync, interval_from_env
from llmhub_operator.scheduler import Scheduler
from llmhub_operator.secret_watch import owner_of, watch_secrets
from llmhub_operator.status import ACCOUNT_USABLE, GATEWAY_ROLLED, find_condition
from llmhub_operator.supervisor import Supervisor

log = logging.getLogger(__name__)

# Put on every LLMProvider by releases before 0.2 (a kopf daemon needs one); released on sight.
OLD_FINALIZER = f"{API_GROUP}/finalizer"


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Events only from events.py (once per state change), not from every log line or retry.
    settings.posting.loggers = False
    # "Handler 'observed' succeeded" for every watch event of every object is noise at INFO.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # The API server ends each watch after this long: no silently stale connection lives on.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330  # a bit longer, so the server ends it first
    timeout = float(getattr(memo, "request_timeout", None) or DEFAULT_REQUEST_TIMEOUT_S)
    settings.watching.connect_timeout = settings.networking.connect_timeout = timeout
    settings.networking.request_timeout = timeout  # one API call (not a watch) never hangs longer
    if getattr(memo, "source", None) is None:
        from llmhub_operator.keyvault import KeyVaultSource

        memo.source = KeyVaultSource.from_env()
    api = await make_api_client(request_timeout=timeout)
    events.use(api)
    notify.use(notify.Webhook.from_env())
    policy = getattr(memo, "policy", None) or AccessPolicy.from_env()
    accounts = GatewayAccounts.from_env(os.environ.get("POD_NAMESPACE", ""))
    deps = memo.deps = Deps(source=memo.source, api=api, policy=policy, accounts=accounts)
    leadership = memo.leadership = Leadership()
    lease: LeaseSettings | None = getattr(memo, "lease", None)

    async def sync(key: Key, body: Mapping[str, Any], reuse_fetch: bool) -> Any:
        return await reconcile(key, body, deps, reuse_fetch)

    scheduler = memo.scheduler = Scheduler(sync, leadership)
    leadership.on_lost(scheduler.cancel_inflight)  # a lost lead stops every sync in flight
    assert deps.roller is not None
    deps.roller.known = scheduler.__contains__  # owners it knows need no existence check
    memo.deployments = DeploymentWatch(api, _deployment_appeared(memo))
    namespaces: list[str] = list(getattr(memo, "namespaces", None) or [])
    try:
        interval = getattr(memo, "resync_interval", None) or interval_from_env()
        push = EventGridSettings()
    except ValueError as exc:
        raise kopf.PermanentError(str(exc)) from None
    resync = memo.resync = Resync(api, namespaces, scheduler, lambda k: deps.forget(*k), interval)
    # Each of these must live as long as the operator: one that ends stops it (exit non-zero).
    supervisor = memo.supervisor = getattr(memo, "supervisor", None) or Supervisor()
    supervisor.spawn(scheduler.run(), name="scheduler")
    supervisor.spawn(
        watch_secrets(api, namespaces, _secret_event(memo), resync.soon), name="secrets"
    )
    supervisor.spawn(resync.run(), name="resync")
    if push.enabled:  # push rotation: Key Vault events make syncs due at once (leader only)
        deps.event_versions = push.event_versions()
        memo.keyvault_events = KeyVaultEvents(
            push, scheduler, leadership, policy, versions=deps.event_versions
        )
        deps.push_condition = memo.keyvault_events.condition
        supervisor.spawn(memo.keyvault_events.run(), name="keyvault-events")
    if accounts is not None:
        refresh = _refresh_accounts(scheduler, accounts)
        supervisor.spawn(accounts.run(leadership, refresh), name="gateway")
    if lease is None:
        leadership.gained()  # a single replica leads alone
    else:
        supervisor.spawn(LeaseElector(api, lease, leadership).run(), name="leader-election")


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    deployments: DeploymentWatch | None = getattr(memo, "deployments", None)
    if deployments is not None:
        await deployments.close()
    supervisor: Supervisor | None = getattr(memo, "supervisor", None)
    if supervisor is not None:  # the elector hands the Lease back while cancelled
        await supervisor.close()
    await notify.close()
    await events.drain()
    events.use(None)
    deps: Deps | None = getattr(memo, "deps", None)
    if deps is not None:
        await deps.api.close()
        await deps.source.aclose()


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Service account in a pod, else the kubeconfig; no dependency on a second client library."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.event(API_GROUP, API_VERSION, PLURAL)
async def observed(event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Every replica keeps the scheduler's view current; only the leader acts on it."""
    meta = body.get("metadata") or {}
    key: Key = (meta.get("namespace") or "", meta.get("name") or "")
    if OLD_FINALIZER in (meta.get("finalizers") or []):
        await _release_old_finalizer(memo.deps.api, key, list(meta["finalizers"]))
    if event.get("type") is None:  # kopf (re-)listed: its watch restarted, maybe after a 410
        memo.resync.soon()
    deployment = ((body.get("spec") or {}).get("gateway") or {}).get("deploymentName")
    if event.get("type") == "DELETED" or meta.get("deletionTimestamp"):
        if memo.scheduler.forget(key, meta.get("uid")) or key not in memo.scheduler:
            memo.deps.forget(*key)  # (a DELETED of an earlier object keeps the current one)
            memo.deployments.track(key, None)
        if event.get("type") == "DELETED" and deployment and memo.leadership.leading.is_set():
            memo.deps.roller.prune(key[0], deployment)  # its pod-template annotations go
        return
    memo.scheduler.observe(dict(body))
    memo.deployments.track(key, deployment)


def _secret_event(memo: kopf.Memo) -> Any:
    def on_secret(kind: str, secret: Mapping[str, Any]) -> None:
        """A managed Secret deleted, or changed to other data than we wrote: repair it now,
        but only for the LLMProvider scheduled now (same uid), never for a deleted one."""
        owner = owner_of(secret)
        if owner is None or memo.scheduler.uid(owner[0]) != owner[1]:
            return
        key = owner[0]
        if kind == "DELETED" or secret.get("data") != memo.deps.written.get(key):
            log.info("Secret of %s/%s was %s; restoring it", *key, kind.lower())
            memo.scheduler.repair(key)

    return on_secret


def _deployment_appeared(memo: kopf.Memo) -> Any:
    def appeared(namespace: str, deployment: str, first_sight: bool) -> None:
        """A gateway Deployment appeared: roll its LLMProviders now, not at their next interval
        (on first sight only those not shown rolled: a start must not re-run every pass)."""
        bodies = dict(memo.scheduler.bodies())
        for key in memo.deployments.providers_of(namespace, deployment):
            conditions = (bodies.get(key, {}).get("status") or {}).get("conditions")
            rolled = find_condition(conditions, GATEWAY_ROLLED) or {}
            if not first_sight or rolled.get("status") != "True":
                memo.scheduler.repair(key)

    return appeared


def _refresh_accounts(scheduler: Scheduler, accounts: GatewayAccounts) -> Any:
    def refresh() -> None:
        """Re-sync (from the cached Key Vault read) each LLMProvider whose AccountUsable is not
        what the gateway now reports: the sync writes it, so status has one writer."""
        for key, body in scheduler.bodies():
            wanted = accounts.condition_for(body)
            if wanted is None:
                continue
            shown = find_condition((body.get("status") or {}).get("conditions"), ACCOUNT_USABLE)
            current = (
                (shown or {}).get("status"),
                (shown or {}).get("reason"),
                (shown or {}).get("message"),
            )
            if current != (wanted.status, wanted.reason, wanted.message):
                scheduler.repair(key)

    return refresh


async def _release_old_finalizer(api: client.ApiClient, key: Key, finalizers: list[str]) -> None:
    """JSON patch guarded by a test op: another writer's finalizers are never lost."""
    kept = [f for f in finalizers if f != OLD_FINALIZER]
    ops = [
        {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
        {"op": "replace", "path": "/metadata/finalizers", "value": kept},
    ]
    try:
        await client.CustomObjectsApi(api).patch_namespaced_custom_object(  # type: ignore[call-arg]
            API_GROUP,
            API_VERSION,
            key[0],
            PLURAL,
            key[1],
            ops,
            _content_type="application/json-patch+json",
        )
        log.info("released the old finalizer of %s/%s", *key)
    except client.ApiException as exc:
        if exc.status not in (404, 409, 422):  # gone, or changed meanwhile: the next event retries
            raise


@kopf.on.probe(id="now")
def now(**_: Any) -> str:
    return datetime.now(UTC).isoformat()
