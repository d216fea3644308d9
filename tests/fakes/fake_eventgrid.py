"""A stand-in Event Grid namespace (pull delivery) over HTTPS, for the real ``azure-eventgrid``.

It speaks the data-plane REST API ``EventGridConsumerClient`` uses (api-version 2024-06-01):
``POST /topics/{t}/eventsubscriptions/{s}:receive?maxEvents=&maxWaitTime=`` long-polls and hands
out events under a lock token; ``:acknowledge``, ``:release`` (``releaseDelayInSeconds``) and
``:reject`` take ``{"lockTokens": [...]}`` and answer succeeded/failed lock tokens. A lock that
expires makes the event available again (deliveryCount + 1). Bearer tokens must come from the
stand-in Entra (``FakeAzure``) for the audience ``https://eventgrid.azure.net``.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.fake_azure import FakeAzure

API_VERSION = "2024-06-01"
AUDIENCE = "https://eventgrid.azure.net"
RELEASE_DELAYS = {"0", "10", "60", "600", "3600"}  # the service's ReleaseDelay values


@dataclass
class _Event:
    cloud_event: dict[str, Any]
    available_at: float = 0.0
    lock_token: str | None = None
    locked_until: float = 0.0
    delivery_count: int = 0
    settled: str | None = None  # acknowledged | rejected


@dataclass(frozen=True)
class Settlement:
    action: str  # receive | acknowledge | release | reject
    status: int
    event_ids: tuple[str, ...] = ()
    at: float = field(default_factory=time.monotonic)


class FakeEventGrid:
    """One namespace topic with one queue subscription; thread-safe, steered by tests."""

    def __init__(
        self, entra: FakeAzure, *, topic: str = "keyvault", subscription: str = "operator"
    ) -> None:
        self.entra = entra
        self.topic, self.subscription = topic, subscription
        self.lock_duration = 60.0  # the subscription's receive lock duration (service: 60 s)
        self._events: list[_Event] = []
        self._cond = threading.Condition()
        self._failures: list[int] = []
        self.log: list[Settlement] = []
        self.published: list[str] = []  # event ids, oldest first
        self.base_url = ""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @classmethod
    def start_local(cls, entra: FakeAzure, **kwargs: Any) -> FakeEventGrid:
        """Serve on 127.0.0.1 with a certificate of ``entra``'s trustme CA (one trust root)."""
        fake = cls(entra, **kwargs)
        cert = entra.ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = fake
        server.socket = context.wrap_socket(server.socket, server_side=True)
        fake._server = server
        fake.base_url = f"https://127.0.0.1:{server.server_address[1]}"
        fake._thread = threading.Thread(target=server.serve_forever, daemon=True)
        fake._thread.start()
        return fake

    def feed_from(self) -> FakeEventGrid:
        """Publish a SecretNewVersionCreated on every write to ``entra``'s Key Vault."""
        vault = self.entra
        vault.on_new_version = lambda name, version: self.publish_keyvault(
            vault.vault_name, name, version
        )
        return self

    def stop(self) -> None:
        if self.entra.on_new_version is not None:
            self.entra.on_new_version = None
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def env(self) -> dict[str, str]:
        return {
            "LLMHUB_EVENTGRID_ENDPOINT": self.base_url,
            "LLMHUB_EVENTGRID_TOPIC": self.topic,
            "LLMHUB_EVENTGRID_SUBSCRIPTION": self.subscription,
        }

    # -- steering --------------------------------------------------------------------------------

    def publish(self, cloud_event: dict[str, Any]) -> None:
        """What the Key Vault system topic routes to the namespace topic."""
        for key in ("id", "source", "type", "specversion"):
            if not cloud_event.get(key):
                raise ValueError(f"a CloudEvent needs {key}")
        with self._cond:
            self._events.append(_Event(dict(cloud_event)))
            self.published.append(str(cloud_event["id"]))
            self._cond.notify_all()

    def publish_keyvault(
        self, vault_name: str, secret: str, version: str, kind: str = "SecretNewVersionCreated"
    ) -> None:
        """A ``Microsoft.KeyVault.<kind>`` event as Key Vault emits it (NearExpiry, Expired)."""
        group = "/subscriptions/0000/resourceGroups/rg"
        vault_id = f"{group}/providers/Microsoft.KeyVault/vaults/{vault_name}"
        self.publish(
            {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "source": vault_id,
                "type": f"Microsoft.KeyVault.{kind}",
                "subject": secret,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                + f".{int(time.time() * 1e6) % 1000000:06d}Z",
                "datacontenttype": "application/json",
                "data": {
                    "Id": f"https://{vault_name}/secrets/{secret}/{version}",
                    "VaultName": vault_name,
                    "ObjectType": "Secret",
                    "ObjectName": secret,
                    "Version": version,
                    "NBF": None,
                    "EXP": None,
                },
            }
        )

    def fail(self, status: int, *, times: int = 1) -> None:
        """The next ``times`` requests answer ``status`` (e.g. 503, or 401/403: no role)."""
        with self._cond:
            self._failures.extend([status] * times)

    def heal(self) -> None:
        """Forget the failures still queued."""
        with self._cond:
            self._failures.clear()

    def pending(self) -> int:
        """Events not acknowledged or rejected yet (available or locked)."""
        with self._cond:
            return sum(1 for e in self._events if e.settled is None)

    def settled(self, action: str) -> list[str]:
        with self._cond:
            return [i for s in self.log if s.action == action for i in s.event_ids]

    # -- request handling (server threads) -------------------------------------------------------

    def _take_failure(self) -> int | None:
        with self._cond:
            return self._failures.pop(0) if self._failures else None

    def _receive(self, max_events: int, max_wait: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + max_wait
        with self._cond:
            while True:
                now = time.monotonic()
                ready = [e for e in self._events if _available(e, now)][:max_events]
                if ready or now >= deadline or self._server is None:
                    break
                waits = [e.available_at for e in self._events if e.settled is None]
                waits += [e.locked_until for e in self._events if e.lock_token is not None]
                wake = min([deadline, *[w for w in waits if w > now]])
                self._cond.wait(max(0.01, wake - now))
            out = []
            for event in ready:
                event.lock_token = uuid.uuid4().hex
                event.locked_until = now + self.lock_duration
                event.delivery_count += 1
                out.append(
                    {
                        "brokerProperties": {
                            "lockToken": event.lock_token,
                            "deliveryCount": event.delivery_count,
                        },
                        "event": event.cloud_event,
                    }
                )
            self.log.append(Settlement("receive", 200, tuple(e.cloud_event["id"] for e in ready)))
            return out

    def _settle(self, action: str, tokens: list[str], delay: float) -> dict[str, Any]:
        succeeded, failed, ids = [], [], []
        now = time.monotonic()
        with self._cond:
            by_token = {e.lock_token: e for e in self._events if e.lock_token is not None}
            for token in tokens:
                event = by_token.get(token)
                if event is None or event.locked_until <= now or event.settled is not None:
                    error = {"code": "TokenLost", "message": "Token has expired or is invalid."}
                    failed.append({"lockToken": token, "error": error})
                    continue
                event.lock_token = None
                if action == "release":
                    event.available_at = now + delay
                else:
                    event.settled = "acknowledged" if action == "acknowledge" else "rejected"
                succeeded.append(token)
                ids.append(event.cloud_event["id"])
            self._events = [e for e in self._events if e.settled is None or e.settled == "rejected"]
            self.log.append(Settlement(action, 200, tuple(ids)))
            self._cond.notify_all()
        return {"failedLockTokens": failed, "succeededLockTokens": succeeded}


def _available(event: _Event, now: float) -> bool:
    if event.settled is not None or event.available_at > now:
        return False
    if event.lock_token is not None and event.locked_until > now:
        return False
    event.lock_token = None  # a lock that expired is lost: the event goes to the next receiver
    return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeEventGrid


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        prefix = f"/topics/{fake.topic}/eventsubscriptions/{fake.subscription}:"
        if not url.path.startswith(prefix):
            return self._error(404, "NotFound", "topic or event subscription not found")
        action = url.path[len(prefix) :]
        if query.get("api-version") != API_VERSION:
            return self._error(400, "BadRequest", "unsupported api-version")
        token = (self.headers.get("Authorization") or "")[7:].strip()
        if fake.entra._caller(f"Bearer {token}") is None or not fake.entra.audience_of(
            token
        ).startswith(AUDIENCE):
            return self._error(401, "Unauthorized", "the access token is invalid")
        failure = fake._take_failure()
        if failure is not None:
            fake.log.append(Settlement(action, failure))
            return self._error(failure, "Injected", f"injected HTTP {failure}")
        if action == "receive":
            return self._receive(fake, query)
        if action not in ("acknowledge", "release", "reject"):
            return self._error(404, "NotFound", "no such operation")
        if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
            return self._error(415, "UnsupportedMediaType", "expected application/json")
        tokens = json.loads(body or b"{}").get("lockTokens")
        if not isinstance(tokens, list) or not 1 <= len(tokens) <= 100:
            return self._error(400, "BadRequest", "lockTokens: 1 to 100 lock tokens")
        delay = query.get("releaseDelayInSeconds", "0")
        if action == "release" and delay not in RELEASE_DELAYS:
            return self._error(400, "BadRequest", "releaseDelayInSeconds: 0, 10, 60, 600, 3600")
        self._send(200, fake._settle(action, [str(t) for t in tokens], float(delay)))

    def _receive(self, fake: FakeEventGrid, query: dict[str, str]) -> None:
        try:
            max_events = int(query.get("maxEvents", "1"))
            max_wait = int(query.get("maxWaitTime", "60"))
        except ValueError:
            return self._error(400, "BadRequest", "maxEvents and maxWaitTime are integers")
        if not 1 <= max_events <= 100 or not 10 <= max_wait <= 120:
            return self._error(400, "BadRequest", "maxEvents 1..100, maxWaitTime 10..120")
        self._send(200, {"value": fake._receive(max_events, max_wait)})

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, {"error": {"code": code, "message": message}})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up on a long poll
            self.close_connection = True
