"""Claude under hostile callers, through the real claude-agent-sdk and the fake CLI: a burst of
new sessions above the pool's size is answered or refused before any byte of stream; a turn
whose commit failed, or that the client cut off, is never resumed (the next turn, on this
replica or another, replays the committed history); readiness never blocks the event loop,
even on a CLI whose ``--version`` hangs."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmhub_gateway.chat import ChatService
from llmhub_gateway.core.config import Settings
from llmhub_gateway.errors import StoreUnavailable
from llmhub_gateway.metrics import Metrics
from llmhub_gateway.providers.claude import ClaudePoolLimits, ClaudeProvider
from llmhub_gateway.providers.claude_items import parse_handle
from llmhub_gateway.providers.claude_store import ClaudeTranscriptStore
from llmhub_gateway.providers.limits import CappedProvider
from llmhub_gateway.redis_client import connect
from llmhub_gateway.registry import Registry
from llmhub_gateway.sessions.base import CommitOutcome, TurnRecord
from llmhub_gateway.sessions.redis import RedisSessionStore
from tests.gateway.conftest import RedisServer, ThreadedGateway, wait_until
from tests.gateway.providers.conftest import claude_provider


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.fixture
def turns_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "turns.jsonl"
    monkeypatch.setenv("FAKE_CLI_TURNS_FILE", str(path))
    return path


# -- admission ------------------------------------------------------------------------------


@pytest.fixture
def small_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedGateway]:
    """A pool of two CLIs behind a per-pod cap that would let eight turns through."""
    monkeypatch.setenv("FAKE_CLI_REPLY_S", "1.5")  # every turn of the burst overlaps
    provider = claude_provider(tmp_path, pool=ClaudePoolLimits(idle=0, max_processes=2))
    capped = CappedProvider(provider, max_concurrency=8, timeout_s=30)
    with ThreadedGateway(Settings(), [capped]) as gw:
        yield gw


def _stream(gw: ThreadedGateway, prompt: str) -> tuple[int, dict[str, str], str]:
    body = {"provider": "claude", "prompt": prompt, "stream": True}
    with httpx.stream("POST", f"{gw.url}/v1/chat", json=body, timeout=60) as answer:
        return answer.status_code, dict(answer.headers), answer.read().decode()


def test_a_burst_of_new_sessions_is_answered_or_refused_before_the_stream(
    small_pool: ThreadedGateway,
) -> None:
    answers: list[tuple[int, dict[str, str], str]] = []
    barrier = threading.Barrier(6)

    def one(n: int) -> None:
        barrier.wait()
        answers.append(_stream(small_pool, f"burst {n}"))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 6
    ok = [a for a in answers if a[0] == 200]
    refused = [a for a in answers if a[0] != 200]
    assert len(ok) >= 2  # both CLIs served
    assert refused  # and the rest were turned away...
    for status, headers, body in refused:  # ...with a status, before any stream
        assert status == 429
        assert headers["retry-after"]
        assert headers["content-type"] == "application/json"
        assert "event:" not in body
    for _, _, body in ok:  # every 200 carries a full answer, never an in-band refusal
        assert "event: done" in body
        assert "event: error" not in body
        assert "provider_busy" not in body


# -- uncommitted turns ----------------------------------------------------------------------


class CommitDroppingStore(RedisSessionStore):
    """The gateway's session store, whose commit of a turn marked PHANTOM never answers (the
    client gets 503): the turn ran on the CLI and was mirrored, but is not in the history."""

    async def commit(self, session_id: str, token: str, turn: TurnRecord) -> CommitOutcome:
        if "PHANTOM" in turn.prompt:
            raise StoreUnavailable("the session store did not answer")
        return await super().commit(session_id, token, turn)


@pytest.fixture
async def replicas(
    tmp_path: Path, redis_server: RedisServer, turns_file: Path
) -> AsyncIterator[tuple[ChatService, ChatService]]:
    """Two replicas (a ChatService and a warm Claude adapter each) on one real Redis."""
    prefix = f"t{uuid.uuid4().hex}:"
    redis = connect(redis_server.url)
    made: list[ClaudeProvider] = []
    services = []
    for name in ("a", "b"):
        transcripts = ClaudeTranscriptStore(
            redis, prefix=f"{prefix}claude:", ttl_s=60, single_project="llmhub"
        )
        provider = claude_provider(
            tmp_path / name, pool=ClaudePoolLimits(idle=0), session_store=transcripts
        )
        made.append(provider)
        store = CommitDroppingStore(redis_server.url, 60, prefix=prefix)
        services.append(ChatService(Registry([provider], Settings()), store, Metrics()))
    yield services[0], services[1]
    for provider in made:
        await provider.aclose()
    for service in services:
        await service.store.aclose()
    await redis.aclose()


async def _turn(service: ChatService, prompt: str, session: str | None = None) -> str:
    chat = await service.prepare(provider="claude", prompt=prompt, session_id=session)
    return (await service.complete(chat)).session_id


async def test_a_turn_whose_commit_failed_is_never_resumed(
    replicas: tuple[ChatService, ChatService], turns_file: Path
) -> None:
    a, b = replicas
    session = await _turn(a, "my name is Ada")
    with pytest.raises(StoreUnavailable):
        await _turn(a, "PHANTOM one: call me Bob", session)
    # The same replica: its CLI holds the phantom turn, and so does the stored transcript.
    await _turn(a, "what is my name?", session)
    same = _lines(turns_file)[-1]
    assert same["resumed"] == 0  # no resume: the committed history was replayed
    assert "my name is Ada" in same["prompt"]
    assert "PHANTOM" not in same["prompt"]
    # A committed turn after a replay resumes natively again, on the other replica.
    await _turn(b, "and my age?", session)
    native = _lines(turns_file)[-1]
    assert native["resumed"] > 0
    assert native["prompt"] == "and my age?"
    # Another phantom turn, then the other replica.
    with pytest.raises(StoreUnavailable):
        await _turn(b, "PHANTOM two: call me Eve", session)
    await _turn(a, "who am I?", session)
    other = _lines(turns_file)[-1]
    assert other["resumed"] == 0
    assert "my name is Ada" in other["prompt"]
    assert "and my age?" in other["prompt"]
    assert "PHANTOM" not in other["prompt"]
    listed = await a.store.get(session)
    assert listed is not None
    assert [t.text for t in listed.turns][::2] == [
        "my name is Ada",
        "what is my name?",
        "and my age?",
        "who am I?",
    ]


async def test_a_cancelled_turn_never_reaches_a_later_one(
    replicas: tuple[ChatService, ChatService],
    turns_file: Path,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = replicas
    a.max_prompt_bytes = b.max_prompt_bytes = 2 * 1024 * 1024
    mode = tmp_path / "mode"
    monkeypatch.setenv("FAKE_CLI_MODE_FILE", str(mode))
    monkeypatch.setenv("FAKE_CLI_DELAY", "2")
    session = await _turn(a, "my name is Ada")
    stored = await a.store.get(session)
    assert stored is not None
    assert stored.native is not None
    cli_session = parse_handle(stored.native)[0]
    mode.write_text("slow")
    # Over the SDK's 1 MiB batch: the turn's user message is mirrored into Redis at once.
    cancelled = "CANCELLED: call me Bob " + "pad " * 300_000
    chat = await a.prepare(provider="claude", prompt=cancelled, session_id=session)
    redis = connect(redis_server.url)
    try:
        async with aclosing(a.run(chat)) as events:
            async for item in events:
                if isinstance(item, str):
                    break  # the client hangs up mid-answer
        keys = [k for k in await redis.keys(f"*:t:llmhub:{cli_session}")]
        (key,) = keys
        assert any("CANCELLED" in line for line in await redis.lrange(key, 0, -1))
    finally:
        await redis.aclose()
    mode.write_text("ok")
    await _turn(b, "what is my name?", session)
    later = _lines(turns_file)[-1]
    assert "CANCELLED" not in later["prompt"]
    assert "CANCELLED" not in later["resumed_text"]
    assert "my name is Ada" in later["prompt"] + later["resumed_text"]


# -- readiness ------------------------------------------------------------------------------


@pytest.fixture
def slow_version(tmp_path: Path) -> Iterator[tuple[ThreadedGateway, Path]]:
    """A Claude CLI whose ``--version`` takes 3 s (it marks when it starts)."""
    started = tmp_path / "version-started"
    cli = tmp_path / "slow-claude"
    cli.write_text(f"#!/bin/sh\ntouch {started}\nsleep 3\necho '2.1.330 (Claude Code)'\n")
    cli.chmod(0o755)
    provider = claude_provider(tmp_path, cli_path=str(cli))
    with ThreadedGateway(Settings(), [provider]) as gw:
        yield gw, started


def test_liveness_answers_at_once_while_the_cli_check_runs(
    slow_version: tuple[ThreadedGateway, Path],
) -> None:
    gw, started = slow_version
    wait_until(started.exists, timeout=10, what="the CLI check")
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        client.get("/health/live")  # the connection is open: time only the request
        ready = client.get("/health/ready")  # waits a little (off the loop), then answers
        assert ready.status_code == 503
        assert "still running" in ready.text
        checking = started.stat().st_mtime + 3
        took: list[float] = []
        while time.time() < checking - 0.5:
            began = time.monotonic()
            assert client.get("/health/live").status_code == 200
            took.append(time.monotonic() - began)
        # A loop blocked by the check would hold the first probe until the check ends: one
        # slow probe and no others. (The median: one outlier on a loaded machine is not it.)
        assert len(took) >= 5
        assert sorted(took)[len(took) // 2] < 0.1
        wait_until(
            lambda: client.get("/health/ready").status_code == 200,
            timeout=15,
            what="ready once the check finished",
        )
