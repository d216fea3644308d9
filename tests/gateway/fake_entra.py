"""A local stand-in for Entra ID's signing keys: RSA key pairs made at test time, OpenID
discovery and a JWKS served over HTTP on 127.0.0.1, and tokens shaped like Entra's (v1 and v2
issuers, ``tid``, ``aud``, ``scp``). Keys can be added and removed to play a key rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TENANT = "11111111-2222-3333-4444-555555555555"
OTHER_TENANT = "99999999-8888-7777-6666-555555555555"
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
APP_ID_URI = "api://llm-mcp-hub"


class KeyPair:
    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or uuid.uuid4().hex[:12]
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        entry: dict[str, Any] = json.loads(
            jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key())
        )
        entry.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return entry

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class FakeEntra:
    """Discovery at ``/<tid>/v2.0/.well-known/openid-configuration``, keys at
    ``/<tid>/discovery/v2.0/keys``; ``fetches`` counts key downloads."""

    def __init__(self) -> None:
        self.keys: list[KeyPair] = [KeyPair("key-1")]
        self.fetches = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")
                if self.path.endswith("/v2.0/.well-known/openid-configuration"):
                    tid = parts[0]
                    body = {
                        "issuer": f"{fake.authority}/{tid}/v2.0",
                        "jwks_uri": f"{fake.authority}/{tid}/discovery/v2.0/keys",
                    }
                elif self.path.endswith("/discovery/v2.0/keys"):
                    fake.fetches += 1
                    body = {"keys": [k.jwk() for k in fake.keys]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.authority = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeEntra:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def v2_issuer(self, tid: str = TENANT) -> str:
        return f"{self.authority}/{tid}/v2.0"

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.v2_issuer(),
            "aud": CLIENT_ID,
            "tid": TENANT,
            "oid": "00000000-0000-0000-0000-0000000000aa",
            "preferred_username": "Alice@Contoso.com",
            "scp": "chat",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, key: KeyPair | None = None, **overrides: Any) -> str:
        key = key or self.keys[0]
        return jwt.encode(
            self.claims(**overrides), key.private, algorithm="RS256", headers={"kid": key.kid}
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any], kid: str) -> str:
    """``alg: none``: a token with no signature at all."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def hs256_with_public_key(claims: dict[str, Any], key: KeyPair) -> str:
    """The classic confusion attack: HMAC-SHA256 keyed with the RSA public key's PEM."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(key.public_pem(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(mac)}"


def running() -> Iterator[FakeEntra]:
    with FakeEntra() as fake:
        yield fake
