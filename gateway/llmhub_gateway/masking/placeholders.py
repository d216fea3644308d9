"""The placeholder shape ``[KIND_N]``: typed so the model can reason about it, numbered per
session, and made only of characters that need no escaping in JSON, Markdown or shells."""

from __future__ import annotations

import re

PLACEHOLDER = re.compile(r"\[([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*?)_([1-9][0-9]{0,8})\]")
# The caller's own text holding a placeholder-shaped string of a known kind is masked as this
# kind, so the text the model sees holds only placeholders the session assigned.
LITERAL = "MASK_LITERAL"
LONGEST = 64  # a carry buffer holds at most this many characters of a possible placeholder
_PREFIX = re.compile(r"\[[A-Z0-9_]{0,62}\Z")


def make(kind: str, number: int) -> str:
    return f"[{kind}_{number}]"


def open_tail(text: str) -> int:
    """Where a placeholder may start that ``text`` ends before it is complete (its last
    ``[`` followed only by placeholder characters), else ``len(text)``."""
    start = text.rfind("[", max(0, len(text) - LONGEST))
    if start >= 0 and _PREFIX.match(text, start):
        return start
    return len(text)
