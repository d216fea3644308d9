"""/mcp through the official MCP client: every tool, sessions, errors and allowed Host names."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable
from importlib.metadata import version
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
    """The text docs/gateway.md promises: the SDK's prefix, then the error type."""
    unknown = await call(gateway, "gemini_chat", {"prompt": "hi", "session_id": str(uuid.uuid4())})
    assert unknown.is_error is True
    assert unknown.content[0].text.startswith(
        "Error executing tool gemini_chat: session_not_found: session"
    )
    busy = await call(gateway, "claude_chat", {"prompt": "!busy"})
    assert busy.is_error is True
    assert busy.content[0].text.startswith("Error executing tool claude_chat: provider_busy: ")
    invalid = await call(gateway, "claude_chat", {"prompt": "hi", "session_id": "nope"})
    assert invalid.content[0].text.startswith(
        "Error executing tool claude_chat: invalid_session_id: "
    )


async def test_server_info_and_capabilities_are_honest(gateway: ThreadedGateway) -> None:
    """The package's version, and only the capability it implements (tools)."""
    async with (
        streamable_http_client(f"{gateway.url}/mcp") as (read, write),
        ClientSession(read, write) as session,
    ):
        init = await session.initialize()
    assert init.server_info.name == "llm-mcp-hub"
    assert init.server_info.version == version("llm-mcp-hub") != ""
    assert init.capabilities.tools is not None
    assert (init.capabilities.prompts, init.capabilities.resources) == (None, None)
    assert (init.capabilities.completions, init.capabilities.logging) == (None, None)


async def test_unserved_methods_are_method_not_found_without_tracebacks(
    gateway: ThreadedGateway, caplog: pytest.LogCaptureFixture
) -> None:
    """-32601 for prompts and resources (not the SDK's 0 / -32603), -32602 for an unknown
    tool, and no ERROR log."""
    caplog.set_level(logging.INFO)
    async with (
        streamable_http_client(f"{gateway.url}/mcp") as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        refused = [
            await mcp_error(session.list_prompts()),
            await mcp_error(session.get_prompt("summarise")),
            await mcp_error(session.list_resources()),
            await mcp_error(session.list_resource_templates()),
            await mcp_error(session.read_resource("file:///etc/passwd")),
        ]
        unknown = await mcp_error(session.call_tool("summarise", {"text": "x"}))
    assert [(e.error.code, e.error.message) for e in refused] == [(-32601, "Method not found")] * 5
    # An unknown tool is a protocol error (the MCP spec), not a result the model reads as the
    # tool's own failure.
    assert (unknown.error.code, unknown.error.message) == (-32602, "Unknown tool: summarise")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


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
