"""Operator processes whose API server connection is cut: one leader at a time, then recovery.

The operator under test reaches the API server through a TCP proxy that black-holes traffic
(``tests/tcp_proxy.py``); Key Vault stays reachable, which is exactly when two leaders would both
read it. Each replica reads Key Vault as its own client id, so the fake says who read.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.fakes.fake_azure import FakeAzure
from tests.k8s.kube import RealKube, decode
from tests.operator.k8s.conftest import StartOperator
from tests.operator.k8s.operators import OperatorProcess
from tests.tcp_proxy import FaultyProxy
from tests.waiting import eventually

READER_A, READER_B = "aaaaaaaa-0000-0000-0000-00000000000a", "bbbbbbbb-0000-0000-0000-00000000000b"
LEASE_S, RENEW_DEADLINE_S = 4, 3  # the fixture's timings
INTERVAL_S = 2
INTERVAL = f"{INTERVAL_S}s"
FIRST = "sk-ant-oat01-leader-faults-first-00"


def _env(reader: str) -> dict[str, str]:
    """A short API timeout: the black holes below then last a few of them, not 30 s."""
    return {"AZURE_CLIENT_ID": reader, "KUBE_REQUEST_TIMEOUT_SECONDS": "2"}


async def _leads(op: OperatorProcess) -> bool:
    return op.is_leader()


async def _follows(op: OperatorProcess) -> bool:
    try:
        return op.alive and op.metric("llmhub_operator_leader") == 0.0
    except OSError:
        return False  # not serving metrics yet


def _reads(fake: FakeAzure, reader: str, since: float = 0.0) -> list[float]:
    return [
        r.at
        for r in fake.requests("p0-token", method="GET")
        if r.client_id == reader and r.at >= since
    ]


@pytest.fixture
async def leader_behind_proxy(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator, proxied_kubeconfig: Path
) -> OperatorProcess:
    """LLMProvider p0 and an operator that reaches the API server through the proxy, once it
    has led and synced (read Key Vault as READER_A)."""
    fake_azure.set_secret("p0-token", FIRST)
    await k8s.create_provider("p0", fake_azure.base_url, gateway={}, refreshInterval=INTERVAL)
    op = start_operator(
        "a", kubeconfig=proxied_kubeconfig, leader_election=True, extra_env=_env(READER_A)
    )
    await eventually(lambda: k8s.secret_or_none("p0-credentials"), bool, timeout=60)
    assert _reads(fake_azure, READER_A)
    return op


async def test_a_partitioned_leader_stops_before_another_leads_and_one_leads_after_healing(
    fake_azure: FakeAzure,
    start_operator: StartOperator,
    proxy: FaultyProxy,
    leader_behind_proxy: OperatorProcess,
) -> None:
    a = leader_behind_proxy
    b = start_operator("b", leader_election=True, extra_env=_env(READER_B))
    await eventually(lambda: _follows(b), bool, timeout=60)

    # Cut A off the API server for twice the Lease: it must stop, then B takes over.
    proxy.partition(True)
    cut = time.monotonic()
    await eventually(lambda: _follows(a), bool, timeout=RENEW_DEADLINE_S + 10)
    await eventually(lambda: _leads(b), bool, timeout=LEASE_S + 20)
    await asyncio.sleep(max(0.0, 2 * LEASE_S - (time.monotonic() - cut)))
    proxy.partition(False)
    healed = time.monotonic()

    # After healing: A has rejoined as a follower and never leads beside B, sample after sample
    # (B itself may step down for a moment on a machine too busy to renew in time: no split).
    for _ in range(3 * INTERVAL_S * 2):
        await asyncio.sleep(0.5)
        assert not a.is_leader()
    assert await _follows(a)
    await eventually(lambda: _leads(b), bool, timeout=10)
    # Key Vault saw one reader after healing, and never both: A's reads all end before B's begin.
    assert _reads(fake_azure, READER_B, since=healed), "the new leader stopped syncing"
    assert not _reads(fake_azure, READER_A, since=healed)
    assert max(_reads(fake_azure, READER_A)) < min(_reads(fake_azure, READER_B))
    assert "lost Lease" in a.log()


async def test_after_a_black_holed_api_the_operator_recovers_and_syncs_a_rotation(
    k8s: RealKube, fake_azure: FakeAzure, proxy: FaultyProxy, leader_behind_proxy: OperatorProcess
) -> None:
    op = leader_behind_proxy

    # Five request timeouts, over twice the Lease: no call may hang through it.
    proxy.partition(True)
    cut = time.monotonic()
    fake_azure.set_secret("p0-token", "sk-ant-oat01-blackhole-rotated-01")
    await eventually(lambda: _follows(op), bool, timeout=RENEW_DEADLINE_S + 10)
    await asyncio.sleep(max(0.0, 10 - (time.monotonic() - cut)))
    proxy.partition(False)
    healed = time.monotonic()

    # Within one interval after healing (plus a retry period to win the Lease back, and slack
    # for a loaded machine) the rotation is in the Secret.
    await eventually(
        lambda: k8s.secret("p0-credentials"),
        lambda s: decode(s, "CLAUDE_CODE_OAUTH_TOKEN") == "sk-ant-oat01-blackhole-rotated-01",
        timeout=INTERVAL_S + 1 + 10,
    )
    assert op.is_leader()
    assert "timed out" in op.log(), "the renew did not time out"
    assert time.monotonic() - healed < INTERVAL_S + 1 + 10
