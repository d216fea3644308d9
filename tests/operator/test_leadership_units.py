"""Losing the lead stops every sync in flight; a background task that dies stops the operator."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from llmhub_operator.leader import Leadership
from llmhub_operator.reconcile import Outcome
from llmhub_operator.scheduler import Key, Scheduler
from llmhub_operator.supervisor import Supervisor

BODY = {"metadata": {"namespace": "ns", "name": "p0", "generation": 1, "resourceVersion": "1"}}


async def test_a_lost_lead_cancels_the_sync_in_flight_before_lost_returns() -> None:
    started, calls, stopped = asyncio.Event(), list[Key](), list[Key]()

    async def sync(key: Key, body: Mapping[str, Any], reuse: bool) -> Outcome:
        calls.append(key)
        started.set()
        try:
            await asyncio.sleep(3600)  # e.g. a Secret write that hangs
        finally:
            stopped.append(key)
        return Outcome(None, "unreachable")

    leadership = Leadership()
    scheduler = Scheduler(sync, leadership)
    leadership.on_lost(scheduler.cancel_inflight)
    scheduler.observe(BODY)
    leadership.gained()
    runner = asyncio.create_task(scheduler.run())
    try:
        await asyncio.wait_for(started.wait(), 5)
        await leadership.lost()
        assert stopped == [("ns", "p0")]  # stopped before lost() returned
        await asyncio.sleep(0.3)
        assert len(calls) == 1  # nothing runs while following

        # Leading again: what was cancelled is due at once.
        started.clear()
        leadership.gained()
        await asyncio.wait_for(started.wait(), 5)
        assert len(calls) == 2
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_a_background_task_that_dies_stops_the_operator_naming_it() -> None:
    supervisor = Supervisor()

    async def forever() -> None:
        await asyncio.Event().wait()

    async def dies() -> None:
        raise RuntimeError("elector bug")

    supervisor.spawn(forever(), name="scheduler")
    supervisor.spawn(dies(), name="leader-election")
    await asyncio.wait_for(supervisor.stop.wait(), 5)
    assert supervisor.failed == "leader-election"
    await supervisor.close()


async def test_a_task_that_returns_is_a_failure_too_but_shutdown_is_not() -> None:
    supervisor = Supervisor()

    async def returns() -> None:
        return None

    supervisor.spawn(returns(), name="secrets")
    await asyncio.wait_for(supervisor.stop.wait(), 5)
    assert supervisor.failed == "secrets"

    calm = Supervisor()
    calm.spawn(asyncio.Event().wait(), name="scheduler")  # type: ignore[arg-type]
    await calm.close()  # cancelled by the shutdown: expected
    assert (calm.failed, calm.stop.is_set()) == (None, False)
