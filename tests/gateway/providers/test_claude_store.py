"""The Redis SessionStore adapter against claude-agent-sdk's own conformance suite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from claude_agent_sdk.testing import run_session_store_conformance
from claude_agent_sdk.types import SessionKey

from llmhub_gateway.providers.claude_store import ClaudeTranscriptStore
from llmhub_gateway.redis_client import connect
from tests.gateway.conftest import RedisServer


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_server.url)
    yield client
    await client.aclose()


async def test_the_sdks_conformance_suite_passes(redis: aioredis.Redis) -> None:
    made: list[ClaudeTranscriptStore] = []

    def make() -> ClaudeTranscriptStore:
        made.append(ClaudeTranscriptStore(redis, prefix=f"t{uuid.uuid4().hex}:", ttl_s=60))
        return made[-1]

    await run_session_store_conformance(make)
    assert len(made) == 15  # a probe, then a fresh store per contract: all 14 ran (none skipped)


async def test_appends_are_idempotent_per_uuid_and_expire(redis: aioredis.Redis) -> None:
    prefix = f"t{uuid.uuid4().hex}:"
    store = ClaudeTranscriptStore(redis, prefix=prefix, ttl_s=30)
    key: SessionKey = {"project_key": "p", "session_id": "s"}
    await store.append(key, [{"type": "user", "uuid": "a"}, {"type": "mode"}])
    await store.append(key, [{"type": "user", "uuid": "a"}, {"type": "x", "uuid": "b"}])
    assert await store.load(key) == [
        {"type": "user", "uuid": "a"},
        {"type": "mode"},
        {"type": "x", "uuid": "b"},
    ]
    ttls = [await redis.ttl(k) for k in await redis.keys(f"{prefix}*")]
    assert ttls
    assert all(0 < ttl <= 30 for ttl in ttls)


async def test_a_single_project_store_finds_a_session_from_any_working_directory(
    redis: aioredis.Redis,
) -> None:
    store = ClaudeTranscriptStore(
        redis, prefix=f"t{uuid.uuid4().hex}:", ttl_s=30, single_project="llmhub"
    )
    await store.append({"project_key": "-tmp-a", "session_id": "s"}, [{"type": "u"}])
    assert await store.load({"project_key": "-tmp-b", "session_id": "s"}) == [{"type": "u"}]
    assert await store.exists("s")
    assert not await store.exists("other")
