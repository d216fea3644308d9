"""Classifying CLI failures from exit status and structured output, never from a word in the
log, and keeping raw CLI text away from clients.

The Gemini CLI prints "Loaded cached credentials." on every run, and a crash dump may name
tokens or files: matching words like "credential" in that text made an out-of-memory crash look
like a bad token. Clients get a category and a fixed message; the log keeps the detail,
redacted and bounded.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from typing import Any

from llmhub_common.logging import redact

_MAX_DETAIL = 300
_AUTH_CODES = {401, 403, "401", "403", "UNAUTHENTICATED", "PERMISSION_DENIED"}
_QUOTA_CODES = {429, "429", "RESOURCE_EXHAUSTED"}
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def safe_detail(text: str) -> str:
    """One redacted, bounded line fit for a log line (not for clients)."""
    flat = " ".join(text.split())
    return redact(flat)[:_MAX_DETAIL]


def _codes(error: Mapping[str, Any]) -> set[Any]:
    found = set()
    for key in ("code", "status"):
        value = error.get(key)
        if isinstance(value, int | str) and not isinstance(value, bool):
            found.add(value.upper() if isinstance(value, str) else value)
    return found


def is_auth_error(error: Mapping[str, Any]) -> bool:
    """A structured error (``{type, message, code?, status?}``) meaning the credential was
    refused: HTTP 401/403, gRPC UNAUTHENTICATED/PERMISSION_DENIED, or an error type that says
    authentication (the Gemini CLI's FatalAuthenticationError)."""
    kind = error.get("type")
    return bool(_codes(error) & _AUTH_CODES) or (
        isinstance(kind, str) and "authentication" in kind.lower()
    )


def is_quota(error: Mapping[str, Any]) -> bool:
    """The vendor's quota or rate limit (429 / RESOURCE_EXHAUSTED) by its structured code."""
    return bool(_codes(error) & _QUOTA_CODES)


def category(provider: str, error: Mapping[str, Any]) -> str:
    """A client-safe message for a non-auth structured error: its type and code, no text."""
    if _codes(error) & _QUOTA_CODES:
        return f"{provider}: the provider's quota or rate limit is exhausted (code 429)"
    kind = error.get("type")
    label = kind if isinstance(kind, str) and _TOKEN.fullmatch(kind) else "error"
    codes = sorted(str(c) for c in _codes(error) if _TOKEN.fullmatch(str(c)) or str(c).isdigit())
    suffix = f", code {codes[0]}" if codes else ""
    return f"{provider}: the provider reported an error ({label}{suffix})"


class Tail:
    """The last few lines of a child's diagnostic output (never logged unredacted)."""

    def __init__(self, size: int = 20) -> None:
        self._lines: deque[str] = deque(maxlen=size)

    def add(self, line: str) -> None:
        self._lines.append(line)

    def text(self) -> str:
        return "\n".join(self._lines)
