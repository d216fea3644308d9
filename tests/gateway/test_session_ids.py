"""Session ids are UUIDs at every entry point (REST body and path, MCP arguments): an id shaped
like another key, or of any length, never reaches Redis. Also: invalid Unicode is a 400."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from llmhub_gateway.core.config import Settings
from tests.gateway.conftest import RedisServer, ThreadedGateway, wait_until
from tests.gateway.fake_provider import GatedProvider
from tests.gateway.test_mcp import call


@pytest.fixture(scope="module")
def gw(redis_server: RedisServer) -> Iterator[ThreadedGateway]:
    settings = Settings(redis_url=redis_server.url)  # type: ignore[arg-type]
    providers = [
        GatedProvider("claude", "claude-sonnet-4-5-20250929"),
        GatedProvider("gemini", "gemini-2.5-pro"),
    ]
    with ThreadedGateway(settings, providers) as gateway:
        yield gateway


def _bad_ids(sid: str) -> list[str]:
    return [
        f"{sid}:lock",
        f"{sid}:turns",
        f"{{{sid}}}",
        "*",
        f"{sid[:-1]}\u0660",  # an Arabic-Indic digit: not ASCII hex
        sid.replace("-", ""),
        "a" * 4000,
    ]


def _keys(redis_server: RedisServer, sid: str) -> dict[str, int]:
    client = redis.Redis.from_url(redis_server.url)
    try:
        return {k.decode(): client.ttl(k) for k in client.keys(f"*{sid}*")}
    finally:
        client.close()


def test_key_shaped_ids_are_refused_on_every_rest_entry_point(
    gw: ThreadedGateway, redis_server: RedisServer
) -> None:
    claude = gw.providers["claude"]
    assert isinstance(claude, GatedProvider)
    claude.arm()
    sid = httpx.post(f"{gw.url}/v1/chat", json={"provider": "claude", "prompt": "hi"}).json()[
        "session_id"
    ]
    with ThreadPoolExecutor(1) as pool:
        turn = pool.submit(
            httpx.post,
            f"{gw.url}/v1/chat",
            json={"provider": "claude", "prompt": "!gate held", "session_id": sid},
            timeout=30,
        )
        wait_until(claude.started.is_set, what="a turn holding the lease")
        before = _keys(redis_server, sid)
        assert f"llmhub:s:{{{sid}}}:lock" in before
        for bad in _bad_ids(sid):
            for response in (
                httpx.delete(f"{gw.url}/v1/sessions/{bad}"),
                httpx.get(f"{gw.url}/v1/sessions/{bad}"),
                httpx.post(
                    f"{gw.url}/v1/chat",
                    json={"provider": "claude", "prompt": "x", "session_id": bad[:128]},
                ),
            ):
                assert response.status_code == 400, (bad[:50], response.text)
                assert response.json()["error"]["type"] == "invalid_session_id"
        assert set(_keys(redis_server, sid)) == set(before)  # the lease and history untouched
        claude.gate.set()
        assert turn.result(timeout=30).status_code == 200  # its lease was never deleted
    turns = httpx.get(f"{gw.url}/v1/sessions/{sid.upper()}").json()["turns"]  # any case
    assert [t["text"] for t in turns if t["role"] == "user"] == ["hi", "!gate held"]


async def test_key_shaped_ids_are_refused_as_mcp_arguments(gw: ThreadedGateway) -> None:
    sid = str(uuid.uuid4())
    for tool in ("claude_chat", "gemini_chat"):
        for bad in _bad_ids(sid):
            result = await call(gw, tool, {"prompt": "x", "session_id": bad})
            assert result.is_error is True
            assert "invalid_session_id: session_id must be a UUID" in result.content[0].text


def test_a_lone_surrogate_is_a_400_on_every_api(gw: ThreadedGateway) -> None:
    raw = b'{"model": "claude-x", "messages": [{"role": "user", "content": "bad \\ud800 text"}]}'
    completion = httpx.post(
        f"{gw.url}/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert completion.status_code == 400
    assert completion.json()["error"] == {  # in OpenAI's shape on its route
        "type": "bad_request",
        "message": "the request contains invalid Unicode (a lone surrogate)",
        "param": None,
        "code": "bad_request",
    }
    rest = httpx.post(
        f"{gw.url}/v1/chat",
        content=b'{"provider": "gemini", "prompt": "x \\udfff"}',
        headers={"content-type": "application/json"},
    )
    assert (rest.status_code, rest.json()["error"]["type"]) == (400, "bad_request")
