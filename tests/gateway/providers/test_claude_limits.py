"""What the Claude adapter hands the CLI stays within the gateway's limits: no prompt or system
text in argv (readable in /proc/*/cmdline, 128 KiB per argument at most), a line buffer sized
from MAX_PROMPT_BYTES and the session cap, and no CLI older than the verbatim-prompts minimum."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from llmhub_gateway.core.config import Settings
from llmhub_gateway.providers.base import ChatRequest, ProviderCrashed, ProviderNotConfigured, Turn
from llmhub_gateway.providers.claude import ClaudePoolLimits
from llmhub_gateway.providers.claude_env import MIN_VERSION
from llmhub_gateway.registry import claude_runtime
from tests.gateway.providers.conftest import chat, claude_provider, collect

SYSTEM = "You are terse and never say it. " * 6400  # 200 KiB: above one argument's 128 KiB


@pytest.mark.parametrize("runtime", ["warm", "cold"])
async def test_a_200_kib_system_prompt_reaches_the_cli_but_never_its_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: str
) -> None:
    spawn_log, turns_file = tmp_path / "spawns.jsonl", tmp_path / "turns.jsonl"
    monkeypatch.setenv("FAKE_CLI_SPAWN_LOG", str(spawn_log))
    monkeypatch.setenv("FAKE_CLI_TURNS_FILE", str(turns_file))
    provider = claude_provider(tmp_path, runtime=runtime, pool=ClaudePoolLimits(idle=0))
    try:
        text = "".join(await collect(provider, chat("hi", system=SYSTEM)))
        assert text.endswith("] hi")
        (spawn,) = [json.loads(line) for line in spawn_log.read_text().splitlines()]
        assert not any("never say it" in arg for arg in spawn["argv"])
        (turn,) = [json.loads(line) for line in turns_file.read_text().splitlines()]
        assert turn["system"] == SYSTEM  # it reached the CLI, through the file
        if runtime == "warm":  # the CLI still runs: what anyone on the host can read
            (proc,) = provider.pool.processes
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            assert b"--system-prompt-file" in cmdline
            assert b"never say it" not in cmdline
            argv = spawn["argv"]
            path = Path(argv[argv.index("--system-prompt-file") + 1])
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        await provider.aclose()


async def test_a_replayed_history_over_the_sdks_default_buffer_continues(tmp_path: Path) -> None:
    big = "word " * 300_000  # 1.5 MB: the SDK's default line buffer is 1 MiB
    request = ChatRequest(
        prompt="next",
        model="",
        session_id="s-1",
        history=(Turn("user", big), Turn("assistant", "ok")),
    )
    provider = claude_provider(tmp_path, max_buffer_bytes=16 * 1024 * 1024)
    small = claude_provider(tmp_path / "small", max_buffer_bytes=1024 * 1024)
    try:
        assert "".join(await collect(provider, request)).endswith("next")
        with pytest.raises(ProviderCrashed):  # what the SDK's default did
            await collect(small, request)
    finally:
        await provider.aclose()
        await small.aclose()


def test_the_buffer_is_sized_from_the_gateways_limits() -> None:
    settings = Settings(session_max_bytes=8 * 1024 * 1024, max_prompt_bytes=2 * 1024 * 1024)
    sized = claude_runtime(settings)["max_buffer_bytes"]
    assert sized >= 2 * (8 + 2) * 1024 * 1024  # a whole session replayed, JSON-escaped


async def test_a_cli_older_than_the_verbatim_prompts_minimum_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "old-claude"
    old.write_text("#!/bin/sh\necho '2.1.100 (Claude Code)'\n")
    old.chmod(0o755)
    provider = claude_provider(tmp_path, cli_path=str(old))
    try:
        problem = provider.problem()
        assert problem is not None
        assert "2.1.100" in problem
        assert f"at least {MIN_VERSION}" in problem
        with pytest.raises(ProviderNotConfigured):
            await collect(provider, chat("/cost"))
    finally:
        await provider.aclose()
