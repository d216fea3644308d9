"""What a fetched value means per provider: usable or not, its hash, its expiry."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from llmhub_common.contract import ProviderName
from llmhub_common.tokens import ensure_utc

HASH_PREFIX = "sha256:"
HASH_HEX_CHARS = 12


class InvalidCredential(ValueError):
    """The Key Vault value cannot be used by the gateway; the message never contains the value."""


def validate(provider: ProviderName, value: str) -> None:
    """Reject values the gateway could not use, before anything is written."""
    if provider == "claude":
        if not value.strip():
            raise InvalidCredential("Claude token is empty")
        return
    try:
        creds = json.loads(value)
    except ValueError:
        raise InvalidCredential("Gemini oauth_creds.json is not valid JSON") from None
    if not isinstance(creds, dict):
        raise InvalidCredential("Gemini oauth_creds.json must be a JSON object")
    for field in ("refresh_token", "access_token"):
        if not isinstance(creds.get(field), str) or not creds[field]:
            raise InvalidCredential(f"Gemini oauth_creds.json has no {field}")


def content_hash(value: str) -> str:
    """``sha256:<12 hex>``: enough to tell versions apart, useless for recovering the value."""
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()
    return f"{HASH_PREFIX}{digest[:HASH_HEX_CHARS]}"


def expiry(
    *, expires: datetime | None, created: datetime | None, max_age_days: int
) -> datetime | None:
    """Key Vault's ``expires`` wins; else ``created + maxAgeDays``; else unknown."""
    if expires is not None:
        return ensure_utc(expires)
    if created is not None:
        return ensure_utc(created) + timedelta(days=max_age_days)
    return None


def sensitive_parts(value: str) -> list[str]:
    """Tokens inside a JSON credential (Gemini's), so logs redact them on their own too."""
    try:
        creds = json.loads(value)
    except ValueError:
        return []
    if not isinstance(creds, dict):
        return []
    return [
        v
        for k, v in creds.items()
        if isinstance(v, str) and len(v) >= 8 and ("token" in k or "secret" in k)
    ]
