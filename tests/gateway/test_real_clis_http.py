"""The real CLIs behind the real gateway: with no route to Anthropic or Google (as here), a chat
request ends in a 502/504 JSON error within the provider timeout and the gateway stays healthy."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from llmhub_gateway.providers import procs
from tests.gateway.conftest import GatewayProcess, wait_until
from tests.gateway.providers.conftest import REAL_GEMINI
from tests.leaks import assert_no_leak

pytestmark = pytest.mark.slow

TIMEOUT_S = 15
TOKEN = "sk-ant-oat01-" + "RealCliHttpFakeToken_" * 3
CREDS = {
    "access_token": "ya29.a0RealCliHttpFakeAccess",
    "refresh_token": "1//0gRealCliHttpFakeRefresh",
    "token_type": "Bearer",
    "expiry_date": 1_000,  # long expired: the CLI must try (and fail) to refresh
}


def test_real_clis_fail_as_json_errors_and_the_gateway_stays_ready(tmp_path: Path) -> None:
    assert REAL_GEMINI.exists(), "run scripts/bootstrap.sh to install the pinned gemini CLI"
    creds = tmp_path / "auth" / "oauth_creds.json"
    creds.parent.mkdir()
    creds.write_text(json.dumps(CREDS))
    env = {
        "CLAUDE_CODE_OAUTH_TOKEN": TOKEN,
        "CLAUDE_CLI_PATH": "",  # empty = unset: the CLI bundled in claude-agent-sdk's wheel
        "CLAUDE_TIMEOUT_SECONDS": str(TIMEOUT_S),
        # No spare warm CLI, so "nothing left behind" below covers every CLI the turn started.
        "CLAUDE_POOL_IDLE": "0",
        "GEMINI_AUTH_PATH": str(creds),
        "GEMINI_CLI_PATH": str(REAL_GEMINI),
        "GEMINI_CLI_HOME": str(tmp_path / "gemini-home"),
        "GEMINI_TIMEOUT_SECONDS": str(TIMEOUT_S),
        "SCRATCH_DIR": str(tmp_path / "scratch"),
    }
    log = tmp_path / "gateway.log"
    gateway = GatewayProcess(env, module="llmhub_gateway", log_path=log).start()
    try:

        def ask(provider: str) -> tuple[httpx.Response, float]:
            started = time.monotonic()
            response = httpx.post(
                f"{gateway.url}/v1/chat",
                json={"provider": provider, "prompt": "hello"},
                timeout=TIMEOUT_S + 30,
            )
            return response, time.monotonic() - started

        with ThreadPoolExecutor(2) as pool:
            answers = dict(
                zip(("claude", "gemini"), pool.map(ask, ("claude", "gemini")), strict=True)
            )

        for provider, (response, elapsed) in answers.items():
            assert response.status_code in (502, 504), (provider, response.status_code)
            error = response.json()["error"]
            assert error["type"].startswith("provider_"), (provider, error)
            assert elapsed < TIMEOUT_S + 12, (provider, elapsed)  # deadline + TERM/KILL grace
            assert_no_leak(response.text, claude=TOKEN, refresh=CREDS["refresh_token"])

        assert httpx.get(f"{gateway.url}/health/live").status_code == 200
        assert httpx.get(f"{gateway.url}/health/ready").status_code == 200
        assert gateway.proc is not None
        pid = gateway.proc.pid
        wait_until(lambda: not procs.descendants(pid), timeout=10, what="no CLI left behind")
    finally:
        gateway.stop()
    assert_no_leak(log.read_text(), claude=TOKEN, refresh=CREDS["refresh_token"])
