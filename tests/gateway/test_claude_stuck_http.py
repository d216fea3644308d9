"""A stuck Claude CLI seen from a client, on the real gateway (``python -m llmhub_gateway``, the
warm pool, the real claude-agent-sdk, fake_claude, sessions and leases in Redis): a turn whose
CLI stops reading its stdin (a prompt of about 1 MiB, far over a pipe buffer) or never answers
ends with 504 ``provider_timeout`` within its deadline plus a few seconds, the CLI's process
tree is gone, the session's lease is released (the next turn on it is not 409) and the only
concurrency slot is free again (that next turn runs and is answered)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from llmhub_gateway.providers.procs import descendants, running
from tests.gateway.conftest import GatewayProcess, RedisServer, wait_until
from tests.gateway.test_e2e_fake_clis import _env

DEADLINE_S = 3
SLACK_S = 6  # the kill (SIGTERM grace), the HTTP round trip, on a loaded 2-core machine
BIG = "y" * (1024 * 1024 - 1024)  # just under MAX_PROMPT_BYTES, 16 times a pipe buffer


def turn(gw: GatewayProcess, prompt: str, session: str | None = None) -> httpx.Response:
    body = {"provider": "claude", "prompt": prompt, "session_id": session}
    return httpx.post(f"{gw.url}/v1/chat", json=body, timeout=60)


def turn_pids(turns: Path) -> list[int]:
    """The CLI process of each turn the fake received, in order."""
    return [json.loads(line)["pid"] for line in turns.read_text("utf-8").splitlines()]


@pytest.mark.parametrize(("mode", "prompt"), [("deaf", BIG), ("hang", "are you there")])
def test_a_stuck_claude_cli_costs_one_504_and_leaves_the_session_and_the_slot_free(
    tmp_path: Path, redis_server: RedisServer, mode: str, prompt: str
) -> None:
    mode_file = tmp_path / "mode"
    mode_file.write_text(mode)
    turns = tmp_path / "turns.jsonl"
    env = _env(
        tmp_path,
        REDIS_URL=redis_server.url,
        FAKE_CLI_MODE_FILE=str(mode_file),
        FAKE_CLI_GOOD_TURNS="1",  # each process answers one turn, then gets stuck
        FAKE_CLI_TURNS_FILE=str(turns),
        FAKE_CLI_PIDFILE=str(tmp_path / "pids.json"),  # each CLI gets a sleeping child
        CLAUDE_RUNTIME="warm",
        CLAUDE_TIMEOUT_SECONDS=str(DEADLINE_S),
        CLAUDE_MAX_CONCURRENCY="1",
    )
    gw = GatewayProcess(env, module="llmhub_gateway", log_path=tmp_path / "gateway.log")
    try:
        gw.start()
        first = turn(gw, "hello")
        assert first.status_code == 200, first.text
        session = first.json()["session_id"]
        (cli,) = turn_pids(turns)
        tree = [cli, *descendants(cli)]
        assert len(tree) >= 2  # the CLI and its child
        assert all(running(p) for p in tree)

        started = time.monotonic()
        stuck = turn(gw, prompt, session)
        assert time.monotonic() - started < DEADLINE_S + SLACK_S
        assert stuck.status_code == 504, stuck.text
        assert stuck.json()["error"]["type"] == "provider_timeout"
        # The same warm process got the stuck turn (a hung one recorded it; a deaf one never
        # read it), and its whole tree is gone.
        assert turn_pids(turns) == ([cli] if mode == "deaf" else [cli, cli])
        wait_until(lambda: not any(running(p) for p in tree), timeout=5, what="CLI tree gone")

        # Lease released and slot free: the next turn on the session runs, at once.
        mode_file.write_text("ok")
        after = turn(gw, "again", session)
        assert after.status_code == 200, after.text
        assert after.json()["text"].endswith("again")
        assert turn_pids(turns)[-1] != cli
        other = turn(gw, "a new session")  # the only slot again, for anyone
        assert other.status_code == 200, other.text
    finally:
        gw.stop()
