"""What /mcp refuses, it refuses with an honest HTTP status, before the MCP SDK starts its
200 event stream -- as REST does.

An ASGI app in front of the SDK's: it authenticates the caller the way REST does (the same
``CallerAuth``; 401 with the resource-metadata challenge, 403 for a caller not allowed or a
token without the required scopes, 503 + Retry-After when a mode's backend is down), and for
a ``tools/call`` of a chat tool it prepares the turn (``ChatService.prepare``: limits, the
session's lease, the provider's capacity) before the SDK sees the request. A refusal that says
"later" (429, 503, 409 busy: anything with Retry-After) is then that status with Retry-After
and a JSON-RPC error body, which the official client raises as ``MCPError``; bad input (400,
404...) is left to the tool, which reports it as a tool error the model can act on, as the MCP
spec asks. The prepared turn is handed to the tool through a context variable; one the tool
never took (the SDK refused the request) is abandoned. Every refusal is audited.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmhub_common.logging import redact
from llmhub_gateway.auth.callers import CallerAuth, bearer_token
from llmhub_gateway.auth.mcp import CALLER, token_digest
from llmhub_gateway.auth.principal import Principal
from llmhub_gateway.chat import ChatService, PreparedChat
from llmhub_gateway.errors import Forbidden, GatewayError
from llmhub_gateway.usage import refused_caller

log = logging.getLogger(__name__)
CHAT_TOOLS = {"claude_chat": "claude", "gemini_chat": "gemini"}
ARGS = ("prompt", "session_id", "model")
RETRY_LATER = -32000  # JSON-RPC server error: a refusal to retry after Retry-After
REFUSED = -32001  # JSON-RPC server error: the caller is not authenticated or allowed


@dataclass(slots=True)
class Admission:
    """A chat tool call the gate prepared; ``taken`` once the tool runs it."""

    tool: str
    arguments: dict[str, Any]
    prepared: PreparedChat
    taken: bool = False


ADMITTED: ContextVar[Admission | None] = ContextVar("llmhub_mcp_admitted", default=None)


def chat_arguments(prompt: Any, session_id: Any, model: Any) -> dict[str, Any]:
    """A chat tool's arguments as the gate and the tool both see them (nulls dropped)."""
    given = {"prompt": prompt, "session_id": session_id, "model": model}
    return {k: v for k, v in given.items() if v is not None}


def take(tool: str, arguments: dict[str, Any]) -> PreparedChat | None:
    """The turn the gate prepared for exactly this tool call, if any (taken once)."""
    admission = ADMITTED.get()
    if admission is None or admission.taken:
        return None
    if admission.tool != tool or admission.arguments != arguments:
        return None
    admission.taken = True
    return admission.prepared


class McpGate:
    def __init__(
        self, app: ASGIApp, chat: ChatService, auth: CallerAuth, scopes: list[str]
    ) -> None:
        self.app = app
        self.chat = chat
        self.auth = auth
        self.scopes = scopes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorization = _header(scope, b"authorization")
        try:
            principal = await self.auth.authenticate(authorization)
            self._check_scopes(principal)
        except GatewayError as exc:
            refused_caller(scope["method"], scope["path"], exc)
            await _refuse(send, exc, None, REFUSED if exc.status_code in (401, 403) else None)
            return
        caller = CALLER.set((token_digest(bearer_token(authorization)), principal))
        try:
            if scope["method"] != "POST":
                await self.app(scope, receive, send)
                return
            body, replay = await _read(receive)
            call = _chat_call(body)
            admission = None
            if call is not None:
                request_id, tool, arguments = call
                try:
                    prepared = await self._prepare(tool, arguments, principal)
                except GatewayError as exc:
                    if exc.retry_after is None:
                        prepared = None  # bad input: the tool reports it to the model
                    else:
                        await _refuse(send, exc, request_id, RETRY_LATER)
                        return
                if prepared is not None:
                    admission = Admission(
                        tool, chat_arguments(*(arguments.get(k) for k in ARGS)), prepared
                    )
            token = ADMITTED.set(admission)
            try:
                await self.app(scope, replay, send)
            finally:
                ADMITTED.reset(token)
                if admission is not None and not admission.taken:
                    await self.chat.abandon(admission.prepared)
        finally:
            CALLER.reset(caller)

    def _check_scopes(self, principal: Principal) -> None:
        """As the SDK's middleware would, but with our refusal: Entra tokens must carry the
        configured scopes (static keys and ServiceAccounts are granted them)."""
        if self.auth.open or not self.scopes or principal.mode != "entra":
            return
        missing = [s for s in self.scopes if s not in principal.scopes]
        if missing:
            exc = Forbidden(f"the token lacks the required scope(s): {' '.join(missing)}")
            exc.challenge = (
                f'{self.auth.challenge}, error="insufficient_scope", '
                f'scope="{" ".join(self.scopes)}"'
            )
            raise exc

    async def _prepare(
        self, tool: str, arguments: dict[str, Any], principal: Principal
    ) -> PreparedChat | None:
        prompt, session_id, model = (arguments.get(k) for k in ARGS)
        if not isinstance(prompt, str) or not all(
            v is None or isinstance(v, str) for v in (session_id, model)
        ):
            return None  # the SDK's argument validation answers
        return await self.chat.prepare(
            provider=CHAT_TOOLS[tool],
            prompt=prompt,
            session_id=session_id,
            model=model,
            caller=principal,
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _read(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body (BodyLimitMiddleware bounds it) and a ``receive`` that replays it."""
    messages: deque[Message] = deque()
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break

    async def replay() -> Message:
        return messages.popleft() if messages else await receive()

    return b"".join(chunks), replay


def _chat_call(body: bytes) -> tuple[Any, str, dict[str, Any]] | None:
    """(JSON-RPC id, tool, arguments) of a single ``tools/call`` of a chat tool, else None."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("method") != "tools/call":
        return None
    params = message.get("params")
    if not isinstance(params, dict) or params.get("name") not in CHAT_TOOLS:
        return None
    arguments = params.get("arguments")
    if not isinstance(arguments, dict):
        return None
    return message.get("id"), str(params["name"]), arguments


async def _refuse(send: Send, exc: GatewayError, request_id: Any, code: int | None) -> None:
    """The refusal as a JSON-RPC error at its HTTP status (the client surfaces that error)."""
    status, message = exc.status_code, str(exc) or exc.error_type
    payload = {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {
            "code": code if code is not None else RETRY_LATER,
            "message": redact(f"{exc.error_type}: {message}"),
            "data": {"type": exc.error_type, "status": status, "retry_after": exc.retry_after},
        },
    }
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if exc.retry_after is not None:
        headers.append((b"retry-after", str(exc.retry_after).encode()))
    if exc.challenge is not None:
        headers.append((b"www-authenticate", exc.challenge.encode()))
    if status >= 500:
        log.warning("/mcp refused: %d %s", status, exc.error_type)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
