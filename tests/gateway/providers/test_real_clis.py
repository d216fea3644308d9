"""The real CLIs with fake credentials and no route to Anthropic or Google fail cleanly.

The bundled Claude Code CLI (claude-agent-sdk's wheel) and the pinned @google/gemini-cli
(scripts/bootstrap.sh installs it under .cache/) must end in a ProviderError -- a timeout at
worst -- within a bound, and leave no process behind.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from llmhub_gateway.providers import procs
from llmhub_gateway.providers.base import ProviderAuthError, ProviderError
from llmhub_gateway.providers.claude import ClaudeProvider
from llmhub_gateway.providers.gemini import GeminiProvider
from llmhub_gateway.providers.limits import Limited
from tests.gateway.providers.conftest import FAKE_TOKEN, REAL_GEMINI, chat, collect, our_zombies
from tests.leaks import assert_no_leak

BOUND_S = 15.0

pytestmark = pytest.mark.slow


async def test_bundled_claude_cli_fails_within_the_bound(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    provider = ClaudeProvider(
        token=FAKE_TOKEN,
        default_model="claude-sonnet-4-5-20250929",
        cli_path=None,  # the CLI bundled in the SDK's wheel
        scratch_root=tmp_path / "scratch",
    )
    limited = Limited(provider, max_concurrency=1, timeout_s=BOUND_S)
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await collect(limited, chat("hello"))
    assert time.monotonic() - started < BOUND_S + 12  # the deadline plus the TERM/KILL grace
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
    limited = Limited(provider, max_concurrency=1, timeout_s=BOUND_S)
    started = time.monotonic()
    try:
        with pytest.raises(ProviderError) as caught:
            await collect(limited, chat("hello"))
    finally:
        await provider.aclose()
    assert time.monotonic() - started < BOUND_S + 5
    # Without a route to Google the CLI cannot use the refresh token: headless it exits 41,
    # over ACP it starts its interactive login on the protocol's stdout (and is killed).
    assert isinstance(caught.value, ProviderAuthError)
    assert "1//" not in str(caught.value)
    assert our_zombies() == []
    assert not any("gemini" in _cmdline(p) for p in procs.descendants(os.getpid()))
    if runtime == "pty":
        home = tmp_path / "gemini-home" / "pty-0" / ".gemini"
        assert json.loads((home / "settings.json").read_text())["security"]["auth"] == {
            "selectedType": "oauth-personal"
        }
    else:  # a warm process's home goes with the process
        assert list((tmp_path / "gemini-home" / "acp").iterdir()) == []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
