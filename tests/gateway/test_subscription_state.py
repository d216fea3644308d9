"""The subscription's rate-limit state as the CLI reports it: a rejected window refuses the
next turns before any provider call (429 + a true Retry-After) until its reset, on every
replica sharing one Redis; paid overage is refused unless LIMIT_ALLOW_OVERAGE; warnings only
show in the metrics and the provider status endpoint."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families

from llmhub_gateway.chat import ChatService
from llmhub_gateway.core.config import Settings
from llmhub_gateway.metrics import Metrics
from llmhub_gateway.providers.base import ChatRequest, RateLimitNotice, StreamItem
from llmhub_gateway.registry import Registry
from llmhub_gateway.sessions.memory import MemorySessionStore
from llmhub_gateway.subscription_state import (
    NO_RESET_S,
    OVERAGE_RECHECK_S,
    MemorySubscriptionState,
    RedisSubscriptionState,
    SubscriptionOverageBlocked,
    SubscriptionRateLimited,
    SubscriptionState,
    Window,
    from_notice,
    judge,
)
from tests.gateway.conftest import RedisServer, ThreadedGateway, free_port
from tests.gateway.fake_provider import EchoProvider

CLAUDE_MODEL = "claude-sonnet-4-5-20250929"


class NoticeProvider(EchoProvider):
    """EchoProvider whose ``!notice <json>`` prompts report that RateLimitNotice mid-turn
    (as the Claude adapter does with the CLI's rate_limit_event), then answer."""

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:  # type: ignore[override]
        if request.prompt.startswith("!notice "):
            self.requests.append(request)
            yield "before "
            yield RateLimitNotice(**json.loads(request.prompt.removeprefix("!notice ")))
            yield "after"
            return
        async for delta in super().stream(request):
            yield delta


def notice(status: str, window: str = "five_hour", in_s: float | None = 2.0, **extra: Any) -> str:
    """The magic prompt for a notice whose window resets ``in_s`` seconds from now."""
    fields: dict[str, Any] = {"status": status, "rate_limit_type": window, **extra}
    if in_s is not None:
        fields["resets_at"] = time.time() + in_s
    return "!notice " + json.dumps(fields)


def providers() -> list[EchoProvider]:
    return [NoticeProvider("claude", CLAUDE_MODEL), NoticeProvider("gemini", "gemini-2.5-pro")]


def flush(server: RedisServer, db: int) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(f"SELECT {db}\r\nFLUSHDB\r\n".encode())
        assert sock.recv(64).count(b"+OK") >= 1


# -- the rule ---------------------------------------------------------------------------------


def window(status: str, kind: str = "five_hour", in_s: float = 100.0, **extra: Any) -> Window:
    made = from_notice(
        RateLimitNotice(status=status, rate_limit_type=kind, resets_at=time.time() + in_s, **extra),  # type: ignore[arg-type]
        time.time(),
    )
    assert made is not None
    return made


def test_the_rule_follows_the_clis_own_overage_test() -> None:
    spent_plan = window("rejected", overage_status="rejected")
    now = time.time()
    limited = judge("claude", spent_plan, False, now)
    assert isinstance(limited, SubscriptionRateLimited)
    assert limited.status_code == 429
    assert limited.retry_after in (99, 100)
    assert "five_hour" in str(limited)
    assert time.strftime("%Y-%m-%dT%H:", time.gmtime(now + 100)) in str(limited)
    # Plan used up, extra usage available: the CLI's isUsingOverage -> paid turns.
    paid = window("rejected", overage_status="allowed_warning")
    assert isinstance(judge("claude", paid, False, now), SubscriptionOverageBlocked)
    assert judge("claude", paid, True, now) is None
    # The limiting window is the extra-usage one: the plan is used up as well.
    in_overage = window("allowed", kind="overage")
    assert isinstance(judge("claude", in_overage, False, now), SubscriptionOverageBlocked)
    assert judge("claude", in_overage, True, now) is None
    # A spent overage cap is a plain rate limit, allowed overage or not.
    spent = window("rejected", kind="overage", overage_status="rejected")
    assert isinstance(judge("claude", spent, True, now), SubscriptionRateLimited)
    for fine in (window("allowed"), window("allowed_warning", utilization=0.93)):
        assert judge("claude", fine, False, now) is None
    # Nothing is refused once the reset has passed.
    assert judge("claude", window("rejected"), False, now + 101) is None


def test_records_last_until_the_reset_or_a_bounded_recheck() -> None:
    now = time.time()
    assert from_notice(RateLimitNotice("rejected", resets_at=now - 1), now) is None  # stale
    no_reset = from_notice(RateLimitNotice("rejected"), now)
    assert no_reset is not None
    assert no_reset.expires_at == now + NO_RESET_S
    far = from_notice(
        RateLimitNotice("allowed", resets_at=now + 30 * 86400, rate_limit_type="overage"), now
    )
    assert far is not None
    assert far.expires_at == now + OVERAGE_RECHECK_S
    odd = from_notice(RateLimitNotice("allowed", resets_at=now + 5, rate_limit_type="weird"), now)
    assert odd is not None
    assert odd.window == "other"


# -- ChatService, in memory and in one real Redis ---------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def make_state(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[Callable[[], SubscriptionState]]:
    """States of one deployment: in memory one shared object (a single replica), in Redis a
    new client per call (replicas) under this test's own key prefix."""
    prefix = f"t{uuid.uuid4().hex}:"
    made: list[SubscriptionState] = []
    single = MemorySubscriptionState()

    def make() -> SubscriptionState:
        state: SubscriptionState = (
            single
            if request.param == "memory"
            else RedisSubscriptionState(redis_server.url, prefix=prefix)
        )
        made.append(state)
        return state

    yield make
    for state in made:
        await state.aclose()


def service(state: SubscriptionState, provider: EchoProvider, **kw: Any) -> ChatService:
    return ChatService(
        Registry([provider], Settings()),
        MemorySessionStore(60),
        Metrics(),
        subscriptions=state,
        **kw,
    )


async def turn(chat: ChatService, prompt: str) -> str:
    prepared = await chat.prepare(provider="claude", prompt=prompt)
    return (await chat.complete(prepared)).text


async def test_a_rejected_window_refuses_before_the_provider_until_its_reset(
    make_state: Callable[[], SubscriptionState],
) -> None:
    provider = NoticeProvider("claude", CLAUDE_MODEL)
    chat = service(make_state(), provider)
    assert await turn(chat, notice("rejected", in_s=1.5)) == "before after"
    calls = len(provider.requests)
    with pytest.raises(SubscriptionRateLimited) as refused:
        await chat.prepare(provider="claude", prompt="hi")
    assert refused.value.retry_after in (1, 2)
    with pytest.raises(SubscriptionRateLimited):
        await chat.prepare_stateless(
            provider=provider, prompt="hi", history=(), model=CLAUDE_MODEL, system=None
        )
    assert len(provider.requests) == calls  # no doomed CLI call
    assert chat.metrics.subscription_limited.labels("claude")._value.get() == 1
    refusals = chat.metrics.subscription_refusals.labels("claude", "subscription_rate_limited")
    assert refusals._value.get() == 2
    time.sleep(1.6)
    assert (await turn(chat, "hi again")).endswith("hi again ")
    assert chat.metrics.subscription_limited.labels("claude")._value.get() == 0


async def test_two_services_share_the_state(make_state: Callable[[], SubscriptionState]) -> None:
    a = service(make_state(), NoticeProvider("claude", CLAUDE_MODEL))
    b_provider = NoticeProvider("claude", CLAUDE_MODEL)
    b = service(make_state(), b_provider)
    await turn(a, notice("rejected", in_s=60, overage_status="rejected"))
    with pytest.raises(SubscriptionRateLimited) as refused:
        await b.prepare(provider="claude", prompt="hi")
    assert refused.value.retry_after in (59, 60)
    assert b_provider.requests == []
    # A newer report (a turn already running elsewhere saw the window reset early) replaces
    # it everywhere ...
    state = make_state()
    await state.record("claude", window("allowed", in_s=3600, utilization=0.01))
    assert (await turn(b, "hi")).endswith("hi ")
    # ... but an older one arriving late never overwrites a newer one.
    stale = window("rejected")
    late = dataclasses.replace(stale, observed_at=stale.observed_at - 10)
    await state.record("claude", late)
    current = await state.current("claude")
    assert current is not None
    assert current.status == "allowed"


async def test_overage_is_refused_unless_allowed(
    make_state: Callable[[], SubscriptionState],
) -> None:
    blocked_provider = NoticeProvider("claude", CLAUDE_MODEL)
    blocked = service(make_state(), blocked_provider)
    await turn(blocked, notice("rejected", in_s=30, overage_status="allowed"))
    with pytest.raises(SubscriptionOverageBlocked) as refused:
        await blocked.prepare(provider="claude", prompt="hi")
    assert refused.value.retry_after in (29, 30)
    assert "LIMIT_ALLOW_OVERAGE" in str(refused.value)
    allowed = service(make_state(), NoticeProvider("claude", CLAUDE_MODEL), allow_overage=True)
    assert (await turn(allowed, "paid is fine")).endswith("paid is fine ")


async def test_a_warning_only_updates_the_metrics(
    make_state: Callable[[], SubscriptionState],
) -> None:
    chat = service(make_state(), NoticeProvider("claude", CLAUDE_MODEL))
    resets = time.time() + 3600
    await turn(
        chat,
        "!notice "
        + json.dumps(
            {
                "status": "allowed_warning",
                "rate_limit_type": "seven_day",
                "resets_at": resets,
                "utilization": 0.8,
            }
        ),
    )
    assert (await turn(chat, "still fine")).endswith("still fine ")
    metrics = chat.metrics
    assert metrics.subscription_utilization.labels("claude", "seven_day")._value.get() == 0.8
    assert metrics.subscription_resets_at.labels("claude", "seven_day")._value.get() == resets
    assert metrics.subscription_limited.labels("claude")._value.get() == 0


async def test_records_expire_in_redis_at_the_reset(redis_server: RedisServer) -> None:
    import redis.asyncio as aioredis

    prefix = f"t{uuid.uuid4().hex}:"
    state = RedisSubscriptionState(redis_server.url, prefix=prefix)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await state.record("claude", window("rejected", in_s=30))
        keys = sorted(k.decode() for k in await client.keys(f"{prefix}*"))
        assert keys == [f"{prefix}claude:current", f"{prefix}claude:w:five_hour"]
        for key in keys:
            assert 28_000 < await client.pttl(key) <= 30_000
    finally:
        await client.aclose()
        await state.aclose()


async def test_an_unreachable_redis_falls_back_to_what_this_replica_saw() -> None:
    provider = NoticeProvider("claude", CLAUDE_MODEL)
    state = RedisSubscriptionState(f"redis://127.0.0.1:{free_port()}/0")
    chat = service(state, provider)
    try:
        assert await turn(chat, "fine") == f"[claude|{CLAUDE_MODEL}|turns=0] fine "  # not refused
        await turn(chat, notice("rejected", in_s=30))  # recorded here, not shared
        with pytest.raises(SubscriptionRateLimited):
            await chat.prepare(provider="claude", prompt="hi")
    finally:
        await state.aclose()


# -- over HTTP: real uvicorn, real Redis ------------------------------------------------------

KEY = "sub-secret-key"
MakeGateway = Callable[..., ThreadedGateway]


@pytest.fixture
def make_gateway(redis_server: RedisServer, tmp_path: Path) -> Iterator[MakeGateway]:
    """Gateways on one Redis database (flushed first) with static keys (caller ``ops``)."""
    keys = tmp_path / "keys"
    keys.write_text(f"ops sha256:{hashlib.sha256(KEY.encode()).hexdigest()}\n")
    flush(redis_server, 13)
    started: list[ThreadedGateway] = []

    def make(**settings: Any) -> ThreadedGateway:
        gw = ThreadedGateway(
            Settings(
                auth_modes="static",
                auth_static_keys_file=keys,
                redis_url=f"{redis_server.url[:-2]}/13",  # type: ignore[arg-type]
                **settings,
            ),
            providers(),
        ).__enter__()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.__exit__(None, None, None)


AUTH = {"Authorization": f"Bearer {KEY}"}


def post(gw: ThreadedGateway, prompt: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/chat",
        json={"provider": "claude", "prompt": prompt, **body},
        headers=AUTH,
        timeout=30,
    )


def scrape(gw: ThreadedGateway) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The gateway's /metrics as {(series, labels): value}."""
    text = httpx.get(f"{gw.admin_url}/metrics", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def series(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (f"llm_mcp_hub_gateway_subscription_{name}", frozenset(labels.items()))


def test_http_rejected_then_429_on_every_api_and_replica_until_the_reset(
    make_gateway: MakeGateway,
) -> None:
    a, b = make_gateway(), make_gateway()
    resets = time.time() + 2.5
    prompt = "!notice " + json.dumps(
        {"status": "rejected", "rate_limit_type": "five_hour", "resets_at": resets}
    )
    assert post(a, prompt).json()["text"] == "before after"
    calls = sum(len(p.requests) for gw in (a, b) for p in gw.providers.values())
    for gw in (a, b):
        most = max(1, math.ceil(resets - time.time()))
        refused = post(gw, "hi")
        least = max(1, math.ceil(resets - time.time()))
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["type"] == "subscription_rate_limited"
        assert (
            "until " + time.strftime("%Y-%m-%dT%H:%M", time.gmtime(resets))
            in (refused.json()["error"]["message"])
        )
        assert least <= int(refused.headers["Retry-After"]) <= most
        streamed = post(gw, "hi", stream=True)  # refused before the stream's 200
        assert streamed.status_code == 429
        assert streamed.headers["content-type"] == "application/json"
    client = openai.OpenAI(base_url=f"{b.url}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.RateLimitError) as openai_refused:
        client.chat.completions.create(
            model=CLAUDE_MODEL, messages=[{"role": "user", "content": "hi"}]
        )
    assert openai_refused.value.response.headers["Retry-After"]
    assert sum(len(p.requests) for gw in (a, b) for p in gw.providers.values()) == calls
    assert post(b, "hi", provider="gemini").status_code == 200  # gemini is not limited
    metrics = scrape(b)  # b never saw the notice: the gauges come from the shared state
    assert metrics[series("limited", provider="claude")] == 1
    assert metrics[series("resets_at_seconds", provider="claude", window="five_hour")] == resets
    reason = "subscription_rate_limited"
    assert metrics[series("refusals_total", provider="claude", reason=reason)] == 3
    assert metrics[series("limited", provider="gemini")] == 0
    time.sleep(max(0.0, resets - time.time()) + 0.1)
    for gw in (a, b):
        assert post(gw, "hi").status_code == 200
    after = scrape(a)
    assert after[series("limited", provider="claude")] == 0
    # The window has reset: its last report is gone, and so are its gauges.
    assert series("resets_at_seconds", provider="claude", window="five_hour") not in after


def test_http_overage_blocked_by_default_and_allowed_by_the_setting(
    make_gateway: MakeGateway,
) -> None:
    strict, lenient = make_gateway(), make_gateway(limit_allow_overage=True)
    reached = notice("allowed", window="overage", in_s=600, overage_status="allowed")
    assert post(lenient, reached).status_code == 200
    refused = post(strict, "hi")
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "subscription_overage_blocked"
    assert int(refused.headers["Retry-After"]) in (599, 600)
    assert post(lenient, "hi").status_code == 200  # the owner accepts paid overage
    reason = "subscription_overage_blocked"
    assert scrape(strict)[series("refusals_total", provider="claude", reason=reason)] == 1
    assert series("refusals_total", provider="claude", reason=reason) not in scrape(lenient)
    status = httpx.get(f"{strict.url}/v1/providers/claude/status", headers=AUTH, timeout=10)
    body = status.json()
    assert body["limited"] is True
    assert body["overage"] is True
    assert body["overage_allowed"] is False
    assert body["refusal"]["type"] == "subscription_overage_blocked"
    assert body["current"]["window"] == "overage"


def test_http_a_warning_shows_in_metrics_and_status_only(make_gateway: MakeGateway) -> None:
    gw = make_gateway(claude_token_expires_at="2099-01-01T00:00:00Z")
    resets = time.time() + 7200
    assert (
        post(
            gw,
            "!notice "
            + json.dumps(
                {
                    "status": "allowed_warning",
                    "rate_limit_type": "seven_day",
                    "resets_at": resets,
                    "utilization": 0.91,
                    "overage_status": "rejected",
                }
            ),
        ).status_code
        == 200
    )
    assert post(gw, "next").status_code == 200
    metrics = scrape(gw)
    assert metrics[series("utilization", provider="claude", window="seven_day")] == 0.91
    assert metrics[series("resets_at_seconds", provider="claude", window="seven_day")] == resets
    assert metrics[series("limited", provider="claude")] == 0
    assert not [name for name, _ in metrics if name.endswith("subscription_refusals_total")]
    answer = httpx.get(f"{gw.url}/v1/providers/claude/status", headers=AUTH, timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert body["provider"] == "claude"
    assert body["configured"] is True
    assert body["token"]["status"] == "valid"
    assert body["limited"] is False
    assert body["overage"] is False
    assert body["refusal"] is None
    (seven_day,) = body["windows"]
    assert seven_day["window"] == "seven_day"
    assert seven_day["status"] == "allowed_warning"
    assert seven_day["utilization"] == 0.91
    assert seven_day["resets_at"] == resets
    assert body["current"] == seven_day
    gemini = httpx.get(f"{gw.url}/v1/providers/gemini/status", headers=AUTH, timeout=10).json()
    assert gemini["windows"] == []
    assert gemini["current"] is None
    assert gemini["limited"] is False


def test_http_status_needs_a_caller_and_a_known_provider(make_gateway: MakeGateway) -> None:
    gw = make_gateway()
    anonymous = httpx.get(f"{gw.url}/v1/providers/claude/status", timeout=10)
    assert anonymous.status_code == 401
    unknown = httpx.get(f"{gw.url}/v1/providers/mistral/status", headers=AUTH, timeout=10)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "model_not_found"
    assert "mistral" in unknown.json()["error"]["message"]


async def test_mcp_chat_tools_are_refused_alike(make_gateway: MakeGateway) -> None:
    """On /mcp the refusal is the HTTP 429 + Retry-After of the other APIs, carrying a
    JSON-RPC error the official client raises; the other provider is still served."""
    from tests.gateway.test_mcp import mcp_error

    gw = make_gateway()
    assert post(gw, notice("rejected", in_s=120)).status_code == 200
    async with (
        httpx2.AsyncClient(headers=AUTH, timeout=10) as client,
        streamable_http_client(f"{gw.url}/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        served = await session.call_tool("gemini_chat", {"prompt": "hi"})
        refused = await mcp_error(session.call_tool("claude_chat", {"prompt": "hi"}))
    assert refused.data["type"] == "subscription_rate_limited"
    assert "the claude subscription is rate-limited" in refused.message
    assert 100 <= refused.data["retry_after"] <= 121
    assert served.is_error is False
    assert len(gw.providers["claude"].requests) == 1  # only the turn that reported
