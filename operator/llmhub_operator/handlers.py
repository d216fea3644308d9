"""kopf wiring only: every handler hands over to reconcile() or to the runtime state in memo."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import kopf

from llmhub_common.contract import API_GROUP, API_VERSION, PLURAL
from llmhub_operator.kube import make_api_client
from llmhub_operator.model import DEFAULT_REFRESH_SECONDS, InvalidSpec, parse_duration
from llmhub_operator.reconcile import Deps, Outcome, reconcile

JITTER = 0.1  # ±10 % so many LLMProviders with one interval do not hit Key Vault together
FINALIZER = f"{API_GROUP}/finalizer"


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=API_GROUP)
    # Events only from events.py (once per state change), not from every log line or retry.
    settings.posting.loggers = False
    # The API server ends each watch after this long: no silently stale connection lives on.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330  # a bit longer, so the server ends it first
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 30  # one API call (not a watch) never hangs longer
    if getattr(memo, "source", None) is None:
        from llmhub_operator.keyvault import KeyVaultSource

        memo.source = KeyVaultSource.from_env()
    memo.deps = Deps(source=memo.source, api=await make_api_client())


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    deps: Deps | None = getattr(memo, "deps", None)
    if deps is not None:
        await deps.api.close()
        await deps.source.aclose()


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Service account in a pod, else the kubeconfig; no dependency on a second client library."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.resume(API_GROUP, API_VERSION, PLURAL)
@kopf.on.create(API_GROUP, API_VERSION, PLURAL)
@kopf.on.update(API_GROUP, API_VERSION, PLURAL, field="spec")
async def sync(name: str, namespace: str | None, memo: kopf.Memo, retry: int, **_: Any) -> None:
    outcome = await reconcile(namespace or "", name, memo.deps)
    if outcome.transient:  # Retry-After wins; else exponential backoff up to 5 minutes
        delay = outcome.retry_after or min(2.0 ** (retry + 1), 300.0)
        raise kopf.TemporaryError(outcome.message, delay=delay)


# backoff: a crashed pass (e.g. the API server briefly unreachable) restarts soon, not in 60 s.
@kopf.daemon(API_GROUP, API_VERSION, PLURAL, id="refresh", cancellation_timeout=10.0, backoff=5.0)
async def refresh(
    name: str,
    namespace: str | None,
    spec: kopf.Spec,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    """Level-based resync: Key Vault can rotate without any event on the LLMProvider."""
    wait, failures = _jittered(spec.get("refreshInterval")), 0
    while not stopped:
        await stopped.wait(wait)
        if stopped:
            return
        try:
            outcome = await reconcile(namespace or "", name, memo.deps)
        except Exception:
            if stopped:  # the operator is shutting down and closed its clients
                return
            raise
        failures = failures + 1 if outcome.transient else 0
        wait = next_wait(outcome, failures, _jittered(spec.get("refreshInterval")))


@kopf.on.delete(API_GROUP, API_VERSION, PLURAL, optional=True)
async def forget(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Optional: drops in-memory state without holding up the deletion with a finalizer."""
    memo.deps.forget(namespace or "", name)


def next_wait(outcome: Outcome, failures: int, interval: float) -> float:
    """A transient failure retries with exponential backoff (capped by the interval), and never
    before the source's Retry-After; anything else waits for the next interval."""
    if not outcome.transient:
        return interval
    backoff = min(2.0 ** (failures - 1), interval)
    return max(outcome.retry_after or 0.0, backoff)


@kopf.on.probe(id="now")
def now(**_: Any) -> str:
    return datetime.now(UTC).isoformat()


def _jittered(interval: object) -> float:
    try:
        seconds = parse_duration(interval) if isinstance(interval, str) else DEFAULT_REFRESH_SECONDS
    except InvalidSpec:
        seconds = DEFAULT_REFRESH_SECONDS
    return seconds * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 (not security)
