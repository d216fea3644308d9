"""Placeholders live where the session lives: Redis (with its TTL, deleted with it, at most 200
bytes a mapping by MEMORY USAGE) or this process's memory (same TTL, forgotten on delete)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from llmhub_gateway.masking.store import MaskStore, MemoryMaskStore, RedisMaskStore
from llmhub_gateway.sessions.base import CommitOutcome, TurnRecord
from llmhub_gateway.sessions.redis import RedisSessionStore, mask_key
from tests.gateway.conftest import RedisServer

TTL = 60


@pytest.fixture
async def sessions(redis_server: RedisServer) -> AsyncIterator[RedisSessionStore]:
    store = RedisSessionStore(redis_server.url, TTL, prefix=f"t{uuid.uuid4().hex[:8]}:")
    yield store
    await store.aclose()


@pytest.fixture(params=["memory", "redis"])
def masks(request: pytest.FixtureRequest, sessions: RedisSessionStore) -> MaskStore:
    if request.param == "redis":
        return RedisMaskStore(sessions.redis, TTL, sessions.prefix)
    return MemoryMaskStore(TTL)


async def test_add_and_load(masks: MaskStore) -> None:
    sid = str(uuid.uuid4())
    assert await masks.load(sid) == {}
    await masks.add(sid, {"[PRIVATE_IP_1]": "10.0.0.1"})
    await masks.add(sid, {"[EMAIL_1]": "a@b.example"})
    assert await masks.load(sid) == {"[PRIVATE_IP_1]": "10.0.0.1", "[EMAIL_1]": "a@b.example"}
    assert await masks.load(str(uuid.uuid4())) == {}


async def test_memory_mappings_go_with_the_session() -> None:
    masks = MemoryMaskStore(TTL)
    await masks.add("s", {"[PRIVATE_IP_1]": "10.0.0.1"})
    await masks.forget("s")  # the session was deleted
    assert await masks.load("s") == {}


async def test_memory_mappings_expire_with_the_session_ttl() -> None:
    now = [0.0]
    masks = MemoryMaskStore(TTL, clock=lambda: now[0], sweep_every=1)
    await masks.add("s", {"[PRIVATE_IP_1]": "10.0.0.1"})
    now[0] = TTL - 1
    assert await masks.load("s")  # a turn refreshes it...
    now[0] = 2 * TTL - 2
    assert await masks.load("s")
    now[0] = 3 * TTL
    assert await masks.load("s") == {}  # ...and it goes when nobody used it for a TTL
    assert len(masks) == 0


async def test_redis_mapping_has_the_session_ttl_and_goes_with_the_session(
    sessions: RedisSessionStore,
) -> None:
    masks = RedisMaskStore(sessions.redis, TTL, sessions.prefix)
    sid = str(uuid.uuid4())
    assert await sessions.create(sid, "claude", "m", "alice")
    await masks.add(sid, {"[PRIVATE_IP_1]": "10.0.0.1"})
    key = mask_key(sessions.prefix, sid)
    await sessions.redis.expire(key, 5)
    await sessions.get(sid)  # reading the session keeps its placeholders alive as long
    assert TTL - 5 <= await sessions.redis.ttl(key) <= TTL
    assert await sessions.delete(sid)
    assert await sessions.redis.exists(key) == 0
    assert await masks.load(sid) == {}


async def test_redis_commit_keeps_the_placeholders_as_long_as_the_session(
    sessions: RedisSessionStore,
) -> None:
    """A turn loads the table at its start and commits at its end: the commit renews both, so
    the table never expires before the session (a turn's length earlier), which would renumber
    values the provider's native context knows under their old placeholders."""
    masks = RedisMaskStore(sessions.redis, TTL, sessions.prefix)
    sid = str(uuid.uuid4())
    assert await sessions.create(sid, "claude", "m", "alice")
    await masks.add(sid, {"[PRIVATE_IP_1]": "10.0.0.1"})
    key = mask_key(sessions.prefix, sid)
    assert await sessions.lock(sid, "token", 10_000)
    await sessions.redis.expire(key, 5)  # a long turn: the table aged while it ran
    turn = TurnRecord("t1", "[PRIVATE_IP_1] up?", "yes", "m", 1, "fp")
    assert await sessions.commit(sid, "token", turn) == CommitOutcome.STORED
    assert TTL - 5 <= await sessions.redis.ttl(key) <= TTL


async def test_a_mapping_costs_at_most_200_bytes_in_redis(sessions: RedisSessionStore) -> None:
    masks = RedisMaskStore(sessions.redis, TTL, sessions.prefix)
    sid = str(uuid.uuid4())
    count = 1000
    entries = {
        f"[PRIVATE_IP_{n}]": f"10.{n // 65536}.{n // 256 % 256}.{n % 256}" for n in range(count)
    }
    entries.update({f"[AWS_EC2_{n}]": f"i-{n:017x}" for n in range(count)})
    await masks.add(sid, entries)
    client: aioredis.Redis = sessions.redis
    used = await client.memory_usage(mask_key(sessions.prefix, sid), samples=0)
    assert used is not None
    assert used / len(entries) <= 200, used / len(entries)
