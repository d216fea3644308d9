"""The real CLIs with fake credentials and no route to Anthropic or Google fail cleanly.

The bundled Claude Code CLI (claude-agent-sdk's wheel) and the pinned @google/gemini-cli
(scripts/bootstrap.sh installs it under .cache/) must end in a ProviderError -- a timeout at
worst -- within a bound, and leave no process behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from claude_agent_sdk import AssistantMessage, ClaudeAgentOptions, ClaudeSDKClient, TextBlock

from llmhub_gateway.providers import procs
from llmhub_gateway.providers.base import ProviderAuthError, ProviderError
from llmhub_gateway.providers.claude import TOKEN_ENV, ClaudePoolLimits, ClaudeProvider
from llmhub_gateway.providers.gemini import GeminiProvider
from llmhub_gateway.providers.limits import CappedProvider
from llmhub_gateway.providers.owners import owned
from tests.gateway.providers.conftest import FAKE_TOKEN, REAL_GEMINI, chat, collect, our_zombies
from tests.leaks import assert_no_leak

BOUND_S = 15.0

pytestmark = pytest.mark.slow


async def test_bundled_claude_cli_fails_within_the_bound(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    provider = ClaudeProvider(
        token=FAKE_TOKEN,
        default_model="claude-sonnet-4-5-20250929",
        cli_path=None,  # the CLI bundled in the SDK's wheel
        scratch_root=tmp_path / "scratch",
        pool=ClaudePoolLimits(idle=1),
        max_retries=0,
    )
    assert provider.problem() is None  # `claude --version` of the bundled CLI runs
    # Offline, the CLI's own start-up waits ~18 s on its policy fetch; the warm pool pays
    # that ahead of the first turn (and a plain SDK client starts alongside, see below).
    await provider.start()
    await provider.started()
    plain = asyncio.create_task(_plain_sdk_answer("/cost", tmp_path))
    await provider.started()
    spare = provider.pool.processes[0]
    await asyncio.wait_for(spare.ready.wait(), 40)
    # The gateway's own /clear runs on the real CLI offline (no model call): a reset, a new
    # session id and an empty result, or reset() raises. A warm CLI is reused this way.
    await asyncio.wait_for(spare.reset(), 10)
    assert spare.clean
    assert spare.alive()
    limited = CappedProvider(provider, max_concurrency=1, timeout_s=BOUND_S)
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await collect(limited, chat("/cost"))
    # No retries configured: the CLI's own reason comes back in seconds, not after minutes.
    assert time.monotonic() - started < 5
    assert "cannot reach the Anthropic API" in str(caught.value)
    assert "ENOTFOUND" in caplog.text  # the CLI's words, in the log
    # The adapter's "/cost" went to the model (hence the network error); sent plainly, the real
    # CLI runs it as its slash command and answers by itself, offline.
    assert "Estimated cost" in await asyncio.wait_for(plain, 40)
    await provider.aclose()
    assert_no_leak(str(caught.value) + "".join(capfd.readouterr()), claude_token=FAKE_TOKEN)
    assert our_zombies() == []
    assert not any("_bundled/claude" in _cmdline(p) for p in procs.descendants(os.getpid()))


@pytest.mark.parametrize("runtime", ["acp", "pty"])
async def test_real_gemini_cli_fails_within_the_bound(
    tmp_path: Path, gemini_creds: Path, runtime: str
) -> None:
    assert REAL_GEMINI.exists(), "run scripts/bootstrap.sh to install the pinned gemini CLI"
    provider = GeminiProvider(
        auth_path=gemini_creds,
        default_model="gemini-2.5-pro",
        cli_path=str(REAL_GEMINI),
        cli_home=tmp_path / "gemini-home",
        runtime=runtime,
    )
    limited = CappedProvider(provider, max_concurrency=1, timeout_s=BOUND_S)
    started = time.monotonic()
    try:
        with pytest.raises(ProviderError) as caught:
            await collect(limited, chat("hello"))
        if runtime == "pty":  # its home, until the provider closes
            home = owned(tmp_path / "gemini-home" / "pty") / "0" / ".gemini"
            assert json.loads((home / "settings.json").read_text())["security"]["auth"] == {
                "selectedType": "oauth-personal"
            }
    finally:
        await provider.aclose()
    assert time.monotonic() - started < BOUND_S + 5
    # Without a route to Google the CLI cannot use the refresh token: headless it exits 41,
    # over ACP it starts its interactive login on the protocol's stdout (and is killed).
    assert isinstance(caught.value, ProviderAuthError)
    assert "1//" not in str(caught.value)
    assert our_zombies() == []
    assert not any(_runs("gemini", p) for p in procs.descendants(os.getpid()))
    # A warm process's home goes with the process; this process's one-shot homes at close.
    assert list((tmp_path / "gemini-home").glob("*/*/*")) == []


async def _plain_sdk_answer(prompt: str, tmp_path: Path) -> str:
    """What the bundled CLI answers to a plain (not verbatim) SDK query."""
    options = ClaudeAgentOptions(
        cwd=tmp_path,
        env={TOKEN_ENV: FAKE_TOKEN, "CLAUDE_CONFIG_DIR": str(tmp_path / "plain-config")},
        setting_sources=[],
        tools=[],
    )
    texts: list[str] = []
    async with ClaudeSDKClient(options) as client:
        await client.query(prompt)
        async for message in client.receive_response():
            if isinstance(message, AssistantMessage):
                texts += [b.text for b in message.content if isinstance(b, TextBlock)]
    return "".join(texts)


def _runs(name: str, pid: int) -> bool:
    """Whether ``pid``'s program or script is named like ``name`` (not merely a path that
    contains it: a checkout may be called wt-gemini-load)."""
    return any(name in Path(arg).name for arg in _cmdline(pid).split("\0")[:2])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
