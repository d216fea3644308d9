"""The warm runtime: pooled CLIs reused across turns, pre-started for new sessions, replaced
when they crash or hang, recycled at their limits, drained at shutdown, bounded by the budget.

The fake CLI logs each start (FAKE_CLI_SPAWN_LOG) and each turn it answers (FAKE_CLI_TURNS_FILE),
so the tests count processes and see exactly what text each one received.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from llmhub_gateway.providers import procs
from llmhub_gateway.providers.base import (
    ChatRequest,
    NativeSession,
    ProviderBusy,
    ProviderCrashed,
    ProviderTimeout,
    StreamItem,
    Turn,
)
from llmhub_gateway.providers.child_memory import read_child_memory
from llmhub_gateway.providers.claude import ClaudePoolLimits, ClaudeProvider
from llmhub_gateway.providers.claude_items import parse_handle
from llmhub_gateway.providers.limits import CappedProvider
from tests.gateway.providers.conftest import chat, claude_provider, collect, collect_all


class Fake:
    """The fake CLI's logs: processes started and turns answered."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.spawn_log = tmp_path / "spawns.jsonl"
        self.turns_file = tmp_path / "turns.jsonl"
        self.mode_file = tmp_path / "mode"
        monkeypatch.setenv("FAKE_CLI_SPAWN_LOG", str(self.spawn_log))
        monkeypatch.setenv("FAKE_CLI_TURNS_FILE", str(self.turns_file))
        monkeypatch.setenv("FAKE_CLI_MODE_FILE", str(self.mode_file))

    @staticmethod
    def _lines(path: Path) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def spawns(self) -> list[dict[str, Any]]:
        return self._lines(self.spawn_log)

    def turns(self) -> list[dict[str, Any]]:
        return self._lines(self.turns_file)

    def mode(self, mode: str) -> None:
        self.mode_file.write_text(mode)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    return Fake(tmp_path, monkeypatch)


@pytest.fixture
async def pooled(tmp_path: Path) -> AsyncIterator[ClaudeProvider]:
    """A warm pool without a pre-started spare (each test counts only its own turns' CLIs)."""
    provider = claude_provider(tmp_path, pool=ClaudePoolLimits(idle=0))
    yield provider
    await provider.aclose()


async def turn(provider: Any, request: ChatRequest) -> tuple[str, str | None]:
    """The answer's text and the CLI session id the stream reported (if any)."""
    items: list[StreamItem] = await collect_all(provider, request)
    native = [i.id for i in items if isinstance(i, NativeSession)]
    return "".join(i for i in items if isinstance(i, str)), (native[-1] if native else None)


