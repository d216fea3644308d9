"""Native sessions: the CLI's transcript mirrored into Redis (the SDK's SessionStore) and
resumed by a new CLI on another replica, which then receives only the new message."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from claude_agent_sdk.types import SessionKey, SessionStoreEntry

from llmhub_gateway.providers.base import Usage
from llmhub_gateway.providers.claude import ClaudePoolLimits, ClaudeProvider
from llmhub_gateway.providers.claude_items import parse_handle
from llmhub_gateway.providers.claude_store import ClaudeTranscriptStore
from llmhub_gateway.redis_client import connect
from tests.gateway.conftest import RedisServer
from tests.gateway.providers.conftest import chat, claude_provider, collect_all
from tests.gateway.providers.test_claude_pool import Fake, follow_up, turn


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    return Fake(tmp_path, monkeypatch)


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def two_replicas(
    tmp_path: Path, redis: aioredis.Redis
) -> AsyncIterator[tuple[ClaudeProvider, ClaudeProvider]]:
    """Two adapters (as on two replicas) sharing one Redis session store."""
    prefix = f"t{uuid.uuid4().hex}:"
    made = []
    for name in ("a", "b"):
        store = ClaudeTranscriptStore(redis, prefix=prefix, ttl_s=60, single_project="llmhub")
        limits = ClaudePoolLimits(idle=0)
        made.append(claude_provider(tmp_path / name, pool=limits, session_store=store))
    yield made[0], made[1]
    for provider in made:
        await provider.aclose()


async def test_another_replica_resumes_the_session_natively(
    two_replicas: tuple[ClaudeProvider, ClaudeProvider], fake: Fake
) -> None:
    a, b = two_replicas
    first, native = await turn(a, chat("my name is Ada"))
    assert native is not None
    items_text, again = await turn(
        b, follow_up("what is my name?", native, "my name is Ada", first)
    )
    assert items_text.endswith("] what is my name?")
    assert again is not None  # the resumed CLI kept the session id
    session = parse_handle(native)[0]
    assert parse_handle(again)[0] == session
    one, two = fake.turns()
    assert one["pid"] != two["pid"]
    # B's CLI started with --resume, found the transcript the SDK materialized from Redis
    # (A's turn: 2 entries) and received only the new message.
    assert two == {
        "pid": two["pid"],
        "session": session,
        "prompt": "what is my name?",
        "resumed": 2,
        "resumed_text": f"my name is Ada\n{first}",
        "system": "",  # the SDK passes an empty --system-prompt
    }
    assert f"--resume={session}" in fake.spawns()[1]["argv"]


async def test_a_stale_cli_is_not_reused_after_turns_ran_elsewhere(
    two_replicas: tuple[ClaudeProvider, ClaudeProvider], fake: Fake
) -> None:
    a, b = two_replicas
    history: list[str] = []
    native: str | None = None
    for provider, prompt in ((a, "one"), (b, "two"), (a, "three")):
        text, reported = await turn(provider, follow_up(prompt, native, *history))
        native = reported or native
        history += [prompt, text]
    turns = fake.turns()
    # A's first CLI held only turn one: turn three resumed from the store (4 entries) instead.
    assert [t["resumed"] for t in turns] == [0, 2, 4]
    assert [t["prompt"] for t in turns] == ["one", "two", "three"]
    assert len({t["pid"] for t in turns}) == 3


async def test_usage_counts_only_the_new_message_when_resumed(
    two_replicas: tuple[ClaudeProvider, ClaudeProvider], fake: Fake
) -> None:
    a, b = two_replicas
    first, native = await turn(a, chat("a fairly long opening message of nine words"))
    items = await collect_all(
        b, follow_up("short one", native, "a fairly long opening message of nine words", first)
    )
    assert next(i for i in items if isinstance(i, Usage)).tokens_in == 2


async def test_an_unknown_native_id_falls_back_to_replaying_the_history(
    two_replicas: tuple[ClaudeProvider, ClaudeProvider], fake: Fake
) -> None:
    _, b = two_replicas
    missing = str(uuid.uuid4())
    text, native = await turn(b, follow_up("and now?", missing, "earlier", "answer"))
    assert "User: earlier" in text  # replayed
    assert native is not None  # a new CLI session to store instead
    assert native != missing
    assert not any(arg.startswith("--resume") for arg in fake.spawns()[0]["argv"])


async def test_a_failed_resume_falls_back_to_replay(
    two_replicas: tuple[ClaudeProvider, ClaudeProvider],
    fake: Fake,
    redis: aioredis.Redis,
) -> None:
    a, b = two_replicas
    first, native = await turn(a, chat("hello"))
    assert native is not None
    # The stored transcript is there but unusable: the SDK cannot materialize it.
    keys = [k for k in await redis.keys("*") if k.endswith(f":{parse_handle(native)[0]}")]
    assert keys
    await redis.rpush(keys[0], "not json")
    text, _ = await turn(b, follow_up("next", native, "hello", first))
    assert text.endswith("next")
    assert "User: hello" in text
    assert [t["resumed"] for t in fake.turns()] == [0, 0]


class LosingStore(ClaudeTranscriptStore):
    """Mirrors the first batch of each session, then loses every later one (a Redis blip)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: set[str] = set()

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        if key["session_id"] in self.seen:
            raise RuntimeError("redis went away")
        self.seen.add(key["session_id"])
        await super().append(key, entries)


async def test_a_transcript_the_store_lost_lines_of_is_replayed_elsewhere(
    tmp_path: Path, redis: aioredis.Redis, fake: Fake
) -> None:
    prefix = f"t{uuid.uuid4().hex}:"
    a = claude_provider(
        tmp_path / "a",
        pool=ClaudePoolLimits(idle=0),
        session_store=LosingStore(redis, prefix=prefix, ttl_s=60, single_project="llmhub"),
    )
    b = claude_provider(
        tmp_path / "b",
        pool=ClaudePoolLimits(idle=0),
        session_store=ClaudeTranscriptStore(
            redis, prefix=prefix, ttl_s=60, single_project="llmhub"
        ),
    )
    try:
        one, native = await turn(a, chat("one"))
        two, _ = await turn(a, follow_up("two", native, "one", one))  # its mirror is lost
        three, _ = await turn(b, follow_up("three", native, "one", one, "two", two))
        # A's CLI still has the whole conversation; the store lacks turn two, so B replays.
        assert [t["resumed"] for t in fake.turns()] == [0, 0, 0]
        assert "User: two" in three
        assert three.endswith("three")
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_conversation_on_a_reset_cli_resumes_elsewhere_without_the_old_one(
    two_replicas: tuple[ClaudeProvider, ClaudeProvider], fake: Fake
) -> None:
    """After ``/clear`` the CLI's new session is mirrored under its new id: another replica
    resumes it natively, and its transcript holds nothing of the conversation before."""
    a, b = two_replicas
    await turn(a, chat("my locker code is 4711"))
    first, native = await turn(a, chat("my name is Bo"))  # a new conversation: A's CLI, reset
    assert native is not None
    _, again = await turn(b, follow_up("what is my name?", native, "my name is Bo", first))
    assert again is not None
    one, two, three = fake.turns()
    assert one["pid"] == two["pid"] != three["pid"]
    assert two["session"] != one["session"]
    assert three["session"] == two["session"] == parse_handle(native)[0]
    assert three["resumed_text"] == f"my name is Bo\n{first}"
    assert "4711" not in three["resumed_text"]
