"""Push rotation on the real control plane: the stand-in Key Vault publishes to the stand-in
Event Grid namespace on every write, a real operator process pulls with the real SDK."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.fake_azure import FakeAzure
from tests.fakes.fake_eventgrid import FakeEventGrid
from tests.k8s.kube import RealKube, decode
from tests.operator.k8s.conftest import StartOperator
from tests.operator.k8s.operators import OperatorProcess
from tests.operator.kopf_harness import _const
from tests.waiting import eventually

TOKEN = "sk-ant-oat01-" + "push-rotation-{}"
DAY = 86400


@pytest.fixture
def grid(fake_azure: FakeAzure) -> Iterator[FakeEventGrid]:
    grid = FakeEventGrid.start_local(fake_azure).feed_from()
    try:
        yield grid
    finally:
        grid.stop()


def _env(grid: FakeEventGrid, **extra: str) -> dict[str, str]:
    return {**grid.env(), "LLMHUB_EVENTGRID_MAX_WAIT_SECONDS": "10", **extra}


async def _value(k8s: RealKube) -> str:
    return decode(await k8s.secret("pushed-credentials"), "CLAUDE_CODE_OAUTH_TOKEN")


async def _pushed_provider(k8s: RealKube, fake_azure: FakeAzure, token: str) -> None:
    """A gateway and an LLMProvider polling hourly: only an event explains a quick rotation."""
    fake_azure.set_secret("pushed-token", token)
    await k8s.create_deployment("gateway")
    await k8s.create_provider("pushed", fake_azure.base_url, refreshInterval="1h")


async def _push_condition(k8s: RealKube) -> dict[str, Any]:
    conditions = ((await k8s.provider("pushed")).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "PushRotation"), {})


async def _metric(operator: OperatorProcess, name: str) -> float:
    return operator.metric(name)


async def _async(value: str) -> str:
    return value


async def test_a_key_vault_write_rolls_within_seconds_and_foreign_vaults_are_rejected(
    k8s: RealKube, fake_azure: FakeAzure, grid: FakeEventGrid, start_operator: StartOperator
) -> None:
    await _pushed_provider(k8s, fake_azure, TOKEN.format(1))
    # Same secret name in a vault the operator may not read (the allow-list is the stand-in's).
    await k8s.create_provider(
        "foreign",
        "https://evil.vault.azure.net",
        refreshInterval="1h",
        source={"azureKeyVault": {"vaultUrl": "https://evil.vault.azure.net", "secretName": "x"}},
    )
    operator = start_operator(extra_env=_env(grid))
    await k8s.wait_phase("pushed")
    await eventually(lambda: _metric(operator, "llmhub_operator_eventgrid_up"), lambda v: v == 1)
    await eventually(_const(grid), lambda g: g.pending() == 0)  # the first write's event
    generation = (await k8s.deployment("gateway")).metadata.generation
    reads = len(fake_azure.requests("pushed-token", method="GET"))

    fake_azure.set_secret("pushed-token", TOKEN.format(2))  # an hour before the next poll

    await eventually(lambda: _value(k8s), lambda v: v == TOKEN.format(2), timeout=15)
    await eventually(
        lambda: k8s.deployment("gateway"),
        lambda d: d.metadata.generation == generation + 1,
        timeout=10,
    )
    event = grid.published[-1]
    await eventually(_const(grid), lambda g: event in g.settled("acknowledge"))
    assert len(fake_azure.requests("pushed-token", method="GET")) == reads + 1
    assert operator.metric("llmhub_operator_keyvault_event_to_rollout_seconds_count") >= 1

    # An event naming the foreign vault: rejected, and nothing asks any vault for that secret.
    grid.publish_keyvault("evil", "x", "0" * 32)
    foreign = grid.published[-1]
    await eventually(_const(grid), lambda g: foreign in g.settled("reject"))
    assert fake_azure.requests("x") == []
    assert "outside the allow-list" in operator.log()
    rejected = 'llmhub_operator_keyvault_events_total{outcome="rejected"} 1.0'
    await eventually(lambda: _async(operator.metrics()), lambda text: rejected in text)
    assert (await k8s.deployment("gateway")).metadata.generation == generation + 1

    # SecretNearExpiry (here: a version written without an event, expiring in a day): the
    # status says so at once, not an hour later; the same value rolls nothing.
    await _expiry_event(k8s, fake_azure, grid, "SecretNearExpiry", time.time() + DAY, "warning")
    # The alerts' metric moved with it (TokenExpiringSoon fires on it, not an hour later).
    expiry = operator.metric("llmhub_operator_token_expiry_timestamp_seconds")
    assert abs(expiry - (time.time() + DAY)) < 300
    assert (await k8s.deployment("gateway")).metadata.generation == generation + 1

    # SecretExpired: likewise at once, status and the alerts' metric.
    await _expiry_event(k8s, fake_azure, grid, "SecretExpired", time.time() - 60, "expired")
    assert operator.metric("llmhub_operator_token_expiry_timestamp_seconds") < time.time()
    assert (await k8s.deployment("gateway")).metadata.generation == generation + 1


async def _expiry_event(
    k8s: RealKube, fake_azure: FakeAzure, grid: FakeEventGrid, kind: str, expires: float, to: str
) -> None:
    """A new version of the same value expiring at ``expires``, announced only by ``kind``: the
    provider's token status becomes ``to`` within seconds (polling is hourly)."""
    hook, fake_azure.on_new_version = fake_azure.on_new_version, None
    version = fake_azure.set_secret("pushed-token", TOKEN.format(2), expires=expires)
    fake_azure.on_new_version = hook
    grid.publish_keyvault(fake_azure.vault_name, "pushed-token", version, kind)
    await eventually(
        lambda: k8s.provider("pushed"),
        lambda b: b["status"]["token"]["status"] == to,
        timeout=15,
    )


