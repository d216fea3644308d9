"""Two real gateway replicas (``python -m llmhub_gateway``) on one Redis, with warm Claude
pools: a session started on one continues on the other through the SDK's session store, and
the second replica's CLI resumes it natively instead of receiving the replayed transcript."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from llmhub_gateway.providers import procs
from tests.gateway.conftest import GatewayProcess, RedisServer
from tests.gateway.test_e2e_fake_clis import _env


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_a_session_continues_natively_on_another_replica(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    turns_file = tmp_path / "turns.jsonl"
    gateways = []
    for name in ("a", "b"):
        home = tmp_path / name
        home.mkdir()
        env = _env(
            home,
            REDIS_URL=redis_server.url,
            CLAUDE_POOL_IDLE="1",
            FAKE_CLI_TURNS_FILE=str(turns_file),
            FAKE_CLI_SPAWN_LOG=str(tmp_path / "spawns.jsonl"),
        )
        gateways.append(GatewayProcess(env, module="llmhub_gateway", log_path=home / "log"))
    try:
        for gw in gateways:
            gw.start()
        a, b = gateways
        first = httpx.post(
            f"{a.url}/v1/chat", json={"provider": "claude", "prompt": "my name is Ada"}, timeout=60
        )
        assert first.status_code == 200, first.text
        session = first.json()["session_id"]
        second = httpx.post(
            f"{b.url}/v1/chat",
            json={"provider": "claude", "prompt": "what is my name?", "session_id": session},
            timeout=60,
        )
        assert second.status_code == 200, second.text
        assert second.json()["text"].endswith("] what is my name?")
        one, two = _lines(turns_file)
        assert one["session"] == two["session"]  # the same CLI session, on another process
        assert one["pid"] != two["pid"]
        assert (two["prompt"], two["resumed"]) == ("what is my name?", 2)
        spawned_by_b = {s["pid"] for s in _lines(tmp_path / "spawns.jsonl") if "/b/" in s["cwd"]}
        assert two["pid"] in spawned_by_b
        listed = httpx.get(f"{b.url}/v1/sessions/{session}", timeout=10).json()
        assert [t["text"] for t in listed["turns"]][::2] == [
            "my name is Ada",
            "what is my name?",
        ]
    finally:
        for gw in gateways:
            gw.stop()
    # SIGTERM stopped every warm CLI (the spares included) before the replicas exited.
    spawned = [s["pid"] for s in _lines(tmp_path / "spawns.jsonl")]
    assert len(spawned) >= 4  # two spares, the session's CLI on A, the resumed one on B
    assert not any(procs.running(pid) for pid in spawned)
