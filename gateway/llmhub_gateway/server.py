"""uvicorn with a drain: on SIGTERM the gateway first stops taking turns, then lets uvicorn go.

Order (the chart's preStop sleep has already let the Service stop sending new connections):
1. SIGTERM: readiness answers 503, new turns get 503 ``shutting_down`` + Retry-After, while
   the listener stays open so late requests get that answer instead of a refused connection;
2. running turns get ``SHUTDOWN_DRAIN_SECONDS`` to finish, then are stopped: SSE streams end
   with an ``error`` event ``shutting_down``, JSON calls get a 503, leases are released;
3. uvicorn's own graceful shutdown (``SHUTDOWN_GRACEFUL_SECONDS``) flushes those answers and
   closes connections; the app's lifespan then drains cleanup tasks before closing the store.
A second SIGTERM or SIGINT skips the drain. The pod's terminationGracePeriodSeconds must be
longer than preStop + drain + graceful (the chart checks it).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI

from llmhub_gateway.core.config import Settings
from llmhub_gateway.drain import Drain

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: Drain, drain_s: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._drain_s = drain_s
        self._drain_requested = False
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self._drain_requested and not self.should_exit:
            self._captured_signals.append(sig)
            self._drain_requested = True  # picked up by on_tick, in the event loop
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_requested and self._drain_task is None:
            self._drain_task = asyncio.create_task(self._drain_then_exit())
        return await super().on_tick(counter)

    async def _drain_then_exit(self) -> None:
        self._drain.begin()  # readiness false and new turns refused from now on
        await self._drain.settle(self._drain_s)
        self.should_exit = True


def serve(app: FastAPI, settings: Settings, *, host: str, port: int) -> None:
    """Run ``app`` until SIGTERM/SIGINT, draining turns first on SIGTERM."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_graceful_seconds + 0.999),
    )
    drain: Drain = app.state.chat.drain
    DrainingServer(config, drain, settings.shutdown_drain_seconds).run()
