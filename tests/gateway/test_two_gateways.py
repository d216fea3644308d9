"""Two gateway processes on one machine with the same scratch and CLI-home roots (as two with
the default settings have): starting or stopping the second removes none of the first's
directories, and the first goes on serving its Gemini and Claude sessions (issue 18, item 10).
Real uvicorn processes (``python -m llmhub_gateway``) with the real adapters and fake CLIs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmhub_gateway.providers.owners import owner_name
from tests.gateway.conftest import GatewayProcess, wait_until
from tests.gateway.test_e2e_fake_clis import _env
from tests.gateway.test_gemini_stuck_http import live


def started(env: dict[str, str], log: Path) -> GatewayProcess:
    gw = GatewayProcess(env, module="llmhub_gateway", log_path=log)
    gw.launch()
    wait_until(lambda: live(gw.url), timeout=90, what="gateway process")  # a loaded machine
    return gw


def turn(gw: GatewayProcess, provider: str, prompt: str, session: str | None = None) -> str:
    body = {"provider": provider, "prompt": prompt, "session_id": session}
    answer = httpx.post(f"{gw.url}/v1/chat", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    assert prompt in answer.json()["text"]
    return str(answer.json()["session_id"])


@pytest.fixture
def first(tmp_path: Path) -> Iterator[GatewayProcess]:
    gw = started(_env(tmp_path), tmp_path / "first.log")
    yield gw
    gw.stop()


def test_a_second_gateway_on_the_same_roots_leaves_the_first_serving(
    first: GatewayProcess, tmp_path: Path
) -> None:
    gemini = turn(first, "gemini", "gemini one")
    claude = turn(first, "claude", "claude one")
    assert first.proc is not None
    mine = owner_name(first.proc.pid)
    owned = [tmp_path / "scratch" / mine, tmp_path / "gemini-home" / "acp" / mine]
    assert all(path.is_dir() and any(path.iterdir()) for path in owned)
    second = started(_env(tmp_path), tmp_path / "second.log")  # sweeps the roots at start
    try:
        assert all(path.is_dir() and any(path.iterdir()) for path in owned)
        turn(first, "gemini", "gemini two", gemini)  # its warm process, home and cwd intact
        turn(first, "claude", "claude two", claude)
        turn(second, "gemini", "second gemini")
        turn(second, "claude", "second claude")
    finally:
        second.stop()  # its shutdown removes only its own directories
    assert all(path.is_dir() and any(path.iterdir()) for path in owned)
    turn(first, "gemini", "gemini three", gemini)
    turn(first, "claude", "claude three", claude)
