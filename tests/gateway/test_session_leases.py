"""The turn lease in both stores: only the holder renews or frees it; it expires by itself."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

import pytest

from llmhub_gateway.chat import ChatService
from llmhub_gateway.core.config import Settings
from llmhub_gateway.errors import SessionBusy, ShuttingDown
from llmhub_gateway.metrics import Metrics
from llmhub_gateway.registry import Registry
from llmhub_gateway.sessions.base import SessionStore
from llmhub_gateway.sessions.memory import MemorySessionStore
from tests.gateway.fake_provider import echo_providers

TTL_MS = 300


async def _until_free(store: SessionStore, sid: str, token: str, timeout: float = 5.0) -> float:
    """Seconds until ``token`` can take the lease."""
    started = time.monotonic()
    while not await store.lock(sid, token, TTL_MS):
        assert time.monotonic() - started < timeout, "the lease never expired"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_only_one_holder_at_a_time(store: SessionStore) -> None:
    assert await store.lock("s", "a", TTL_MS)
    assert not await store.lock("s", "b", TTL_MS)
    assert await store.lock("other", "b", TTL_MS)  # leases are per session


async def test_only_the_holder_releases(store: SessionStore) -> None:
    assert await store.lock("s", "a", 60_000)
    await store.unlock("s", "b")  # not the holder: nothing happens
    assert not await store.lock("s", "b", 60_000)
    await store.unlock("s", "a")
    assert await store.lock("s", "b", 60_000)


async def test_an_abandoned_lease_expires(store: SessionStore) -> None:
    assert await store.lock("s", "a", TTL_MS)
    waited = await _until_free(store, "s", "b")
    assert TTL_MS / 1000 * 0.5 < waited < TTL_MS / 1000 + 2
    assert not await store.renew("s", "a", TTL_MS)  # the old holder lost it


async def test_renewal_keeps_the_lease_past_its_ttl(store: SessionStore) -> None:
    assert await store.lock("s", "a", TTL_MS)
    deadline = time.monotonic() + 3 * TTL_MS / 1000
    while time.monotonic() < deadline:
        assert await store.renew("s", "a", TTL_MS)
        assert not await store.lock("s", "b", TTL_MS)
        await asyncio.sleep(TTL_MS / 1000 / 4)
    assert not await store.renew("s", "b", TTL_MS)  # a non-holder cannot renew


async def test_a_turn_that_never_starts_frees_its_session_when_the_lease_runs_out() -> None:
    """The client left between prepare and stream: nothing releases, the lease expires."""
    store = MemorySessionStore(60)
    service = ChatService(Registry(echo_providers(), Settings()), store, Metrics(), lease_s=0.3)
    sid = (await service.complete(await service.prepare(provider="claude", prompt="hi"))).session_id
    await service.prepare(provider="claude", prompt="abandoned", session_id=sid)
    with pytest.raises(SessionBusy):
        await service.prepare(provider="claude", prompt="next", session_id=sid)
    started = time.monotonic()
    while True:
        try:
            chat = await service.prepare(provider="claude", prompt="next", session_id=sid)
            break
        except SessionBusy:
            assert time.monotonic() - started < 3, "the abandoned lease never expired"
            await asyncio.sleep(0.02)
    assert (await service.complete(chat)).text.startswith("[claude|")


async def test_a_long_turn_keeps_its_lease_renewed() -> None:
    store = MemorySessionStore(60)
    service = ChatService(Registry(echo_providers(), Settings()), store, Metrics(), lease_s=0.3)
    sid = (await service.complete(await service.prepare(provider="claude", prompt="hi"))).session_id
    chat = await service.prepare(provider="claude", prompt="!slow", session_id=sid)
    async with aclosing(service.run(chat)) as deltas:
        started = time.monotonic()
        async for _ in deltas:
            if time.monotonic() - started > 1.0:  # more than three lease periods
                break
        with pytest.raises(SessionBusy):
            await service.prepare(provider="claude", prompt="clash", session_id=sid)
    # Closing the stream released it at once.
    assert (await service.prepare(provider="claude", prompt="after", session_id=sid)).lease


async def test_a_turn_prepared_before_the_drain_began_is_refused_and_releases_its_lease() -> None:
    store = MemorySessionStore(60)
    service = ChatService(Registry(echo_providers(), Settings()), store, Metrics())
    sid = (await service.complete(await service.prepare(provider="claude", prompt="hi"))).session_id
    prepared = await service.prepare(provider="claude", prompt="late", session_id=sid)
    service.drain.begin()
    with pytest.raises(ShuttingDown):
        await service.complete(prepared)
    assert await store.lock(sid, "someone else", 1000)  # the lease was released
    with pytest.raises(ShuttingDown):
        await service.prepare(provider="claude", prompt="new", session_id=sid)
