"""One turn at a time per session: a second concurrent request gets 409, never a hang.

The lease lives in the session store, so it holds across replicas on one Redis; it is released
when a turn ends however it ends (answer, provider error, client gone) and renewed while a
long turn runs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from llmhub_gateway.core.config import Settings
from tests.gateway.conftest import GatewayProcess, RedisServer, ThreadedGateway, wait_until
from tests.gateway.fake_provider import EchoProvider, GatedProvider
from tests.gateway.test_mcp import call, mcp_error

LEASE_S = 0.6  # short, so the renewal runs several times within one test


@pytest.fixture(scope="module", params=["memory", "redis"])
def gw(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[ThreadedGateway]:
    redis_url = redis_server.url if request.param == "redis" else None
    settings = Settings(redis_url=redis_url)  # type: ignore[arg-type]  # str -> SecretStr
    providers: list[EchoProvider] = [
        GatedProvider("claude", "claude-sonnet-4-5-20250929"),
        GatedProvider("gemini", "gemini-2.5-pro"),
    ]
    with ThreadedGateway(settings, providers) as gateway:
        gateway.app.state.chat.lease_s = LEASE_S
        yield gateway


def _post(gw: ThreadedGateway, **body: Any) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/chat", json={"provider": "claude", **body}, timeout=30)


def _claude(gw: ThreadedGateway) -> GatedProvider:
    provider = gw.providers["claude"]
    assert isinstance(provider, GatedProvider)
    return provider


def _user_turns(gw: ThreadedGateway, sid: str) -> list[str]:
    turns = httpx.get(f"{gw.url}/v1/sessions/{sid}", timeout=10).json()["turns"]
    return [t["text"] for t in turns if t["role"] == "user"]


def test_second_concurrent_turn_gets_409_with_retry_after(gw: ThreadedGateway) -> None:
    claude = _claude(gw)
    claude.arm()
    sid = _post(gw, prompt="first").json()["session_id"]
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(_post, gw, prompt="!gate second", session_id=sid)
        wait_until(claude.started.is_set, what="the first turn to reach the provider")
        held_since = time.monotonic()
        # Outlive several lease periods: the running turn keeps renewing its lease.
        wait_until(lambda: time.monotonic() > held_since + 3 * LEASE_S, what="lease periods")
        started = time.monotonic()
        busy = _post(gw, prompt="clash", session_id=sid)
        assert time.monotonic() - started < 2.0  # an immediate answer, not a wait
        assert busy.status_code == 409
        assert busy.headers["retry-after"] == "2"
        assert busy.json()["error"]["type"] == "session_busy"
        assert sid in busy.json()["error"]["message"]
        assert _post(gw, prompt="elsewhere").status_code == 200  # other sessions run
        claude.gate.set()
        assert slow.result(timeout=30).status_code == 200
    after = _post(gw, prompt="third", session_id=sid)
    assert after.status_code == 200
    assert after.json()["text"].startswith("[claude|claude-sonnet-4-5-20250929|turns=4]")
    assert _user_turns(gw, sid) == ["first", "!gate second", "third"]


def test_a_streaming_turn_holds_the_session_too(gw: ThreadedGateway) -> None:
    claude = _claude(gw)
    claude.arm()
    sid = _post(gw, prompt="first").json()["session_id"]
    body = {"provider": "claude", "prompt": "!gate streamed", "session_id": sid, "stream": True}
    with httpx.stream("POST", f"{gw.url}/v1/chat", json=body, timeout=30) as streamed:
        assert streamed.status_code == 200
        wait_until(claude.started.is_set, what="the streamed turn to reach the provider")
        busy = _post(gw, prompt="clash", session_id=sid)
        assert busy.status_code == 409
        claude.gate.set()
        text = streamed.read().decode()
    assert "event: done" in text
    assert _post(gw, prompt="next", session_id=sid).status_code == 200


def test_a_failed_turn_releases_the_session(gw: ThreadedGateway) -> None:
    sid = _post(gw, prompt="first").json()["session_id"]
    assert _post(gw, prompt="!crash", session_id=sid).status_code == 502
    assert _post(gw, prompt="!busy", session_id=sid).status_code == 429
    assert _post(gw, prompt="again", session_id=sid).status_code == 200


def test_an_unknown_or_mismatched_session_releases_its_lease(gw: ThreadedGateway) -> None:
    unknown = str(uuid.uuid4())
    assert _post(gw, prompt="x", session_id=unknown).status_code == 404
    assert _post(gw, prompt="x", session_id=unknown).status_code == 404  # not 409
    sid = _post(gw, prompt="first").json()["session_id"]
    wrong = httpx.post(
        f"{gw.url}/v1/chat", json={"provider": "gemini", "prompt": "x", "session_id": sid}
    )
    assert wrong.status_code == 400
    assert _post(gw, prompt="mine", session_id=sid).status_code == 200


async def test_an_mcp_tool_call_on_a_busy_session_is_a_409_before_the_event_stream(
    gw: ThreadedGateway,
) -> None:
    """As for REST: 409 + Retry-After (a JSON-RPC error the official client raises)."""
    claude = _claude(gw)
    claude.arm()
    sid = _post(gw, prompt="first").json()["session_id"]
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(_post, gw, prompt="!gate held", session_id=sid)
        await asyncio.to_thread(wait_until, claude.started.is_set, 20.0, "the held turn")
        refused = await mcp_error(call(gw, "claude_chat", {"prompt": "via mcp", "session_id": sid}))
        claude.gate.set()
        assert slow.result(timeout=30).status_code == 200
    assert refused.message.startswith("session_busy: session")
    assert refused.data == {"type": "session_busy", "status": 409, "retry_after": 2}


def test_openapi_documents_the_409(gw: ThreadedGateway) -> None:
    doc = httpx.get(f"{gw.url}/openapi.json", timeout=10).json()
    responses = doc["paths"]["/v1/chat"]["post"]["responses"]
    assert "409" in responses
    assert responses["409"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")


def _first_delta(lines: Iterator[str]) -> None:
    """Read up to the first delta. The caller keeps ``lines``: dropping a half-read httpx
    iterator closes the response, which the gateway rightly takes as a disconnect."""
    for line in lines:
        if line.startswith("event: delta"):
            return
    raise AssertionError("the stream ended before its first delta")


def test_two_replicas_share_the_lease_and_a_disconnect_frees_it(
    redis_server: RedisServer, replicas: Callable[[dict[str, str], int], list[GatewayProcess]]
) -> None:
    a, b = replicas({"REDIS_URL": redis_server.url}, 2)
    sid = httpx.post(f"{a.url}/v1/chat", json={"provider": "claude", "prompt": "hi"}).json()[
        "session_id"
    ]
    body = {"provider": "claude", "prompt": "!slow", "session_id": sid, "stream": True}
    with httpx.stream("POST", f"{a.url}/v1/chat", json=body, timeout=30) as streamed:
        lines = streamed.iter_lines()
        _first_delta(lines)
        busy = httpx.post(
            f"{b.url}/v1/chat", json={"provider": "claude", "prompt": "x", "session_id": sid}
        )
        assert busy.status_code == 409
        assert busy.json()["error"]["type"] == "session_busy"
    # The client left: replica a closes the turn and releases the lease in Redis.
    follow = {"provider": "claude", "prompt": "after", "session_id": sid}
    wait_until(
        lambda: httpx.post(f"{b.url}/v1/chat", json=follow, timeout=10).status_code == 200,
        timeout=15,
        what="the lease to be released after the disconnect",
    )
