"""/mcp through the official MCP client: every tool, sessions, errors and allowed Host names."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.gateway.conftest import ThreadedGateway
from tests.gateway.fake_provider import expected_text


async def call(
    gw: ThreadedGateway, tool: str, args: dict[str, Any], host: str | None = None
) -> Any:
    headers = {"Host": host} if host else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=10) as client,
        streamable_http_client(f"{gw.url}/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await session.call_tool(tool, args)


async def mcp_error(call: Awaitable[Any]) -> MCPError:
    """The MCPError a call raised (the client's task groups wrap it in exception groups)."""
    with pytest.raises(BaseException) as raised:  # noqa: PT011 (unwrapped and checked below)
        await call
    found: BaseException = raised.value
    while isinstance(found, BaseExceptionGroup) and len(found.exceptions) == 1:
        found = found.exceptions[0]
    assert isinstance(found, MCPError), repr(raised.value)
    return found


def structured(result: Any) -> Any:
    assert result.is_error is False, result
    if result.structured_content is not None:
        return result.structured_content.get("result", result.structured_content)
    return json.loads(result.content[0].text)


async def test_tools_are_listed(gateway: ThreadedGateway) -> None:
    async with (
        streamable_http_client(f"{gateway.url}/mcp") as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
    assert {t.name for t in tools.tools} == {
        "claude_chat",
        "gemini_chat",
        "list_providers",
        "token_status",
    }


async def test_claude_chat_and_continue_session(gateway: ThreadedGateway) -> None:
    first = structured(await call(gateway, "claude_chat", {"prompt": "via mcp"}))
    assert first["text"] == expected_text("claude", "claude-sonnet-4-5-20250929", 0, "via mcp")
    second = structured(
        await call(gateway, "claude_chat", {"prompt": "more", "session_id": first["session_id"]})
    )
    assert second["session_id"] == first["session_id"]
    assert "turns=2" in second["text"]


async def test_gemini_chat_with_model(gateway: ThreadedGateway) -> None:
    result = structured(
        await call(gateway, "gemini_chat", {"prompt": "hi", "model": "gemini-2.5-flash"})
    )
    assert (result["provider"], result["model"]) == ("gemini", "gemini-2.5-flash")
    assert result["text"].startswith("[gemini|gemini-2.5-flash|turns=0]")


async def test_tool_errors_are_reported_not_raised(gateway: ThreadedGateway) -> None:
    unknown = await call(gateway, "gemini_chat", {"prompt": "hi", "session_id": str(uuid.uuid4())})
    assert unknown.is_error is True
    assert "gemini_chat: session_not_found: session" in unknown.content[0].text
    busy = await call(gateway, "claude_chat", {"prompt": "!busy"})
    assert busy.is_error is True
    assert "provider_busy" in busy.content[0].text


async def test_list_providers_and_token_status(gateway: ThreadedGateway) -> None:
    providers = structured(await call(gateway, "list_providers", {}))
    by_name = {p["name"]: p for p in providers}
    assert by_name["claude"]["configured"] is True
    assert by_name["gemini"]["default_model"] == "gemini-2.5-pro"
    tokens = structured(await call(gateway, "token_status", {}))
    assert tokens["claude"]["status"] == "valid"
    assert tokens["claude"]["expires_at"] == "2099-01-01T00:00:00Z"


async def test_service_host_name_is_accepted(gateway: ThreadedGateway) -> None:
    for host in ("llm-mcp-hub-gateway", "llm-mcp-hub-gateway.llm-mcp-hub.svc:8000"):
        providers = structured(await call(gateway, "list_providers", {}, host=host))
        assert len(providers) == 2


def test_unknown_host_is_refused(gateway: ThreadedGateway) -> None:
    response = httpx.post(
        f"{gateway.url}/mcp",
        headers={"Host": "evil.example", "Accept": "application/json, text/event-stream"},
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
    )
    assert response.status_code == 421
