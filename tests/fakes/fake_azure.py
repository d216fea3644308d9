"""A fake Entra token endpoint and Key Vault secrets API over HTTPS, for the real Azure SDKs.

Standard library only, so it also runs alone in a tiny container in kind:

    python fake_azure.py --host 0.0.0.0 --port 8443 --cert-file C --key-file K \
        [--tenant T] [--seed name=value ...]

Tests use ``FakeAzure`` in-process (``FakeAzure.start_local(tmpdir)`` makes a trustme CA) and
steer it with ``set_secret``, ``fail``, ``delay`` and ``hang``; ``requests`` is the request log.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_TENANT = "00000000-0000-0000-0000-00000000fa6e"
DEFAULT_CLIENT_ID = "11111111-2222-3333-4444-555555555555"
DEFAULT_SUBJECT = "system:serviceaccount:llm-mcp-hub:llm-mcp-hub-operator"
RESOURCE = "https://vault.azure.net"
HANG_LIMIT_S = 60.0


@dataclass
class SecretVersion:
    version: str
    value: str
    created: int
    updated: int
    expires: int | None
    enabled: bool
    tags: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


@dataclass(frozen=True)
class RequestRecord:
    """One request as the fake saw it; ``name`` is the secret name for Key Vault paths."""

    method: str
    path: str
    name: str | None
    status: int
    authorized: bool
    at: float = field(default_factory=time.monotonic)
    client_id: str | None = None  # token requests: who asked; secret requests: whose token
    subject: str | None = None  # token requests: the client assertion's ``sub``


@dataclass
class _Failure:
    status: int
    times: int
    retry_after: float | None


@dataclass
class _State:
    secrets: dict[str, list[SecretVersion]] = field(default_factory=dict)
    failures: dict[str, list[_Failure]] = field(default_factory=dict)
    token_failures: list[_Failure] = field(default_factory=list)
    delays: dict[str, float] = field(default_factory=dict)
    hangs: set[str] = field(default_factory=set)
    stale: dict[str, int] = field(default_factory=dict)  # reads answered one version behind
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> client id
    scopes: dict[str, str] = field(default_factory=dict)  # access token -> requested scope
    log: list[RequestRecord] = field(default_factory=list)


class FakeAzure:
    """Entra + Key Vault on one HTTPS origin; thread-safe, so tests mutate it while it serves."""

    def __init__(self, *, tenant: str = DEFAULT_TENANT) -> None:
        self.tenant = tenant
        self._state = _State()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self.ca_file: Path | None = None
        self.token_file: Path | None = None
        self.ca: Any = None  # the trustme CA (start_local), to share with another fake
        # Entra's federated credentials: client id -> the ServiceAccount subject it trusts. Empty
        # (the default): any assertion is accepted. ``jwks``: verify assertions' RS256 signatures.
        self.federations: dict[str, str] = {}
        self.jwks: dict[str, Any] | None = None
        # Key Vault RBAC: secret name -> client ids that may read it (absent: everyone may).
        self.readers: dict[str, set[str]] = {}
        # Another fake whose Entra tokens this vault accepts (one tenant, several vaults).
        self.token_issuer: FakeAzure | None = None
        self.connections = 0
        # Called with (secret name, version) after every new version: the Event Grid stand-in's
        # publishing hook (Key Vault's system topic). ``vault_name`` is what events name.
        self.on_new_version: Callable[[str, str], None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, host: str, port: int, context: ssl.SSLContext) -> None:
        """Serve in a daemon thread; port 0 picks a free port (see ``base_url``)."""
        server = _Server((host, port), _Handler)
        server.fake = self
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        bound_host, bound_port = server.server_address[:2]
        self.base_url = f"https://{bound_host}:{bound_port}"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    @classmethod
    def start_local(
        cls, workdir: Path, *, tenant: str = DEFAULT_TENANT, ca: Any = None
    ) -> FakeAzure:
        """Start on 127.0.0.1 with a fresh trustme CA (or ``ca``, to share one trust root
        between several fakes); writes ca.pem and a projected token file."""
        import trustme  # test-only dependency; the standalone server needs only the stdlib

        ca = ca or trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        fake = cls(tenant=tenant)
        fake.ca = ca
        fake.ca_file = workdir / "ca.pem"
        ca.cert_pem.write_to_path(str(fake.ca_file))
        fake.token_file = workdir / "azure-identity-token"
        fake.token_file.write_text(service_account_token(DEFAULT_SUBJECT))
        fake.start("127.0.0.1", 0, context)
        return fake

    def stop(self) -> None:
        """Release hung requests, stop serving and close the socket."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def env(self, *, client_id: str = DEFAULT_CLIENT_ID) -> dict[str, str]:
        """The environment the operator needs to use this fake through Workload Identity."""
        return {
            "AZURE_AUTHORITY_HOST": self.base_url,
            "AZURE_TENANT_ID": self.tenant,
            "AZURE_CLIENT_ID": client_id,
            "AZURE_FEDERATED_TOKEN_FILE": str(self.token_file or ""),
            "LLMHUB_AZURE_CA_BUNDLE": str(self.ca_file or ""),
            "LLMHUB_AZURE_VERIFY_CHALLENGE_RESOURCE": "false",
            # The stand-in vault, deliberately allowed (required with the check above off).
            "LLMHUB_ALLOWED_VAULTS": urlsplit(self.base_url).netloc,
        }

    # -- steering --------------------------------------------------------------------------------

    def set_secret(
        self, name: str, value: str, *, expires: float | None = None, enabled: bool = True
    ) -> str:
        """Add a new version (the latest) and return its version id."""
        return self._add_version(name, value, expires=expires, enabled=enabled).version

    def fail(
        self, name: str, status: int, *, times: int = 1, retry_after: float | None = None
    ) -> None:
        """Answer the next ``times`` authorized requests for ``name`` with ``status``."""
        with self._lock:
            self._state.failures.setdefault(name, []).append(_Failure(status, times, retry_after))

    def fail_token(self, status: int, *, times: int = 1) -> None:
        """Refuse the next ``times`` token requests (as Entra does for a bad federation)."""
        with self._lock:
            self._state.token_failures.append(_Failure(status, times, None))

    def delay(self, name: str, seconds: float) -> None:
        """Answer requests for ``name`` only after ``seconds``."""
        with self._lock:
            self._state.delays[name] = seconds

    def hang(self, name: str) -> None:
        """Never answer requests for ``name`` (until ``stop``); for client timeout tests."""
        with self._lock:
            self._state.hangs.add(name)

    def serve_stale(self, name: str, *, reads: int) -> None:
        """Answer the next ``reads`` reads of ``name`` as a replica one version behind does:
        "latest" is the previous version, and the newest version is not found."""
        with self._lock:
            self._state.stale[name] = reads

    def reset(self) -> None:
        """Forget failures, delays, hangs and the log; secrets and issued tokens stay valid."""
        with self._lock:
            self._state = _State(
                secrets=self._state.secrets, tokens=self._state.tokens, scopes=self._state.scopes
            )
            self.federations, self.jwks, self.readers = {}, None, {}

    def requests(
        self, name: str | None = None, *, method: str | None = None
    ) -> list[RequestRecord]:
        """Logged requests, optionally only those for secret ``name`` and/or ``method``."""
        with self._lock:
            log = list(self._state.log)
        return [
            r
            for r in log
            if (name is None or r.name == name) and (method is None or r.method == method)
        ]

    def token_requests(self) -> list[RequestRecord]:
        """Requests to the token endpoint."""
        return [r for r in self.requests() if r.path.endswith("/oauth2/v2.0/token")]

    def issued_tokens(self) -> set[str]:
        """Every access token handed out since the last reset (to prove none leaked)."""
        with self._lock:
            return set(self._state.tokens)

    def federate(self, client_id: str, subject: str, *, readers_of: tuple[str, ...] = ()) -> None:
        """Trust ``subject``'s assertions as ``client_id``, which alone may read ``readers_of``."""
        with self._lock:
            self.federations[client_id] = subject
            for name in readers_of:
                self.readers.setdefault(name, set()).add(client_id)

    def versions(self, name: str) -> list[SecretVersion]:
        with self._lock:
            return list(self._state.secrets.get(name, []))

    # -- request handling (called from server threads) -------------------------------------------

    def _add_version(
        self,
        name: str,
        value: str,
        *,
        expires: float | None,
        enabled: bool,
        tags: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> SecretVersion:
        now = int(time.time())
        entry = SecretVersion(
            version=uuid.uuid4().hex,
            value=value,
            created=now,
            updated=now,
            expires=int(expires) if expires is not None else None,
            enabled=enabled,
            tags=dict(tags or {}),
            content_type=content_type,
        )
        with self._lock:
            self._state.secrets.setdefault(name, []).append(entry)
            hook = self.on_new_version
        if hook is not None:
            hook(name, entry.version)
        return entry

    @property
    def vault_name(self) -> str:
        """The name Key Vault events carry (``VaultName``): here the host:port of the vault."""
        return urlsplit(self.base_url).netloc

    def audience_of(self, token: str) -> str:
        """The scope a token was requested for (e.g. ``https://eventgrid.azure.net/.default``)."""
        if self.token_issuer is not None:
            return self.token_issuer.audience_of(token)
        with self._lock:
            return self._state.scopes.get(token, "")

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._state.log.append(record)

    def _take_failure(self, name: str | None) -> _Failure | None:
        with self._lock:
            queue = self._state.token_failures if name is None else self._state.failures.get(name)
            if not queue:
                return None
            failure = queue[0]
            failure.times -= 1
            if failure.times <= 0:
                queue.pop(0)
            return failure

    def _issue_token(self, client_id: str = "", scope: str = "") -> str:
        token = "fake-at-" + secrets.token_urlsafe(24)
        with self._lock:
            self._state.tokens[token] = client_id
            self._state.scopes[token] = scope
        return token

    def _authorized(self, header: str | None) -> bool:
        return self._caller(header) is not None

    def _caller(self, header: str | None) -> str | None:
        """The client id a bearer token was issued to; None when it is not ours."""
        if not header or not header.lower().startswith("bearer "):
            return None
        if self.token_issuer is not None:
            return self.token_issuer._caller(header)
        with self._lock:
            return self._state.tokens.get(header[7:].strip())

    def _may_read(self, name: str, client_id: str) -> bool:
        with self._lock:
            allowed = self.readers.get(name)
        return allowed is None or client_id in allowed

    def _federated_subject(self, client_id: str, assertion: str) -> tuple[str | None, str | None]:
        """(subject, error): checks the assertion as Entra checks a federated credential."""
        with self._lock:
            expected, jwks = self.federations.get(client_id), self.jwks
            federating = bool(self.federations)
        try:
            claims = _verify_jwt(assertion, jwks)
        except ValueError as exc:
            return None, str(exc)
        subject = claims.get("sub")
        if not federating:
            return subject, None
        if expected is None:
            return subject, f"AADSTS700016: no application {client_id} in the tenant"
        if subject != expected:
            return subject, "AADSTS70021: No matching federated identity record found"
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if "api://AzureADTokenExchange" not in audiences:
            return subject, "AADSTS700212: No matching federated identity for the audience"
        return subject, None

    def _wait_for(self, name: str) -> bool:
        """Apply delay/hang for ``name``; False when the request should be dropped unanswered."""
        with self._lock:
            hang = name in self._state.hangs
            delay = self._state.delays.get(name, 0.0)
        if hang:
            self._release.wait(HANG_LIMIT_S)
            return False
        if delay:
            self._release.wait(delay)
        return True

    def _find(self, name: str, version: str | None) -> SecretVersion | None:
        with self._lock:
            versions = self._state.secrets.get(name, [])
            if self._state.stale.get(name, 0) > 0 and len(versions) > 1:
                self._state.stale[name] -= 1
                versions = versions[:-1]
            if version:
                return next((v for v in versions if v.version == version), None)
            return versions[-1] if versions else None

    def bundle(self, name: str, entry: SecretVersion) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "enabled": entry.enabled,
            "created": entry.created,
            "updated": entry.updated,
            "recoveryLevel": "Recoverable+Purgeable",
        }
        if entry.expires is not None:
            attributes["exp"] = entry.expires
        bundle: dict[str, Any] = {
            "value": entry.value,
            "id": f"{self.base_url}/secrets/{name}/{entry.version}",
            "attributes": attributes,
        }
        if entry.tags:
            bundle["tags"] = entry.tags
        if entry.content_type:
            bundle["contentType"] = entry.content_type
        return bundle


