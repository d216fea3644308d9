"""With N operator replicas exactly one acts; another takes over when it dies or steps down."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from kubernetes_asyncio import client

from tests.fakes.fake_azure import FakeAzure
from tests.k8s.kube import RealKube, decode
from tests.operator.k8s.conftest import StartOperator
from tests.operator.k8s.operators import OperatorProcess
from tests.waiting import eventually

PROVIDERS = ("p0", "p1", "p2")
LEASE = {"LEASE_DURATION_SECONDS": "8", "LEASE_RENEW_DEADLINE_SECONDS": "5"}


async def _leaders(ops: list[OperatorProcess]) -> list[OperatorProcess]:
    return [op for op in ops if op.is_leader()]


async def _exactly_one_leader(ops: list[OperatorProcess], samples: int = 8) -> OperatorProcess:
    """One leader now, and still the same one over a few samples (no flapping, no split)."""
    [leader] = await eventually(lambda: _leaders(ops), lambda found: len(found) == 1, timeout=30)
    for _ in range(samples):
        await asyncio.sleep(0.25)
        assert await _leaders(ops) == [leader]
    return leader


@pytest.mark.parametrize("replicas", [2, 3])
async def test_one_replica_acts_and_another_takes_over_when_it_dies(
    replicas: int, k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    for name in PROVIDERS:
        fake_azure.set_secret(f"{name}-token", f"sk-ant-oat01-ha-{name}-first-000")
        await k8s.create_provider(name, fake_azure.base_url, gateway={}, refreshInterval="2s")
    ops = [
        start_operator(f"op-{i}", leader_election=True, extra_env=LEASE) for i in range(replicas)
    ]
    leader = await _exactly_one_leader(ops)
    lease = await client.CoordinationV1Api(k8s.api).read_namespaced_lease(
        "llm-mcp-hub-operator", k8s.namespace
    )
    assert lease.spec.holder_identity.startswith(f"{leader.name}_")
    for name in PROVIDERS:
        await eventually(lambda n=name: k8s.secret_or_none(f"{n}-credentials"), bool, timeout=30)

    # One Key Vault read per provider per interval: N replicas do not multiply the traffic.
    before = {n: len(fake_azure.requests(f"{n}-token", method="GET")) for n in PROVIDERS}
    await asyncio.sleep(6.0)  # three 2 s intervals
    for name in PROVIDERS:
        reads = len(fake_azure.requests(f"{name}-token", method="GET")) - before[name]
        assert 2 <= reads <= 4, f"{name}: {reads} reads in 3 intervals"

    # The leader crashes: a follower wins the Lease once it expires, and syncs a rotation.
    leader.stop(signal.SIGKILL)
    for name in PROVIDERS:
        fake_azure.set_secret(f"{name}-token", f"sk-ant-oat01-ha-{name}-rotated-1")
    survivors = [op for op in ops if op is not leader]
    started = time.monotonic()
    await _exactly_one_leader(survivors, samples=2)
    # Within the lease (8 s) plus one refresh interval (2 s), with slack for a busy machine.
    for name in PROVIDERS:
        await eventually(
            lambda n=name: k8s.secret(f"{n}-credentials"),
            lambda s, n=name: (
                decode(s, "CLAUDE_CODE_OAUTH_TOKEN") == f"sk-ant-oat01-ha-{n}-rotated-1"
            ),
            timeout=max(1.0, 8 + 2 + 8 - (time.monotonic() - started)),
        )


async def test_a_rolling_update_hands_the_lease_over_at_once(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    """SIGTERM (a pod replaced) releases the Lease: the next replica leads long before expiry."""
    fake_azure.set_secret("p0-token", "sk-ant-oat01-rolling-first-0000")
    await k8s.create_provider("p0", fake_azure.base_url, gateway={}, refreshInterval="2s")
    long_lease = {"LEASE_DURATION_SECONDS": "30", "LEASE_RENEW_DEADLINE_SECONDS": "20"}
    old = start_operator("old", leader_election=True, extra_env=long_lease)
    await _exactly_one_leader([old], samples=1)
    new = start_operator("new", leader_election=True, extra_env=long_lease)
    await asyncio.sleep(2)
    assert await _leaders([old, new]) == [old]  # the new pod waits for the Lease
    stopped = time.monotonic()
    assert old.stop(signal.SIGTERM) == 0
    await eventually(lambda: _leaders([new]), lambda found: found == [new], timeout=25)
    assert time.monotonic() - stopped < 15, "waited for the 30 s lease to expire: not released"
    fake_azure.set_secret("p0-token", "sk-ant-oat01-rolling-second-000")
    await eventually(
        lambda: k8s.secret("p0-credentials"),
        lambda s: decode(s, "CLAUDE_CODE_OAUTH_TOKEN") == "sk-ant-oat01-rolling-second-000",
        timeout=15,
    )
