"""Host and Origin checks on every route (DNS-rebinding protection), not only on /mcp.

A rebinding attack needs a host *name* that the attacker's DNS points at the gateway, so
allowed are: localhost, IP literals (kubelet probes and Service IPs), and the names in
MCP_ALLOWED_HOSTS. A browser's ``Origin``, when sent, must name an allowed host too. Refusals
use the MCP SDK's codes: 421 for Host, 403 for Origin.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Collection
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def _hostname(host: str) -> str:
    """``name`` of ``name:port`` / ``[v6]:port``, lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class HostOriginMiddleware:
    def __init__(self, app: ASGIApp, extra_hosts: Collection[str]) -> None:
        self.app = app
        self.allowed = {h.lower() for h in (*LOCAL_HOSTS, *extra_hosts)}

    def allows(self, host: str) -> bool:
        name = _hostname(host)
        return name in self.allowed or _is_ip(name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not self.allows(host):
            await _refuse(send, 421, "misdirected_request", "Host header not allowed")
            return
        origin = headers.get("origin")
        if origin is not None:  # "null" (sandboxed frames, file://) names no host: refused
            netloc = urlsplit(origin).netloc
            if not netloc or not self.allows(netloc):
                await _refuse(send, 403, "forbidden", "Origin not allowed")
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, error_type: str, message: str) -> None:
    body = json.dumps({"error": {"type": error_type, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
