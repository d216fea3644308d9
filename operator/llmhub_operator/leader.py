"""Leader election on a coordination.k8s.io Lease: with N replicas one acts, never two.

Every replica watches (so a follower's view is warm when it takes over), but only the holder of
the Lease reconciles. Our own small loop with client-go's rules, because kubernetes_asyncio's
elector neither reports a renew that raised (two replicas acted after a partition) nor survives
other errors (its task ended: nothing campaigned again).

The promise: a leader that cannot prove it still holds the Lease stops acting, and has finished
stopping, before any other replica may take it. Every renew request is bounded by what is left of
``renew_deadline`` (counted from when the last successful renew was *sent*); a renew that fails in
any way, or the deadline passing, is ``Leadership.lost()``, which cancels and awaits every sync
in flight. Others may only take the Lease ``lease_duration`` after they last saw it change, which
is later still. The loop campaigns again after any exception, forever. A replica stopping
gracefully hands the Lease back at once, so a rolling update never waits for it to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client

from llmhub_operator import metrics
from llmhub_operator.kube import raw_json

log = logging.getLogger(__name__)

Stopper = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    name: str
    namespace: str
    identity: str
    lease_duration: int = 15  # whole seconds, as the Lease stores them
    renew_deadline: int = 10
    retry_period: int = 2


class Leadership:
    """``leading`` is set while this replica may act; always set without election."""

    def __init__(self) -> None:
        self.leading = asyncio.Event()
        self.changed = asyncio.Event()  # pulsed on every gain, so waiters can re-plan
        self._stoppers: list[Stopper] = []

    def on_lost(self, stop: Stopper) -> None:
        """``stop`` runs (and is awaited) each time the lead is lost: cancel what acts."""
        self._stoppers.append(stop)

    def gained(self) -> None:
        self.leading.set()
        self.changed.set()
        metrics.LEADER.set(1)

    async def lost(self) -> None:
        """Nothing new starts (the flag clears first); then whatever runs is cancelled and
        awaited, so when this returns this replica no longer acts."""
        self.leading.clear()
        metrics.LEADER.set(0)
        for stop in self._stoppers:
            await stop()


class LeaseLost(Exception):
    """The Lease is held by another replica, or the renew deadline passed."""


class StuckLeader(Exception):
    """What acts did not stop in time: the elector ends, and the supervisor ends the process."""


class LeaseElector:
    """Runs the election loop until cancelled, then releases the Lease if it holds it."""

    def __init__(self, api: client.ApiClient, settings: LeaseSettings, leadership: Leadership):
        self._leases = client.CoordinationV1Api(api)
        self._settings, self._leadership = settings, leadership
        self._observed: tuple[Any, ...] | None = None  # the record as last seen, and when
        self._observed_at = 0.0

    async def run(self) -> None:
        s = self._settings
        try:
            while True:
                try:
                    sent = time.monotonic()
                    if await self._try_acquire(sent + s.renew_deadline):
                        await self._lead(sent)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # any failure: stop acting, campaign again
                    await self._step_down(_why(exc))
                await asyncio.sleep(s.retry_period)
        finally:
            if self._leadership.leading.is_set():
                await asyncio.shield(self._leadership.lost())
                await asyncio.shield(self._release())

    async def _lead(self, renewed: float) -> None:
        """Act while every renew succeeds within the deadline; raise when one does not."""
        s = self._settings
        log.info("leading: %s holds Lease %s/%s", s.identity, s.namespace, s.name)
        self._leadership.gained()
        while True:
            await asyncio.sleep(s.retry_period)
            sent = time.monotonic()
            if not await self._try_acquire(renewed + s.renew_deadline):
                raise LeaseLost("another replica holds the Lease")
            renewed = sent

    async def _step_down(self, why: str) -> None:
        s = self._settings
        if self._leadership.leading.is_set():
            log.warning("lost Lease %s/%s (%s); stopping", s.namespace, s.name, why)
            try:
                # Stopped before another replica may lead, or this process must not go on.
                async with asyncio.timeout(s.lease_duration - s.renew_deadline):
                    await self._leadership.lost()
            except TimeoutError:
                raise StuckLeader("syncs did not stop when the lead was lost") from None
        else:
            log.warning("campaign for Lease %s/%s failed (%s); retrying", s.namespace, s.name, why)

    async def _try_acquire(self, deadline: float) -> bool:
        """One read and (when ours to take) one write of the Lease, both done by ``deadline``
        (monotonic): True when this replica holds it afterwards."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise LeaseLost("renew deadline passed")
        async with asyncio.timeout(left):
            return await self._acquire_or_renew()

    async def _acquire_or_renew(self) -> bool:
        s = self._settings
        try:
            lease = await raw_json(
                self._leases.read_namespaced_lease(s.name, s.namespace, _preload_content=False)
            )
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            await raw_json(
                self._leases.create_namespaced_lease(
                    s.namespace,
                    self._record({}, {}),  # type: ignore[arg-type]
                    _preload_content=False,
                )
            )
            return True
        spec: dict[str, Any] = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder and holder != s.identity and not self._expired(spec):
            return False
        # resourceVersion in the body: a replica that raced us gets a 409, never both win.
        await raw_json(
            self._leases.replace_namespaced_lease(
                s.name,
                s.namespace,
                self._record(lease, spec),  # type: ignore[arg-type]
                _preload_content=False,
            )
        )
        return True

    def _expired(self, spec: dict[str, Any]) -> bool:
        """Judged by our own clock, from when we last saw the record change (as client-go does):
        clocks of different nodes never need to agree."""
        record = tuple(spec.get(k) for k in ("holderIdentity", "renewTime", "leaseTransitions"))
        now = time.monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = spec.get("leaseDurationSeconds") or self._settings.lease_duration
        return bool(now >= self._observed_at + float(duration))

    def _record(self, lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        s = self._settings
        now = _micro_time()
        ours = spec.get("holderIdentity") == s.identity
        transitions = int(spec.get("leaseTransitions") or 0)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {**(lease.get("metadata") or {}), "name": s.name},
            "spec": {
                "holderIdentity": s.identity,
                "leaseDurationSeconds": s.lease_duration,
                "acquireTime": spec.get("acquireTime") if ours else now,
                "renewTime": now,
                "leaseTransitions": transitions if ours or not spec else transitions + 1,
            },
        }

    async def _release(self) -> None:
        """Hand the Lease back (holder cleared), as client-go's ReleaseOnCancel does."""
        s = self._settings
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                lease = await self._leases.read_namespaced_lease(s.name, s.namespace)
                if lease.spec is None or lease.spec.holder_identity != s.identity:
                    return
                lease.spec.holder_identity = None  # type: ignore[assignment]
                lease.spec.lease_duration_seconds = 1
                await self._leases.replace_namespaced_lease(s.name, s.namespace, lease)
                log.info("released Lease %s/%s", s.namespace, s.name)


def _micro_time() -> str:
    """The Lease's MicroTime: RFC 3339 with exactly six fractional digits."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _why(exc: BaseException) -> str:
    """Status code or exception type only: an error body (e.g. a load balancer's HTML) never."""
    if isinstance(exc, client.ApiException):
        return f"HTTP {exc.status}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) if isinstance(exc, LeaseLost) else type(exc).__name__