def follow_up(prompt: str, native: str | None, *previous: str) -> ChatRequest:
    """The next turn of a session: ``previous`` alternates user and assistant texts."""
    history = [Turn("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(previous)]
    return ChatRequest(
        prompt=prompt, model="", session_id="s-1", history=tuple(history), native_session=native
    )


async def test_a_second_turn_of_a_session_reuses_its_cli(
    pooled: ClaudeProvider, fake: Fake
) -> None:
    first, native = await turn(pooled, chat("my name is Ada"))
    assert native is not None
    second, again = await turn(
        pooled, follow_up("what is my name?", native, "my name is Ada", first)
    )
    assert second.endswith("] what is my name?")
    # The same CLI session; the handle's tail moved to this turn's last transcript entry.
    assert again is not None
    assert again != native
    assert parse_handle(again)[0] == parse_handle(native)[0]
    assert len(fake.spawns()) == 1
    one, two = fake.turns()
    assert one["pid"] == two["pid"]
    assert two["prompt"] == "what is my name?"  # only the new message, no replayed transcript


async def test_a_prestarted_cli_serves_a_new_session_without_startup(
    tmp_path: Path, fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLI_STARTUP_S", "2.0")
    provider = claude_provider(tmp_path, pool=ClaudePoolLimits(idle=1))
    try:
        await provider.start()
        await provider.started()
        spare = provider.pool.processes[0]
        await asyncio.wait_for(spare.ready.wait(), 10)
        asked = time.time()
        started = time.monotonic()
        text = "".join(await collect(provider, chat("hello")))
        assert time.monotonic() - started < 1.5  # the fake's 2 s start-up was paid earlier
        assert text.endswith("] hello")
        (answered,) = fake.turns()
        first_spawn = fake.spawns()[0]
        assert answered["pid"] == first_spawn["pid"]
        assert first_spawn["time"] < asked
        # A new spare replaces the one taken.
        assert len(provider.pool.processes) == 2
    finally:
        await provider.aclose()


async def test_a_cli_that_died_between_turns_is_replaced_and_the_history_replayed(
    pooled: ClaudeProvider, fake: Fake
) -> None:
    first, native = await turn(pooled, chat("remember: blue"))
    pid = fake.spawns()[0]["pid"]
    os.kill(pid, signal.SIGKILL)
    await wait_until_dead(pid)
    second, _ = await turn(pooled, follow_up("which colour?", native, "remember: blue", first))
    assert second.endswith("which colour?")
    assert "User: remember: blue" in second  # no store here: the transcript was replayed
    assert [s["pid"] for s in fake.spawns()][1] != pid


async def test_a_hung_turn_is_killed_and_the_next_turn_gets_a_fresh_cli(
    pooled: ClaudeProvider, fake: Fake
) -> None:
    fake.mode("hang")
    limited = CappedProvider(pooled, max_concurrency=1, timeout_s=1.0)
    with pytest.raises(ProviderTimeout):
        await collect(limited, chat("hello?"))
    hung = fake.spawns()[0]["pid"]
    assert not procs.running(hung)
    assert pooled.pool.processes == []
    fake.mode("ok")
    assert "".join(await collect(limited, chat("again"))).endswith("] again")
    assert fake.turns()[-1]["pid"] != hung


async def test_a_crash_mid_turn_fails_that_turn_only(pooled: ClaudeProvider, fake: Fake) -> None:
    fake.mode("crash")
    with pytest.raises(ProviderCrashed):
        await collect(pooled, chat("hello"))
    fake.mode("ok")
    assert "".join(await collect(pooled, chat("hello again"))).endswith("] hello again")
    assert len(fake.spawns()) == 2
    assert not procs.running(fake.spawns()[0]["pid"])


async def test_a_cli_is_recycled_after_its_turn_limit(tmp_path: Path, fake: Fake) -> None:
    provider = claude_provider(tmp_path, pool=ClaudePoolLimits(idle=0, max_turns=2))
    try:
        history: list[str] = []
        native: str | None = None
        for prompt in ("one", "two", "three"):
            text, reported = await turn(provider, follow_up(prompt, native, *history))
            native = reported or native
            history += [prompt, text]
        pids = [t["pid"] for t in fake.turns()]
        assert pids[0] == pids[1] != pids[2]
        assert not procs.running(pids[0])
    finally:
        await provider.aclose()


async def test_a_cli_is_recycled_after_its_age_and_memory_limits(
    tmp_path: Path, fake: Fake
) -> None:
    for limits in (ClaudePoolLimits(idle=0, max_age_s=0.5), ClaudePoolLimits(idle=0, max_rss_mb=1)):
        provider = claude_provider(tmp_path, pool=limits)
        try:
            first, native = await turn(provider, chat("one"))
            await asyncio.sleep(0.6)
            await turn(provider, follow_up("two", native, "one", first))
        finally:
            await provider.aclose()
    pids = [t["pid"] for t in fake.turns()]
    assert len(set(pids)) == 4  # every second turn ran on a new CLI


async def test_shutdown_lets_the_turn_in_flight_finish_then_stops_every_cli(
    tmp_path: Path, fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLI_REPLY_S", "1.0")
    provider = claude_provider(tmp_path, pool=ClaudePoolLimits(idle=1), shutdown_grace_s=5.0)
    await provider.start()
    await provider.started()
    answer = asyncio.create_task(collect(provider, chat("finish me")))
    while not fake.turns():
        await asyncio.sleep(0.02)
    await provider.aclose()
    assert answer.done()
    assert "".join(answer.result()).endswith("] finish me")
    pids = [s["pid"] for s in fake.spawns()]
    assert len(pids) == 2  # the one that answered and the spare started after it was taken
    assert not any(procs.running(p) for p in pids)
    assert list((tmp_path / "claude-scratch").glob("*")) == []


async def test_shutdown_kills_a_turn_that_outlives_the_grace(tmp_path: Path, fake: Fake) -> None:
    fake.mode("hang")
    provider = claude_provider(tmp_path, pool=ClaudePoolLimits(idle=0), shutdown_grace_s=0.5)
    answer = asyncio.create_task(collect(provider, chat("never")))
    while not fake.turns():
        await asyncio.sleep(0.02)
    started = time.monotonic()
    await provider.aclose()
    assert time.monotonic() - started < 8
    with pytest.raises(ProviderCrashed):
        await answer
    assert not procs.running(fake.spawns()[0]["pid"])


async def test_at_capacity_admission_refuses_before_anything_starts(
    tmp_path: Path, fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLI_REPLY_S", "0.8")
    provider = claude_provider(tmp_path, pool=ClaudePoolLimits(idle=0, max_processes=1))
    try:
        busy = asyncio.create_task(collect(provider, chat("first")))
        while not fake.turns():
            await asyncio.sleep(0.02)
        with pytest.raises(ProviderBusy) as refused:
            provider.admit(chat("second"))
        assert refused.value.retry_after
        with pytest.raises(ProviderBusy):  # the per-pod cap's wrapper passes the hook on
            CappedProvider(provider, max_concurrency=4, timeout_s=5).admit(chat("second"))
        with pytest.raises(ProviderBusy):
            await collect(provider, chat("second"))
        assert len(fake.spawns()) == 1  # nothing was started for the refused turns
        await busy
        third = chat("third")
        provider.admit(third)  # the idle CLI of the first session may be evicted now
        assert "".join(await collect(provider, third)).endswith("] third")
        assert len(provider.pool.processes) == 1
    finally:
        await provider.aclose()


async def test_a_turn_with_other_options_never_reuses_a_bound_cli(
    pooled: ClaudeProvider, fake: Fake
) -> None:
    first, native = await turn(pooled, chat("hi"))
    request = follow_up("again", native, "hi", first)
    other = ChatRequest(**{**_fields(request), "system": "be terse"})
    await turn(pooled, other)
    assert len(fake.spawns()) == 2
    assert "--system-prompt-file" in fake.spawns()[1]["argv"]


def _fields(request: ChatRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in request.__slots__}


async def wait_until_dead(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while procs.running(pid):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_a_spare_that_died_is_replaced_without_traffic(tmp_path: Path, fake: Fake) -> None:
    provider = claude_provider(tmp_path, pool=ClaudePoolLimits(idle=1, check_s=0.1))
    try:
        await provider.start()
        await provider.started()
        await asyncio.wait_for(provider.pool.processes[0].ready.wait(), 10)
        first = fake.spawns()[0]["pid"]
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while len(fake.spawns()) < 2:
            assert time.monotonic() < deadline, "no replacement spare"
            await asyncio.sleep(0.05)
        (spare,) = provider.pool.processes
        await asyncio.wait_for(spare.ready.wait(), 10)
        assert spare.pid == fake.spawns()[1]["pid"] != first
        assert spare.alive()
    finally:
        await provider.aclose()


async def test_spares_that_fail_to_start_are_not_restarted_in_a_loop(
    tmp_path: Path, fake: Fake
) -> None:
    broken = tmp_path / "broken-claude"
    log = tmp_path / "broken-starts"
    broken.write_text(f"#!/bin/sh\necho start >> {log}\nexit 1\n")
    broken.chmod(0o755)
    provider = claude_provider(
        tmp_path, cli_path=str(broken), pool=ClaudePoolLimits(idle=1, check_s=0.05)
    )
    try:
        provider.pool.start()
        await asyncio.sleep(1.0)  # twenty checks
        assert log.read_text().count("start") == 1
    finally:
        await provider.aclose()


HOG = "import sys, time; b = bytearray(400 * 2**20); print('x', flush=True); time.sleep(60)"


async def test_the_memory_budget_counts_every_cli_child_of_the_gateway(
    tmp_path: Path, fake: Fake
) -> None:
    """The budget is the replica's, shared with the other provider's CLIs: a child of the
    gateway that holds memory (as a Gemini CLI would) leaves no room for another Claude CLI."""
    base = procs.children_rss_mb()  # this test process's other children (redis-server, ...)
    hog = subprocess.Popen(
        [sys.executable, "-c", HOG],
        stdout=subprocess.PIPE,
    )
    try:
        assert hog.stdout is not None
        hog.stdout.readline()  # its memory is resident now
        assert procs.children_rss_mb() >= base + 350  # (others may come and go: wide margins)
        limits = ClaudePoolLimits(idle=1, max_processes=4, max_rss_mb=50, memory_mb=base + 300)
        provider = claude_provider(tmp_path, pool=limits)
        try:
            await provider.start()
            await provider.started()
            await asyncio.sleep(0.3)
            assert fake.spawns() == []  # no spare: the budget is taken by the other child
            with pytest.raises(ProviderBusy):
                provider.admit(chat("first"))
        finally:
            await provider.aclose()
        roomy = claude_provider(tmp_path, pool=dataclasses.replace(limits, memory_mb=base + 1500))
        try:
            assert "".join(await collect(roomy, chat("first"))).endswith("] first")
        finally:
            await roomy.aclose()
    finally:
        hog.kill()
        hog.wait()


async def test_clis_started_since_the_last_memory_reading_count_as_their_whole_share(
    tmp_path: Path, fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget reads /proc at most every ``memory_sample_s``; a CLI started after the
    reading counts as ``max_rss_mb`` until the next one, so a burst never overfills it."""
    monkeypatch.setenv("FAKE_CLI_REPLY_S", "0.8")
    base = read_child_memory().total_mb  # this test process's other children
    limits = ClaudePoolLimits(
        idle=0, max_processes=4, max_rss_mb=100, memory_mb=base + 250, memory_sample_s=60
    )
    provider = claude_provider(tmp_path, pool=limits)
    try:
        first, second = chat("one"), chat("two")
        provider.admit(first)  # the reading: no CLI yet
        provider.admit(second)
        answers = asyncio.gather(collect(provider, first), collect(provider, second))
        while len(fake.turns()) < 2:
            await asyncio.sleep(0.02)
        # Two CLIs started since the reading (the fakes hold ~13 MB each): with a third one
        # the reading plus 3 x 100 MB is over the budget.
        with pytest.raises(ProviderBusy):
            provider.admit(chat("three"))
        one, two = await answers
        assert "".join(one).endswith("] one")
        assert "".join(two).endswith("] two")
        assert len(fake.spawns()) == 2
    finally:
        await provider.aclose()
