"""The real Gemini CLI 0.61 in ACP mode, offline, through our ACP client: its handshake and
session shapes are the fake's, it runs ``/about`` as a command, and the gateway's guard sends
the same text to the model instead; it loads a chat recording put where the pool puts it, and
both refuse an unknown one alike.

Offline, OAuth cannot start (the CLI's login would read stdin), so the real CLI runs with API-key
auth and a fake key: initialize, session/new and local commands need no network.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from llmhub_gateway.providers.acp_client import AcpConnection, AcpError
from llmhub_gateway.providers.gemini import GeminiProvider
from llmhub_gateway.providers.gemini_acp import ACP_PROTOCOL_VERSION, argv_for
from llmhub_gateway.providers.gemini_recordings import (
    Recording,
    claim_project,
    history_answers,
    restore,
)
from llmhub_gateway.providers.prompt_text import command_safe_blocks
from tests.fakes.fake_gemini import HELP_ACP, HELP_EXPERIMENTAL_ACP
from tests.gateway.providers.conftest import FAKE_GEMINI, REAL_GEMINI

pytestmark = pytest.mark.slow
MODEL = "gemini-2.5-pro"
INIT = {
    "protocolVersion": ACP_PROTOCOL_VERSION,
    "clientCapabilities": {"fs": {"readTextFile": False, "writeTextFile": False}},
}


@pytest.fixture
async def real(tmp_path: Path) -> AsyncIterator[AcpConnection]:
    assert REAL_GEMINI.exists(), "run scripts/bootstrap.sh to install the pinned gemini CLI"
    home = tmp_path / "real"
    (home / ".gemini").mkdir(parents=True)
    (home / "work").mkdir()
    settings = {"security": {"auth": {"selectedType": "gemini-api-key"}}, "tools": {"core": []}}
    settings["privacy"] = {"usageStatisticsEnabled": False}
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "GEMINI_CLI_HOME": str(home)}
    env |= {"GEMINI_API_KEY": "fake-key-offline", "NO_COLOR": "1"}
    conn = await AcpConnection.start(argv_for(str(REAL_GEMINI), MODEL), env=env, cwd=home / "work")
    yield conn
    await conn.close()


@pytest.fixture
async def fake(tmp_path: Path, gemini_creds: Path) -> AsyncIterator[AcpConnection]:
    provider = GeminiProvider(
        auth_path=gemini_creds, default_model=MODEL, cli_path=str(FAKE_GEMINI), cli_home=tmp_path
    )
    home = tmp_path / "fake"
    provider.prepare_home(home)
    (home / "work").mkdir()
    env = provider.cli_env(home)
    conn = await AcpConnection.start(argv_for(str(FAKE_GEMINI), MODEL), env=env, cwd=home / "work")
    yield conn
    await conn.close()


async def _new_session(conn: AcpConnection, tmp_path: Path) -> dict[str, Any]:
    await asyncio.wait_for(conn.request("initialize", INIT), 60)
    result = await asyncio.wait_for(
        conn.request("session/new", {"cwd": str(tmp_path), "mcpServers": []}), 60
    )
    assert isinstance(result, dict)
    return result


async def test_the_fake_answers_initialize_exactly_like_the_real_cli(
    real: AcpConnection, fake: AcpConnection
) -> None:
    real_init, fake_init = await asyncio.gather(
        asyncio.wait_for(real.request("initialize", INIT), 60),
        asyncio.wait_for(fake.request("initialize", INIT), 60),
    )
    assert real_init["agentInfo"]["version"] == "0.61.0"  # the pinned CLI
    assert fake_init == real_init
    assert real_init["agentCapabilities"]["loadSession"] is True


async def test_the_fake_opens_sessions_like_the_real_cli(
    real: AcpConnection, fake: AcpConnection, tmp_path: Path
) -> None:
    real_new = await _new_session(real, tmp_path)
    fake_new = await _new_session(fake, tmp_path)
    for answer in (real_new, fake_new):
        assert set(answer) == {"sessionId", "modes", "models"}
        assert isinstance(answer["sessionId"], str)
        assert answer["modes"]["currentModeId"] == "default"
        assert answer["models"]["currentModelId"] == MODEL
    with pytest.raises(AcpError) as real_err:  # an unknown session, as both report it
        await real.request("session/prompt", {"sessionId": "nope", "prompt": []})
    with pytest.raises(AcpError) as fake_err:
        await fake.request("session/prompt", {"sessionId": "nope", "prompt": []})
    assert real_err.value.code == fake_err.value.code == -32602
    assert real_err.value.message == fake_err.value.message == "Session not found: nope"


async def test_the_real_cli_runs_slash_commands_and_the_guard_stops_it(
    real: AcpConnection, fake: AcpConnection, tmp_path: Path
) -> None:
    for conn in (real, fake):
        session = (await _new_session(conn, tmp_path))["sessionId"]
        updates = conn.subscribe(session)
        plain = {"sessionId": session, "prompt": [{"type": "text", "text": "/about"}]}
        result = await asyncio.wait_for(conn.request("session/prompt", plain), 60)
        assert result["stopReason"] == "end_turn"
        assert result["_meta"]["quota"]["token_count"] == {"input_tokens": 0, "output_tokens": 0}
        chunks = _drain(updates)
        assert chunks  # the command's own output, not the model's

        guarded = {"sessionId": session, "prompt": command_safe_blocks("/about")}
        call = asyncio.ensure_future(conn.request("session/prompt", guarded))
        await asyncio.sleep(0.5 if conn is fake else 3.0)
        if not call.done():  # the real CLI is trying to reach the model (offline)
            await conn.notify("session/cancel", {"sessionId": session})
        try:
            outcome = await asyncio.wait_for(call, 60)
        except AcpError:
            outcome = {"stopReason": "error"}
        after = _drain(updates)
        assert not any("Gemini CLI Info" in c or "[fake-gemini command" in c for c in after)
        if conn is fake:
            assert outcome["stopReason"] == "end_turn"
            assert after[-1].endswith("/about")  # the fake model got it as text
        else:
            assert outcome["stopReason"] in ("cancelled", "error")


def _recording(session_id: str, cwd: Path) -> str:
    """A chat as 0.61 records it (JSONL): metadata, one user and one model message, updates."""
    records: list[dict[str, Any]] = [
        {
            "sessionId": session_id,
            "projectHash": "0" * 64,  # another process's cwd: not checked on load
            "startTime": "2026-11-30T09:00:00.000Z",
            "lastUpdated": "2026-11-30T09:00:00.000Z",
        },
        {
            "id": str(uuid.uuid4()),
            "timestamp": "2026-11-30T09:00:01.000Z",
            "type": "user",
            "content": [{"text": "my name is Ada"}],
        },
        {"$set": {"lastUpdated": "2026-11-30T09:00:01.000Z"}},
        {
            "id": str(uuid.uuid4()),
            "timestamp": "2026-11-30T09:00:02.000Z",
            "type": "gemini",
            "content": "Hello Ada",
            "thoughts": [],
            "tokens": None,
            "model": MODEL,
        },
        {"$set": {"lastUpdated": "2026-11-30T09:00:02.000Z"}},
    ]
    return "".join(json.dumps(r) + "\n" for r in records)


async def _history(queue: asyncio.Queue[dict[str, Any] | None], count: int) -> list[Any]:
    """The first ``count`` message chunks a load streams back (kind, text)."""
    found: list[Any] = []
    while len(found) < count:
        update = await asyncio.wait_for(queue.get(), 60)
        assert update is not None
        if update.get("sessionUpdate") in ("user_message_chunk", "agent_message_chunk"):
            found.append((update["sessionUpdate"], update["content"]["text"]))
    return found


async def test_both_load_a_recording_restored_like_the_pool_does(
    real: AcpConnection, fake: AcpConnection, tmp_path: Path
) -> None:
    refusals = []
    for conn, home in ((real, tmp_path / "real"), (fake, tmp_path / "fake")):
        work = home / "work"
        claim_project(home, work)  # what the pool does before it starts a process
        session = str(uuid.uuid4())
        data = _recording(session, work)
        restore(home, Recording(f"session-2026-11-30T09-00-{session[:8]}.jsonl", data, 2))
        await asyncio.wait_for(conn.request("initialize", INIT), 60)
        updates = conn.subscribe(session)
        params = {"sessionId": session, "cwd": str(work), "mcpServers": []}
        loaded = await asyncio.wait_for(conn.request("session/load", params), 60)
        assert set(loaded) == {"modes", "models"}
        history = await _history(updates, 2)
        assert history == [
            ("user_message_chunk", "my name is Ada"),
            ("agent_message_chunk", "Hello Ada"),
        ]
        assert history_answers(data) == 1  # what the pool skips before it prompts
        unknown = str(uuid.uuid4())
        with pytest.raises(AcpError) as refused:
            await asyncio.wait_for(
                conn.request("session/load", params | {"sessionId": unknown}), 60
            )
        assert refused.value.code == -32603
        assert refused.value.message == "Internal error"
        assert isinstance(refused.value.data, dict)
        details = str(refused.value.data["details"])
        assert details.startswith(f'Invalid session identifier "{unknown}".')
        refusals.append(details.replace(str(home), "<home>").replace(unknown, "<id>"))
    assert refusals[0] == refusals[1]


def _drain(queue: asyncio.Queue[dict[str, Any] | None]) -> list[str]:
    texts: list[str] = []
    while not queue.empty():
        update = queue.get_nowait()
        if update and update.get("sessionUpdate") == "agent_message_chunk":
            texts.append(str(update["content"]["text"]))
    return texts


async def test_the_real_cli_has_acp_and_lists_its_flags_as_the_fake_does(tmp_path: Path) -> None:
    """0.61 has ``--acp`` (``--experimental-acp`` deprecated): the pool starts it with ``--acp``
    (the ``real`` fixture's handshakes run that way), and the fake's --help lines for both
    flags are the real CLI's."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NO_COLOR": "1"}
    proc = await asyncio.create_subprocess_exec(
        str(REAL_GEMINI), "--help", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert argv_for(str(REAL_GEMINI), MODEL)[1] == "--acp"
    lines = out.decode().splitlines(keepends=True)
    assert HELP_ACP in lines
    assert HELP_EXPERIMENTAL_ACP in lines
