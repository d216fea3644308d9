"""MCP authorization (spec 2025-06-18 onwards) with the SDK's own pieces: our callers behind a
``TokenVerifier``, ``AuthSettings`` naming the Entra authorization server, and the Protected
Resource Metadata (RFC 9728) at ``/.well-known/oauth-protected-resource`` and its ``/mcp``
path form. The SDK's middleware then answers 401 with ``WWW-Authenticate: Bearer
resource_metadata=...`` and 403 ``insufficient_scope``.

Audiences are checked by the modes themselves (Entra ``aud``, TokenReview audiences), so
``validate_token_resource`` is off. Static keys and ServiceAccount tokens carry no OAuth
scopes: callers those modes accept are granted the configured scopes; Entra tokens must carry
them (``scp`` or ``roles``).
"""

from __future__ import annotations

import hashlib
import hmac
from contextvars import ContextVar

from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.auth.settings import AuthSettings
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl
from starlette.routing import Route

from llmhub_gateway.auth.callers import CallerAuth
from llmhub_gateway.auth.principal import ANONYMOUS, OTHER, Principal
from llmhub_gateway.errors import GatewayError

WELL_KNOWN = "/.well-known/oauth-protected-resource"


# The caller ``mcp_gate.McpGate`` authenticated for this /mcp request, with a digest of its
# token: the SDK's verifier and the tools take it from here instead of asking again.
CALLER: ContextVar[tuple[str, Principal] | None] = ContextVar("llmhub_mcp_caller", default=None)


def token_digest(token: str | None) -> str:
    """How the gate and the SDK's verifier recognise one token without keeping it."""
    return hashlib.sha256((token or "").encode()).hexdigest()


class CallerTokenVerifier:
    """The SDK's TokenVerifier over ``CallerAuth``; the AccessToken never holds the token."""

    def __init__(self, auth: CallerAuth, resource: str, scopes: list[str]) -> None:
        self._auth = auth
        self._resource = resource
        self._scopes = scopes

    async def verify_token(self, token: str) -> AccessToken | None:
        known = CALLER.get()
        if known is not None and hmac.compare_digest(known[0], token_digest(token)):
            principal = known[1]
        else:
            try:
                principal = await self._auth.authenticate(f"Bearer {token}")
            except GatewayError:
                return None
        scopes = list(principal.scopes) if principal.mode == "entra" else list(self._scopes)
        return AccessToken(
            token="-",
            client_id=principal.name,
            scopes=scopes,
            resource=self._resource,
            subject=principal.subject,
            claims={"mode": principal.mode, "label": principal.label},
        )


def auth_settings(resource: str, issuer: str, scopes: list[str]) -> AuthSettings:
    return AuthSettings(
        issuer_url=AnyHttpUrl(issuer),
        resource_server_url=AnyHttpUrl(resource),
        required_scopes=scopes or None,
        validate_token_resource=False,
    )


def metadata_url(resource: str) -> str:
    return str(build_resource_metadata_url(AnyHttpUrl(resource)))


def metadata_routes(resource: str, issuer: str, scopes: list[str]) -> list[Route]:
    """RFC 9728 metadata at the root form and the ``/mcp`` path form (clients try both)."""
    metadata = ProtectedResourceMetadata(
        resource=AnyHttpUrl(resource),
        authorization_servers=[AnyHttpUrl(issuer)],
        scopes_supported=scopes or None,
        resource_name="llm-mcp-hub gateway",
    )
    handler = ProtectedResourceMetadataHandler(metadata)
    return [
        Route(path, endpoint=handler.handle, methods=["GET", "OPTIONS"], include_in_schema=False)
        for path in (WELL_KNOWN, WELL_KNOWN + "/mcp")
    ]


def current_caller() -> Principal:
    """The MCP caller the gate (or the SDK's middleware) authenticated; anonymous when /mcp
    runs without auth (AUTH_MODES has ``none``) and no token named a caller."""
    known = CALLER.get()
    if known is not None:
        return known[1]
    token = get_access_token()
    if token is None:
        return Principal(ANONYMOUS, "none", label=ANONYMOUS)
    claims = token.claims or {}
    return Principal(
        token.client_id,
        str(claims.get("mode", "")),
        label=str(claims.get("label", OTHER)),
        scopes=tuple(token.scopes),
        subject=token.subject,
    )
