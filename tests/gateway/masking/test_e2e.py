"""Through a real gateway process (``python -m llmhub_gateway``) with the real Claude adapter
driving the fake CLI, which records every text it received: on REST (JSON and SSE), OpenAI
(official client, streamed) and MCP (official client), the CLI never saw a real identifier
and the caller got every one back; the placeholders stay the same across turns, live in Redis
with the session and go with it; counts, never values, reach /metrics and the audit line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
import redis
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.gateway.conftest import GatewayProcess, RedisServer
from tests.gateway.test_e2e_fake_clis import _env
from tests.gateway.test_mcp import structured

IDS = {
    "aws_ec2_instance": "i-0123456789abcdef0",
    "private_ip": "10.1.2.3",
    "aws_rds_endpoint": "orders.c9akciq32hnm.eu-west-1.rds.amazonaws.com",
    "email": "ops@acme-corp.com",
    "k8s_service": "api.payments.svc.cluster.local",
}
PROMPT = "why can {aws_ec2_instance} at {private_ip} not reach {aws_rds_endpoint}? ({email})"
PREFIX = "llmhub:s:"


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("masking")
    env = _env(
        tmp,
        REDIS_URL=redis_server.url,
        MASKING_ENABLED="true",
        LOG_LEVEL="INFO",  # at DEBUG sse_starlette logs every chunk it sends, answers included
        AUTH_ADMIN_CALLERS="anonymous",
        FAKE_CLI_TURNS_FILE=str(tmp / "turns.jsonl"),
        FAKE_CLI_ECHO_CONTEXT="1",
        CLAUDE_POOL_IDLE="0",
        GEMINI_ACP_PROCESSES="1",
    )
    proc = GatewayProcess(env, module="llmhub_gateway", log_path=tmp / "gateway.log")
    proc.start()
    yield proc
    proc.stop()


def _provider_saw(gw: GatewayProcess) -> str:
    turns = Path(gw.env["FAKE_CLI_TURNS_FILE"])
    return turns.read_text() if turns.exists() else ""


def _assert_never_seen(gw: GatewayProcess, *values: str) -> None:
    seen = _provider_saw(gw)
    assert seen  # the CLI did record the turns
    for value in values:
        assert value not in seen


def test_rest_json_and_sse_across_turns(gw: GatewayProcess, redis_server: RedisServer) -> None:
    first = httpx.post(
        f"{gw.url}/v1/chat",
        json={
            "provider": "claude",
            "prompt": PROMPT.format(**IDS),
            "system": f"You operate {IDS['k8s_service']}.",
        },
        timeout=60,
    )
    assert first.status_code == 200, first.text
    body = first.json()
    for value in IDS.values():
        if value != IDS["k8s_service"]:
            assert value in body["text"]  # the echo came back unmasked
    assert "[AWS_EC2_1]" in _provider_saw(gw)
    sid = body["session_id"]
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/chat",
        json={
            "provider": "claude",
            "session_id": sid,
            "stream": True,
            "prompt": f"and {IDS['private_ip']} / 10.9.9.9 again",
        },
        timeout=60,
    ) as sse:
        lines = [line for line in sse.iter_lines() if line.startswith("data: ")]
    deltas = [json.loads(line[6:]) for line in lines]
    streamed = "".join(d.get("text", "") for d in deltas[1:-1])
    assert f"and {IDS['private_ip']} / 10.9.9.9 again" in streamed
    assert deltas[-1]["text"] == streamed
    seen = _provider_saw(gw)
    assert "and [PRIVATE_IP_1] / [PRIVATE_IP_2] again" in seen  # the same placeholder, turn 2
    _assert_never_seen(gw, *IDS.values(), "10.9.9.9")
    # The session keeps clear text; its placeholders live beside it and go with it.
    stored = httpx.get(f"{gw.url}/v1/sessions/{sid}", timeout=10).json()
    assert IDS["private_ip"] in stored["turns"][0]["text"]
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    key = f"{PREFIX}{{{sid}}}:mask"
    assert client.hget(key, "[PRIVATE_IP_1]") == IDS["private_ip"]
    assert 0 < client.ttl(key) <= 86400
    assert httpx.delete(f"{gw.url}/v1/sessions/{sid}", timeout=10).status_code == 204
    assert not client.exists(key)


def test_openai_streamed_with_history(gw: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0)
    chunks = client.chat.completions.create(
        model="claude-sonnet-4-5-20250929",
        messages=[
            {"role": "system", "content": f"Cluster DNS is {IDS['k8s_service']}."},
            {"role": "user", "content": f"remember {IDS['email']}"},
            {"role": "assistant", "content": f"noted {IDS['email']}"},
            {"role": "user", "content": PROMPT.format(**IDS)},
        ],
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    for value in ("i-0123456789abcdef0", "10.1.2.3", IDS["email"]):
        assert value in text
    _assert_never_seen(gw, *IDS.values())


async def _mcp_chat(gw: GatewayProcess, args: dict[str, Any]) -> Any:
    async with (
        httpx2.AsyncClient(timeout=60) as http,
        streamable_http_client(f"{gw.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await session.call_tool("claude_chat", args)


def test_mcp_tool(gw: GatewayProcess) -> None:
    result = asyncio.run(_mcp_chat(gw, {"prompt": PROMPT.format(**IDS)}))
    assert result.is_error is False, result
    answer = structured(result)
    for value in ("i-0123456789abcdef0", IDS["aws_rds_endpoint"]):
        assert value in answer["text"]
    _assert_never_seen(gw, *IDS.values())


def test_counts_not_values_in_metrics_and_audit(gw: GatewayProcess) -> None:
    httpx.post(
        f"{gw.url}/v1/chat", json={"provider": "claude", "prompt": "host 10.7.7.7"}, timeout=60
    ).raise_for_status()
    metrics = httpx.get(f"{gw.admin_url}/metrics", timeout=10).text
    assert 'llmhub_gateway_masked_total{provider="claude",recognizer="private_ip"}' in metrics
    assert gw.log_path is not None
    log = gw.log_path.read_text()
    turns = [json.loads(line) for line in log.splitlines() if '"masked"' in line]
    assert any(t.get("masked", {}).get("private_ip") for t in turns)
    for value in (*IDS.values(), "10.7.7.7", "10.9.9.9"):
        assert value not in log
        assert value not in metrics


def test_dry_run_for_admins(gw: GatewayProcess) -> None:
    text = f"box {IDS['aws_ec2_instance']} at {IDS['private_ip']}"
    answer = httpx.post(f"{gw.url}/v1/masking/dry-run", json={"text": text}, timeout=10)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["masked"] == "box [AWS_EC2_1] at [PRIVATE_IP_1]"
    assert report["counts"] == {"aws_ec2_instance": 1, "private_ip": 1}
    assert report["enabled"] is True
    first = report["findings"][0]
    assert text[first["start"] : first["end"]] == IDS["aws_ec2_instance"]
