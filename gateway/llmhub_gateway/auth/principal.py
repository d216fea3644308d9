"""The caller as the rest of the gateway sees it: a name from configuration, never a token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

ANONYMOUS = "anonymous"
OTHER = "other"  # metric label of callers not named in configuration


@dataclass(frozen=True, slots=True)
class Principal:
    """``name`` keys limits, usage and sessions (immutable ids, never an e-mail); ``label`` is
    its bounded metric label; ``display`` a human name for logs (an Entra user's e-mail)."""

    name: str
    mode: str
    label: str = OTHER
    scopes: tuple[str, ...] = field(default_factory=tuple)
    subject: str | None = None
    display: str | None = None


class Verifier(Protocol):
    """One identity mode. ``verify`` returns the caller for a token this mode recognises and
    accepts, None for a token that is not of its kind, and raises ``Unauthenticated`` for a
    token of its kind that fails (wrong audience, expired...)."""

    mode: str

    async def verify(self, token: str) -> Principal | None: ...

    async def aclose(self) -> None: ...
