"""Per-session caps: a session cannot grow without bound.

Every continuation loads the whole history, and a replay hands all of it to the CLI, so an
unbounded session would hand the provider many times ``MAX_PROMPT_BYTES`` (and outgrow the
SDK's line buffer). A turn is refused before anything runs when the session already holds
``max_turns`` turns (400) or its history with the new text would pass ``max_bytes`` (413); the
message names the limit and says what to do: start a new session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmhub_gateway.errors import BadRequest, GatewayError
from llmhub_gateway.providers.base import Turn


class SessionTooLarge(GatewayError):
    """The session's history and the new text together are over SESSION_MAX_BYTES."""

    status_code = 413
    error_type = "session_too_large"


class SessionTooLong(BadRequest):
    """The session already holds SESSION_MAX_TURNS turns."""

    error_type = "session_too_long"


@dataclass(frozen=True, slots=True)
class SessionCaps:
    max_bytes: int = 4 * 1024 * 1024
    max_turns: int = 200

    def check(self, history: Sequence[Turn], *texts: str) -> None:
        """Refuse a turn on ``history`` (user and assistant turns) with the new ``texts``."""
        turns = sum(1 for t in history if t.role == "user")
        if turns >= self.max_turns:
            raise SessionTooLong(
                f"the session already has {turns} turns, the most this gateway allows "
                f"(SESSION_MAX_TURNS={self.max_turns}); start a new session"
            )
        size = sum(len(t.text.encode("utf-8", "replace")) for t in history)
        size += sum(len(t.encode("utf-8", "replace")) for t in texts)
        if size > self.max_bytes:
            raise SessionTooLarge(
                f"the session's history and this message are {size} bytes of text, more than "
                f"this gateway allows (SESSION_MAX_BYTES={self.max_bytes}); start a new session"
            )
