"""Sessions in this process only: the default when REDIS_URL is unset (one replica, dev)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from llmhub_gateway.providers.base import Turn
from llmhub_gateway.sessions.base import Session


class MemorySessionStore:
    """A dict with lazy expiry; same TTL semantics as the Redis store."""

    def __init__(self, ttl_seconds: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._sessions: dict[str, tuple[Session, float]] = {}
        self._leases: dict[str, tuple[str, float]] = {}  # session id -> (token, deadline)

    def _live(self, session_id: str) -> Session | None:
        entry = self._sessions.get(session_id)
        if entry is None:
            return None
        session, deadline = entry
        if self._clock() >= deadline:
            del self._sessions[session_id]
            return None
        return session

    def _put(self, session: Session) -> None:
        self._sessions[session.id] = (session, self._clock() + self._ttl)

    async def create(self, session_id: str, provider: str, model: str) -> Session:
        now = time.time()
        session = Session(session_id, provider, model, now, now, ())
        self._put(session)
        return session

    async def get(self, session_id: str) -> Session | None:
        session = self._live(session_id)
        if session is not None:
            self._put(session)
        return session

    async def append(self, session_id: str, turns: Sequence[Turn], model: str) -> None:
        session = self._live(session_id)
        if session is None:
            return
        updated = replace(
            session, model=model, updated_at=time.time(), turns=(*session.turns, *turns)
        )
        self._put(updated)

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
