"""The Lease loop on the real API server, with faults at its calls: it stops acting in time,
campaigns again after any error, and every call of the operator's client is bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from kubernetes_asyncio import client, watch

from llmhub_operator.kube import make_api_client
from llmhub_operator.leader import Leadership, LeaseElector, LeaseSettings, StuckLeader
from tests.k8s.kube import RealKube
from tests.operator.k8s.api_faults import LeaseFaults
from tests.tcp_proxy import FaultyProxy
from tests.waiting import eventually


class Replica:
    """An elector with a Leadership whose stop takes a while (a sync winding down)."""

    def __init__(self, api: client.ApiClient, settings: LeaseSettings, stop_s: float = 0.3):
        self.stop_s = stop_s
        self.leadership = Leadership()
        self.elector = LeaseElector(api, settings, self.leadership)
        self.gains: list[float] = []
        self.stops: list[float] = []  # when each lost() had finished stopping
        self.leadership.on_lost(self._stop)
        gained = self.leadership.gained

        def record_gain() -> None:
            self.gains.append(time.monotonic())
            gained()

        self.leadership.gained = record_gain  # type: ignore[method-assign]

    async def _stop(self) -> None:
        await asyncio.sleep(self.stop_s)
        self.stops.append(time.monotonic())

    async def leading(self) -> bool:
        return self.leadership.leading.is_set()


def _settings(k8s: RealKube, identity: str, **timings: int) -> LeaseSettings:
    return LeaseSettings(name="loop", namespace=k8s.namespace, identity=identity, **timings)


@asynccontextmanager
async def running(replica: Replica) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(replica.elector.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("fault", ["disconnect", "html503", "html200"])
async def test_after_any_error_at_a_renew_it_stops_acting_and_campaigns_again(
    fault: str, k8s: RealKube, lease_faults: LeaseFaults
) -> None:
    lease_faults.attach(k8s.api)
    timings = {"lease_duration": 4, "renew_deadline": 3, "retry_period": 1}
    replica = Replica(k8s.api, _settings(k8s, "me", **timings))
    async with running(replica) as task:
        await eventually(replica.leading, bool, timeout=10)
        lease_faults.pending.append(fault)
        await eventually(lambda: _len(replica.stops), lambda n: n >= 1, timeout=10)
        await eventually(lambda: _len(replica.gains), lambda n: n >= 2, timeout=10)
        assert set(lease_faults.served) == {fault}  # aiohttp may retry a GET once
        assert not task.done()
        assert replica.stops[0] < replica.gains[1]
    lease = await client.CoordinationV1Api(k8s.api).read_namespaced_lease("loop", k8s.namespace)
    assert lease.spec.holder_identity is None  # released when stopped


async def test_a_leader_whose_syncs_do_not_stop_in_time_ends_its_elector(
    k8s: RealKube, lease_faults: LeaseFaults
) -> None:
    """Then the supervisor ends the process: better than acting beside the next leader."""
    lease_faults.attach(k8s.api)
    timings = {"lease_duration": 4, "renew_deadline": 3, "retry_period": 1}
    replica = Replica(k8s.api, _settings(k8s, "me", **timings), stop_s=3600)
    async with running(replica) as task:
        await eventually(replica.leading, bool, timeout=10)
        lease_faults.pending.append("html503")
        with pytest.raises(StuckLeader):
            await asyncio.wait_for(asyncio.shield(task), 10)
        assert not await replica.leading()


async def test_a_black_holed_leader_has_stopped_before_another_replica_leads(
    k8s: RealKube, proxy: FaultyProxy, proxied_kubeconfig: Path
) -> None:
    timings = {"lease_duration": 6, "renew_deadline": 3, "retry_period": 1}
    cut_off = await make_api_client(str(proxied_kubeconfig), request_timeout=30)
    old, new = Replica(cut_off, _settings(k8s, "old", **timings)), None
    try:
        async with running(old):
            await eventually(old.leading, bool, timeout=10)
            new = Replica(k8s.api, _settings(k8s, "new", **timings))
            async with running(new):
                await asyncio.sleep(1)
                proxy.partition(True)
                cut = time.monotonic()
                await eventually(new.leading, bool, timeout=20)
                # The renew hung in the black hole; its deadline (not the client's 30 s) ended it.
                assert old.stops, "the old leader never stopped"
                assert old.stops[0] - cut < timings["lease_duration"]
                assert old.stops[0] < new.gains[0]
                assert not await old.leading()
    finally:
        proxy.partition(False)
        await cut_off.close()


async def test_every_call_of_the_operators_client_ends_in_a_black_hole(
    k8s: RealKube, proxy: FaultyProxy, proxied_kubeconfig: Path
) -> None:
    api = await make_api_client(str(proxied_kubeconfig), request_timeout=1)
    core = client.CoreV1Api(api)
    try:
        await core.read_namespace(k8s.namespace)  # connected and working
        proxy.partition(True)
        for call in (
            lambda: core.read_namespace(k8s.namespace),
            lambda: _watch_once(core, k8s.namespace),
        ):
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(20):  # a backstop only; the client's 1 s must end it
                    await call()
            assert time.monotonic() - started < 10
    finally:
        proxy.partition(False)
        await api.close()


async def _watch_once(core: client.CoreV1Api, namespace: str) -> None:
    stream = watch.Watch().stream(core.list_namespaced_secret, namespace, timeout_seconds=2)
    async with stream:
        async for _ in stream:
            pass


async def _len(items: list[float]) -> int:
    return len(items)