def service_account_token(subject: str) -> str:
    """A JWT-shaped, unsigned projected token: only its ``sub`` claim matters to the fake."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {"aud": ["api://AzureADTokenExchange"], "sub": subject, "exp": 4102444800}
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{'c2ln' * 8}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops most of a burst of simultaneous TLS connects
    # (an operator starting with hundreds of providers); their SYN retries then look like outages.
    request_queue_size = 1024
    fake: FakeAzure

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.fake._lock:
            self.fake.connections += 1  # TCP (TLS) connections accepted: reuse keeps this low
        super().process_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    @property
    def fake(self) -> FakeAzure:
        return self.server.fake

    def do_POST(self) -> None:
        body = self._read_body()
        parts = urlsplit(self.path).path.strip("/").split("/")
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            self._token(parts[0], body)
        else:
            self._send(404, {"error": {"code": "NotFound", "message": "no such endpoint"}})

    def do_GET(self) -> None:
        self._read_body()
        self._secret_request("GET", None)

    def do_PUT(self) -> None:
        self._secret_request("PUT", self._read_body())

    # -- Entra -----------------------------------------------------------------------------------

    def _token(self, tenant: str, body: bytes) -> None:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        failure = self.fake._take_failure(None)
        status = 200
        if tenant != self.fake.tenant:
            status, payload = 400, _aad_error("invalid_request", "AADSTS90002: Tenant not found.")
        elif failure is not None:
            status = failure.status
            payload = _aad_error("invalid_client", "AADSTS70021: No matching federated identity.")
        elif not form.get("client_assertion") or not form.get("client_id"):
            status = 400
            payload = _aad_error("invalid_request", "AADSTS900144: client_assertion missing.")
        else:
            _, error = self.fake._federated_subject(form["client_id"], form["client_assertion"])
            if error is not None:
                status, payload = 401, _aad_error("invalid_client", error)
            else:
                payload = {
                    "token_type": "Bearer",
                    "expires_in": 3599,
                    "ext_expires_in": 3599,
                    "access_token": self.fake._issue_token(
                        form["client_id"], form.get("scope", "")
                    ),
                }
        client_id = form.get("client_id")
        record = RequestRecord("POST", self.path, None, status, status == 200, client_id=client_id)
        if form.get("client_assertion"):
            record = dataclasses.replace(record, subject=_unverified_sub(form["client_assertion"]))
        self.fake._record(record)
        self._send(status, payload)

    # -- Key Vault -------------------------------------------------------------------------------

    def _secret_request(self, method: str, body: bytes | None) -> None:
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        if len(parts) not in (2, 3) or parts[0] != "secrets":
            self._send(404, {"error": {"code": "NotFound", "message": "no such endpoint"}})
            return
        name, version = parts[1], (parts[2] if len(parts) == 3 else None)
        header = self.headers.get("Authorization")
        caller = self._caller_id = self.fake._caller(header)
        authorized = caller is not None
        if caller is None:
            self._log(method, name, 401, authorized)
            self._challenge()
            return
        if not self.fake.audience_of((header or "")[7:].strip()).startswith(RESOURCE):
            # A token Entra issued for another resource (Event Grid, Graph): Key Vault
            # refuses it as the real one does, with a fresh challenge.
            self._log(method, name, 401, False, caller)
            self._challenge("AKV10022: Invalid audience.")
            return
        if not self.fake._may_read(name, caller):
            self._log(method, name, 403, authorized, caller)
            message = f"Caller {caller} is not authorized to perform action on resource."
            self._send(403, {"error": {"code": "Forbidden", "message": message}})
            return
        if not self.fake._wait_for(name):
            self._log(method, name, 0, authorized)
            self.close_connection = True
            return
        failure = self.fake._take_failure(name)
        if failure is not None:
            self._log(method, name, failure.status, authorized)
            self._fail(failure)
            return
        if method == "PUT":
            self._put(name, body or b"")
        else:
            self._get(name, version)

    def _get(self, name: str, version: str | None) -> None:
        entry = self.fake._find(name, version)
        if entry is None:
            self._log("GET", name, 404, True)
            what = f"version {version} of secret" if version else "secret"
            self._send(
                404,
                {"error": {"code": "SecretNotFound", "message": f"A {what} {name} was not found."}},
            )
        elif not entry.enabled:
            self._log("GET", name, 403, True)
            self._send(
                403,
                {
                    "error": {
                        "code": "Forbidden",
                        "message": "Operation get is not allowed on a disabled secret.",
                        "innererror": {"code": "SecretDisabled"},
                    }
                },
            )
        else:
            self._log("GET", name, 200, True)
            self._send(200, self.fake.bundle(name, entry))

    def _put(self, name: str, body: bytes) -> None:
        try:
            request = json.loads(body)
            value = request["value"]
            attributes = request.get("attributes") or {}
            tags = request.get("tags") or {}
            if not isinstance(value, str) or not isinstance(tags, dict):
                raise TypeError("value must be a string, tags an object")
        except (ValueError, KeyError, TypeError):
            self._log("PUT", name, 400, True)
            self._send(400, {"error": {"code": "BadParameter", "message": "value is required"}})
            return
        entry = self.fake._add_version(
            name,
            str(value),
            expires=attributes.get("exp"),
            enabled=attributes.get("enabled", True) is not False,
            tags={str(k): str(v) for k, v in tags.items()},
            content_type=request.get("contentType"),
        )
        self._log("PUT", name, 200, True)
        self._send(200, self.fake.bundle(name, entry))

    def _challenge(self, message: str = "AKV10000: Request is missing a Bearer.") -> None:
        authority = f"{self.fake.base_url}/{self.fake.tenant}"
        header = f'Bearer authorization="{authority}", resource="{RESOURCE}"'
        self._send(
            401,
            {"error": {"code": "Unauthorized", "message": message}},
            {"WWW-Authenticate": header},
        )

    def _fail(self, failure: _Failure) -> None:
        headers: dict[str, str] = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = f"{failure.retry_after:g}"
        if failure.status == 401:
            authority = f"{self.fake.base_url}/{self.fake.tenant}"
            headers["WWW-Authenticate"] = (
                f'Bearer authorization="{authority}", resource="{RESOURCE}"'
            )
        codes = {401: "Unauthorized", 403: "Forbidden", 429: "Throttled"}
        code = codes.get(failure.status, "InternalServerError")
        self._send(
            failure.status, {"error": {"code": code, "message": f"injected {code}"}}, headers
        )

    # -- plumbing --------------------------------------------------------------------------------

    def _log(
        self, method: str, name: str, status: int, authorized: bool, caller: str | None = None
    ) -> None:
        caller = caller or getattr(self, "_caller_id", None)
        self.fake._record(
            RequestRecord(method, self.path, name, status, authorized, client_id=caller)
        )

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _unverified_sub(token: str) -> str | None:
    try:
        claims = json.loads(_b64url(token.split(".")[1]))
    except (ValueError, IndexError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) else None


def _verify_jwt(token: str, jwks: dict[str, Any] | None) -> dict[str, Any]:
    """The claims; with ``jwks``, only after the RS256 signature verifies against one of its
    keys and the token has not expired (as Entra checks an issuer it trusts)."""
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header, claims = json.loads(_b64url(header_b64)), json.loads(_b64url(payload_b64))
    except ValueError:
        raise ValueError("AADSTS50027: the client assertion is not a JWT") from None
    if not isinstance(claims, dict):
        raise ValueError("AADSTS50027: the client assertion is not a JWT")
    if jwks is None:
        return claims
    # Imported here: the standalone fake (kind's stand-in image) runs on the stdlib alone.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    if header.get("alg") != "RS256":
        raise ValueError("AADSTS5002727: the assertion is not signed with RS256")
    signed = f"{header_b64}.{payload_b64}".encode()
    for key in jwks.get("keys", []):
        if key.get("kty") != "RSA" or key.get("kid") not in (None, header.get("kid")):
            continue
        numbers = rsa.RSAPublicNumbers(
            int.from_bytes(_b64url(key["e"]), "big"), int.from_bytes(_b64url(key["n"]), "big")
        )
        try:
            numbers.public_key().verify(
                _b64url(signature_b64), signed, padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            continue
        if float(claims.get("exp", 0)) < time.time():
            raise ValueError("AADSTS700024: the client assertion has expired")
        return claims
    raise ValueError("AADSTS5002726: the assertion's signature does not verify")


def _aad_error(error: str, description: str) -> dict[str, Any]:
    return {"error": error, "error_description": description, "error_codes": [70021]}


def main(argv: list[str] | None = None) -> int:
    """Run the fake alone (e.g. as the Key Vault stand-in in kind) until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--cert-file", required=True)
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--tenant", default=DEFAULT_TENANT)
    parser.add_argument("--seed", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert_file, args.key_file)
    fake = FakeAzure(tenant=args.tenant)
    for seed in args.seed:
        name, _, value = seed.partition("=")
        fake.set_secret(name, value)
    fake.start(args.host, args.port, context)
    print(f"fake azure serving on {fake.base_url} (tenant {fake.tenant})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
