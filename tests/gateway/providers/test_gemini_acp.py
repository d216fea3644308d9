"""The warm ACP runtime: the real pool and ACP client driving fake_gemini --acp."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

from llmhub_gateway.core.config import Settings
from llmhub_gateway.providers.base import (
    ChatRequest,
    NativeSession,
    ProviderBusy,
    ProviderCrashed,
    ProviderTimeout,
    Turn,
    Usage,
)
from llmhub_gateway.providers.child_memory import read_child_memory
from llmhub_gateway.providers.gemini import GeminiProvider
from llmhub_gateway.providers.gemini_acp import PoolLimits
from llmhub_gateway.providers.limits import CappedProvider
from llmhub_gateway.providers.owners import owned, owner_name
from llmhub_gateway.readiness import ReadinessCheck
from llmhub_gateway.registry import Registry
from tests.fakes.fake_gemini import words
from tests.gateway.providers.conftest import (
    FAKE_GEMINI_CREDS,
    chat,
    collect,
    collect_all,
    dead_pid,
    live_pid,
    make_gemini,
    our_zombies,
    set_mode,
    spawns,
    wait_dead,
)


def turn(prompt: str, native: str | None = None, history: tuple[Turn, ...] = ()) -> ChatRequest:
    return ChatRequest(
        prompt=prompt, model="", session_id="s-1", history=history, native_session=native
    )


def native_of(items: list[object]) -> str:
    found = [i.id for i in items if isinstance(i, NativeSession)]
    assert len(found) == 1, items
    return found[0]


def text_of(items: list[object]) -> str:
    return "".join(i for i in items if isinstance(i, str))


async def wait_ready(provider: GeminiProvider, count: int = 1, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    pool = provider.pool
    while pool is None or sum(p.ready.done() for p in pool.processes) < count:
        assert time.monotonic() < deadline, "the warm process never became ready"
        await asyncio.sleep(0.02)
        pool = provider.pool


async def test_a_continued_session_reuses_the_process_and_sends_only_the_new_message(
    gemini_acp: GeminiProvider, spawnlog: Path
) -> None:
    first = await collect_all(gemini_acp, turn("my name is Ada"))
    session = native_of(first)
    assert text_of(first).startswith("[fake-gemini model=gemini-2.5-pro acp=yes turn=1] ")
    history = (Turn("user", "my name is Ada"), Turn("assistant", text_of(first)))
    second = await collect_all(gemini_acp, turn("what is my name?", session, history))
    answer = text_of(second)
    # The same ACP session: the fake counts two user turns, and got only the new message.
    assert answer == "[fake-gemini model=gemini-2.5-pro acp=yes turn=2] what is my name?"
    assert Usage(tokens_in=words("what is my name?"), tokens_out=words(answer)) in second
    assert not any(isinstance(i, NativeSession) for i in second)  # unchanged: nothing to store
    assert len(spawns(spawnlog)) == 1  # the second turn spawned nothing


async def test_a_session_this_process_does_not_hold_is_replayed_into_a_new_one(
    gemini_acp: GeminiProvider,
) -> None:
    history = (Turn("user", "my name is Ada"), Turn("assistant", "hello Ada"))
    items = await collect_all(gemini_acp, turn("name?", "held-by-another-replica", history))
    answer = text_of(items)
    assert "acp=yes turn=1]" in answer  # a fresh session...
    assert "User: my name is Ada" in answer  # ...given the transcript
    assert answer.endswith("name?")
    assert native_of(items) != "held-by-another-replica"


async def test_a_session_that_went_on_elsewhere_is_not_continued_stale(
    gemini_acp: GeminiProvider,
) -> None:
    """Turn 1 here, turn 2 on another replica, turn 3 here again with turn 2's native id gone
    (or with this replica's old id): this process's session lacks turn 2, so it is replayed."""
    first = await collect_all(gemini_acp, turn("one"))
    old = native_of(first)
    history = (
        Turn("user", "one"),
        Turn("assistant", text_of(first)),
        Turn("user", "two, said elsewhere"),
        Turn("assistant", "answered elsewhere"),
    )
    third = text_of(await collect_all(gemini_acp, turn("three", old, history)))
    assert "acp=yes turn=1]" in third
    assert "User: two, said elsewhere" in third


async def test_a_prestarted_process_serves_the_first_session(
    gemini_acp: GeminiProvider, spawnlog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLI_STARTUP_S", "0.5")
    assert gemini_acp.problem() is None  # readiness: checks the CLI and starts the spare
    assert gemini_acp.version == "0.61.0"
    await wait_ready(gemini_acp)
    assert [s["acp"] for s in spawns(spawnlog)] == [True]
    answer = "".join(await collect(gemini_acp, turn("hello")))
    assert answer.startswith("[fake-gemini model=gemini-2.5-pro acp=yes turn=1]")
    assert len(spawns(spawnlog)) == 1


async def test_the_readiness_check_in_its_thread_still_prestarts_the_spare(
    gemini_acp: GeminiProvider, spawnlog: Path
) -> None:
    """The check runs off the loop, where no process can be started: the spare starts on the
    loop once the check passed, before any turn."""
    check = ReadinessCheck(Registry([gemini_acp], Settings()), fresh_s=60, first_wait_s=30)
    assert await check.problems() == {}
    await wait_ready(gemini_acp)
    assert [s["acp"] for s in spawns(spawnlog)] == [True]


async def test_a_killed_process_is_replaced(gemini_acp: GeminiProvider, spawnlog: Path) -> None:
    await collect(gemini_acp, turn("hello"))
    pid = spawns(spawnlog)[0]["pid"]
    os.kill(pid, signal.SIGKILL)
    await wait_dead([pid])
    answer = "".join(await collect(gemini_acp, turn("again")))
    assert answer.endswith("] again")
    assert [s["pid"] for s in spawns(spawnlog)][:1] == [pid]
    assert len(spawns(spawnlog)) == 2
    assert our_zombies() == []


async def test_a_process_killed_just_before_a_turn_costs_the_client_nothing(
    gemini_acp: GeminiProvider,
) -> None:
    """Killed right before the session's next turn (its death maybe not yet read by the
    pool): the turn runs again on another process, the conversation replayed there."""
    native = native_of(await collect_all(gemini_acp, turn("hello")))
    pool = gemini_acp.pool
    assert pool is not None
    history = (Turn("user", "hello"), Turn("assistant", "hi"))
    for i in range(5):
        [holder] = [p for p in pool.processes if native in p.sessions]
        assert holder.conn is not None
        os.kill(holder.conn.pid, signal.SIGKILL)
        items = await collect_all(gemini_acp, turn(f"again {i}", native, history))
        text = text_of(items)
        assert text.endswith(f"again {i}")
        assert "hello" in text  # replayed: the session died with its process
        native = native_of(items)
        history = (*history, Turn("user", f"again {i}"), Turn("assistant", "hi"))
    assert our_zombies() == []


async def test_a_crash_mid_answer_is_a_crash_and_leaves_no_process(
    gemini_acp: GeminiProvider, spawnlog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_mode(monkeypatch, "crash")
    with pytest.raises(ProviderCrashed, match=r"^gemini: the CLI exited with status 1$"):
        await collect(gemini_acp, turn("hello"))
    pool = gemini_acp.pool
    assert pool is not None
    assert all(p.alive for p in pool.processes)  # the dead one is gone from the pool
    await wait_dead([s["pid"] for s in spawns(spawnlog)][:1])


async def test_a_hung_turn_times_out_and_its_process_group_is_killed(
    gemini_acp: GeminiProvider, spawnlog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_mode(monkeypatch, "hang")  # never answers, ignores SIGTERM: the cancel goes unheard
    limited = CappedProvider(gemini_acp, max_concurrency=1, timeout_s=1.0)
    with pytest.raises(ProviderTimeout):
        await collect(limited, turn("hello?"))
    hung = spawns(spawnlog)[0]["pid"]
    await wait_dead([hung])
    assert our_zombies() == []
    set_mode(monkeypatch, "ok")  # a new process takes its place
    assert "".join(await collect(gemini_acp, turn("still there?"))).endswith("still there?")


async def test_processes_are_recycled_after_max_turns(
    tmp_path: Path, gemini_creds: Path, spawnlog: Path
) -> None:
    limits = PoolLimits(max_processes=1, sessions_per_process=1, max_turns=2)
    provider = make_gemini(tmp_path, gemini_creds, "acp", limits=limits)
    try:
        for n in range(3):
            await collect(provider, turn(f"turn {n}"))
        pids = [s["pid"] for s in spawns(spawnlog)]
        assert len(pids) == 2
        await wait_dead(pids[:1])  # the worn-out one was killed once idle
    finally:
        await provider.aclose()
    await wait_dead(pids)


async def test_processes_are_recycled_after_max_age(
    tmp_path: Path, gemini_creds: Path, spawnlog: Path
) -> None:
    limits = PoolLimits(max_processes=1, sessions_per_process=1, max_age_s=0.5)
    provider = make_gemini(tmp_path, gemini_creds, "acp", limits=limits)
    try:
        await collect(provider, turn("young"))
        await asyncio.sleep(0.6)
        await collect(provider, turn("old now"))
        assert len(spawns(spawnlog)) == 2
    finally:
        await provider.aclose()


async def test_graceful_shutdown_lets_a_running_turn_finish_then_kills(
    gemini_acp: GeminiProvider, spawnlog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLI_REPLY_S", "1.0")
    running = asyncio.create_task(collect(gemini_acp, turn("finish me")))
    pool = gemini_acp.pool
    while pool is None or not any(p.active for p in pool.processes):
        await asyncio.sleep(0.02)
        pool = gemini_acp.pool
    await asyncio.sleep(0.2)  # the prompt is with the CLI now
    await gemini_acp.aclose()
    assert running.done()
    assert "".join(running.result()).endswith("] finish me")
    await wait_dead([s["pid"] for s in spawns(spawnlog)])
    with pytest.raises(ProviderBusy):
        gemini_acp.admit(turn("after shutdown"))


async def test_shutdown_kills_a_turn_that_outlives_the_grace(
    tmp_path: Path, gemini_creds: Path, spawnlog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLI_REPLY_S", "30")
    limits = PoolLimits(max_processes=1, sessions_per_process=1, shutdown_grace_s=0.5)
    provider = make_gemini(tmp_path, gemini_creds, "acp", limits=limits)
    running = asyncio.create_task(collect(provider, turn("too slow")))
    await wait_ready(provider)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await provider.aclose()
    assert time.monotonic() - started < 6
    with pytest.raises(ProviderCrashed):
        await running
    await wait_dead([s["pid"] for s in spawns(spawnlog)])


async def test_each_process_has_its_own_home_and_creds_copy(
    gemini_acp: GeminiProvider, spawnlog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes at once (sessions_per_process=2, so the third concurrent turn needs a
    second process): never one creds file for two processes."""
    monkeypatch.setenv("FAKE_CLI_REPLY_S", "0.5")
    answers = await asyncio.gather(*(collect(gemini_acp, turn(f"t{n}")) for n in range(3)))
    assert all("".join(a).endswith(f"] t{n}") for n, a in enumerate(answers))
    homes = [Path(s["home"]) for s in spawns(spawnlog)]
    assert len(homes) == 2
    assert homes[0] != homes[1]
    creds = [h / ".gemini" / "oauth_creds.json" for h in homes]
    assert creds[0].stat().st_ino != creds[1].stat().st_ino
    assert all(c.read_text() == creds[0].read_text() for c in creds)
    assert str(FAKE_GEMINI_CREDS["refresh_token"]) in creds[0].read_text()


