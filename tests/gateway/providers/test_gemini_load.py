"""Gemini sessions continued natively elsewhere: two GeminiProvider instances (two replicas)
on one real Redis, each with its own warm fake_gemini --acp processes. The fake
records chats like the 0.61 CLI and refuses ``session/load`` of a chat it cannot find."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llmhub_gateway.core.config import Settings
from llmhub_gateway.providers.base import ChatRequest, NativeSession, Turn, Usage
from llmhub_gateway.providers.gemini import GeminiProvider
from llmhub_gateway.providers.gemini_acp import PoolLimits
from llmhub_gateway.providers.gemini_recordings import (
    Recording,
    RecordingStore,
    chats_dir,
    history_answers,
)
from llmhub_gateway.redis_client import connect
from llmhub_gateway.registry import gemini_recordings
from tests.fakes.fake_gemini import words
from tests.gateway.conftest import RedisServer, free_port
from tests.gateway.providers.conftest import collect_all, make_gemini

MODEL = "gemini-2.5-pro"


def store(redis_server: RedisServer, prefix: str = "", **kw: int) -> RecordingStore:
    """One replica's store (its own client); a fresh key prefix unless given."""
    return RecordingStore(
        connect(redis_server.url),
        prefix=prefix or f"llmhub:gemini:{uuid.uuid4().hex[:8]}:",
        ttl_s=600,
        owns_client=True,
        **kw,
    )


def replica(tmp_path: Path, creds: Path, name: str, recordings: RecordingStore) -> GeminiProvider:
    limits = PoolLimits(max_processes=1, sessions_per_process=2, shutdown_grace_s=3.0)
    return make_gemini(tmp_path / name, creds, "acp", limits=limits, recordings=recordings)


@pytest.fixture
async def pair(
    tmp_path: Path, gemini_creds: Path, redis_server: RedisServer
) -> AsyncIterator[tuple[GeminiProvider, GeminiProvider]]:
    prefix = f"llmhub:gemini:{uuid.uuid4().hex[:8]}:"
    a = replica(tmp_path, gemini_creds, "a", store(redis_server, prefix))
    b = replica(tmp_path, gemini_creds, "b", store(redis_server, prefix))
    yield a, b
    await b.aclose()
    await a.aclose()


def ask(prompt: str, native: str | None, history: list[Turn]) -> ChatRequest:
    return ChatRequest(
        prompt=prompt, model="", session_id="s-1", history=tuple(history), native_session=native
    )


async def converse(
    provider: GeminiProvider, prompt: str, native: str | None, history: list[Turn]
) -> tuple[str, str, int]:
    """One turn: the answer, the native id (new or unchanged) and the tokens the CLI got."""
    items = await collect_all(provider, ask(prompt, native, history))
    text = "".join(i for i in items if isinstance(i, str))
    ids = [i.id for i in items if isinstance(i, NativeSession)]
    usage = [i for i in items if isinstance(i, Usage)]
    assert len(usage) == 1, items
    history += [Turn("user", prompt), Turn("assistant", text)]
    return text, ids[-1] if ids else (native or ""), usage[0].tokens_in


async def test_a_session_continues_on_another_replica_with_only_the_new_message(
    pair: tuple[GeminiProvider, GeminiProvider],
) -> None:
    a, b = pair
    history: list[Turn] = []
    _, native, _ = await converse(a, "my name is Ada", None, history)
    _, again, _ = await converse(a, "I like tea", native, history)
    assert again == native
    answer, moved, sent = await converse(b, "what is my name?", native, history)
    # B's CLI loaded A's recording (two turns in it), got only the new message, and none of
    # the history it streamed back on load reached the answer.
    assert answer == f"[fake-gemini model={MODEL} acp=yes turn=3] what is my name?"
    assert sent == words("what is my name?")
    assert moved == native
    # Loaded means held: B's next turn continues in the same process without another load.
    assert b.pool is not None
    assert [native in p.sessions for p in b.pool.processes] == [True]
    answer, _, sent = await converse(b, "and now?", native, history)
    assert answer == f"[fake-gemini model={MODEL} acp=yes turn=4] and now?"
    assert sent == words("and now?")
    # And back on A, whose own session lacks B's turns: it loads B's newer recording.
    answer, _, sent = await converse(a, "back", native, history)
    assert answer == f"[fake-gemini model={MODEL} acp=yes turn=5] back"
    assert sent == 1
    pool_b = b.pool
    assert pool_b is not None
    assert pool_b.spawned == 1


async def test_a_recording_behind_the_conversation_is_not_loaded(
    pair: tuple[GeminiProvider, GeminiProvider],
) -> None:
    """A turn whose recording was not kept (a Redis blip) leaves the stored copy one turn
    behind the gateway's turn log: loading it would lose that turn, so B replays."""
    a, b = pair
    history: list[Turn] = []
    _, native, _ = await converse(a, "my name is Ada", None, history)
    history += [Turn("user", "I moved to Paris"), Turn("assistant", "noted")]
    answer, moved, sent = await converse(b, "where do I live?", native, history)
    assert "acp=yes turn=1]" in answer
    assert "User: I moved to Paris" in answer
    assert sent > words("where do I live?")
    assert moved != native  # a new native session, stored by the next commit


