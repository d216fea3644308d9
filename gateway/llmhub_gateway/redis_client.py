"""One way to talk to Redis for every store of the gateway (sessions, limits and usage)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from llmhub_gateway.errors import StoreUnavailable

T = TypeVar("T")


def connect(url: str, *, socket_timeout: float = 2.0) -> aioredis.Redis:
    """Short timeouts (an outage answers 503 fast) and no silent resends: a command whose
    reply was lost may have run, so every script is written to be safe to run twice and the
    callers retry themselves."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=1.0,
        socket_timeout=socket_timeout,
        health_check_interval=10,
        retry=Retry(NoBackoff(), 0),
    )


async def call(awaitable: Awaitable[T], what: str) -> T:
    """Await a Redis command; an outage becomes StoreUnavailable naming ``what``, no URL
    (REDIS_URL may carry a password)."""
    try:
        return await awaitable
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"{what} (Redis) is unreachable") from exc