async def test_admit_refuses_before_any_stream_when_the_pool_is_full(
    tmp_path: Path, gemini_creds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLI_REPLY_S", "1.0")
    limits = PoolLimits(max_processes=1, sessions_per_process=1)
    provider = make_gemini(tmp_path, gemini_creds, "acp", limits=limits)
    try:
        first = turn("first")
        provider.admit(first)  # room: a process can be started
        running = asyncio.create_task(collect(provider, first))
        await wait_ready(provider)
        with pytest.raises(ProviderBusy) as caught:
            provider.admit(turn("second"))
        assert caught.value.retry_after is not None
        assert caught.value.retry_after > 0
        await running
        provider.admit(turn("third"))  # free again
    finally:
        await provider.aclose()


async def test_turns_admitted_together_never_overfill_the_pool(
    tmp_path: Path, gemini_creds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Admission holds a place per admitted turn until its stream starts: a burst of new
    sessions gets 429s up front, and every admitted turn then runs (none fails after its
    200 for want of a process)."""
    monkeypatch.setenv("FAKE_CLI_REPLY_S", "0.3")
    limits = PoolLimits(max_processes=2, sessions_per_process=2)
    provider = make_gemini(tmp_path, gemini_creds, "acp", limits=limits)
    try:
        requests = [turn(f"burst {i}") for i in range(6)]
        admitted, refused = [], 0
        for request in requests:  # all admitted before any stream starts, as a burst is
            try:
                provider.admit(request)
                admitted.append(request)
            except ProviderBusy:
                refused += 1
        assert (len(admitted), refused) == (4, 2)
        answers = await asyncio.gather(*(collect(provider, r) for r in admitted))
        assert ["".join(a).endswith(f"burst {i}") for i, a in enumerate(answers)] == [True] * 4
        # A withdrawn claim (the client left before its stream) frees its place at once.
        held = [turn(f"held {i}") for i in range(4)]
        for request in held:
            provider.admit(request)
        with pytest.raises(ProviderBusy):
            provider.admit(turn("one too many"))
        provider.withdraw(held[0])
        provider.admit(turn("fits again"))
    finally:
        await provider.aclose()


async def test_the_memory_budget_stops_the_pool_growing(
    tmp_path: Path, gemini_creds: Path, spawnlog: Path
) -> None:
    limits = PoolLimits(max_processes=4, memory_mb=100, process_mb=300)
    provider = make_gemini(tmp_path, gemini_creds, "acp", limits=limits)
    try:
        with pytest.raises(ProviderBusy):
            provider.admit(turn("hi"))
        with pytest.raises(ProviderBusy):
            await collect(provider, turn("hi"))
        assert spawns(spawnlog) == []
    finally:
        await provider.aclose()


async def test_processes_started_since_the_last_memory_reading_count_as_their_whole_share(
    tmp_path: Path, gemini_creds: Path, spawnlog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget reads /proc at most every ``memory_sample_s``; a process started after the
    reading counts as ``process_mb`` until the next one, so a burst never overfills it (the
    fakes hold ~15 MB each: counted by their real RSS, four would fit)."""
    monkeypatch.setenv("FAKE_CLI_REPLY_S", "1.0")
    base = read_child_memory().total_mb  # this test process's other children
    limits = PoolLimits(
        max_processes=4,
        sessions_per_process=1,
        memory_mb=int(base) + 250,
        process_mb=100,
        memory_sample_s=60,
    )
    provider = make_gemini(tmp_path, gemini_creds, "acp", limits=limits)
    try:
        first = turn("one")
        provider.admit(first)  # the reading: no process yet
        answer = asyncio.create_task(collect(provider, first))
        while not spawns(spawnlog):
            await asyncio.sleep(0.02)
        provider.admit(turn("two"))  # the spare started beside the first, or one more
        with pytest.raises(ProviderBusy):
            provider.admit(turn("three"))
        assert "".join(await answer).endswith("one")
        assert len(spawns(spawnlog)) <= 2
    finally:
        await provider.aclose()


async def test_a_cli_without_acp_falls_back_to_one_process_per_turn(
    gemini_acp: GeminiProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_mode(monkeypatch, "noacp")
    answer = "".join(await collect(gemini_acp, turn("hello")))
    assert answer == "[fake-gemini model=gemini-2.5-pro tty=yes] hello"
    assert gemini_acp.runtime == "pty"
    gemini_acp.admit(turn("no pool, no pool limit"))


async def test_a_rotated_secret_recycles_the_idle_processes(
    gemini_acp: GeminiProvider, gemini_creds: Path, spawnlog: Path
) -> None:
    await collect(gemini_acp, turn("hi"))
    gemini_creds.parent.chmod(0o755)
    gemini_creds.chmod(0o644)
    gemini_creds.write_text(gemini_creds.read_text().replace("NeverReal", "Rotated"))
    await collect(gemini_acp, turn("hi again"))
    entries = spawns(spawnlog)
    assert len(entries) >= 2
    copy = Path(entries[-1]["home"]) / ".gemini" / "oauth_creds.json"
    assert "Rotated" in copy.read_text()
    await wait_dead([entries[0]["pid"]])


async def test_chat_request_with_usage_and_native_items_in_order(
    gemini_acp: GeminiProvider,
) -> None:
    items = await collect_all(gemini_acp, chat("ping"))
    kinds = [type(i).__name__ for i in items]
    assert kinds[-2:] == ["Usage", "NativeSession"]
    assert all(k == "str" for k in kinds[:-2])


async def test_a_cancel_the_cli_acknowledges_keeps_the_process(
    gemini_acp: GeminiProvider, spawnlog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLI_REPLY_S", "5")
    assert gemini_acp.problem() is None  # the spare starts: the deadline is the prompt's only
    await wait_ready(gemini_acp)
    with pytest.raises(ProviderTimeout):
        await collect(CappedProvider(gemini_acp, max_concurrency=1, timeout_s=0.5), turn("slow"))
    pool = gemini_acp.pool
    assert pool is not None
    assert [p.active for p in pool.processes] == [0]
    assert all(p.alive for p in pool.processes)  # the process answered the cancel: kept
    assert len(spawns(spawnlog)) == 1


async def test_another_model_takes_the_place_of_an_idle_process_at_the_limit(
    tmp_path: Path, gemini_creds: Path, spawnlog: Path
) -> None:
    limits = PoolLimits(max_processes=1, sessions_per_process=2)
    provider = make_gemini(tmp_path, gemini_creds, "acp", limits=limits)
    try:
        await collect(provider, turn("pro"))
        flash = ChatRequest("flash", "gemini-2.5-flash", "s-2")
        provider.admit(flash)
        answer = "".join(await collect(provider, flash))
        assert answer.startswith("[fake-gemini model=gemini-2.5-flash acp=yes")
        pids = [s["pid"] for s in spawns(spawnlog)]
        assert len(pids) == 2
        await wait_dead(pids[:1])
    finally:
        await provider.aclose()


async def test_only_homes_of_gateways_that_are_gone_are_removed(
    tmp_path: Path, gemini_creds: Path
) -> None:
    """Another live gateway process may share GEMINI_CLI_HOME: its homes stay; a dead one's
    go; this pool's own live under its own owner directory."""
    root = tmp_path / "gemini-home" / "acp"
    with live_pid() as other:
        live = root / owner_name(other) / "proc-live" / ".gemini"
        dead = root / owner_name(dead_pid()) / "proc-dead" / ".gemini"
        for home in (live, dead):
            home.mkdir(parents=True)
            (home / "oauth_creds.json").write_text("{}")
        provider = make_gemini(tmp_path, gemini_creds, "acp")
        try:
            await collect(provider, turn("hi"))
            assert (live / "oauth_creds.json").exists()
            assert not dead.parent.parent.exists()
            mine = list(owned(root).iterdir())
            assert len(mine) == 1
            assert mine[0].name.startswith("proc-")
        finally:
            await provider.aclose()
        assert not owned(root).exists()  # its homes went with its processes


async def test_the_cli_is_run_with_acp_and_an_older_one_with_experimental_acp(
    tmp_path: Path, gemini_creds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asked once from --help; the fake refuses a flag its CLI version does not have, like the
    real one (yargs strict), so the answer proves which flag ran."""
    set_mode(monkeypatch, "settings")
    current = make_gemini(tmp_path / "new", gemini_creds, "acp")
    set_mode(monkeypatch, "oldacp")
    old = make_gemini(tmp_path / "old", gemini_creds, "acp")
    try:
        monkeypatch.setenv("FAKE_CLI_MODE", "settings")
        report = json.loads("".join(await collect(current, turn("which flag?"))))
        assert report["argv"][0] == "--acp"
        assert current.acp_flag == "--acp"
        monkeypatch.setenv("FAKE_CLI_MODE", "oldacp")
        answer = "".join(await collect(old, turn("old cli")))
        assert answer.startswith("[fake-gemini model=gemini-2.5-pro acp=yes turn=1]")
        assert old.acp_flag == "--experimental-acp"
        assert old.runtime == "acp"
    finally:
        await current.aclose()
        await old.aclose()