async def test_event_grid_down_falls_back_to_polling_and_recovers(
    k8s: RealKube, fake_azure: FakeAzure, grid: FakeEventGrid, start_operator: StartOperator
) -> None:
    await _pushed_provider(k8s, fake_azure, TOKEN.format(3))
    grid.fail(503, times=10_000)
    env = _env(
        grid,
        LLMHUB_EVENTGRID_FALLBACK_INTERVAL_SECONDS="2",
        LLMHUB_EVENTGRID_RETRY_SECONDS="0.5",
    )
    operator = start_operator(extra_env=env)
    await k8s.wait_phase("pushed")
    await eventually(lambda: _metric(operator, "llmhub_operator_eventgrid_up"), lambda v: v == 0)
    assert "Event Grid receive failed (HttpResponseError, HTTP 503)" in operator.log()
    down = await eventually(
        lambda: _push_condition(k8s), lambda c: c.get("status") == "False", timeout=15
    )
    assert down["reason"] == "EventGridUnavailable"
    assert "HTTP 503" in down["message"]
    assert "every 2 s" in down["message"]
    # With refreshInterval 1h, only the fallback interval explains further reads.
    reads = len(fake_azure.requests("pushed-token", method="GET"))
    await eventually(
        _const(fake_azure),
        lambda f: len(f.requests("pushed-token", method="GET")) >= reads + 2,
        timeout=15,
    )

    grid.heal()
    await eventually(
        lambda: _metric(operator, "llmhub_operator_eventgrid_up"), lambda v: v == 1, timeout=15
    )
    assert "Event Grid: receiving Key Vault events" in operator.log()
    up = await eventually(
        lambda: _push_condition(k8s), lambda c: c.get("status") == "True", timeout=15
    )
    assert up["reason"] == "Receiving"
    fake_azure.set_secret("pushed-token", TOKEN.format(4))
    event = grid.published[-1]
    await eventually(_const(grid), lambda g: event in g.settled("acknowledge"), timeout=15)
    assert await _value(k8s) == TOKEN.format(4)


