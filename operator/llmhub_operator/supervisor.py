"""The operator's own background tasks (elector, scheduler, watches): one that ends while the
operator runs ends the operator, with a non-zero exit.

A live process with a dead elector or scheduler is the worst state: liveness stays green while
nothing syncs. Stopping through kopf's stop flag runs the cleanup (which hands the Lease back),
and the non-zero exit makes the kubelet restart the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)
CLOSE_WAIT_S = 10.0  # never hang shutdown on a task that does not stop


class Supervisor:
    def __init__(self) -> None:
        self.stop = asyncio.Event()  # kopf.operator(stop_flag=...): set when a task died
        self.failed: str | None = None  # the first task that ended unexpectedly
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(self._ended)
        self._tasks.append(task)
        return task

    async def close(self) -> None:
        """Cancel every task and wait (at most CLOSE_WAIT_S: the elector hands the Lease back)."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*self._tasks, return_exceptions=True), CLOSE_WAIT_S
            )

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._closing:
            return
        error = None if task.cancelled() else task.exception()
        if task.cancelled():
            how = "was cancelled"
        else:
            how = "returned" if error is None else f"failed ({type(error).__name__})"
        log.critical(
            "background task %r %s; stopping the operator so that it restarts",
            task.get_name(),
            how,
            exc_info=error,
        )
        self.failed = self.failed or task.get_name()
        self.stop.set()
