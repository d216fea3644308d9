"""Gemini sessions across two real gateway replicas on one Redis (real uvicorn, the fake CLI in
ACP mode): every turn sends the CLI only the new message, whether the replica holds the
conversation's ACP session or ``session/load``s it from the recording the other replica kept in
Redis; a recording that is gone falls back to replaying the transcript. And readiness names a
missing gemini CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.fakes.fake_gemini import words
from tests.gateway.conftest import GatewayProcess, RedisServer
from tests.gateway.test_e2e_fake_clis import _env


@pytest.fixture
def two(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[GatewayProcess]]:
    gateways = []
    for name in ("a", "b"):
        env = _env(
            tmp_path,
            REDIS_URL=redis_server.url,
            SESSION_TTL_SECONDS="600",
            GEMINI_CLI_HOME=str(tmp_path / f"home-{name}"),
            FAKE_CLI_SPAWNLOG=str(tmp_path / f"spawns-{name}.jsonl"),
        )
        gateways.append(GatewayProcess(env, module="llmhub_gateway"))
    for gw in gateways:
        gw.start()
    yield gateways
    for gw in gateways:
        gw.stop()


def say(gw: GatewayProcess, prompt: str, session: str | None) -> tuple[str, str, int]:
    """Session id, answer and the tokens the CLI reported receiving (the fake: its words)."""
    body = {"provider": "gemini", "prompt": prompt}
    if session:
        body["session_id"] = session
    answer = httpx.post(f"{gw.url}/v1/chat", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    return data["session_id"], data["text"], data["usage"]["tokens_in"]


def test_a_conversation_moving_between_replicas_continues_natively(
    two: list[GatewayProcess], tmp_path: Path
) -> None:
    a, b = two
    session, first, _ = say(a, "my name is Ada", None)
    assert "acp=yes turn=1] my name is Ada" in first
    _, second, sent = say(a, "what is my name?", session)
    # A holds the ACP session: the CLI got the new message only, as the session's 2nd turn.
    assert second.endswith("acp=yes turn=2] what is my name?")
    assert sent == words("what is my name?")
    _, third, sent = say(b, "and on b?", session)
    # B loads A's recording: the CLI has both earlier turns and got only the new message.
    assert third.endswith("acp=yes turn=3] and on b?")
    assert sent == words("and on b?")
    assert "my name is Ada" not in third  # no history replayed into the answer
    _, fourth, sent = say(a, "back on a", session)
    # A's own session lacks B's turn: A loads B's newer recording instead of continuing stale.
    assert fourth.endswith("acp=yes turn=4] back on a")
    assert sent == words("back on a")
    _, fifth, sent = say(a, "still a", session)
    assert fifth.endswith("acp=yes turn=5] still a")
    assert sent == words("still a")
    for name in ("a", "b"):  # each replica started one warm process and kept it
        lines = (tmp_path / f"spawns-{name}.jsonl").read_text().splitlines()
        assert [json.loads(x)["acp"] for x in lines] == [True]


def test_a_conversation_whose_recording_is_gone_is_replayed(
    two: list[GatewayProcess], redis_server: RedisServer
) -> None:
    a, b = two
    session, _, _ = say(a, "my name is Grace", None)
    client = redis.Redis.from_url(redis_server.url)
    try:
        keys = [
            k
            for k in client.keys("llmhub:gemini:recording:*")
            if b"my name is Grace" in (client.get(k) or b"")
        ]
        assert len(keys) == 1  # A kept its recording, expiring with the session
        assert 590 < client.ttl(keys[0]) <= 600
        client.delete(*keys)
    finally:
        client.close()
    _, answer, sent = say(b, "what is my name?", session)
    assert "acp=yes turn=1]" in answer  # a new session on B...
    assert "User: my name is Grace" in answer  # ...given the transcript
    assert answer.endswith("what is my name?")
    assert sent > words("what is my name?")


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
