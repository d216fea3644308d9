"""Request bodies are bounded (MAX_BODY_BYTES) on every route -- REST, OpenAI and MCP alike.

A pure ASGI middleware, so a refusal never waits for the body: a ``Content-Length`` over the
limit is answered 413 at once, and a body sent without one (chunked) is read only until it
passes the limit. A body within the limit is handed on unchanged. The 413 is the gateway's
JSON error; the connection is then closed by the server (the rest of the body is never read).
"""

from __future__ import annotations

import json
from collections import deque

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmhub_gateway.api.errors import error_payload, is_openai
from llmhub_gateway.errors import BodyTooLarge


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send)
            return
        # Read (at most the limit) before the app runs: parsers read whole bodies anyway.
        buffered: deque[Message] = deque()
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return buffered.popleft() if buffered else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        limit = self.max_bytes
        exc = BodyTooLarge(f"request body over {limit} bytes (MAX_BODY_BYTES)")
        payload = error_payload(exc.error_type, str(exc), openai=is_openai(scope["path"]))
        body = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": exc.status_code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server rejects a malformed length itself
    return None
