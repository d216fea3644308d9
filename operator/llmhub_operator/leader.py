"""Leader election on a coordination.k8s.io Lease: with N replicas exactly one acts.

Every replica watches (so a follower's view is warm when it takes over), but only the holder of
the Lease reconciles. A replica stopping gracefully hands the Lease back at once, so a rolling
update never waits for it to expire; a crashed leader is replaced after ``lease_duration``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from kubernetes_asyncio import client
from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

from llmhub_operator import metrics

log = logging.getLogger(__name__)


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

    def gained(self) -> None:
        self.leading.set()
        self.changed.set()
        metrics.LEADER.set(1)

    def lost(self) -> None:
        self.leading.clear()
        metrics.LEADER.set(0)


class LeaseElector:
    """Runs the election loop until cancelled, then releases the Lease if it holds it."""

    def __init__(self, api: client.ApiClient, settings: LeaseSettings, leadership: Leadership):
        self._api, self._settings, self._leadership = api, settings, leadership

    async def run(self) -> None:
        s = self._settings
        try:
            while True:
                lock = LeaseLock(s.name, s.namespace, s.identity, self._api)
                config = electionconfig.Config(
                    lock,
                    lease_duration=s.lease_duration,
                    renew_deadline=s.renew_deadline,
                    retry_period=s.retry_period,
                    onstarted_leading=self._started,
                    onstopped_leading=self._stopped,
                )
                try:
                    await leaderelection.LeaderElection(config).run()
                except (client.ApiException, OSError, TimeoutError) as exc:
                    # e.g. the API server restarting: campaign again rather than die quietly
                    log.warning("leader election failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(s.retry_period)  # lost it: campaign again as a follower
        finally:
            if self._leadership.leading.is_set():
                self._leadership.lost()
                await asyncio.shield(self._release())

    async def _started(self) -> None:
        log.info("leading: %s holds Lease %s/%s", *self._who())
        self._leadership.gained()
        await asyncio.Event().wait()  # cancelled by the library when the Lease is lost

    async def _stopped(self) -> None:
        log.warning("lost Lease %s/%s; pausing until it is won again", *self._who()[1:])
        self._leadership.lost()

    def _who(self) -> tuple[str, str, str]:
        s = self._settings
        return s.identity, s.namespace, s.name

    async def _release(self) -> None:
        """Hand the Lease back (holder cleared), as client-go's ReleaseOnCancel does."""
        s = self._settings
        leases = client.CoordinationV1Api(self._api)
        with contextlib.suppress(client.ApiException, OSError, asyncio.TimeoutError):
            async with asyncio.timeout(5):
                lease = await leases.read_namespaced_lease(s.name, s.namespace)
                if lease.spec is None or lease.spec.holder_identity != s.identity:
                    return
                lease.spec.holder_identity = None  # type: ignore[assignment]
                lease.spec.lease_duration_seconds = 1
                await leases.replace_namespaced_lease(s.name, s.namespace, lease)
                log.info("released Lease %s/%s", s.namespace, s.name)
