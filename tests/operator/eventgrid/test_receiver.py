"""KeyVaultEvents with the real SDK against the stand-in namespace, on a real Scheduler whose
sync is a recorder: only a leader receives; transient failures release, successes acknowledge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from llmhub_operator.access_policy import AccessPolicy
from llmhub_operator.keyvault_events import EventGridSettings, KeyVaultEvents
from llmhub_operator.leader import Leadership
from llmhub_operator.reconcile import Outcome
from llmhub_operator.scheduler import Key, Scheduler
from tests.fakes.fake_azure import FakeAzure
from tests.fakes.fake_eventgrid import FakeEventGrid
from tests.operator.kopf_harness import _const, provider_body
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
    leadership, recorder = Leadership(), Recorder()
    scheduler = Scheduler(recorder, leadership)
    body = provider_body("p", "ns", refreshInterval="1h")
    body["spec"]["source"]["azureKeyVault"] = {
        "vaultUrl": fake_azure.base_url,
        "secretName": "rcv-token",
    }
    body["metadata"]["uid"] = "u1"
    scheduler.observe(body)
    settings = EventGridSettings(**_settings(eventgrid))
    events = KeyVaultEvents(settings, scheduler, leadership, AccessPolicy.from_env())
    tasks = [asyncio.create_task(scheduler.run()), asyncio.create_task(events.run())]
    try:
        yield leadership, recorder, scheduler
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

    recorder.transient = 2  # the first (start-up) pass and the event's pass fail: released
    leadership.gained()
    event = eventgrid.published[-1]
    await eventually(_const(eventgrid), lambda g: event in g.settled("release"), timeout=15)
    await eventually(_const(eventgrid), lambda g: event in g.settled("acknowledge"), timeout=15)
    assert eventgrid.settled("receive").count(event) == 2
    assert eventgrid.pending() == 0


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
