"""Where a session's placeholders live: next to the session, with its lifetime.

With Redis (``REDIS_URL``) one hash per session, ``<session prefix>{<id>}:mask``, placeholder ->
value, in the session's hash slot: the session store deletes it with the session and refreshes
its TTL with the session's keys; each turn that adds placeholders refreshes it too. Without
Redis a dict in this process with the same TTL, removed with the session (``forget``). Only the
placeholder -> value direction is stored (the reverse is rebuilt per turn), which keeps a
mapping well under 200 bytes in Redis (the bench measures it with MEMORY USAGE).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Protocol

import redis.asyncio as aioredis

from llmhub_gateway import redis_client
from llmhub_gateway.sessions.redis import DEFAULT_PREFIX, mask_key


class MaskStore(Protocol):
    async def load(self, session_id: str) -> dict[str, str]:
        """The session's placeholders (empty when none or expired)."""
        ...

    async def add(self, session_id: str, entries: Mapping[str, str]) -> None:
        """Store new placeholders and refresh the mapping's TTL."""
        ...

    async def forget(self, session_id: str) -> None:
        """Drop the session's placeholders (the session was deleted)."""
        ...

    async def aclose(self) -> None: ...


class MemoryMaskStore:
    """One replica's mappings; expired ones are swept on use, like the memory session store."""

    def __init__(
        self, ttl_seconds: int, clock: Callable[[], float] = time.monotonic, sweep_every: int = 256
    ) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._sweep_every = sweep_every
        self._calls = 0
        self._maps: dict[str, tuple[dict[str, str], float]] = {}

    def __len__(self) -> int:
        return len(self._maps)

    def _sweep(self) -> None:
        self._calls += 1
        if self._calls % self._sweep_every:
            return
        now = self._clock()
        for sid in [s for s, (_, deadline) in self._maps.items() if deadline <= now]:
            del self._maps[sid]

    async def load(self, session_id: str) -> dict[str, str]:
        self._sweep()
        entry = self._maps.get(session_id)
        if entry is None or entry[1] <= self._clock():
            return {}
        self._maps[session_id] = (entry[0], self._clock() + self._ttl)
        return dict(entry[0])

    async def add(self, session_id: str, entries: Mapping[str, str]) -> None:
        entry = self._maps.get(session_id)
        stored = entry[0] if entry is not None and entry[1] > self._clock() else {}
        stored.update(entries)
        self._maps[session_id] = (stored, self._clock() + self._ttl)

    async def forget(self, session_id: str) -> None:
        self._maps.pop(session_id, None)

    async def aclose(self) -> None:
        self._maps.clear()


class RedisMaskStore:
    """Over the session store's own client: same Redis, same prefix, same outage answers."""

    def __init__(
        self, redis: aioredis.Redis, ttl_seconds: int, prefix: str = DEFAULT_PREFIX
    ) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._prefix = prefix

    async def load(self, session_id: str) -> dict[str, str]:
        stored: dict[str, str] = await redis_client.call(
            self._redis.hgetall(mask_key(self._prefix, session_id)),  # type: ignore[arg-type]
            "masking store",
        )
        return stored

    async def add(self, session_id: str, entries: Mapping[str, str]) -> None:
        if not entries:
            return
        key = mask_key(self._prefix, session_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping=dict(entries))  # type: ignore[arg-type]
        pipe.expire(key, self._ttl)
        await redis_client.call(pipe.execute(), "masking store")

    async def forget(self, session_id: str) -> None:
        """Nothing to do: ``RedisSessionStore.delete`` removed the hash in the same step as
        the session (a second round trip could fail after the session was already gone)."""
        return None

    async def aclose(self) -> None:
        return None  # the session store closes the client it lent
