"""A stuck Gemini CLI seen from a client, on the real gateway (``python -m llmhub_gateway``,
the real ACP pool, fake_gemini): a turn whose CLI stops reading its stdin (a prompt 8 times a
pipe buffer) or never answers ends with 504 ``provider_timeout`` within its deadline plus a few
seconds, the session's lease is released (the next turn on it is not 409) and the only
concurrency slot is free again (that next turn runs)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import GatewayProcess, wait_until
from tests.gateway.test_e2e_fake_clis import _env

DEADLINE_S = 3
SLACK_S = 6  # cancel grace, the kill, the HTTP round trip, on a loaded 2-core machine
BIG = "y" * (512 * 1024)  # under MAX_PROMPT_BYTES, 8 times a pipe buffer


def live(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/live", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("mode", ["deaf", "hang"])
def test_a_stuck_cli_costs_one_504_and_leaves_the_session_and_the_slot_free(
    tmp_path: Path, mode: str
) -> None:
    env = _env(
        tmp_path,
        FAKE_CLI_MODE=mode,
        FAKE_CLI_GOOD_TURNS="1",  # each process answers one prompt, then gets stuck
        GEMINI_TIMEOUT_SECONDS=str(DEADLINE_S),
        GEMINI_MAX_CONCURRENCY="1",
    )
    gw = GatewayProcess(env, module="llmhub_gateway", log_path=tmp_path / "gateway.log")
    gw.launch()
    try:
        # Imports alone take many seconds on a loaded 2-core machine.
        wait_until(lambda: live(gw.url), timeout=90, what="gateway process")
        chat = f"{gw.url}/v1/chat"
        first = httpx.post(chat, json={"provider": "gemini", "prompt": "hello"}, timeout=60)
        assert first.status_code == 200, first.text
        session = first.json()["session_id"]
        started = time.monotonic()
        stuck = httpx.post(
            chat, json={"provider": "gemini", "prompt": BIG, "session_id": session}, timeout=60
        )
        assert time.monotonic() - started < DEADLINE_S + SLACK_S
        assert stuck.status_code == 504, stuck.text
        assert stuck.json()["error"]["type"] == "provider_timeout"
        # Lease released and slot free: the next turn on the session runs (a new process,
        # the history replayed), at once.
        after = httpx.post(
            chat, json={"provider": "gemini", "prompt": "again", "session_id": session}, timeout=60
        )
        assert after.status_code == 200, after.text
        assert after.json()["text"].endswith("again")
    finally:
        gw.stop()
