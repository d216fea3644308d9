"""What reconcile needs from a secret source (Key Vault in production, a double in unit tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from llmhub_operator.errors import SourceError


class Fetched(Protocol):
    """The fields of keyvault.FetchedSecret that the operator reads."""

    @property
    def value(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def created(self) -> datetime | None: ...
    @property
    def expires(self) -> datetime | None: ...


class SecretSource(Protocol):
    async def fetch(
        self,
        vault_url: str,
        name: str,
        version: str | None = None,
        identity: Any = None,  # identity.NamespaceIdentity, or None: the operator's own
    ) -> Fetched: ...
    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SourceFailure:
    """Why a fetch failed, in words safe for status, events and logs."""

    reason: str
    message: str
    retry_after: float | None
    permanent: bool


def describe_failure(exc: BaseException) -> SourceFailure:
    """Read SourceError's attributes; anything else becomes an opaque 'Unexpected'.

    The text of unknown exceptions is never used: it might quote a response body.
    """
    if isinstance(exc, SourceError):
        return SourceFailure(exc.reason, exc.message, exc.retry_after, exc.permanent)
    return SourceFailure(
        reason="Unexpected",
        message=f"Reading Key Vault failed unexpectedly ({type(exc).__name__}); see operator logs",
        retry_after=None,
        permanent=False,
    )
