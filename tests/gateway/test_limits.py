"""Limits per caller and per subscription, in memory and in one real Redis shared by two
gateway processes: 429 with a Retry-After that is true, and refusals that count nothing."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmhub_gateway.core.config import Settings
from llmhub_gateway.limits.base import utc_day
from tests.gateway.conftest import GatewayProcess, RedisServer, ThreadedGateway, wait_until
from tests.gateway.fake_provider import EchoProvider, GatedProvider, UsageProvider

CALLERS = ("alice", "bob", "carol", "ops")
MakeGateway = Callable[..., ThreadedGateway]


def key(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-secret-key"}


def chat(
    gw: ThreadedGateway, caller: str, provider: str = "claude", prompt: str = "hi"
) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/chat",
        json={"provider": provider, "prompt": prompt},
        headers=key(caller),
        timeout=30,
    )


def refused(answer: httpx.Response, reason: str) -> int:
    """The Retry-After of a 429 for ``reason``."""
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"]["type"] == "rate_limited"
    assert reason in answer.json()["error"]["message"]
    return int(answer.headers["Retry-After"])


@pytest.fixture(params=["memory", "redis"])
def make_gateway(
    request: pytest.FixtureRequest, redis_server: RedisServer, tmp_path: Path
) -> Iterator[MakeGateway]:
    keys = tmp_path / "keys"
    keys.write_text(
        "".join(
            f"{n} sha256:{hashlib.sha256(f'{n}-secret-key'.encode()).hexdigest()}\n"
            for n in CALLERS
        )
    )
    started: list[ThreadedGateway] = []

    def make(**limits: Any) -> ThreadedGateway:
        settings = Settings(
            auth_modes="static",
            auth_static_keys_file=keys,
            auth_admin_callers="ops",
            redis_url=f"{redis_server.url[:-2]}/{len(started) + 1}"
            if request.param == "redis"
            else None,  # type: ignore[arg-type]
            **limits,
        )
        providers: list[EchoProvider] = [
            GatedProvider("claude", "claude-sonnet-4-5-20250929"),
            UsageProvider("gemini", "gemini-2.5-pro"),
        ]
        gw = ThreadedGateway(settings, providers).__enter__()
        started.append(gw)
        if request.param == "redis":
            # A fresh database: limits and usage of earlier tests are not ours.
            httpx_redis_flush(redis_server, len(started))
        return gw

    yield make
    for gw in started:
        gw.__exit__(None, None, None)


def httpx_redis_flush(server: RedisServer, db: int) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(f"SELECT {db}\r\nFLUSHDB\r\n".encode())
        assert sock.recv(64).count(b"+OK") >= 1


def test_requests_per_minute_per_caller_with_a_true_retry_after(make_gateway: MakeGateway) -> None:
    gw = make_gateway(limit_caller_requests_per_minute=2)
    first = time.time()
    assert chat(gw, "alice").status_code == 200
    assert chat(gw, "alice", "gemini").status_code == 200
    retry = refused(chat(gw, "alice"), "caller requests per minute")
    # The oldest request leaves the window 60 s after it was made: not earlier, not much later.
    assert 60 - (time.time() - first) - 1 <= retry <= 60
    with pytest.raises(openai.RateLimitError):
        openai.OpenAI(
            base_url=f"{gw.url}/v1", api_key="alice-secret-key", max_retries=0
        ).chat.completions.create(
            model="claude-sonnet-4-5-20250929", messages=[{"role": "user", "content": "hi"}]
        )
    assert chat(gw, "bob").status_code == 200  # another caller has a window of its own
    usage = httpx.get(f"{gw.url}/v1/usage", headers=key("ops")).json()
    assert usage["by_caller"]["alice"]["requests"] == 2  # refusals count nothing


async def test_mcp_tools_are_limited_as_the_same_caller(make_gateway: MakeGateway) -> None:
    """Over a limit, /mcp answers 429 + Retry-After before any event stream: the official
    client raises the JSON-RPC error it carries."""
    from tests.gateway.test_auth_mcp import ACCEPT
    from tests.gateway.test_mcp import mcp_error

    gw = make_gateway(limit_caller_requests_per_minute=1)
    assert chat(gw, "alice").status_code == 200
    refused = await mcp_error(call_as(gw, "alice", "claude_chat", {"prompt": "over"}))
    assert refused.message == "rate_limited: limit reached: caller requests per minute"
    assert refused.data["type"] == "rate_limited"
    tool_call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "claude_chat", "arguments": {"prompt": "over"}},
    }
    raw = httpx.post(f"{gw.url}/mcp", json=tool_call, headers={**ACCEPT, **key("alice")})
    assert raw.status_code == 429
    assert 55 <= int(raw.headers["Retry-After"]) <= 60
    assert raw.json()["id"] == 7
    assert raw.json()["error"]["data"]["type"] == "rate_limited"
    assert gw.providers["claude"].requests[-1].prompt == "hi"  # the refused turns never ran
    report = httpx.get(f"{gw.url}/v1/usage", headers=key("ops")).json()
    assert report["by_caller"]["alice"]["requests"] == 1


async def call_as(gw: ThreadedGateway, caller: str, tool: str, args: dict[str, Any]) -> Any:
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers=key(caller), timeout=10) as client,
        streamable_http_client(f"{gw.url}/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await session.call_tool(tool, args)


def test_a_subscription_cap_holds_across_callers(make_gateway: MakeGateway) -> None:
    gw = make_gateway(limit_subscription_requests_per_minute=3)
    for caller in ("alice", "alice", "bob"):
        assert chat(gw, caller).status_code == 200
    assert 55 <= refused(chat(gw, "carol"), "subscription requests per minute") <= 60
    assert chat(gw, "carol", "gemini").status_code == 200  # the other subscription


def test_concurrent_turns_per_caller_and_per_subscription(make_gateway: MakeGateway) -> None:
    gw = make_gateway(limit_caller_concurrent_turns=1, limit_subscription_concurrent_turns=2)
    claude = gw.providers["claude"]
    assert isinstance(claude, GatedProvider)
    claude.arm()
    answers: list[httpx.Response] = []
    runs = [
        threading.Thread(target=lambda c=c: answers.append(chat(gw, c, prompt="!gate")))
        for c in ("alice", "bob")
    ]
    for run in runs:
        run.start()
    running = gw.app.state.metrics.in_flight.labels("claude")
    wait_until(lambda: running._value.get() == 2, what="two gated turns")
    assert refused(chat(gw, "alice", "gemini"), "caller concurrent turns") == 1
    assert refused(chat(gw, "carol"), "subscription concurrent turns") == 1
    assert chat(gw, "carol", "gemini").status_code == 200
    claude.gate.set()
    for run in runs:
        run.join(timeout=30)
    assert [a.status_code for a in answers] == [200, 200]
    assert chat(gw, "alice").status_code == 200  # the slots were released


def test_daily_token_budget_from_reported_usage(make_gateway: MakeGateway) -> None:
    gw = make_gateway(limit_caller_daily_tokens=10)
    answer = chat(gw, "alice", "gemini", prompt="one two three")
    assert answer.status_code == 200
    # UsageProvider reports 3 in and 4 out (the header and three words): 7 < 10, so one more.
    assert chat(gw, "alice", "gemini", prompt="four").status_code == 200
    retry = refused(chat(gw, "alice", "gemini"), "caller daily token budget")
    until_midnight = 86400 - time.time() % 86400
    assert abs(retry - until_midnight) <= 2
    report = httpx.get(f"{gw.url}/v1/usage", headers=key("ops")).json()
    assert report["by_caller"]["alice"] == {"requests": 2, "tokens_in": 4, "tokens_out": 6}
    metrics = httpx.get(f"{gw.admin_url}/metrics").text
    assert (
        'llm_mcp_hub_gateway_tokens_total{caller="alice",direction="in",provider="gemini"} 4.0'
        in metrics
    )
    assert (
        'llm_mcp_hub_gateway_tokens_total{caller="alice",direction="out",provider="gemini"} 6.0'
        in metrics
    )


def test_limits_hold_across_two_gateway_processes_on_one_redis(
    redis_server: RedisServer,
    replicas: Callable[[dict[str, str], int], list[GatewayProcess]],
) -> None:
    db = 9
    httpx_redis_flush(redis_server, db)
    env = {
        "REDIS_URL": f"{redis_server.url[:-2]}/{db}",
        "AUTH_MODES": "none",
        "AUTH_ADMIN_CALLERS": "anonymous",
        "LIMIT_CALLER_REQUESTS_PER_MINUTE": "3",
        "LIMIT_CALLER_CONCURRENT_TURNS": "1",
        "LOG_LEVEL": "WARNING",
    }
    a, b = replicas(env, 2)
    body = {"provider": "claude", "prompt": "hi"}
    first = time.time()
    with httpx.stream(
        "POST", f"{a.url}/v1/chat", json={**body, "prompt": "!slow", "stream": True}, timeout=30
    ) as slow:
        assert slow.status_code == 200
        lines = slow.iter_lines()  # kept: a dropped iterator closes the stream
        assert next(lines) == "event: session"  # the turn runs on replica a ...
        busy = httpx.post(f"{b.url}/v1/chat", json=body, timeout=30)
        assert busy.status_code == 429, busy.text  # ... so replica b refuses the second one
        assert "concurrent" in busy.json()["error"]["message"]
    # Closing the stream ends the turn and frees its slot on every replica.
    wait_until(
        lambda: httpx.post(f"{b.url}/v1/chat", json=body, timeout=30).status_code == 200, timeout=10
    )
    assert httpx.post(f"{a.url}/v1/chat", json=body, timeout=30).status_code == 200
    for replica in (a, b):
        late = httpx.post(f"{replica.url}/v1/chat", json=body, timeout=30)
        assert late.status_code == 429
        assert 60 - (time.time() - first) - 1 <= int(late.headers["Retry-After"]) <= 60
    report = httpx.get(f"{a.url}/v1/usage", timeout=10).json()
    assert report["by_caller"]["anonymous"]["requests"] == 3


async def test_an_unreachable_limit_store_refuses_turns_rather_than_dropping_limits() -> None:
    from llmhub_gateway.errors import StoreUnavailable
    from llmhub_gateway.limits.base import Limits, Slot
    from llmhub_gateway.limits.redis import RedisLimiter
    from tests.gateway.conftest import free_port

    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", Limits(caller_rpm=5))
    try:
        with pytest.raises(StoreUnavailable):
            await limiter.acquire("alice", "claude")
        await limiter.release(Slot("alice", "claude", "abc"))  # logged; the slot expires
        unlimited = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", Limits())
        assert (await unlimited.acquire("alice", "claude")).slot_id == ""  # no Redis call
        await unlimited.aclose()
    finally:
        await limiter.aclose()


async def test_all_keys_of_the_limiter_share_one_cluster_hash_slot(
    redis_server: RedisServer,
) -> None:
    """A Lua script (and MULTI) on a Redis Cluster may only touch keys of one hash slot: the
    admission script mixes caller and subscription keys, the usage transaction day and caller."""
    import uuid

    import redis.asyncio as aioredis
    from redis.crc import key_slot

    from llmhub_gateway.limits.base import Limits
    from llmhub_gateway.limits.redis import RedisLimiter

    prefix = f"t{uuid.uuid4().hex}:"
    limits = Limits(
        caller_rpm=5,
        caller_concurrent=5,
        caller_daily_tokens=100,
        subscription_rpm=5,
        subscription_concurrent=5,
    )
    limiter = RedisLimiter(redis_server.url, limits, prefix=prefix)
    raw = aioredis.from_url(redis_server.url)
    try:
        await limiter.acquire("alice", "claude")
        await limiter.acquire("bob", "gemini")
        await limiter.record("alice", "claude", 3, 4)
        keys = [k async for k in raw.scan_iter(match=f"{{{prefix}}}*")]
        kinds = {k.decode().split("}", 1)[1].split(":")[0] for k in keys}
        assert kinds == {"rpm", "run", "tok", "use"}  # caller, subscription and usage keys
        assert len(keys) == 10
        assert len({key_slot(k) for k in keys}) == 1
        assert (await limiter.usage(utc_day()))[0].tokens_out == 4  # still read back
    finally:
        await raw.aclose()
        await limiter.aclose()
    with pytest.raises(ValueError, match="hash tag"):
        RedisLimiter(redis_server.url, limits, prefix="x{y}:")
