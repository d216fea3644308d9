"""Gemini sessions across two real gateway replicas on one Redis (real uvicorn, the fake CLI in
ACP mode): a replica that holds the conversation's ACP session sends only the new message; one
that does not (or holds a stale one) replays the transcript, so the conversation continues
correctly wherever it lands. And readiness names a missing gemini CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import GatewayProcess, RedisServer
from tests.gateway.test_e2e_fake_clis import _env


@pytest.fixture
def two(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[GatewayProcess]]:
    gateways = []
    for name in ("a", "b"):
        env = _env(
            tmp_path,
            REDIS_URL=redis_server.url,
            GEMINI_CLI_HOME=str(tmp_path / f"home-{name}"),
            FAKE_CLI_SPAWNLOG=str(tmp_path / f"spawns-{name}.jsonl"),
        )
        gateways.append(GatewayProcess(env, module="llmhub_gateway"))
    for gw in gateways:
        gw.start()
    yield gateways
    for gw in gateways:
        gw.stop()


def say(gw: GatewayProcess, prompt: str, session: str | None) -> tuple[str, str]:
    body = {"provider": "gemini", "prompt": prompt}
    if session:
        body["session_id"] = session
    answer = httpx.post(f"{gw.url}/v1/chat", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    return data["session_id"], data["text"]


def test_a_conversation_moving_between_replicas_keeps_its_context(
    two: list[GatewayProcess], tmp_path: Path
) -> None:
    a, b = two
    session, first = say(a, "my name is Ada", None)
    assert "acp=yes turn=1] my name is Ada" in first
    _, second = say(a, "what is my name?", session)
    # A holds the ACP session: the CLI got the new message only, as the session's 2nd turn.
    assert second.endswith("acp=yes turn=2] what is my name?")
    _, third = say(b, "and on b?", session)
    # B does not hold it: a new session, given the whole transcript.
    assert "acp=yes turn=1]" in third
    assert "User: my name is Ada" in third
    assert "User: what is my name?" in third
    assert third.endswith("and on b?")
    _, fourth = say(a, "back on a", session)
    # A's own session lacks B's turn: replayed again, never continued stale.
    assert "acp=yes turn=1]" in fourth
    assert "User: and on b?" in fourth
    _, fifth = say(a, "still a", session)
    assert fifth.endswith("acp=yes turn=2] still a")  # and native again from here
    for name in ("a", "b"):  # each replica started one warm process and kept it
        lines = (tmp_path / f"spawns-{name}.jsonl").read_text().splitlines()
        assert [json.loads(x)["acp"] for x in lines] == [True]


def test_readiness_names_a_missing_gemini_cli(tmp_path: Path) -> None:
    env = _env(tmp_path, GEMINI_CLI_PATH=str(tmp_path / "no-gemini-here"))
    gw = GatewayProcess(env, module="llmhub_gateway")
    gw.start()
    try:
        ready = httpx.get(f"{gw.url}/health/ready", timeout=10)
    finally:
        gw.stop()
    assert ready.status_code == 503
    assert "gemini: the gemini CLI is not installed or not executable" in ready.json()["reasons"]
