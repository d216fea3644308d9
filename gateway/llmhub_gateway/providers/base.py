"""The whole adapter contract between the HTTP layer and an LLM backend.

The HTTP layer knows only this module. An adapter turns one ``ChatRequest`` into a stream of
text deltas; it owns its child processes and must kill them (the whole process group) when the
stream is closed early (client disconnect, timeout), so nothing outlives the request.

Errors form a small tree the API maps to status codes::

    ProviderError                 502  provider failed (generic)
    ├── ProviderNotConfigured     502  no credential / CLI missing
    ├── ProviderAuthError         502  the provider rejected the credential
    │   ├── ProviderAccountUnsupported 502  the vendor no longer serves this kind of account
    │   └── ProviderProjectRequired    502  the account needs a cloud project (Gemini)
    ├── ProviderCrashed           502  the CLI exited badly or spoke garbage
    ├── ProviderTimeout           504  no answer within the provider's timeout
    ├── ProviderRateLimited       429  the vendor's quota or rate limit (has retry_after)
    └── ProviderBusy              429  the per-pod concurrency cap is reached (has retry_after)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from llmhub_gateway.errors import GatewayError

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier message of the session, replayed so any replica can continue it."""

    role: Role
    text: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    prompt: str
    model: str
    session_id: str
    history: Sequence[Turn] = field(default_factory=tuple)
    system: str | None = None
    # The CLI's own session id of this conversation (from the store), to resume natively
    # instead of replaying ``history``; None on a first turn or when never reported.
    native_session: str | None = None
    # No later turn continues this conversation (an OpenAI request carries its whole history
    # each time): a warm runtime may discard it as soon as the turn ends.
    stateless: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one answer as the CLI reports them; a stream may yield it (once, at its end)
    among its text deltas. Adapters whose CLI reports nothing yield none: usage counts 0."""

    tokens_in: int = 0
    tokens_out: int = 0


@dataclass(frozen=True, slots=True)
class NativeSession:
    """A stream item: the CLI's own session id for this conversation (new, or changed by a
    resume). The turn's commit stores it, so the next turn on any replica can resume it."""

    id: str


@dataclass(frozen=True, slots=True)
class RateLimitNotice:
    """A stream item: the subscription's rate-limit state as the CLI reported it (Claude's
    ``rate_limit_event``). Times are Unix seconds; None where the CLI said nothing."""

    status: Literal["allowed", "allowed_warning", "rejected"]
    resets_at: float | None = None
    rate_limit_type: str | None = None
    utilization: float | None = None
    overage_status: str | None = None
    overage_resets_at: float | None = None


StreamItem = str | Usage | NativeSession | RateLimitNotice


class ProviderError(GatewayError):
    """Base of every provider failure; its message is safe to show to clients (a category,
    never raw CLI output: that goes to the log, redacted)."""

    status_code = 502
    error_type = "provider_error"


class ProviderNotConfigured(ProviderError):
    error_type = "provider_not_configured"


class ProviderAuthError(ProviderError):
    error_type = "provider_auth_error"


class ProviderAccountUnsupported(ProviderAuthError):
    """The credential is fine but the vendor refuses the account type through this client."""

    error_type = "provider_account_unsupported"


class ProviderProjectRequired(ProviderAuthError):
    """The account works only with a cloud project configured (Gemini Code Assist)."""

    error_type = "provider_project_required"


class ProviderCrashed(ProviderError):
    error_type = "provider_crashed"


class ProviderTimeout(ProviderError):
    status_code = 504
    error_type = "provider_timeout"


class ProviderRateLimited(ProviderError):
    """The vendor refused for quota or rate limit: the subscription itself is exhausted."""

    status_code = 429
    error_type = "provider_rate_limited"

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after: int | None = retry_after


class ProviderBusy(ProviderError):
    status_code = 429
    error_type = "provider_busy"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after: int | None = retry_after


@runtime_checkable
class Provider(Protocol):
    """An LLM backend. Implementations: claude.py, gemini.py; tests may add their own."""

    name: str  # "claude" | "gemini": the provider id clients use
    default_model: str

    def configured(self) -> bool:
        """True when a credential is present, so the provider may be offered to clients."""
        ...

    def models(self) -> Sequence[str]:
        """Model ids this provider serves (the default first)."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        """Yield text deltas of the answer (and optionally one ``Usage``, ``NativeSession``
        and ``RateLimitNotice`` items); raise ProviderError subclasses on failure."""
        ...

    async def aclose(self) -> None:
        """Release anything long-lived (pools, temp dirs). Called once at shutdown."""
        ...

    # Optional: ``def problem(self) -> str | None`` -- why this configured provider cannot
    # run on this replica (e.g. its CLI is missing); readiness fails on it. Not part of the
    # protocol so that test doubles need not implement it.
