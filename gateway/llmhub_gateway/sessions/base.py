"""The session store contract: one provider per session, turns replayed to any replica.

Stores also hold one turn lease per session (a token with an expiry), so two requests on one
session never run a turn at the same time, whichever replicas they land on. A turn ends with
one atomic ``commit``: it checks the lease and that the session still exists, skips a turn id
already stored (a retried commit or request), appends, refreshes the TTL and releases the lease,
all or nothing. The Redis and the memory store give the same outcomes.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from llmhub_gateway.errors import StoreUnavailable
from llmhub_gateway.providers.base import Turn

__all__ = [
    "CommitOutcome",
    "Session",
    "SessionStore",
    "StoreUnavailable",
    "StoredTurn",
    "TurnRecord",
    "may_access",
]


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    provider: str
    model: str
    created_at: float
    updated_at: float
    turns: Sequence[Turn] = field(default_factory=tuple)
    native: str | None = None  # the CLI's own session id, to resume instead of replaying
    owner: str = ""  # the caller who created it ("" for sessions stored before owners)


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One finished turn to commit. ``fingerprint`` identifies the request that produced it,
    so an Idempotency-Key reused for another prompt is told apart from a retry."""

    turn_id: str
    prompt: str
    text: str
    model: str
    duration_ms: int
    fingerprint: str
    native: str = ""  # the CLI's session id after this turn; "" leaves the stored one


@dataclass(frozen=True, slots=True)
class StoredTurn:
    """What a retried request gets back instead of running the provider again."""

    text: str
    model: str
    duration_ms: int
    fingerprint: str


class CommitOutcome(enum.Enum):
    STORED = "stored"
    ALREADY_STORED = "already_stored"  # this turn id is in the session: a retry, nothing added
    LEASE_LOST = "lease_lost"  # another holder (or nobody) has the lease: nothing written
    SESSION_GONE = "session_gone"  # deleted or expired during the turn: nothing written


class SessionStore(Protocol):
    """Where sessions live. Every method may raise StoreUnavailable; ids are already valid."""

    async def create(self, session_id: str, provider: str, model: str, owner: str = "") -> bool:
        """Store a new empty session of caller ``owner`` unless one exists under that id;
        True when created."""
        ...

    async def owner(self, session_id: str) -> str | None:
        """The caller who created the session ("" when stored before owners), None when
        unknown or expired; cheap (no turns read, TTL untouched)."""
        ...

    async def get(self, session_id: str) -> Session | None:
        """The session and its turns, refreshing its TTL; None when unknown or expired."""
        ...

    async def recorded(self, session_id: str, turn_id: str) -> StoredTurn | None:
        """The answer of a turn already committed under ``turn_id``, if any."""
        ...

    async def commit(self, session_id: str, token: str, turn: TurnRecord) -> CommitOutcome:
        """Atomically: skip a stored turn id, check lease and session, append, refresh the
        TTL, release the lease (also on SESSION_GONE and ALREADY_STORED)."""
        ...

    async def delete(self, session_id: str) -> bool:
        """Remove the session; False when it did not exist. A running turn's commit is then
        refused (SESSION_GONE), so a deleted session never comes back half-written."""
        ...

    async def lock(self, session_id: str, token: str, ttl_ms: int) -> bool:
        """Take the session's turn lease for ``ttl_ms`` unless another holder has it."""
        ...

    async def renew(self, session_id: str, token: str, ttl_ms: int) -> bool:
        """Extend the lease if ``token`` still holds it; False when it was lost."""
        ...

    async def unlock(self, session_id: str, token: str) -> None:
        """Release the lease, but only if ``token`` still holds it."""
        ...

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""
        ...

    async def aclose(self) -> None: ...


def may_access(owner: str | None, caller: str, admins: frozenset[str]) -> bool:
    """Only the caller who created a session (or an admin caller, AUTH_ADMIN_CALLERS) may
    continue, read or delete it; everybody else is told it does not exist. Sessions stored
    before sessions had owners ("") stay open to any caller until they expire."""
    if owner is None:
        return False
    return owner in ("", caller) or caller in admins
