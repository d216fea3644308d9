"""/mcp refuses with the status REST would give, before the SDK's event stream: 401 with the
resource-metadata challenge (audited), 403 insufficient_scope, 503 + Retry-After when the limit
store is down; bad tool input stays a tool error, as the MCP spec asks."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmhub_gateway.core.config import Settings
from tests.gateway.conftest import ThreadedGateway, free_port
from tests.gateway.fake_provider import echo_providers
from tests.gateway.test_auth_mcp import ACCEPT
from tests.gateway.test_limits import call_as
from tests.gateway.test_mcp import mcp_error

TOOL_CALL = {
    "jsonrpc": "2.0",
    "id": 3,
    "method": "tools/call",
    "params": {"name": "claude_chat", "arguments": {"prompt": "hi"}},
}


@pytest.fixture(scope="module")
def store_down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedGateway]:
    """Static-key callers, a caller limit, and a Redis nobody listens on."""
    keys = tmp_path_factory.mktemp("refusals") / "keys"
    digest = hashlib.sha256(b"alice-secret-key").hexdigest()
    keys.write_text(f"alice sha256:{digest}\n")
    settings = Settings(
        auth_modes="static",
        auth_static_keys_file=keys,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # type: ignore[arg-type]
        limit_caller_requests_per_minute=5,
    )
    with ThreadedGateway(settings, echo_providers()) as gw:
        yield gw


def _post(gw: ThreadedGateway, body: dict[str, Any], token: str | None) -> httpx.Response:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{gw.url}/mcp", json=body, headers={**ACCEPT, **auth}, timeout=10)


async def test_a_store_outage_is_503_with_retry_after(store_down: ThreadedGateway) -> None:
    raw = _post(store_down, TOOL_CALL, "alice-secret-key")
    assert raw.status_code == 503
    assert raw.headers["Retry-After"] == "5"
    assert raw.json()["error"]["data"]["type"] == "session_store_unavailable"
    refused = await mcp_error(call_as(store_down, "alice", "claude_chat", {"prompt": "hi"}))
    assert refused.data["type"] == "session_store_unavailable"
    assert store_down.providers["claude"].requests == []


def test_refused_callers_get_401_and_an_audit_line(
    store_down: ThreadedGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llmhub_gateway.audit")
    for token in (None, "not-a-known-key"):
        raw = _post(store_down, TOOL_CALL, token)
        assert raw.status_code == 401
        assert "resource_metadata=" in raw.headers["WWW-Authenticate"]
    refusals = [r for r in caplog.records if r.getMessage() == "refused"]
    assert [(getattr(r, "path", ""), getattr(r, "status", "")) for r in refusals] == [
        ("/mcp", "unauthorized"),
        ("/mcp", "unauthorized"),
    ]
    assert all("not-a-known-key" not in repr(r.__dict__) for r in caplog.records)


async def test_bad_tool_input_stays_a_tool_error(store_down: ThreadedGateway) -> None:
    """Invalid input is for the model to fix: a tool result with isError, not an HTTP error."""
    result = await call_as(
        store_down, "alice", "claude_chat", {"prompt": "hi", "session_id": "not-a-uuid"}
    )
    assert result.is_error is True
    assert "invalid_session_id" in result.content[0].text
