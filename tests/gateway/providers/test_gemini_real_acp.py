"""The real Gemini CLI 0.61 in ACP mode, offline, through our ACP client: its handshake and
session shapes are the fake's, it runs ``/about`` as a command, and the gateway's guard sends
the same text to the model instead.

Offline, OAuth cannot start (the CLI's login would read stdin), so the real CLI runs with API-key
auth and a fake key: initialize, session/new and local commands need no network.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from llmhub_gateway.providers.acp_client import AcpConnection, AcpError
from llmhub_gateway.providers.gemini import GeminiProvider
from llmhub_gateway.providers.gemini_acp import ACP_PROTOCOL_VERSION, argv_for
from llmhub_gateway.providers.prompt_text import command_safe_blocks
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


def _drain(queue: asyncio.Queue[dict[str, Any] | None]) -> list[str]:
    texts: list[str] = []
    while not queue.empty():
        update = queue.get_nowait()
        if update and update.get("sessionUpdate") == "agent_message_chunk":
            texts.append(str(update["content"]["text"]))
    return texts
