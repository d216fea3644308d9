"""Whether a provider's CLI can start on this replica, as its pool last saw it.

A CLI that answers ``--version`` may still fail to start for serving (e.g. its launcher lives
in a ``noexec`` /tmp: ``[Errno 13] Permission denied``). The pool records that here and
readiness reads it, so such a replica leaves the Service naming why; the next start that
succeeds clears it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StartState:
    provider: str
    reason: str | None = None

    def failed(self, reason: str) -> None:
        self.reason = reason

    def started(self) -> None:
        self.reason = None

    def problem(self) -> str | None:
        """The readiness reason, or None while the CLI starts (or was never tried)."""
        if self.reason is None:
            return None
        return f"{self.provider}: the CLI cannot start: {self.reason}"
