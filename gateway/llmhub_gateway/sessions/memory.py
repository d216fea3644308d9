"""Sessions in this process only: the default when REDIS_URL is unset (one replica, dev).

Sessions are kept as tuples of strings and floats, not as Session/Turn objects: CPython's
collector stops tracking such tuples, so a full collection does not walk every stored turn.
With objects, its pauses grew with the number of sessions, to tens of ms at a few 10k sessions,
and showed up as the gateway's p99 latency.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import cast

from llmhub_gateway.providers.base import Role, Turn
from llmhub_gateway.sessions.base import Session

# provider, model, created_at, updated_at, turns as (role, text) pairs
_Packed = tuple[str, str, float, float, tuple[tuple[str, str], ...]]


class MemorySessionStore:
    """A dict with lazy expiry; same TTL semantics as the Redis store."""

    def __init__(self, ttl_seconds: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._sessions: dict[str, tuple[_Packed, float]] = {}
        self._leases: dict[str, tuple[str, float]] = {}  # session id -> (token, deadline)

    def _live(self, session_id: str) -> _Packed | None:
        entry = self._sessions.get(session_id)
        if entry is None:
            return None
        packed, deadline = entry
        if self._clock() >= deadline:
            del self._sessions[session_id]
            return None
        return packed

    def _put(self, session_id: str, packed: _Packed) -> None:
        self._sessions[session_id] = (packed, self._clock() + self._ttl)

    async def create(self, session_id: str, provider: str, model: str) -> Session:
        now = time.time()
        self._put(session_id, (provider, model, now, now, ()))
        return Session(session_id, provider, model, now, now, ())

    async def get(self, session_id: str) -> Session | None:
        packed = self._live(session_id)
        if packed is None:
            return None
        self._put(session_id, packed)
        provider, model, created_at, updated_at, turns = packed
        return Session(
            session_id,
            provider,
            model,
            created_at,
            updated_at,
            tuple(Turn(cast(Role, role), text) for role, text in turns),
        )

    async def append(self, session_id: str, turns: Sequence[Turn], model: str) -> None:
        packed = self._live(session_id)
        if packed is None:
            return
        provider, _, created_at, _, earlier = packed
        added = tuple((turn.role, turn.text) for turn in turns)
        self._put(session_id, (provider, model, created_at, time.time(), earlier + added))

    async def delete(self, session_id: str) -> bool:
        return self._live(session_id) is not None and self._sessions.pop(session_id) is not None

    async def lock(self, session_id: str, token: str, ttl_ms: int) -> bool:
        held = self._leases.get(session_id)
        if held is not None and held[0] != token and self._clock() < held[1]:
            return False
        self._leases[session_id] = (token, self._clock() + ttl_ms / 1000)
        return True

    async def renew(self, session_id: str, token: str, ttl_ms: int) -> bool:
        held = self._leases.get(session_id)
        if held is None or held[0] != token or self._clock() >= held[1]:
            return False
        self._leases[session_id] = (token, self._clock() + ttl_ms / 1000)
        return True

    async def unlock(self, session_id: str, token: str) -> None:
        held = self._leases.get(session_id)
        if held is not None and held[0] == token:
            del self._leases[session_id]

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        self._sessions.clear()
        self._leases.clear()
