"""Reading CLI failure text safely: is it an auth failure, and what may a client see of it."""

from __future__ import annotations

import re
from collections import deque

from llmhub_common.logging import redact

_AUTH = re.compile(
    r"(?i)authenticat|unauthori[sz]ed|invalid api key|/login|oauth|credential|invalid_grant"
    r"|token (?:has )?expired|\b401\b|\b403\b|permission denied"
)
_MAX_DETAIL = 300


def is_auth_failure(text: str) -> bool:
    return bool(_AUTH.search(text))


def safe_detail(text: str) -> str:
    """One redacted, bounded line fit for an exception message or a log line."""
    flat = " ".join(text.split())
    return redact(flat)[:_MAX_DETAIL]


class Tail:
    """The last few lines of a child's diagnostic output (never logged unredacted)."""

    def __init__(self, size: int = 20) -> None:
        self._lines: deque[str] = deque(maxlen=size)

    def add(self, line: str) -> None:
        self._lines.append(line)

    def text(self) -> str:
        return "\n".join(self._lines)
