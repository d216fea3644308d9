"""Which passes may reuse the last Key Vault read: a repair may, a pass an event asked for never
(its acknowledgement promises the Secret holds what Key Vault holds now)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from llmhub_operator.leader import Leadership
from llmhub_operator.reconcile import Outcome
from llmhub_operator.scheduler import Key, Scheduler

KEY: Key = ("ns", "p0")
BODY = {"metadata": {"namespace": "ns", "name": "p0", "generation": 1, "resourceVersion": "1"}}


async def _passes(steps: list[str]) -> list[bool]:
    """The ``reuse_fetch`` of every pass after the first, when ``steps`` happen while the
    first pass runs ("event": ``sync_now``; "repair": a managed object drifted)."""
    reused: list[bool] = []
    first_running, release = asyncio.Event(), asyncio.Event()

    async def sync(key: Key, body: Mapping[str, Any], reuse: bool) -> Outcome:
        reused.append(reuse)
        if len(reused) == 1:
            first_running.set()
            await release.wait()
        return Outcome(None, "ok")

    leadership = Leadership()
    scheduler = Scheduler(sync, leadership)
    scheduler.observe(BODY)
    leadership.gained()
    runner = asyncio.create_task(scheduler.run())
    try:
        await asyncio.wait_for(first_running.wait(), 5)
        waiters = []
        for step in steps:
            if step == "event":
                waiter = scheduler.sync_now(KEY)
                assert waiter is not None
                waiters.append(waiter)
            else:
                scheduler.repair(KEY)
        release.set()
        await asyncio.wait_for(asyncio.gather(*waiters), 5)
        for _ in range(250):  # the pass the steps scheduled (no waiter for a repair)
            if len(reused) > 1:
                break
            await asyncio.sleep(0.02)
        return reused[1:]
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_a_repair_after_an_event_still_reads_key_vault() -> None:
    assert await _passes(["event", "repair"]) == [False]


async def test_a_repair_alone_reuses_the_last_read() -> None:
    assert await _passes(["repair"]) == [True]
