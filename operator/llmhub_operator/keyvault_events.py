"""Push rotation: Key Vault events pulled from an Event Grid namespace make syncs due at once.

Key Vault's system topic routes ``SecretNewVersionCreated`` (and ``SecretNearExpiry``,
``SecretExpired``) as CloudEvents to a namespace topic; this replica pulls its queue subscription
with ``EventGridConsumerClient`` while it leads. No public endpoint, no webhook, no secret: the
operator's Workload Identity needs the EventGrid Data Receiver role. Each event syncs every
LLMProvider reading that vault + secret (a fresh read of the latest version, which must be the
version the event names or newer: see event_versions.py), then is acknowledged; a transient
failure releases it (it comes back), one that matches nothing is rejected without any Key Vault
request. Polling stays the backstop: while Event Grid fails, no interval is longer than the
fallback interval.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials_async import AsyncTokenCredential
from azure.eventgrid.aio import EventGridConsumerClient as Consumer
from azure.eventgrid.models import ReleaseDelay
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmhub_operator import azure_auth, metrics
from llmhub_operator.access_policy import AccessPolicy
from llmhub_operator.event_versions import EventVersions
from llmhub_operator.keyvault import CA_BUNDLE_ENV
from llmhub_operator.leader import Leadership
from llmhub_operator.model import InvalidSpec, ProviderSpec, parse_spec
from llmhub_operator.reconcile import Outcome
from llmhub_operator.scheduler import Key, Scheduler
from llmhub_operator.status import Condition

log = logging.getLogger(__name__)

PUSH_ROTATION = "PushRotation"  # the condition on every LLMProvider while push rotation is on
EVENT_TYPES = frozenset(
    f"Microsoft.KeyVault.{kind}"
    for kind in ("SecretNewVersionCreated", "SecretNearExpiry", "SecretExpired")
)
MAX_BACKOFF_S = 60.0
Index = dict[str, list[tuple[Key, ProviderSpec]]]  # secret name -> who reads it


class EventGridSettings(BaseSettings):
    """LLMHUB_EVENTGRID_*: push rotation is on when endpoint, topic and subscription are set."""

    model_config = SettingsConfigDict(
        env_prefix="LLMHUB_EVENTGRID_", env_ignore_empty=True, extra="ignore"
    )

    endpoint: str = ""  # https://<namespace>.<region>-1.eventgrid.azure.net
    topic: str = ""  # the namespace topic the Key Vault system topic routes to
    subscription: str = ""  # its queue (pull) event subscription
    max_wait_seconds: int = Field(default=60, ge=10, le=120)  # one receive's long poll
    max_events: int = Field(default=50, ge=1, le=100)
    # While Event Grid fails: no provider waits longer than this between Key Vault reads.
    fallback_interval_seconds: float = Field(default=300.0, gt=0)
    retry_seconds: float = Field(default=5.0, gt=0)  # first wait after a failed receive
    release_delay_seconds: int = 10  # a released event comes back after this (0/10/60/600/3600)
    pass_timeout_seconds: float = Field(default=50.0, gt=0)  # below the lock duration (60 s)
    # Connecting (TCP + TLS): an unreachable Event Grid shows within this, not a long poll later.
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    # A read older than the event's version (a Key Vault replica behind): re-read this many
    # times, this far apart, then release the event.
    stale_read_attempts: int = Field(default=3, ge=1, le=10)
    stale_read_retry_seconds: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> EventGridSettings:
        given = [bool(self.endpoint), bool(self.topic), bool(self.subscription)]
        if any(given) and not all(given):
            raise ValueError(
                "push rotation needs LLMHUB_EVENTGRID_ENDPOINT, _TOPIC and _SUBSCRIPTION together"
            )
        if self.release_delay_seconds not in (0, 10, 60, 600, 3600):
            raise ValueError("LLMHUB_EVENTGRID_RELEASE_DELAY_SECONDS: 0, 10, 60, 600 or 3600")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint)

    def event_versions(self) -> EventVersions:
        """Where events leave the versions a pass must read at least (see reconcile.Deps)."""
        return EventVersions(self.stale_read_attempts, self.stale_read_retry_seconds)


def make_consumer(settings: EventGridSettings, credential: AsyncTokenCredential) -> Consumer:
    """The real SDK over the operator's Workload Identity (token audience eventgrid.azure.net)."""
    verify: str | bool = os.environ.get(CA_BUNDLE_ENV) or True
    # A receive long-polls: its read timeout must outlast the server-side wait.
    timeout = settings.max_wait_seconds + 15.0
    options = azure_auth.pipeline_options(connection_verify=verify, timeout_s=timeout)
    options["connection_timeout"] = settings.connect_timeout_seconds
    return Consumer(
        settings.endpoint,
        credential,
        namespace_topic=settings.topic,
        subscription=settings.subscription,
        **options,
    )


