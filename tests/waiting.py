"""Polling helpers shared by the emulator and real-control-plane tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], *, timeout: float = 10.0
) -> T:
    """Poll ``probe`` until ``check`` holds; fail with the last value seen at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        try:
            last = await probe()
            if check(last):
                return last
        except (client.ApiException, aiohttp.ClientError, OSError) as exc:
            last = exc  # an API server restarting answers nothing for a moment
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")
