"""The providers' readiness check, answered from a cache and refreshed off the event loop.

Checking a provider may run its CLI (``claude --version`` takes seconds, or hangs): run on
the event loop, every probe would stall every request of the replica, ``/health/live`` included.
So the check runs in a worker thread, at most one at a time, and ``/health/ready`` answers with
the last result; a result older than ``fresh_s`` starts a new check in the background. Only the
very first probe waits (briefly, without blocking the loop) for a result.
"""

from __future__ import annotations

import asyncio
import logging
import time

from llmhub_gateway.registry import Registry

log = logging.getLogger(__name__)
CHECKING = "the providers' readiness check is still running"


class ReadinessCheck:
    def __init__(self, registry: Registry, *, fresh_s: float, first_wait_s: float = 0.5) -> None:
        self._registry = registry
        self._fresh_s = fresh_s
        self._first_wait_s = first_wait_s
        self._result: dict[str, str] | None = None
        self._checked = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin a check in the background unless one runs or the last result is fresh (at
        gateway start, so the first probe already finds a result)."""
        stale = self._result is None or time.monotonic() - self._checked >= self._fresh_s
        if stale and self._task is None:
            self._task = asyncio.create_task(self._refresh())

    async def problems(self) -> dict[str, str]:
        """Why configured providers cannot run (by name), as the last check found; while no
        check has finished yet, every configured provider is reported as being checked."""
        self.start()
        if self._result is None and self._task is not None:
            await asyncio.wait([self._task], timeout=self._first_wait_s)
        if self._result is None:
            return {p.name: f"{p.name}: {CHECKING}" for p in self._registry.configured()}
        return self._result

    async def _refresh(self) -> None:
        try:
            self._result = await asyncio.to_thread(self._registry.problems)
            self._checked = time.monotonic()
            self._registry.warm()  # spares start on the loop, once their CLI checked out
        except Exception:  # a bug in a check: keep the last result, try again next probe
            log.exception("the readiness check failed")
        finally:
            self._task = None
