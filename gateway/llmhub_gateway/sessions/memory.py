"""Sessions in this process only: the default when REDIS_URL is unset (one replica, dev).

Same outcomes as the Redis store (``create`` only when absent, the atomic ``commit`` with its
lease and existence checks and turn-id skip), so the two never disagree on what a turn leaves
behind. Expired sessions and leases are swept at most every ``sweep_every_s`` during ordinary
calls, so an idle session does not stay in memory until somebody asks for it.

Sessions are kept as tuples of strings and numbers, not as Session/Turn objects: CPython's
collector stops tracking such tuples, so a full collection does not walk every stored turn.
With objects, its pauses grew with the number of sessions, to tens of ms at a few 10k sessions,
and showed up as the gateway's p99 latency.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from llmhub_gateway.providers.base import Role, Turn
from llmhub_gateway.sessions.base import CommitOutcome, Session, StoredTurn, TurnRecord

# turn id -> (index of the answer in turns, model, duration_ms, fingerprint)
_Done = tuple[tuple[str, int, str, int, str], ...]
# provider, model, created_at, updated_at, turns as (role, text) pairs, committed turn ids,
# the CLI's native session id ("" when none), the owner (the caller who created it)
_Packed = tuple[str, str, float, float, tuple[tuple[str, str], ...], _Done, str, str]


class MemorySessionStore:
    """A dict with expiry; same TTL semantics as the Redis store."""

    def __init__(
        self,
        ttl_seconds: int,
        clock: Callable[[], float] = time.monotonic,
        sweep_every_s: float = 60.0,
    ) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._sweep_every_s = sweep_every_s
        self._next_sweep = clock() + sweep_every_s
        self._sessions: dict[str, tuple[_Packed, float]] = {}
        self._leases: dict[str, tuple[str, float]] = {}  # session id -> (token, deadline)

    def __len__(self) -> int:
        """Sessions held now, expired ones included until the next sweep."""
        return len(self._sessions)

    def _sweep(self) -> None:
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_every_s
        for sid in [s for s, (_, deadline) in self._sessions.items() if now >= deadline]:
            del self._sessions[sid]
        for sid in [s for s, (_, deadline) in self._leases.items() if now >= deadline]:
            del self._leases[sid]

    def _live(self, session_id: str) -> _Packed | None:
        self._sweep()
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

    def _holds(self, session_id: str, token: str) -> bool:
        held = self._leases.get(session_id)
        return held is not None and held[0] == token and self._clock() < held[1]

    async def create(self, session_id: str, provider: str, model: str, owner: str = "") -> bool:
        if self._live(session_id) is not None:
            return False
        now = time.time()
        self._put(session_id, (provider, model, now, now, (), (), "", owner))
        return True

    async def owner(self, session_id: str) -> str | None:
        packed = self._live(session_id)
        return None if packed is None else packed[7]

    async def get(self, session_id: str) -> Session | None:
        packed = self._live(session_id)
        if packed is None:
            return None
        self._put(session_id, packed)
        provider, model, created_at, updated_at, turns, _, native, owner = packed
        return Session(
            session_id,
            provider,
            model,
            created_at,
            updated_at,
            tuple(Turn(cast(Role, role), text) for role, text in turns),
            native or None,
            owner,
        )

    async def recorded(self, session_id: str, turn_id: str) -> StoredTurn | None:
        packed = self._live(session_id)
        if packed is None:
            return None
        for done_id, index, model, duration_ms, fingerprint in packed[5]:
            if done_id == turn_id:
                return StoredTurn(packed[4][index][1], model, duration_ms, fingerprint)
        return None

    async def commit(self, session_id: str, token: str, turn: TurnRecord) -> CommitOutcome:
        packed = self._live(session_id)
        if packed is not None and any(d[0] == turn.turn_id for d in packed[5]):
            await self.unlock(session_id, token)
            return CommitOutcome.ALREADY_STORED
        if not self._holds(session_id, token):
            return CommitOutcome.LEASE_LOST
        await self.unlock(session_id, token)
        if packed is None:
            return CommitOutcome.SESSION_GONE
        provider, _, created_at, _, earlier, done, native, owner = packed
        turns = (*earlier, ("user", turn.prompt), ("assistant", turn.text))
        record = (turn.turn_id, len(turns) - 1, turn.model, turn.duration_ms, turn.fingerprint)
        native = turn.native or native
        self._put(
            session_id,
            (provider, turn.model, created_at, time.time(), turns, (*done, record), native, owner),
        )
        return CommitOutcome.STORED

    async def delete(self, session_id: str) -> bool:
        return self._live(session_id) is not None and self._sessions.pop(session_id) is not None

    async def lock(self, session_id: str, token: str, ttl_ms: int) -> bool:
        held = self._leases.get(session_id)
        if held is not None and held[0] != token and self._clock() < held[1]:
            return False
        self._leases[session_id] = (token, self._clock() + ttl_ms / 1000)
        return True

    async def renew(self, session_id: str, token: str, ttl_ms: int) -> bool:
        if not self._holds(session_id, token):
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
