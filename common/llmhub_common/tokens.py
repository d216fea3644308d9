"""Token health: one rule for the operator's status and the gateway's /health/tokens."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_WARN_BEFORE_DAYS = 3


class TokenStatus(enum.StrEnum):
    VALID = "valid"
    WARNING = "warning"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TokenHealth:
    status: TokenStatus
    expires_at: datetime | None
    days_remaining: int | None
    message: str

    def as_dict(self) -> dict[str, object]:
        """The seeds' /health/tokens shape for one provider."""
        return {
            "status": self.status.value,
            "expires_at": format_rfc3339(self.expires_at) if self.expires_at else None,
            "days_remaining": self.days_remaining,
            "message": self.message,
        }


def classify(
    expires_at: datetime | None,
    *,
    now: datetime | None = None,
    warn_before_days: int = DEFAULT_WARN_BEFORE_DAYS,
) -> TokenHealth:
    """Valid, warning (within ``warn_before_days``) or expired; unknown when no expiry is known.

    ``days_remaining`` counts whole days left, rounded down, never below zero, so a token with
    23 hours left reports 0 days and is already a warning.
    """
    if expires_at is None:
        return TokenHealth(TokenStatus.UNKNOWN, None, None, "Token expiry is not known")
    now = now or datetime.now(UTC)
    expires_at = ensure_utc(expires_at)
    left = (expires_at - now).total_seconds()
    if left <= 0:
        return TokenHealth(
            TokenStatus.EXPIRED, expires_at, 0, "Token has expired, renew it and update Key Vault"
        )
    days = math.floor(left / 86400)
    if left <= warn_before_days * 86400:
        return TokenHealth(
            TokenStatus.WARNING, expires_at, days, "Token expires soon, please refresh"
        )
    return TokenHealth(TokenStatus.VALID, expires_at, days, "Token is valid")


def ensure_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_rfc3339(value: datetime) -> str:
    """``2026-01-15T12:00:00Z``: second precision, always UTC."""
    return ensure_utc(value).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    """Inverse of :func:`format_rfc3339`; raises ValueError on anything else."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    return ensure_utc(value)
