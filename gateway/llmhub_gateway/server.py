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

The admin app (/metrics, /health/tokens) listens on a port of its own in the same event loop;
it starts before the callers' port and stops after it, so the last scrape sees the drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from llmhub_gateway.core.config import Settings
from llmhub_gateway.drain import Drain

log = logging.getLogger(__name__)


class AdminServer(uvicorn.Server):
    """The admin listener, run inside the main server's loop: signals stay with that one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class DrainingServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        drain: Drain,
        drain_s: float,
        admin: uvicorn.Server | None = None,
    ) -> None:
        super().__init__(config)
        self._drain = drain
        self._drain_s = drain_s
        self._drain_requested = False
        self._drain_task: asyncio.Task[None] | None = None
        self._admin = admin
        self._admin_task: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self._admin is not None:  # a port it cannot bind exits the process, as ours does
            self._admin_task = asyncio.create_task(self._admin.serve())
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if self._admin is not None and self._admin_task is not None:
            self._admin.should_exit = True
            await self._admin_task

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


def gateway_server(
    app: FastAPI, settings: Settings, *, host: str, port: int, admin_port: int, **options: Any
) -> DrainingServer:
    """``app`` on ``port`` and its admin app on ``admin_port``, in one event loop (they share
    the store and Redis clients); ``options`` go to both uvicorn configs."""
    options = {"log_config": None, "access_log": False, **options}
    admin = AdminServer(
        uvicorn.Config(
            app.state.admin,
            host=host,
            port=admin_port,
            lifespan="off",
            timeout_graceful_shutdown=1,
            **options,
        )
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        timeout_graceful_shutdown=int(settings.shutdown_graceful_seconds + 0.999),
        **options,
    )
    drain: Drain = app.state.chat.drain
    return DrainingServer(config, drain, settings.shutdown_drain_seconds, admin)


def serve(app: FastAPI, settings: Settings, *, host: str, port: int, admin_port: int) -> None:
    """Run ``app`` and its admin app until SIGTERM/SIGINT, draining turns first on SIGTERM."""
    gateway_server(app, settings, host=host, port=port, admin_port=admin_port).run()