async def test_a_missing_or_refused_recording_falls_back_to_replay(
    pair: tuple[GeminiProvider, GeminiProvider],
) -> None:
    a, b = pair
    history: list[Turn] = []
    _, native, _ = await converse(a, "my name is Ada", None, history)
    shared = a.pool.recordings if a.pool is not None else None
    assert shared is not None
    kept = await shared.load(native)
    assert kept is not None
    assert kept.history_len == 2
    assert f'"sessionId": "{native}"' in kept.data.splitlines()[0]
    # A recording of another session under this id: the CLI cannot find the session in it
    # and refuses the load (0.61's -32603); the turn is replayed instead.
    other = kept.data.replace(native, str(uuid.uuid4()))
    await shared.save(native, Recording(kept.name, other, kept.history_len))
    answer, _, _ = await converse(b, "name?", native, list(history))
    assert "acp=yes turn=1]" in answer
    assert "User: my name is Ada" in answer
    # No recording at all: replayed too.
    answer, _, _ = await converse(b, "name?", "never-recorded", list(history))
    assert "acp=yes turn=1]" in answer
    assert "User: my name is Ada" in answer


async def test_a_recording_over_the_size_limit_is_not_kept(
    tmp_path: Path, gemini_creds: Path, redis_server: RedisServer
) -> None:
    small = store(redis_server, max_bytes=200)
    a = replica(tmp_path, gemini_creds, "a", small)
    try:
        history: list[Turn] = []
        _, native, _ = await converse(a, "my name is Ada", None, history)
        assert await small.load(native) is None
        # A still holds it and continues natively.
        answer, _, sent = await converse(a, "name?", native, history)
        assert answer.endswith("turn=2] name?")
        assert sent == 1
    finally:
        await a.aclose()


async def test_the_recording_is_where_the_cli_writes_it(
    pair: tuple[GeminiProvider, GeminiProvider],
) -> None:
    """The pool registers every process's cwd under one slug, so the CLI records there."""
    a, _ = pair
    _, native, _ = await converse(a, "hello", None, [])
    pool = a.pool
    assert pool is not None
    (proc,) = pool.processes
    files = list(chats_dir(proc.home).glob(f"session-*-{native[:8]}.jsonl"))
    assert len(files) == 1
    meta = json.loads(files[0].read_text().splitlines()[0])
    assert meta["sessionId"] == native


def test_history_answers_counts_what_session_load_streams() -> None:
    lines = [
        {"sessionId": "s", "projectHash": "h"},
        {"id": "1", "type": "user", "content": [{"text": "hi"}]},
        {"id": "2", "type": "gemini", "content": "hello"},
        {"id": "3", "type": "gemini", "content": [{"functionCall": {"name": "ls"}}]},
        {"id": "4", "type": "gemini", "content": "   "},
        {"id": "2", "type": "gemini", "content": "hello again"},  # same id: replaced
        {"$set": {"lastUpdated": "x"}},
    ]
    data = "\n".join(json.dumps(x) for x in lines)
    assert history_answers(data) == 2
    rewound = data + "\n" + json.dumps({"$rewindTo": "3"})
    assert history_answers(rewound) == 1


async def test_an_unreachable_recording_store_costs_a_replay_not_the_turn(
    tmp_path: Path, gemini_creds: Path
) -> None:
    down = RecordingStore(
        connect(f"redis://127.0.0.1:{free_port()}/0"),
        prefix="llmhub:gemini:",
        ttl_s=600,
        owns_client=True,
    )
    a = replica(tmp_path, gemini_creds, "a", down)
    try:
        history = [Turn("user", "my name is Ada"), Turn("assistant", "hello Ada")]
        answer, native, _ = await converse(a, "name?", "kept-elsewhere", history)
        assert "acp=yes turn=1]" in answer  # replayed
        assert "User: my name is Ada" in answer
        assert native != "kept-elsewhere"
    finally:
        await a.aclose()  # closes its store too


async def test_recordings_are_kept_on_the_gateways_redis_only(redis_server: RedisServer) -> None:
    """Without REDIS_URL (memory sessions) nothing is kept and every move replays, as before;
    with it, under llmhub:gemini: and expiring with the sessions."""
    assert gemini_recordings(Settings(redis_url=None)) is None
    kept = gemini_recordings(
        Settings(redis_url=redis_server.url, session_ttl_seconds=123)  # type: ignore[arg-type]
    )
    assert isinstance(kept, RecordingStore)
    session = str(uuid.uuid4())
    check = connect(redis_server.url)
    try:
        assert await kept.save(session, Recording("session-x.jsonl", "{}", 2))
        assert 113 < await check.ttl(f"llmhub:gemini:recording:{session}") <= 123
    finally:
        await check.aclose()
        await kept.aclose()
