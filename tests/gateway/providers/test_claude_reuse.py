"""New conversations on warm CLIs: an idle CLI that served another conversation is reset with
the CLI's own ``/clear`` and serves the new one, with nothing of the old one left in it.

The fake CLI runs ``/clear`` as strictly as the real one (only unmarked, a new session id, an
empty result, the conversation forgotten) and, with FAKE_CLI_ECHO_CONTEXT=1, echoes every user
message its conversation holds: a leak from caller A to caller B shows in B's answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import (
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ConversationResetMessage,
    ResultMessage,
    SystemMessage,
)

from llmhub_gateway.providers.base import ChatRequest, ProviderError, Turn
from llmhub_gateway.providers.claude import ClaudeProvider
from tests.gateway.providers.conftest import FAKE_CLAUDE, chat, claude_provider, collect

SECRET = "Ada's locker code is 4711"


def turns(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def new_chat(prompt: str, caller: str, *, system: str | None = None) -> ChatRequest:
    return ChatRequest(prompt=prompt, model="", session_id=caller, system=system)


@pytest.fixture
def turns_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "turns.jsonl"
    monkeypatch.setenv("FAKE_CLI_TURNS_FILE", str(path))
    monkeypatch.setenv("FAKE_CLI_ECHO_CONTEXT", "1")
    return path


@pytest.fixture
async def pooled(tmp_path: Path, turns_file: Path) -> AsyncIterator[ClaudeProvider]:
    provider = claude_provider(tmp_path)  # no pre-started spare: only the tests' own CLIs
    yield provider
    await provider.aclose()


async def test_the_fake_clears_only_an_unmarked_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the bundled CLI does: a reset message, a new init under a new session id, an empty
    successful result, and the next answer remembers nothing from before."""
    monkeypatch.setenv("FAKE_CLI_ECHO_CONTEXT", "1")
    options = ClaudeAgentOptions(cli_path=FAKE_CLAUDE, cwd=tmp_path)
    async with ClaudeSDKClient(options) as client:
        await client.query(SECRET)
        before = [m async for m in client.receive_response()]
        await client.query("/clear")
        cleared = [m async for m in client.receive_response()]
        await client.query("what do you remember?")
        after = [m async for m in client.receive_response()]
    (reset,) = [m for m in cleared if isinstance(m, ConversationResetMessage)]
    (init,) = [m for m in cleared if isinstance(m, SystemMessage) and m.subtype == "init"]
    result = cleared[-1]
    assert isinstance(result, ResultMessage)
    assert not result.is_error
    assert result.result == ""
    old = before[-1]
    assert isinstance(old, ResultMessage)
    assert SECRET in (old.result or "")
    assert reset.session_id == old.session_id
    assert init.data["session_id"] == result.session_id != old.session_id
    answer = after[-1]
    assert isinstance(answer, ResultMessage)
    assert "4711" not in (answer.result or "")
    assert answer.result is not None
    assert answer.result.endswith("context=[] what do you remember?")


async def test_a_callers_clear_reaches_the_model_as_text(
    pooled: ClaudeProvider, turns_file: Path
) -> None:
    await collect(pooled, new_chat(SECRET, "a"))
    text = "".join(await collect(pooled, new_chat("/clear", "b")))
    assert text.endswith("] context=[] /clear")  # answered as words, not run as a command
    assert [t["prompt"] for t in turns(turns_file)] == [SECRET, "/clear"]


async def test_caller_b_gets_a_cleared_cli_and_never_sees_caller_a(
    pooled: ClaudeProvider, turns_file: Path
) -> None:
    a = "".join(await collect(pooled, new_chat(SECRET, "a")))
    assert "4711" in a  # the fake does echo its context
    (cli,) = pooled.pool.processes
    b = "".join(await collect(pooled, new_chat("what do you know?", "b")))
    assert "4711" not in b
    assert "Ada" not in b
    assert b.endswith("] context=[] what do you know?")
    assert pooled.pool.processes == [cli]  # one CLI served both, reset in between
    first, second = turns(turns_file)
    assert first["pid"] == second["pid"]
    assert first["session"] != second["session"]


