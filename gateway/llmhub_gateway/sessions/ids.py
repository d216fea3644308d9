"""Session and turn ids: validated before they reach a store, so they can never shape a key.

A session id is a UUID in its canonical 36-character form (any case; stored lower-case). Every
entry point (REST body and path, MCP arguments) goes through ``parse_session_id``, so
``<id>:lock`` or a 10 kB path segment is refused before Redis sees it.

A turn id names one turn for retries: from an ``Idempotency-Key`` it is derived (per caller),
so a retried request finds the turn it already stored; without one it is random. A new session
started with an Idempotency-Key gets a session id derived the same way, so the retry of a first
turn lands on the same session instead of creating a second one.
"""

from __future__ import annotations

import hashlib
import re
import uuid

from llmhub_gateway.errors import BadRequest, InvalidSessionId

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, as HTTP header values go
_NAMESPACE = uuid.UUID("6f1d3b7e-2f0c-4d8a-9a51-0c2f4e5b7a13")  # fixed: ids must stay stable


def parse_session_id(value: str) -> str:
    """The canonical (lower-case) session id, or InvalidSessionId (400)."""
    if len(value) != 36 or not _UUID.fullmatch(value):
        raise InvalidSessionId("session_id must be a UUID such as the one the gateway returned")
    return value.lower()


def check_idempotency_key(value: str) -> str:
    if not _KEY.fullmatch(value):
        raise BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters")
    return value


def turn_id(principal: str, key: str | None) -> str:
    """Stable for (caller, Idempotency-Key); random when the client sent no key."""
    if key is None:
        return uuid.uuid4().hex
    return hashlib.sha256(f"{principal}\0{key}".encode()).hexdigest()[:32]


def new_session_id(principal: str, key: str | None) -> str:
    """Random, or derived from (caller, Idempotency-Key) so a retried first turn reuses it."""
    if key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_NAMESPACE, f"{principal}\0{key}"))
