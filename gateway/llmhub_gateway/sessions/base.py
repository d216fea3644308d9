"""The session store contract: one provider per session, turns replayed to any replica.

Stores also hold one turn lease per session (a token with an expiry), so two requests on one
session never run a turn at the same time, whichever replicas they land on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from llmhub_gateway.providers.base import Turn


class StoreUnavailable(Exception):
    """The store cannot be reached right now; callers answer 503 and retry later."""


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    provider: str
    model: str
    created_at: float
    updated_at: float
    turns: Sequence[Turn] = field(default_factory=tuple)


class SessionStore(Protocol):
    """Where sessions live. Every method may raise StoreUnavailable."""

    async def create(self, session_id: str, provider: str, model: str) -> Session:
        """Store a new empty session under a server-generated id."""
        ...

    async def get(self, session_id: str) -> Session | None:
        """The session and its turns, refreshing its TTL; None when unknown or expired."""
        ...

    async def append(self, session_id: str, turns: Sequence[Turn], model: str) -> None:
        """Add turns after a successful answer, keeping the session alive."""
        ...

    async def delete(self, session_id: str) -> bool:
        """Remove the session; False when it did not exist."""
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
