"""Readiness names a Claude CLI that answers ``--version`` but cannot start for serving (in a
pod: its launcher in a noexec /tmp; tests/containers proves that case in the real image)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from llmhub_gateway.providers.claude import ClaudePoolLimits
from llmhub_gateway.providers.start_state import StartState
from tests.gateway.providers.conftest import claude_provider


async def test_a_cli_that_cannot_start_makes_the_provider_not_ready(tmp_path: Path) -> None:
    cli = tmp_path / "claude"
    cli.write_text(
        '#!/bin/sh\n[ "$1" = --version ] && { echo "2.1.330 (Claude Code)"; exit 0; }\n'
        "echo 'cannot start here' >&2\nexit 1\n"
    )
    cli.chmod(0o755)
    provider = claude_provider(
        tmp_path, cli_path=str(cli), pool=ClaudePoolLimits(idle=1, check_s=0.05)
    )
    try:
        assert provider.problem() is None  # `--version` answers
        provider.pool.start()
        for _ in range(200):
            if provider.problem() is not None:
                break
            await asyncio.sleep(0.05)
        problem = provider.problem()
        assert problem is not None
        assert problem.startswith("claude: the CLI cannot start: ")
    finally:
        await provider.aclose()


def test_a_start_that_succeeds_clears_the_reason() -> None:
    state = StartState("claude")
    assert state.problem() is None
    state.failed("[Errno 13] Permission denied")
    assert state.problem() == "claude: the CLI cannot start: [Errno 13] Permission denied"
    state.started()
    assert state.problem() is None