class KeyVaultEvents:
    """Receives while leading; one task per event waits for its syncs, then settles it."""

    def __init__(
        self,
        settings: EventGridSettings,
        scheduler: Scheduler,
        leadership: Leadership,
        policy: AccessPolicy,
        consumer: Consumer | None = None,
        versions: EventVersions | None = None,
    ) -> None:
        self.settings, self.scheduler, self.leadership, self.policy = (
            settings,
            scheduler,
            leadership,
            policy,
        )
        self._consumer = consumer
        self.versions = versions or settings.event_versions()
        self._inflight: set[asyncio.Task[Any]] = set()
        self._specs: dict[Key, tuple[tuple[object, object], ProviderSpec | None]] = {}
        self.healthy: bool | None = None  # None: no receive answered yet
        self._why = ""  # the last receive failure, in words safe for status
        self.scheduler.max_interval = settings.fallback_interval_seconds  # until one works
        leadership.on_lost(self.stop)

    async def run(self) -> None:
        """Supervised: lives as long as the operator; receives only while this replica leads."""
        credential = None
        if self._consumer is None:
            verify: str | bool = os.environ.get(CA_BUNDLE_ENV) or True
            credential = azure_auth.make_credential(connection_verify=verify, timeout_s=10.0)
            self._consumer = make_consumer(self.settings, credential)
        consumer = self._consumer
        failures = 0
        try:
            while True:
                await self.leadership.leading.wait()
                receive = self._spawn(
                    consumer.receive(
                        max_events=self.settings.max_events,
                        max_wait_time=self.settings.max_wait_seconds,
                    )
                )
                await asyncio.wait({receive})
                if receive.cancelled():  # the lead was lost: locked events come back later
                    continue
                error = receive.exception()
                if error is not None:
                    failures += 1
                    self._down(error)
                    await asyncio.sleep(self._backoff(failures))
                    continue
                failures = 0
                self._up()
                details = receive.result()
                index = self.index() if details else {}
                for detail in details:
                    self._spawn(self._handle(consumer, detail, index))
        finally:
            await self.stop()
            await consumer.close()
            if credential is not None:
                await credential.close()

    async def stop(self) -> None:
        """The lead is lost: stop receiving and settling; unsettled events return after their
        lock expires, to whichever replica leads then."""
        tasks = list(self._inflight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def condition(self) -> Condition:
        """What each sync writes to status: whether events arrive, or polling stands in."""
        fallback = f"polling Key Vault every {self.settings.fallback_interval_seconds:g} s at most"
        if self.healthy:
            return Condition(PUSH_ROTATION, "True", "Receiving", "Receiving Key Vault events")
        if self.healthy is None:
            return Condition(PUSH_ROTATION, "Unknown", "Starting", f"No receive yet; {fallback}")
        message = f"Event Grid receive failed ({self._why}); {fallback} until it recovers"
        return Condition(PUSH_ROTATION, "False", "EventGridUnavailable", message)

    def index(self) -> Index:
        """Every scheduled LLMProvider by the secret name it reads: built once per receive, so
        a batch of events does not walk every object once per event."""
        by_secret: Index = {}
        bodies = self.scheduler.bodies()
        for key, body in bodies:
            spec = self._spec(key, body)
            if spec is not None:
                by_secret.setdefault(spec.secret_name, []).append((key, spec))
        if len(self._specs) > len(bodies):  # forget the specs of objects no longer scheduled
            known = {key for key, _ in bodies}
            self._specs = {k: v for k, v in self._specs.items() if k in known}
        return by_secret

    def matching(
        self, vault_name: str, secret: str, version: str | None, index: Index | None = None
    ) -> tuple[list[Key], int]:
        """(keys allowed to sync, how many matched but the allow-list refuses)."""
        keys, refused = [], 0
        for key, spec in (self.index() if index is None else index).get(secret, []):
            if not _same_vault(spec.vault_url, vault_name):
                continue
            if spec.version is not None and spec.version != version:
                continue  # pinned to another version: a new one changes nothing for it
            if self.policy.check(key[0], spec.vault_url, secret, spec.service_account):
                refused += 1
                continue
            keys.append(key)
        return keys, refused

    # -- internals ---------------------------------------------------------------------------

    def _spec(self, key: Key, body: Mapping[str, Any]) -> ProviderSpec | None:
        """The parsed spec, once per generation: a hundred events at once must not parse a
        thousand specs each (that was most of the time of a mass rotation)."""
        meta = body.get("metadata") or {}
        stamp = (meta.get("uid"), meta.get("generation"))
        cached = self._specs.get(key)
        if cached is not None and cached[0] == stamp and stamp[1] is not None:
            return cached[1]
        try:
            spec: ProviderSpec | None = parse_spec(key[1], key[0], body.get("spec") or {})
        except InvalidSpec:
            spec = None
        self._specs[key] = (stamp, spec)
        return spec

    def _backoff(self, failures: int) -> float:
        """Doubling from retry_seconds; never longer than the fallback interval (or a minute)."""
        s = self.settings
        cap = max(s.retry_seconds, min(MAX_BACKOFF_S, s.fallback_interval_seconds))
        return float(min(s.retry_seconds * 2 ** (failures - 1), cap))

    def _spawn(self, work: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    async def _handle(self, consumer: Consumer, detail: Any, index: Index) -> None:
        event, token = detail.event, detail.broker_properties.lock_token
        metrics.KEYVAULT_EVENTS.labels("received").inc()
        data = event.data if isinstance(event.data, Mapping) else {}
        vault, secret = str(data.get("VaultName") or ""), str(data.get("ObjectName") or "")
        version = str(data.get("Version") or "") or None
        keys: list[Key] = []
        refused = 0
        if event.type in EVENT_TYPES and vault and secret:
            keys, refused = self.matching(vault, secret, version, index)
        if not keys:
            why = "a vault or secret outside the allow-list" if refused else "no LLMProvider"
            log.info("rejecting %s for %s/%s: it names %s", event.type, vault, secret, why)
            await self._settle(consumer.reject(lock_tokens=[token]), "rejected")
            return
        if version is not None:  # the passes read this version or a newer one
            for key in keys:
                self.versions.name(key, version)
        waits = [w for w in (self.scheduler.sync_now(k) for k in keys) if w is not None]
        try:
            async with asyncio.timeout(self.settings.pass_timeout_seconds):
                outcomes: list[Outcome] = await asyncio.gather(*waits)
        except TimeoutError:
            outcomes = [Outcome(None, "sync took too long", transient=True)]
        if any(o.transient for o in outcomes):
            log.info("releasing %s for %s/%s: a sync will retry", event.type, vault, secret)
            release = consumer.release(
                lock_tokens=[token],
                release_delay=ReleaseDelay(str(self.settings.release_delay_seconds)),
            )
            await self._settle(release, "released")
            return
        acked = await self._settle(consumer.acknowledge(lock_tokens=[token]), "acknowledged")
        if acked and event.time is not None:
            lag = time.time() - event.time.timestamp()
            metrics.EVENT_TO_ROLLOUT_SECONDS.observe(max(0.0, lag))

    async def _settle(self, call: Any, outcome: str) -> bool:
        """True when the broker took it; a lost lock only means the event comes again (its
        sync then finds the same content hash: no second roll)."""
        try:
            result = await call
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("Event Grid: settling an event failed (%s)", _why(exc))
            return False
        if result.failed_lock_tokens:
            log.info("Event Grid: an event's lock was lost before it was %s", outcome)
            return False
        metrics.KEYVAULT_EVENTS.labels(outcome).inc()
        return True

    def _down(self, error: BaseException) -> None:
        self._why = _why(error)
        if self.healthy is not False:
            log.warning(
                "Event Grid receive failed (%s); polling Key Vault every %g s at most until it "
                "recovers",
                _why(error),
                self.settings.fallback_interval_seconds,
            )
            self.scheduler.max_interval = self.settings.fallback_interval_seconds
            if self.healthy:  # events may have been missed: read everything once now
                self.scheduler.poll_all_now()
        self.healthy = False
        metrics.EVENTGRID_UP.set(0)

    def _up(self) -> None:
        if self.healthy is not True:
            log.info("Event Grid: receiving Key Vault events; refreshInterval applies again")
        self.healthy = True
        self.scheduler.max_interval = None
        metrics.EVENTGRID_UP.set(1)


def _same_vault(vault_url: str, vault_name: str) -> bool:
    """``VaultName`` is the first label of ``https://<name>.vault.azure.net``; a stand-in vault
    without DNS names itself by host:port."""
    parts = urlsplit(vault_url)
    host, name = (parts.hostname or "").lower(), vault_name.lower()
    if name == parts.netloc.lower():
        return True
    return not host.replace(".", "").isdigit() and name == host.split(".")[0]


def _why(error: BaseException) -> str:
    """A status code and type name only: an error's text may quote a response."""
    status = getattr(error, "status_code", None)
    return f"{type(error).__name__}{f', HTTP {status}' if status else ''}"