async def test_a_cli_is_never_shared_by_two_conversations_at_once(
    pooled: ClaudeProvider, turns_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await collect(pooled, new_chat(SECRET, "a"))  # one warm CLI that held A
    monkeypatch.setenv("FAKE_CLI_REPLY_S", "0.3")  # new CLIs answer slowly: turns overlap
    answers = await asyncio.gather(
        *(collect(pooled, new_chat(f"caller {n} here", f"c{n}")) for n in range(3))
    )
    for n, parts in enumerate(answers):
        assert "".join(parts).endswith(f"] context=[] caller {n} here")
    later = turns(turns_file)[1:]
    assert len({t["pid"] for t in later}) == 3  # three turns at once, three CLIs


async def test_a_cli_is_reused_only_for_the_same_system_prompt(
    pooled: ClaudeProvider, turns_file: Path
) -> None:
    await collect(pooled, new_chat(SECRET, "a", system="you are terse"))
    await collect(pooled, new_chat("hello", "b", system="you are verbose"))
    await collect(pooled, new_chat("hi again", "c", system="you are terse"))
    one, two, three = turns(turns_file)
    assert two["pid"] != one["pid"]
    assert two["system"] == "you are verbose"
    assert three["pid"] == one["pid"]
    assert three["system"] == "you are terse"
    assert three["session"] != one["session"]


async def test_a_cli_that_does_not_reset_is_replaced(
    pooled: ClaudeProvider, turns_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI whose ``/clear`` fails (here: it crashes on it) is dropped; the new
    conversation gets a new CLI and still sees nothing of the old one."""
    mode = tmp_path / "mode"
    monkeypatch.setenv("FAKE_CLI_MODE_FILE", str(mode))
    await collect(pooled, new_chat(SECRET, "a"))
    (old,) = pooled.pool.processes
    mode.write_text("crash-on-clear")
    monkeypatch.setenv("FAKE_CLI_MODE", "ok")
    text = "".join(await collect(pooled, chat("fresh start")))
    assert text.endswith("] context=[] fresh start")
    assert old not in pooled.pool.processes
    first, second = turns(turns_file)
    assert first["pid"] != second["pid"]


async def test_a_cli_whose_session_moved_is_reused_before_a_live_sessions_cli(
    pooled: ClaudeProvider, turns_file: Path
) -> None:
    """A's CLI is the least recently used, but B's session moved on elsewhere (its CLI here
    missed a turn): a new conversation takes B's CLI and leaves A's session warm."""
    await asyncio.gather(  # two CLIs: the turns overlap
        collect(pooled, new_chat("I am A", "a")), collect(pooled, new_chat("I am B", "b"))
    )
    by_prompt = {t["prompt"]: t for t in turns(turns_file)}
    b_pid = by_prompt["I am B"]["pid"]
    (b_cli,) = [p for p in pooled.pool.processes if p.pid == b_pid]
    b_cli.last_used = time.monotonic()  # B's CLI served last: A's is the least recent
    moved = ChatRequest(
        prompt="next",
        model="",
        session_id="b",
        history=(Turn("user", "x"),) * 4,  # more turns than B's CLI saw
        native_session=b_cli.session,
    )
    assert pooled.pool.session_process(moved, b_cli.key) is None
    assert b_cli.session is None  # forgotten, still running
    await collect(pooled, new_chat("I am C", "c"))
    assert turns(turns_file)[-1]["pid"] == b_pid


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.02)


async def test_a_conversation_that_ends_with_its_turn_is_cleared_before_the_next_caller(
    pooled: ClaudeProvider, turns_file: Path
) -> None:
    """An OpenAI request's conversation ends with its turn: its CLI is reset right after it,
    with no caller waiting, so the next new conversation starts on a clean CLI at once. A
    session's CLI keeps its conversation for the session's next turn."""
    await collect(pooled, replace(new_chat(SECRET, "a"), stateless=True))
    (cli,) = pooled.pool.processes
    await until(lambda: cli.clean)  # nobody asked for a CLI: the reset ran by itself
    assert cli.session is None
    assert not cli.busy
    b = "".join(await collect(pooled, new_chat("what do you know?", "b")))
    assert "4711" not in b
    assert b.endswith("] context=[] what do you know?")
    assert pooled.pool.processes == [cli]
    first, second = turns(turns_file)
    assert first["pid"] == second["pid"]
    assert first["session"] != second["session"]
    await asyncio.sleep(0.2)  # B's session continues: its CLI keeps the conversation
    assert not cli.clean
    assert cli.session == second["session"]


async def test_a_cli_that_fails_its_reset_after_the_turn_is_never_reused(
    pooled: ClaudeProvider, turns_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mode = tmp_path / "mode"
    monkeypatch.setenv("FAKE_CLI_MODE_FILE", str(mode))
    mode.write_text("crash-on-clear")  # answers, then exits on the reset after the turn
    await collect(pooled, replace(new_chat(SECRET, "a"), stateless=True))
    (old,) = pooled.pool.processes
    await until(lambda: not old.alive())
    mode.write_text("ok")
    text = "".join(await collect(pooled, new_chat("fresh start", "b")))
    assert text.endswith("] context=[] fresh start")
    assert old not in pooled.pool.processes
    first, second = turns(turns_file)
    assert first["pid"] != second["pid"]


async def test_a_reset_of_a_cli_whose_worker_stopped_fails_at_once(
    pooled: ClaudeProvider, turns_file: Path
) -> None:
    """A CLI that died fails its reset, and every later one, instead of waiting forever for
    an answer nobody will send."""
    await collect(pooled, new_chat(SECRET, "a"))
    (cli,) = pooled.pool.processes
    assert cli.pid is not None
    os.kill(cli.pid, signal.SIGKILL)
    for _ in range(2):
        with pytest.raises(ProviderError):
            await asyncio.wait_for(cli.reset(), 10)
    assert not cli.alive()
