"""Sessions belong to the caller who created them: only that caller (or an admin caller) may
continue, read or delete one; to anyone else it does not exist (404, never 409 or 403). Both
stores, over HTTP with two static-key callers, and through the MCP tools."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from llmhub_gateway.core.config import Settings
from llmhub_gateway.sessions.base import SessionStore
from tests.gateway.conftest import RedisServer, ThreadedGateway
from tests.gateway.fake_provider import echo_providers
from tests.gateway.test_mcp import structured

CALLERS = ("alice", "bob", "ops")


def key(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-owner-key-0123456789"}


@pytest.fixture(scope="module", params=["memory", "redis"])
def owned(
    request: pytest.FixtureRequest,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ThreadedGateway]:
    keys = tmp_path_factory.mktemp("owners") / "keys"
    keys.write_text(
        "".join(
            f"{n} sha256:{hashlib.sha256(key(n)['Authorization'][7:].encode()).hexdigest()}\n"
            for n in CALLERS
        )
    )
    settings = Settings(
        auth_modes="static",
        auth_static_keys_file=keys,
        auth_admin_callers="ops",
        redis_url=redis_server.url if request.param == "redis" else None,  # type: ignore[arg-type]
    )
    with ThreadedGateway(settings, echo_providers()) as gw:
        yield gw


def _chat(gw: ThreadedGateway, caller: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/chat",
        json={"provider": "claude", "prompt": "hi", **body},
        headers=key(caller),
    )


def test_another_caller_cannot_continue_read_or_delete_a_session(owned: ThreadedGateway) -> None:
    sid = _chat(owned, "alice").json()["session_id"]
    unknown = str(uuid.uuid4())
    for target in (sid, unknown):  # bob cannot tell alice's session from one that never was
        refused = _chat(owned, "bob", session_id=target)
        assert refused.status_code == 404
        assert refused.json()["error"] == {
            "type": "session_not_found",
            "message": f"session '{target}' not found",
        }
        for method in ("GET", "DELETE"):
            answer = httpx.request(method, f"{owned.url}/v1/sessions/{target}", headers=key("bob"))
            assert answer.status_code == 404, (method, target)
    own = httpx.get(f"{owned.url}/v1/sessions/{sid}", headers=key("alice"))
    assert own.status_code == 200
    assert len(own.json()["turns"]) == 2  # bob's attempts added nothing
    assert _chat(owned, "alice", session_id=sid).status_code == 200


def test_an_admin_caller_may_read_continue_and_delete_any_session(owned: ThreadedGateway) -> None:
    sid = _chat(owned, "alice").json()["session_id"]
    assert httpx.get(f"{owned.url}/v1/sessions/{sid}", headers=key("ops")).status_code == 200
    assert _chat(owned, "ops", session_id=sid).json()["text"].startswith("[claude|")
    assert httpx.delete(f"{owned.url}/v1/sessions/{sid}", headers=key("ops")).status_code == 204
    assert httpx.get(f"{owned.url}/v1/sessions/{sid}", headers=key("alice")).status_code == 404


async def _mcp(gw: ThreadedGateway, caller: str, args: dict[str, Any]) -> Any:
    async with (
        httpx2.AsyncClient(headers=key(caller), timeout=10) as client,
        streamable_http_client(f"{gw.url}/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await session.call_tool("claude_chat", args)


async def test_mcp_sessions_have_owners_too(owned: ThreadedGateway) -> None:
    first = structured(await _mcp(owned, "alice", {"prompt": "via mcp"}))
    sid = first["session_id"]
    refused = await _mcp(owned, "bob", {"prompt": "mine now", "session_id": sid})
    assert refused.is_error is True
    assert "session_not_found" in refused.content[0].text
    # The same caller continues it over MCP or REST alike.
    assert (
        "turns=2"
        in structured(await _mcp(owned, "alice", {"prompt": "more", "session_id": sid}))["text"]
    )
    assert httpx.get(f"{owned.url}/v1/sessions/{sid}", headers=key("alice")).status_code == 200
    assert httpx.get(f"{owned.url}/v1/sessions/{sid}", headers=key("bob")).status_code == 404


async def test_both_stores_keep_the_owner(store: SessionStore) -> None:
    sid = str(uuid.uuid4())
    assert await store.owner(sid) is None
    assert await store.create(sid, "claude", "m", "alice")
    assert not await store.create(sid, "claude", "m", "bob")  # never overwritten
    assert await store.owner(sid) == "alice"
    session = await store.get(sid)
    assert session is not None
    assert session.owner == "alice"
    legacy = str(uuid.uuid4())
    await store.create(legacy, "claude", "m")  # as stored before sessions had owners
    assert await store.owner(legacy) == ""
    assert await store.delete(sid)
    assert await store.owner(sid) is None


def test_reads_and_deletes_write_one_audit_line_each(
    owned: ThreadedGateway, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    sid = _chat(owned, "alice", prompt="secret words").json()["session_id"]
    caplog.set_level(logging.INFO, logger="llmhub_gateway.audit")
    caplog.clear()
    for caller, method, path in (
        ("alice", "GET", f"/v1/sessions/{sid}"),
        ("bob", "GET", f"/v1/sessions/{sid}"),
        ("bob", "GET", "/v1/sessions/junk"),
        ("alice", "GET", "/v1/models"),
        ("alice", "GET", "/v1/usage"),
        ("ops", "GET", "/v1/usage"),
        ("alice", "DELETE", f"/v1/sessions/{sid}"),
    ):
        httpx.request(method, f"{owned.url}{path}", headers=key(caller))
    lines = [r for r in caplog.records if r.name == "llmhub_gateway.audit"]
    template = "/v1/sessions/{session_id}"
    assert [
        (r.getMessage(), getattr(r, "caller", ""), getattr(r, "path", ""), getattr(r, "status", ""))
        for r in lines
    ] == [
        ("read", "alice", template, "ok"),
        ("read", "bob", template, "session_not_found"),
        ("read", "bob", template, "invalid_session_id"),
        ("read", "alice", "/v1/models", "ok"),
        ("read", "alice", "/v1/usage", "forbidden"),
        ("read", "ops", "/v1/usage", "ok"),
        ("delete", "alice", template, "ok"),
    ]
    assert [getattr(r, "session_id", None) for r in lines][:3] == [sid, sid, None]
    assert all("secret words" not in repr(r.__dict__) for r in lines)
