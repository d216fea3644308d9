"""The MCP face of the gateway: Streamable HTTP at /mcp with four tools.

Stateless HTTP mode, so any replica behind the Service answers any MCP request; conversation
state lives in our own session store (``session_id``), exactly as for REST clients. It
advertises what it implements and nothing else: tools, with the package's version in
``serverInfo``; a call of a tool it does not have is a protocol error, as the spec has it.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from mcp.server.auth.settings import AuthSettings
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from starlette.routing import Route
from starlette.types import ASGIApp

from llmhub_gateway.api.errors import describe
from llmhub_gateway.auth.mcp import CallerTokenVerifier, current_caller
from llmhub_gateway.auth.transport import LOCAL_HOSTS
from llmhub_gateway.chat import ChatService
from llmhub_gateway.mcp_gate import chat_arguments, take

MCP_PATH = "/mcp"
# Handlers the SDK registers on every server. Left in, the server advertises prompts and
# resources it does not have, and ``prompts/get`` answers code 0 after an ERROR traceback.
UNSERVED = (
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
)


def build_mcp(
    chat: ChatService,
    auth: AuthSettings | None = None,
    verifier: CallerTokenVerifier | None = None,
) -> MCPServer:
    """With ``auth`` and ``verifier`` the SDK's bearer middleware guards /mcp (401 with the
    resource metadata URL, 403 insufficient_scope); tools then run as that caller."""
    server: MCPServer = MCPServer(
        name="llm-mcp-hub",
        version=version("llm-mcp-hub"),
        instructions="Chat with the team's Claude and Gemini subscriptions.",
        auth=auth,
        token_verifier=verifier,
    )
    _tools_only(server)

    async def run(provider: str, prompt: str, session_id: str | None, model: str | None) -> Any:
        """The same turn runner as REST; domain errors become tool errors only here."""
        try:
            # Prepared by the gate already (its refusals were HTTP statuses), else here.
            prepared = take(f"{provider}_chat", chat_arguments(prompt, session_id, model))
            if prepared is None:
                prepared = await chat.prepare(
                    provider=provider,
                    prompt=prompt,
                    session_id=session_id,
                    model=model,
                    caller=current_caller(),
                )
            return (await chat.complete(prepared)).as_dict()
        except Exception as exc:
            _, error_type, message, _ = describe(exc)
            raise ToolError(f"{error_type}: {message}") from None

    @server.tool()
    async def claude_chat(
        prompt: str, session_id: str | None = None, model: str | None = None
    ) -> dict[str, Any]:
        """Ask Claude. Pass the returned session_id to continue the conversation."""
        result: dict[str, Any] = await run("claude", prompt, session_id, model)
        return result

    @server.tool()
    async def gemini_chat(
        prompt: str, session_id: str | None = None, model: str | None = None
    ) -> dict[str, Any]:
        """Ask Gemini. Pass the returned session_id to continue the conversation."""
        result: dict[str, Any] = await run("gemini", prompt, session_id, model)
        return result

    @server.tool()
    async def list_providers() -> list[dict[str, Any]]:
        """Providers this gateway knows, whether they are configured, and their models."""
        registry = chat.registry
        return [
            {
                "name": name,
                "configured": registry.get(name).configured(),
                "default_model": registry.get(name).default_model,
                "models": list(registry.get(name).models()),
            }
            for name in registry.names()
        ]

    @server.tool()
    async def token_status() -> dict[str, Any]:
        """Credential health per configured provider (valid, warning, expired, unknown)."""
        return {name: h.as_dict() for name, h in chat.registry.token_health().items()}

    _known_tools_only(server)
    return server


def _known_tools_only(server: MCPServer) -> None:
    """``tools/call`` of a tool this server does not have is a JSON-RPC error (-32602), as
    the MCP spec has it (a protocol error, not a tool result); the SDK would answer an
    ``isError`` result that a client takes for the tool's own failure."""

    async def check(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params if ctx.method == "tools/call" else None
        name = params.get("name") if isinstance(params, dict) else None
        if isinstance(name, str) and name not in {t.name for t in await server.list_tools()}:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {name[:100]}")
        return await call_next(ctx)

    server.middleware.append(check)


def _tools_only(server: MCPServer) -> None:
    """Drop the prompt and resource handlers: the SDK then advertises only ``tools`` and
    answers those methods -32601 (method not found), as for any method it does not serve.
    mcp 2.3 has no public way to unregister a method (test_mcp pins the outcome)."""
    handlers = server._lowlevel_server._request_handlers
    for method in UNSERVED:
        handlers.pop(method, None)


def security(extra_hosts: list[str]) -> TransportSecuritySettings:
    """DNS-rebinding protection allowing localhost and the in-cluster Service names."""
    hosts = [*LOCAL_HOSTS, *extra_hosts]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*hosts, *(f"{h}:*" for h in hosts)],
        allowed_origins=[
            f"{scheme}://{h}{port}"
            for scheme in ("http", "https")
            for h in hosts
            for port in ("", ":*")
        ],
    )


def mcp_route(
    server: MCPServer,
    extra_hosts: list[str],
    max_body_bytes: int,
    gate: Callable[[ASGIApp], ASGIApp] | None = None,
) -> Route:
    """The route serving /mcp with the SDK's whole Starlette app as its endpoint, so the app's
    own middleware (where the SDK puts authentication) runs; the router labels it ``/mcp`` in
    the request metrics. Not shown in OpenAPI."""
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        transport_security=security(extra_hosts),
        max_request_body_size=max_body_bytes,  # BodyLimitMiddleware answers first
    )
    return Route(MCP_PATH, endpoint=app if gate is None else gate(app), include_in_schema=False)
