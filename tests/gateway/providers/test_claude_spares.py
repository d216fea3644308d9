"""Spares sized by demand: rate of new conversations * start-up time (Little's law), at least
CLAUDE_POOL_IDLE, within the budget, and fewer again when demand drops."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmhub_gateway.providers.claude import ClaudePoolLimits, ClaudeProvider
from llmhub_gateway.providers.demand import Demand
from tests.gateway.providers.conftest import chat, claude_provider, collect
from tests.gateway.providers.test_admission_claims import Clock
from tests.waiting import eventually


def test_little_law_over_a_sliding_window() -> None:
    clock = Clock()
    demand = Demand(10.0, clock=clock)
    assert demand.spares(1) == 1  # no start-up seen yet: the floor
    demand.started(1.5)
    for _ in range(20):  # 2 new conversations per second
        clock.now += 0.5
        demand.arrived()
    assert demand.rate() == pytest.approx(2.0)
    assert demand.spares(0) == 3  # 2/s * 1.5 s
    assert demand.spares(5) == 5  # never below the floor
    demand.started(3.5)  # slower start-ups (moving average): more spares
    assert demand.startup_s == pytest.approx(2.1)
    assert demand.spares(0) == 4
    clock.now += 10.0  # demand dropped: the window is empty
    assert demand.rate() == 0.0
    assert demand.spares(0) == 0


def spares(provider: ClaudeProvider) -> int:
    """Clean idle CLIs for the default model (the spares)."""
    return sum(1 for p in provider.pool.processes if p.clean and not p.busy)


async def test_spares_follow_new_conversations_and_shrink_when_they_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLI_STARTUP_S", "0.5")
    limits = ClaudePoolLimits(idle=0, demand_window_s=2.0, check_s=0.1, max_processes=6)
    provider = claude_provider(tmp_path, pool=limits)
    try:
        await provider.start()
        await provider.started()
        assert provider.pool.processes == []  # no demand, no floor: nothing pre-started
        for n in range(4):  # bursts of 3 new conversations at once: rate * 0.5 s >= 1
            await asyncio.gather(*(collect(provider, chat(f"hello {n} {i}")) for i in range(3)))
        demand = provider.pool.demand
        assert demand.startup_s is not None
        assert demand.startup_s >= 0.5
        assert demand.spares(0) >= 1

        async def count() -> int:
            return spares(provider)

        await eventually(count, lambda n: n >= 1, timeout=10)
        # Demand stops: after the window the surplus spares are stopped again.
        await eventually(count, lambda n: n == 0, timeout=10)
        assert demand.spares(0) == 0
    finally:
        await provider.aclose()
