"""MCP authorization with the official client: 401 -> Protected Resource Metadata -> token,
403 insufficient_scope, tokens for other audiences refused, tools run as the real caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from mcp.client.auth.utils import (
    build_protected_resource_metadata_discovery_urls,
    extract_resource_metadata_from_www_auth,
    extract_scope_from_www_auth,
)
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import ProtectedResourceMetadata
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from llmhub_gateway.core.config import Settings
from llmhub_gateway.limits.base import utc_day
from tests.gateway.conftest import ThreadedGateway, free_port
from tests.gateway.fake_entra import CLIENT_ID, TENANT, FakeEntra, running
from tests.gateway.fake_provider import echo_providers
from tests.gateway.test_mcp import structured

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": LATEST_HANDSHAKE_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def entra() -> Iterator[FakeEntra]:
    yield from running()


@pytest.fixture(scope="module")
def mcp_gateway(entra: FakeEntra) -> Iterator[ThreadedGateway]:
    port = free_port()
    settings = Settings(
        auth_modes="entra",
        auth_entra_authority=entra.authority,
        auth_entra_tenants=TENANT,
        auth_entra_audiences=CLIENT_ID,
        mcp_resource_url=f"http://127.0.0.1:{port}/mcp",
        mcp_required_scopes="chat",
    )
    with ThreadedGateway(settings, echo_providers(), port=port) as gw:
        yield gw


async def call(gw: ThreadedGateway, token: str, tool: str, args: dict[str, Any]) -> Any:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as client,
        streamable_http_client(f"{gw.url}/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        init = await session.initialize()
        assert init.protocol_version == LATEST_HANDSHAKE_VERSION  # the newest the SDK offers
        return await session.call_tool(tool, args)


async def test_401_metadata_token_flow(mcp_gateway: ThreadedGateway, entra: FakeEntra) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        refused = await http.post(f"{mcp_gateway.url}/mcp", json=INIT, headers=ACCEPT)
        assert refused.status_code == 401
        where = extract_resource_metadata_from_www_auth(refused)
        assert where == f"{mcp_gateway.url}/.well-known/oauth-protected-resource/mcp"
        urls = build_protected_resource_metadata_discovery_urls(where, f"{mcp_gateway.url}/mcp")
        for url in {*urls, f"{mcp_gateway.url}/.well-known/oauth-protected-resource"}:
            answer = await http.get(url)
            assert answer.status_code == 200, url
            metadata = ProtectedResourceMetadata.model_validate_json(answer.content)
            assert str(metadata.resource) == f"{mcp_gateway.url}/mcp"
            assert [str(a) for a in metadata.authorization_servers] == [entra.v2_issuer()]
            assert metadata.scopes_supported == ["chat"]
    # The client signs in at that authorization server (played by the local key pair) ...
    token = entra.token(scp="chat")
    result = structured(await call(mcp_gateway, token, "claude_chat", {"prompt": "via mcp"}))
    assert "via mcp" in result["text"]
    # ... and the turn ran as that caller, not "anonymous".
    rows = await mcp_gateway.app.state.chat.limiter.usage(utc_day())
    alice = f"entra:{TENANT}/{entra.claims()['oid']}"  # her immutable key, not her e-mail
    assert [(r.caller, r.provider) for r in rows] == [(alice, "claude")]


async def test_a_token_without_the_scope_gets_403_insufficient_scope(
    mcp_gateway: ThreadedGateway, entra: FakeEntra
) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        answer = await http.post(
            f"{mcp_gateway.url}/mcp",
            json=INIT,
            headers={**ACCEPT, "Authorization": f"Bearer {entra.token(scp='other')}"},
        )
    assert answer.status_code == 403
    assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "overrides", [{"aud": "api://another-resource"}, {"exp": 1}, {"tid": "x", "iss": "junk"}]
)
async def test_tokens_for_other_resources_or_bad_tokens_get_401(
    mcp_gateway: ThreadedGateway, entra: FakeEntra, overrides: dict[str, Any]
) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        answer = await http.post(
            f"{mcp_gateway.url}/mcp",
            json=INIT,
            headers={**ACCEPT, "Authorization": f"Bearer {entra.token(**overrides)}"},
        )
    assert answer.status_code == 401
    assert extract_resource_metadata_from_www_auth(answer) is not None
    assert extract_scope_from_www_auth(answer) is None
