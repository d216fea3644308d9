"""KeyVaultEvents with the real SDK against the stand-in namespace, on a real Scheduler whose
sync is a recorder: only a leader receives; transient failures release, successes acknowledge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from prometheus_client import REGISTRY

from llmhub_operator.access_policy import AccessPolicy
from llmhub_operator.keyvault_events import EventGridSettings, KeyVaultEvents
from llmhub_operator.leader import Leadership
from llmhub_operator.reconcile import Outcome
from llmhub_operator.scheduler import Key, Scheduler
from tests.fakes.fake_azure import FakeAzure
from tests.fakes.fake_eventgrid import FakeEventGrid
from tests.operator.kopf_harness import _const, provider_body
from tests.tcp_proxy import FaultyProxy
from tests.waiting import eventually


class Recorder:
    def __init__(self) -> None:
        self.synced: list[Key] = []
        self.transient = 0  # how many of the next passes fail transiently

    async def __call__(self, key: Key, body: Mapping[str, Any], reuse: bool) -> Outcome:
        self.synced.append(key)
        if self.transient:
            self.transient -= 1
            return Outcome(None, "throttled", transient=True)
        return Outcome(None, "synced")


@pytest.fixture
async def running(
    eventgrid: FakeEventGrid, fake_azure: FakeAzure
) -> AsyncIterator[tuple[Leadership, Recorder, Scheduler]]:
    async with _running(EventGridSettings(**_settings(eventgrid)), fake_azure) as started:
        yield started[:3]


@contextlib.asynccontextmanager
async def _running(
    settings: EventGridSettings, fake_azure: FakeAzure
) -> AsyncIterator[tuple[Leadership, Recorder, Scheduler, KeyVaultEvents]]:
    """A real Scheduler (its sync a Recorder) and KeyVaultEvents with the real SDK."""
    leadership, recorder = Leadership(), Recorder()
    scheduler = Scheduler(recorder, leadership)
    body = provider_body("p", "ns", refreshInterval="1h")
    body["spec"]["source"]["azureKeyVault"] = {
        "vaultUrl": fake_azure.base_url,
        "secretName": "rcv-token",
    }
    body["metadata"]["uid"] = "u1"
    scheduler.observe(body)
    events = KeyVaultEvents(settings, scheduler, leadership, AccessPolicy.from_env())
    tasks = [asyncio.create_task(scheduler.run()), asyncio.create_task(events.run())]
    try:
        yield leadership, recorder, scheduler, events
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _settings(grid: FakeEventGrid) -> dict[str, Any]:
    return {
        "endpoint": grid.base_url,
        "topic": grid.topic,
        "subscription": grid.subscription,
        "max_wait_seconds": 10,
        "release_delay_seconds": 0,
    }


async def test_only_a_leader_receives_and_a_transient_failure_releases(
    running: tuple[Leadership, Recorder, Scheduler],
    eventgrid: FakeEventGrid,
    fake_azure: FakeAzure,
) -> None:
    leadership, recorder, _ = running
    fake_azure.set_secret("rcv-token", "sk-ant-oat01-receiver-0001")
    await asyncio.sleep(0.5)
    assert eventgrid.log == []  # a follower never asks Event Grid
    assert recorder.synced == []

    before = {o: _events(o) for o in ("received", "released", "acknowledged")}
    recorder.transient = 2  # the first (start-up) pass and the event's pass fail: released
    leadership.gained()
    event = eventgrid.published[-1]
    await eventually(_const(eventgrid), lambda g: event in g.settled("release"), timeout=15)
    await eventually(_const(eventgrid), lambda g: event in g.settled("acknowledge"), timeout=15)
    assert eventgrid.settled("receive").count(event) == 2
    assert eventgrid.pending() == 0

    # The metrics count each step: received twice, released once, acknowledged once (counted
    # when Event Grid's answer is back, a moment after the stand-in recorded the settlement).
    async def counted() -> dict[str, float]:
        return {o: _events(o) - n for o, n in before.items()}

    expected = {"received": 2, "released": 1, "acknowledged": 1}
    assert await eventually(counted, lambda c: c == expected, timeout=5) == expected


async def test_an_event_for_a_secret_no_provider_reads_is_rejected_without_a_sync(
    running: tuple[Leadership, Recorder, Scheduler], eventgrid: FakeEventGrid
) -> None:
    leadership, recorder, _ = running
    leadership.gained()
    await eventually(_const(recorder), lambda r: len(r.synced) == 1)  # the start-up pass
    eventgrid.publish_keyvault("other-kv", "rcv-token", "0" * 32)
    eventgrid.publish_keyvault("127.0.0.1:1", "rcv-token", "0" * 32)
    await eventually(_const(eventgrid), lambda g: len(g.settled("reject")) == 2, timeout=15)
    assert len(recorder.synced) == 1


async def test_event_grid_unreachable_or_refusing_falls_back_to_polling_until_it_recovers(
    eventgrid: FakeEventGrid, fake_azure: FakeAzure, caplog: pytest.LogCaptureFixture
) -> None:
    """The path to Event Grid cut for real (a TCP proxy), then a 403 (no Data Receiver role)."""
    caplog.set_level(logging.INFO, "llmhub_operator.keyvault_events")
    eventgrid.lock_duration = 3.0  # an event whose receive's answer the cut lost comes back soon
    port = int(eventgrid.base_url.rsplit(":", 1)[1])
    with FaultyProxy(port) as proxy:
        settings = {
            **_settings(eventgrid),
            "endpoint": f"https://127.0.0.1:{proxy.port}",
            "fallback_interval_seconds": 1.0,
            "retry_seconds": 0.2,
            "connect_timeout_seconds": 1.0,
        }
        async with _running(EventGridSettings(**settings), fake_azure) as started:
            leadership, recorder, scheduler, events = started
            # An empty long poll answers only after its wait (10 s): a waiting event makes each
            # receive that should work answer at once.
            fake_azure.set_secret("rcv-token", "sk-ant-oat01-receiver-0001")
            leadership.gained()
            await eventually(_const(events), lambda e: e.healthy is True, timeout=15)
            assert _up() == 1
            assert scheduler.max_interval is None

            proxy.partition()  # the long poll in flight is cut; new connections hear nothing
            await eventually(_const(events), lambda e: e.healthy is False, timeout=15)
            down = events.condition()
            assert (down.status, down.reason) == ("False", "EventGridUnavailable")
            assert "every 1 s at most" in down.message
            assert _up() == 0
            assert scheduler.max_interval == 1.0
            assert "Event Grid receive failed (ServiceRequest" in caplog.text
            # refreshInterval is 1h: only the fallback interval explains these passes.
            polled = len(recorder.synced)
            await eventually(_const(recorder), lambda r: len(r.synced) >= polled + 2, timeout=15)

            fake_azure.set_secret("rcv-token", "sk-ant-oat01-receiver-0002")
            event = eventgrid.published[-1]
            proxy.partition(False)  # a handshake lost in the black hole times out (1 s)
            await eventually(_const(events), lambda e: e.healthy is True, timeout=15)
            assert events.condition().reason == "Receiving"
            assert _up() == 1
            assert scheduler.max_interval is None
            await eventually(
                _const(eventgrid), lambda g: event in g.settled("acknowledge"), timeout=15
            )

            eventgrid.fail(403, times=3)  # refusing: the identity lacks the role
            fake_azure.set_secret("rcv-token", "sk-ant-oat01-receiver-0003")  # ends the poll
            await eventually(_const(events), lambda e: e.healthy is False, timeout=15)
            assert "HTTP 403" in events.condition().message
            assert scheduler.max_interval == 1.0
            fake_azure.set_secret("rcv-token", "sk-ant-oat01-receiver-0004")
            await eventually(_const(events), lambda e: e.healthy is True, timeout=15)
    assert "sk-ant-oat01" not in caplog.text


def _up() -> float | None:
    return REGISTRY.get_sample_value("llmhub_operator_eventgrid_up")


def _events(outcome: str) -> float:
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("llmhub_operator_keyvault_events_total", labels) or 0.0
