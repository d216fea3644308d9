"""Gemini under callers who hang up and CLIs that get stuck (issue 18, items 2 and 3): a
caller's cancel never ends another caller's turn; a process is killed only for its own hang;
every write to a CLI is bounded, so a turn past its deadline ends within seconds whatever the
CLI does. The real pool and ACP client (and the PTY runner) drive fake_gemini."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llmhub_gateway.providers.base import ChatRequest, ProviderCrashed, ProviderTimeout, Turn
from llmhub_gateway.providers.gemini import GeminiProvider
from llmhub_gateway.providers.gemini_acp import PoolLimits
from llmhub_gateway.providers.limits import CappedProvider
from tests.gateway.conftest import RedisServer
from tests.gateway.providers.conftest import (
    collect,
    make_gemini,
    recorded_pids,
    set_mode,
    spawns,
    wait_dead,
)
from tests.gateway.providers.test_gemini_acp import turn, wait_ready
from tests.gateway.providers.test_gemini_load import ask, converse, replica, store

BIG = "x" * (1024 * 1024)  # 16 times a pipe buffer
DEADLINE_S = 2.0
SLACK_S = 6.0  # notify + cancel grace + kill, on a loaded 2-core machine


HANG_S = 1.5


def one_process(tmp_path: Path, creds: Path, hang_s: float = HANG_S) -> GeminiProvider:
    """One process for two callers (a caller's turn cannot land anywhere else)."""
    limits = PoolLimits(max_processes=1, sessions_per_process=2, hang_s=hang_s, cancel_grace_s=0.5)
    return make_gemini(tmp_path, creds, "acp", limits=limits)


@pytest.fixture
async def shared(tmp_path: Path, gemini_creds: Path) -> AsyncIterator[GeminiProvider]:
    provider = one_process(tmp_path, gemini_creds)
    yield provider
    await provider.aclose()


async def wait_active(provider: GeminiProvider, count: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        pool = provider.pool
        if pool is not None and sum(p.active for p in pool.processes) >= count:
            return
        assert time.monotonic() < deadline, "the turns never reached the process"
        await asyncio.sleep(0.02)


async def test_a_caller_hanging_up_during_session_new_leaves_the_other_callers_answer(
    tmp_path: Path, gemini_creds: Path, spawnlog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the cancelled session/new read as a hung process, and the kill ended B's
    answer with ProviderCrashed (status -15)."""
    monkeypatch.setenv("FAKE_CLI_OPEN_S", "1.0")  # session/new takes a second
    monkeypatch.setenv("FAKE_CLI_REPLY_S", "0.5")
    shared = one_process(tmp_path, gemini_creds, hang_s=10)
    try:
        await hang_up_during_open(shared, turn("caller A"), spawnlog)
        # The process still serves: A's next attempt gets its answer there.
        again = "".join(await collect(shared, turn("caller A again")))
        assert again.endswith("] caller A again")
        assert len(spawns(spawnlog)) == 1
    finally:
        await shared.aclose()


async def hang_up_during_open(provider: GeminiProvider, a: ChatRequest, spawnlog: Path) -> None:
    """B's new conversation and A's turn start together on the one process, and A hangs up
    while its session opens: B's answer completes, nothing is killed or replaced."""
    assert provider.problem() is None
    await wait_ready(provider)
    spawned = len(spawns(spawnlog))
    b_turn = asyncio.create_task(collect(provider, turn("caller B")))
    a_turn = asyncio.create_task(collect(provider, a))
    await wait_active(provider, 2)  # both opening their sessions now
    a_turn.cancel()  # A hangs up (for a load, often while its recording is read from Redis)
    with pytest.raises(asyncio.CancelledError):
        await a_turn
    assert "".join(await b_turn).endswith("] caller B")
    pool = provider.pool
    assert pool is not None
    assert [p.alive for p in pool.processes] == [True]
    assert len(spawns(spawnlog)) == spawned


async def test_a_caller_hanging_up_during_session_load_leaves_the_other_callers_answer(
    tmp_path: Path,
    gemini_creds: Path,
    redis_server: RedisServer,
    spawnlog: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A's conversation moves here from another replica (session/load), B's is new; A hangs
    up during its load: B's answer completes on the same process."""
    prefix = f"llmhub:gemini:{uuid.uuid4().hex[:8]}:"
    elsewhere = replica(tmp_path, gemini_creds, "elsewhere", store(redis_server, prefix))
    history: list[Turn] = []
    try:
        _, native, _ = await converse(elsewhere, "remember me", None, history)
    finally:
        await elsewhere.aclose()
    monkeypatch.setenv("FAKE_CLI_OPEN_S", "1.0")  # session/load and session/new take a second
    monkeypatch.setenv("FAKE_CLI_REPLY_S", "0.5")
    here = make_gemini(
        tmp_path / "here",
        gemini_creds,
        "acp",
        limits=PoolLimits(max_processes=1, sessions_per_process=2, hang_s=10),
        recordings=store(redis_server, prefix),
    )
    try:
        await hang_up_during_open(here, ask("caller A", native, history), spawnlog)
    finally:
        await here.aclose()


async def test_a_real_hang_past_the_timer_kills_the_process_and_both_get_a_clean_error(
    shared: GeminiProvider, spawnlog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_mode(monkeypatch, "hangnew")
    limited = CappedProvider(shared, max_concurrency=2, timeout_s=30)  # the timer decides, not this
    started = time.monotonic()
    results = await asyncio.gather(
        collect(limited, turn("one")), collect(limited, turn("two")), return_exceptions=True
    )
    assert time.monotonic() - started < 1.5 + SLACK_S
    for result in results:
        assert isinstance(result, ProviderCrashed), result
        assert (
            str(result) == f"gemini: the CLI stopped answering for {HANG_S:g} s; it was restarted"
        )
    await wait_dead([s["pid"] for s in spawns(spawnlog)])
    assert limited.active == 0


async def test_a_cancelled_prompt_that_ignores_its_cancel_is_left_to_the_timer_when_shared(
    tmp_path: Path, gemini_creds: Path, spawnlog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A's prompt ignores its cancel while B's turn runs on the same process: A's turn ends
    at its deadline (its slot is free), B is not killed for it; the process dies only when
    A's cancelled prompt outlives the hang timer."""
    set_mode(monkeypatch, "hang", FAKE_CLI_GOOD_TURNS="1")  # B's prompt, the first, answers
    monkeypatch.setenv("FAKE_CLI_REPLY_S", "2.5")
    shared = one_process(tmp_path, gemini_creds, hang_s=3.0)
    try:
        assert shared.problem() is None
        await wait_ready(shared)
        b = asyncio.create_task(collect(shared, turn("caller B")))
        await wait_active(shared, 1)
        limited = CappedProvider(shared, max_concurrency=1, timeout_s=1.0)
        with pytest.raises(ProviderTimeout):  # A's prompt, the second, hangs
            await collect(limited, turn("caller A"))
        assert limited.active == 0  # ended at its deadline, without waiting for the timer
        assert "".join(await b).endswith("] caller B")
        await wait_dead([s["pid"] for s in spawns(spawnlog)])  # A's prompt outlived hang_s
    finally:
        await shared.aclose()


async def test_a_cli_that_stops_reading_stdin_ends_the_turn_at_its_deadline(
    tmp_path: Path, gemini_creds: Path, spawnlog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the 1 MiB prompt blocked in drain() under the write lock, the cancel waited on
    that lock forever, and the turn outlived its deadline with its slot taken."""
    set_mode(monkeypatch, "deaf")  # reads session/new, never the prompt
    limits = PoolLimits(max_processes=1, sessions_per_process=2, cancel_grace_s=0.5)
    provider = make_gemini(tmp_path, gemini_creds, "acp", limits=limits)
    limited = CappedProvider(provider, max_concurrency=1, timeout_s=DEADLINE_S)
    try:
        started = time.monotonic()
        with pytest.raises(ProviderTimeout):
            await collect(limited, turn(BIG))
        assert time.monotonic() - started < DEADLINE_S + SLACK_S
        assert limited.active == 0  # the slot is free
        await wait_dead([s["pid"] for s in spawns(spawnlog)])
    finally:
        await provider.aclose()


async def test_a_write_the_cli_never_takes_is_a_timeout_within_the_write_bound(
    tmp_path: Path, gemini_creds: Path, spawnlog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_mode(monkeypatch, "deaf")
    limits = PoolLimits(max_processes=1, write_timeout_s=1.0)
    provider = make_gemini(tmp_path, gemini_creds, "acp", limits=limits)
    try:
        with pytest.raises(ProviderTimeout, match="stopped reading its input"):
            await collect(provider, turn(BIG))
        await wait_dead([s["pid"] for s in spawns(spawnlog)])
    finally:
        await provider.aclose()


async def test_a_one_shot_cli_that_never_reads_its_prompt_ends_at_the_deadline(
    gemini: GeminiProvider, pidfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PTY path: the prompt's stdin pipe is fed without blocking, and the kill is bounded."""
    set_mode(monkeypatch, "deaf")
    limited = CappedProvider(gemini, max_concurrency=1, timeout_s=DEADLINE_S)
    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        await collect(limited, turn(BIG))
    assert time.monotonic() - started < DEADLINE_S + SLACK_S
    assert limited.active == 0
    await wait_dead(recorded_pids(pidfile))
