"""Draining one replica on SIGTERM: refuse new turns, give running ones a bounded time, then
stop them with ``shutting_down`` so every client gets an answer and every lease is released.

``server.py`` calls ``begin`` when the signal arrives and ``settle`` before letting uvicorn
close its connections; the turn runner registers each running turn here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from llmhub_gateway.errors import ShuttingDown

log = logging.getLogger(__name__)


class Drain:
    def __init__(self) -> None:
        self.draining = False
        self._turns: dict[int, Callable[[], None]] = {}  # id -> stop the turn (shutting_down)
        self._next = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def check(self) -> None:
        """Raise ShuttingDown (503 + Retry-After) once draining has begun."""
        if self.draining:
            raise ShuttingDown("this gateway replica is shutting down; retry on another one")

    def add(self, stop: Callable[[], None]) -> int:
        self._next += 1
        self._turns[self._next] = stop
        self._idle.clear()
        return self._next

    def discard(self, handle: int) -> None:
        self._turns.pop(handle, None)
        if not self._turns:
            self._idle.set()

    @property
    def running(self) -> int:
        return len(self._turns)

    def begin(self) -> None:
        if not self.draining:
            log.info("draining: readiness is now false, new turns are refused")
        self.draining = True

    async def settle(self, grace_s: float, stop_wait_s: float = 5.0) -> None:
        """Wait up to ``grace_s`` for running turns; stop the rest and wait (bounded) until
        they have answered and released their leases."""
        self.begin()
        try:
            await asyncio.wait_for(self._idle.wait(), grace_s)
            return
        except TimeoutError:
            pass
        log.warning("draining: stopping %d turn(s) still running", len(self._turns))
        for stop in list(self._turns.values()):
            stop()
        try:
            await asyncio.wait_for(self._idle.wait(), stop_wait_s)
        except TimeoutError:
            log.warning("draining: %d turn(s) did not stop in time", len(self._turns))
