"""The session lease a turn holds while it runs, and the keeper that renews it.

The keeper is armed as a timer, so a short turn spawns no renewal task. It renews every third
of the lease; when the store says the lease is gone, or the store stayed unreachable until the
lease must have run out, it calls ``on_lost`` once: the turn runner then cancels the turn,
because another turn may now own the session. It is stopped by an event, never cancelled, so
no store command is cut off half-way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from llmhub_gateway.sessions.base import SessionStore, StoreUnavailable

log = logging.getLogger(__name__)
KEEPER_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class Lease:
    session_id: str
    token: str


class Keeper:
    def __init__(
        self, store: SessionStore, lease: Lease, lease_s: float, on_lost: Callable[[], None]
    ) -> None:
        self._store = store
        self._lease = lease
        self._lease_s = lease_s
        self._on_lost = on_lost
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self._valid_until = loop.time() + lease_s
        self._timer: asyncio.TimerHandle | None = loop.call_later(lease_s / 3, self._start)

    def _start(self) -> None:
        self._timer = None
        if not self._stop.is_set():
            self._task = asyncio.create_task(self._keep())

    async def _keep(self) -> None:
        loop = asyncio.get_running_loop()
        ttl_ms = int(self._lease_s * 1000)
        while not self._stop.is_set():
            asked = loop.time()
            try:
                held = await self._store.renew(self._lease.session_id, self._lease.token, ttl_ms)
            except StoreUnavailable:
                held = loop.time() < self._valid_until  # it may come back in time
            else:
                if held:
                    self._valid_until = asked + self._lease_s
            if self._stop.is_set():
                return
            if not held:
                log.warning("a turn lost its session lease; cancelling it")
                self._on_lost()
                return
            try:
                await asyncio.wait_for(self._stop.wait(), self._lease_s / 3)
            except TimeoutError:
                continue

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._stop.set()
        if self._task is not None:
            _, running = await asyncio.wait([self._task], timeout=KEEPER_GRACE_S)
            for task in running:  # a renew stuck past the store's own socket timeout
                task.cancel()