async def test_an_operator_killed_mid_event_loses_nothing(
    k8s: RealKube, fake_azure: FakeAzure, grid: FakeEventGrid, start_operator: StartOperator
) -> None:
    grid.lock_duration = 2.0
    await _pushed_provider(k8s, fake_azure, TOKEN.format(5))
    first = start_operator("op-0", extra_env=_env(grid))
    await k8s.wait_phase("pushed")
    await eventually(_const(grid), lambda g: g.pending() == 0)
    generation = (await k8s.deployment("gateway")).metadata.generation

    fake_azure.delay("pushed-token", 30)  # the event's sync is stuck in its Key Vault read
    fake_azure.set_secret("pushed-token", TOKEN.format(6))
    event = grid.published[-1]
    await eventually(_const(grid), lambda g: event in g.settled("receive"))
    first.stop(signal.SIGKILL)
    fake_azure.delay("pushed-token", 0)

    start_operator("op-1", extra_env=_env(grid))
    # A new process starts first (slow under load): the wait ends once the event is acknowledged.
    await eventually(_const(grid), lambda g: event in g.settled("acknowledge"), timeout=45)
    # Redelivered once its lock expired (again if a sync outlived a 2 s lock: duplicates are
    # harmless, the content hash decides): one roll for one new version.
    assert grid.settled("receive").count(event) >= 2
    assert await _value(k8s) == TOKEN.format(6)
    assert (await k8s.deployment("gateway")).metadata.generation == generation + 1


async def test_redelivered_events_read_their_version_or_newer_and_roll_once(
    k8s: RealKube, fake_azure: FakeAzure, grid: FakeEventGrid, start_operator: StartOperator
) -> None:
    await _pushed_provider(k8s, fake_azure, TOKEN.format(7))
    env = _env(
        grid,
        LLMHUB_EVENTGRID_RELEASE_DELAY_SECONDS="0",
        LLMHUB_EVENTGRID_STALE_READ_RETRY_SECONDS="0.2",
    )
    operator = start_operator(extra_env=env)
    await k8s.wait_phase("pushed")
    await eventually(_const(grid), lambda g: g.pending() == 0)
    generation = (await k8s.deployment("gateway")).metadata.generation

    # A replica one version behind for the event's whole first pass (3 reads of "latest", each
    # checked against the event's version): nothing is written, the event is released, and it
    # comes back to a replica that has the new version.
    fake_azure.serve_stale("pushed-token", reads=6)
    version = fake_azure.set_secret("pushed-token", TOKEN.format(8))
    event = grid.published[-1]
    await eventually(_const(grid), lambda g: event in g.settled("release"), timeout=15)
    await eventually(_const(grid), lambda g: event in g.settled("acknowledge"), timeout=15)
    assert await _value(k8s) == TOKEN.format(8)
    assert (await k8s.deployment("gateway")).metadata.generation == generation + 1

    # A redelivered event meets a lagging replica: re-read until the named version shows;
    # the older value it served first is never written back (no roll back, no second roll).
    fake_azure.serve_stale("pushed-token", reads=2)
    grid.publish_keyvault(fake_azure.vault_name, "pushed-token", version)
    again = grid.published[-1]
    await eventually(_const(grid), lambda g: again in g.settled("acknowledge"), timeout=15)
    assert again not in grid.settled("release")
    reads = [r.status for r in fake_azure.requests("pushed-token", method="GET")[-3:]]
    assert reads == [200, 404, 200]  # stale latest, the named version not there yet, latest
    assert await _value(k8s) == TOKEN.format(8)
    assert (await k8s.deployment("gateway")).metadata.generation == generation + 1

    # The event's pass outlives its lock (Key Vault answers slowly): its acknowledge finds the
    # lock lost, and the event comes back; that pass finds the same content hash.
    grid.lock_duration = 1.0
    fake_azure.delay("pushed-token", 1.5)
    fake_azure.set_secret("pushed-token", TOKEN.format(10))
    event = grid.published[-1]
    await eventually(_const(grid), lambda g: g.settled("receive").count(event) >= 2, timeout=15)
    fake_azure.delay("pushed-token", 0)
    await eventually(_const(grid), lambda g: event in g.settled("acknowledge"), timeout=15)
    assert "lock was lost" in operator.log()
    assert await _value(k8s) == TOKEN.format(10)
    assert (await k8s.deployment("gateway")).metadata.generation == generation + 2
