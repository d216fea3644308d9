"""Why reading a credential from its source failed, sorted so handlers only choose a retry policy.

    SourceError                 base: ``reason`` (metric/condition label), ``message`` (safe text),
    │                           ``retry_after`` (seconds or None), ``permanent`` (no use retrying)
    ├── SourceAuthError         401/403: the identity is not federated or lacks the vault role
    ├── SourceNotFound          404: no such secret or version (yet)
    │   └── SourceDisabled      the secret (version) exists but is disabled in Key Vault
    ├── SourceThrottled         429: back off for ``retry_after`` seconds
    └── SourceUnavailable       5xx, timeouts, connection and TLS errors

Texts are built by the adapter from names and status codes only: never a value, never a token.
"""

from __future__ import annotations


class SourceError(Exception):
    """A failed read of a credential source; subclasses fix the reason and whether to retry."""

    default_reason = "error"
    default_permanent = False

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        retry_after: float | None = None,
        permanent: bool | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.retry_after = retry_after
        self.permanent = self.default_permanent if permanent is None else permanent
        self.status = status


class SourceAuthError(SourceError):
    """The vault refused our identity; an operator must fix federation or RBAC, not retry."""

    default_reason = "auth"
    default_permanent = True


class SourceNotFound(SourceError):
    """The secret or pinned version does not exist; it may be created later, so retry slowly."""

    default_reason = "not_found"


class SourceDisabled(SourceNotFound):
    """The secret exists but Key Vault refuses to serve it because it is disabled."""

    default_reason = "disabled"


class SourceThrottled(SourceError):
    """Key Vault asked us to slow down; honour ``retry_after`` instead of hammering it."""

    default_reason = "throttled"


class SourceUnavailable(SourceError):
    """The vault could not be reached or failed on its side; a later retry may succeed."""

    default_reason = "unavailable"
