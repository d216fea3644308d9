"""One atomic commit per turn, in both stores, and what a client sees when a turn cannot be
stored: the session was deleted, Redis was flushed or restarted, a reply was slow or lost.

Real redis-server; the faults between gateway and Redis come from a TCP proxy
(``faulty_proxy.py``) that delays or loses Redis replies.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis

from llmhub_gateway.core.config import Settings
from llmhub_gateway.sessions.base import CommitOutcome, SessionStore, TurnRecord
from llmhub_gateway.sessions.memory import MemorySessionStore
from llmhub_gateway.sessions.redis import RedisSessionStore
from tests.gateway.conftest import RedisServer, ThreadedGateway, wait_until
from tests.gateway.fake_provider import EchoProvider, GatedProvider
from tests.tcp_proxy import FaultyProxy

CLAUDE = "claude-sonnet-4-5-20250929"


def _record(turn_id: str, text: str = "answer") -> TurnRecord:
    return TurnRecord(turn_id, "question", text, "m-2", 12, "fp")


async def test_commit_outcomes_are_the_same_in_both_stores(store: SessionStore) -> None:
    sid = str(uuid.uuid4())
    assert await store.create(sid, "claude", "m-1") is True
    assert await store.create(sid, "gemini", "other") is False  # never overwritten
    assert await store.lock(sid, "a", 60_000)
    assert await store.commit(sid, "a", _record("t1")) is CommitOutcome.STORED
    assert await store.lock(sid, "b", 60_000)  # the commit released the lease
    # The same turn id again (a retried commit or request): nothing added, lease released.
    assert await store.commit(sid, "b", _record("t1", "other")) is CommitOutcome.ALREADY_STORED
    assert await store.lock(sid, "c", 60_000)
    # A commit without the lease writes nothing.
    assert await store.commit(sid, "not-c", _record("t2")) is CommitOutcome.LEASE_LOST
    session = await store.get(sid)
    assert session is not None
    assert (session.provider, session.model) == ("claude", "m-2")
    assert [(t.role, t.text) for t in session.turns] == [
        ("user", "question"),
        ("assistant", "answer"),
    ]
    stored = await store.recorded(sid, "t1")
    assert stored is not None
    assert (stored.text, stored.model, stored.duration_ms, stored.fingerprint) == (
        "answer",
        "m-2",
        12,
        "fp",
    )
    assert await store.recorded(sid, "t2") is None


async def test_a_session_deleted_during_a_turn_is_never_resurrected(store: SessionStore) -> None:
    sid = str(uuid.uuid4())
    await store.create(sid, "claude", "m")
    assert await store.lock(sid, "turn", 60_000)
    assert await store.delete(sid) is True
    assert await store.commit(sid, "turn", _record("t")) is CommitOutcome.SESSION_GONE
    assert await store.get(sid) is None
    assert await store.lock(sid, "next", 1000)  # the refused commit released the lease too


async def test_the_memory_store_sweeps_expired_sessions() -> None:
    now = [1000.0]
    store = MemorySessionStore(60, clock=lambda: now[0], sweep_every_s=10)
    for _ in range(50):
        await store.create(str(uuid.uuid4()), "claude", "m")
    await store.lock(str(uuid.uuid4()), "t", 1000)
    assert len(store) == 50
    now[0] += 61
    keep = str(uuid.uuid4())
    await store.create(keep, "claude", "m")  # any call sweeps once the interval is over
    assert len(store) == 1
    assert store._leases == {}
    assert await store.get(keep) is not None


# --- through HTTP -----------------------------------------------------------------------------


def _gated() -> list[EchoProvider]:
    return [GatedProvider("claude", CLAUDE), GatedProvider("gemini", "gemini-2.5-pro")]


def _claude(gw: ThreadedGateway) -> GatedProvider:
    provider = gw.providers["claude"]
    assert isinstance(provider, GatedProvider)
    return provider


def _post(
    gw: ThreadedGateway, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/chat", json={"provider": "claude", **body}, headers=headers, timeout=30
    )


@pytest.fixture(scope="module", params=["memory", "redis"])
def gw(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[ThreadedGateway]:
    redis_url = redis_server.url if request.param == "redis" else None
    with ThreadedGateway(Settings(redis_url=redis_url), _gated()) as gateway:  # type: ignore[arg-type]
        yield gateway


def _sse(response: httpx.Response) -> list[tuple[str, Any]]:
    events, name = [], "message"
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, json.loads(line.removeprefix("data: "))))
    return events


@pytest.mark.parametrize("stream", [False, True])
def test_delete_during_a_turn_refuses_its_commit(gw: ThreadedGateway, stream: bool) -> None:
    claude = _claude(gw)
    claude.arm()
    sid = _post(gw, prompt="first").json()["session_id"]
    with ThreadPoolExecutor(1) as pool:
        if stream:
            body = {"provider": "claude", "prompt": "!gate x", "session_id": sid, "stream": True}

            def run() -> Any:
                with httpx.stream("POST", f"{gw.url}/v1/chat", json=body, timeout=30) as r:
                    return _sse(r)

            turn = pool.submit(run)
        else:
            turn = pool.submit(_post, gw, prompt="!gate x", session_id=sid)
        wait_until(claude.started.is_set, what="the turn to reach the provider")
        assert httpx.delete(f"{gw.url}/v1/sessions/{sid}").status_code == 204
        claude.gate.set()
        answer = turn.result(timeout=30)
    if stream:
        name, data = answer[-1]
        assert name == "error"
        error = data["error"]
    else:
        assert answer.status_code == 404
        error = answer.json()["error"]
    assert error["type"] == "session_not_found"
    assert "deleted" in error["message"]
    assert httpx.get(f"{gw.url}/v1/sessions/{sid}").status_code == 404  # not a half record
    assert _post(gw, prompt="again", session_id=sid).status_code == 404


def test_an_idempotency_key_replays_the_stored_answer_without_a_provider_call(
    gw: ThreadedGateway,
) -> None:
    claude = _claude(gw)
    key = {"Idempotency-Key": f"first-{uuid.uuid4()}"}
    first = _post(gw, headers=key, prompt="hello once")
    calls = len(claude.requests)
    again = _post(gw, headers=key, prompt="hello once")  # the client's retry of a first turn
    assert again.status_code == 200
    assert again.json()["session_id"] == first.json()["session_id"]
    assert again.json()["text"] == first.json()["text"]
    sid = first.json()["session_id"]
    follow_key = {"Idempotency-Key": f"second-{uuid.uuid4()}"}
    second = _post(gw, headers=follow_key, prompt="and twice", session_id=sid)
    body = {"provider": "claude", "prompt": "and twice", "session_id": sid, "stream": True}
    with httpx.stream(
        "POST", f"{gw.url}/v1/chat", json=body, headers=follow_key, timeout=30
    ) as streamed:
        events = _sse(streamed)
    assert [name for name, _ in events] == ["session", "delta", "done"]
    assert events[-1][1]["text"] == second.json()["text"]
    assert len(claude.requests) == calls + 1  # only "and twice" ran, once
    turns = httpx.get(f"{gw.url}/v1/sessions/{sid}").json()["turns"]
    assert [t["text"] for t in turns if t["role"] == "user"] == ["hello once", "and twice"]
    reused = _post(gw, headers=follow_key, prompt="something else", session_id=sid)
    assert reused.status_code == 422
    assert reused.json()["error"]["type"] == "idempotency_key_reused"
    bad = _post(gw, headers={"Idempotency-Key": "has spaces"}, prompt="x")
    assert (bad.status_code, bad.json()["error"]["type"]) == (400, "bad_request")


# --- Redis faults -----------------------------------------------------------------------------


@pytest.fixture
def proxied(redis_server: RedisServer) -> Iterator[tuple[ThreadedGateway, FaultyProxy]]:
    """A gateway whose Redis traffic goes through a FaultyProxy, with a short socket timeout."""
    with FaultyProxy(redis_server.port) as proxy:
        settings = Settings(redis_url=proxy.url)  # type: ignore[arg-type]
        with ThreadedGateway(settings, _gated()) as gateway:
            gateway.app.state.chat.store = RedisSessionStore(proxy.url, 600, socket_timeout=0.5)
            yield gateway, proxy


def _lock_exists(redis_server: RedisServer, sid: str) -> bool:
    client = redis.Redis.from_url(redis_server.url)
    try:
        return bool(client.exists(f"llmhub:s:{{{sid}}}:lock"))
    finally:
        client.close()


def test_a_slow_reply_to_the_commit_still_answers_once_stored(
    proxied: tuple[ThreadedGateway, FaultyProxy], redis_server: RedisServer
) -> None:
    gw, proxy = proxied
    claude = _claude(gw)
    claude.arm()
    sid = _post(gw, prompt="first").json()["session_id"]
    with ThreadPoolExecutor(1) as pool:
        turn = pool.submit(_post, gw, prompt="!gate slow commit", session_id=sid)
        wait_until(claude.started.is_set, what="the turn to reach the provider")
        proxy.delay_next_reply(1.5)  # the commit's reply arrives after the socket timeout
        claude.gate.set()
        answer = turn.result(timeout=30)
    assert proxy.replies_delayed == 1
    assert answer.status_code == 200, answer.text
    turns = httpx.get(f"{gw.url}/v1/sessions/{sid}").json()["turns"]
    assert [t["text"] for t in turns if t["role"] == "user"] == ["first", "!gate slow commit"]
    assert not _lock_exists(redis_server, sid)  # released by the (first) commit


def test_a_lost_commit_reply_then_a_retry_with_the_same_key_gets_the_stored_answer(
    proxied: tuple[ThreadedGateway, FaultyProxy],
) -> None:
    gw, proxy = proxied
    claude = _claude(gw)
    claude.arm()
    sid = _post(gw, prompt="first").json()["session_id"]
    key = {"Idempotency-Key": str(uuid.uuid4())}
    with ThreadPoolExecutor(1) as pool:
        turn = pool.submit(_post, gw, key, prompt="!gate lost reply", session_id=sid)
        wait_until(claude.started.is_set, what="the turn to reach the provider")
        proxy.lose_replies_for(4.0)  # the commit runs in Redis, no reply comes back
        claude.gate.set()
        lost = turn.result(timeout=30)
    assert lost.status_code == 503
    assert lost.json()["error"]["type"] == "session_store_unavailable"
    assert lost.headers["retry-after"] == "5"
    calls = len(claude.requests)
    # Once replies come back, a new turn (the one provider call below) works again.
    wait_until(lambda: _post(gw, prompt="probe").status_code == 200, what="Redis replies back")
    retry = _post(gw, key, prompt="!gate lost reply", session_id=sid)
    assert retry.status_code == 200, retry.text
    assert "lost reply" in retry.json()["text"]
    assert len(claude.requests) == calls + 1  # the probe only: the retry ran no CLI
    turns = httpx.get(f"{gw.url}/v1/sessions/{sid}").json()["turns"]
    assert [t["text"] for t in turns if t["role"] == "user"] == ["first", "!gate lost reply"]


def _lease_gateway(redis_url: str, lease_s: float = 0.6) -> ThreadedGateway:
    gateway = ThreadedGateway(Settings(redis_url=redis_url), _gated())  # type: ignore[arg-type]
    gateway.app.state.chat.lease_s = lease_s
    return gateway


def _flushall(server: RedisServer) -> None:
    client = redis.Redis.from_url(server.url)
    client.flushall()
    client.close()


def _restart(server: RedisServer) -> None:
    server.stop()
    server.start()  # no persistence: everything is gone


@pytest.mark.parametrize("fault", [_flushall, _restart], ids=["flushall", "restart"])
def test_losing_redis_data_mid_turn_cancels_the_turn_and_leaves_no_broken_record(
    fault: Callable[[RedisServer], None],
) -> None:
    server = RedisServer()  # its own server: the fault must not hit the other tests' data
    server.start()
    try:
        with _lease_gateway(server.url) as gw:
            claude = _claude(gw)
            claude.arm()
            sid = _post(gw, prompt="first").json()["session_id"]
            with ThreadPoolExecutor(1) as pool:
                turn = pool.submit(_post, gw, prompt="!gate mid-turn", session_id=sid)
                wait_until(claude.started.is_set, what="the turn to reach the provider")
                fault(server)
                answer = turn.result(timeout=30)  # the gate never opened: cancelled
            assert claude.open_streams == 0
            assert answer.status_code == 409
            assert answer.json()["error"]["type"] == "session_lease_lost"
            assert answer.headers["retry-after"] == "2"
            assert httpx.get(f"{gw.url}/v1/sessions/{sid}").status_code == 404  # not 500
            assert _post(gw, prompt="next", session_id=sid).status_code == 404
            claude.gate.set()
    finally:
        server.stop()


def test_two_replicas_a_partitioned_turn_loses_its_lease_and_never_writes(
    redis_server: RedisServer,
) -> None:
    """Replica a is cut off from Redis for longer than the lease while its turn runs; replica
    b takes the session over. a's turn is cancelled and answered as such; the history holds
    b's turn only, never both interleaved."""
    with (
        FaultyProxy(redis_server.port) as proxy,
        _lease_gateway(proxy.url) as a,
        _lease_gateway(redis_server.url) as b,
    ):
        a.app.state.chat.store = RedisSessionStore(proxy.url, 600, socket_timeout=0.3)
        a_claude = _claude(a)
        a_claude.arm()
        sid = _post(a, prompt="first").json()["session_id"]
        with ThreadPoolExecutor(1) as pool:
            turn = pool.submit(_post, a, prompt="!gate on a", session_id=sid)
            wait_until(a_claude.started.is_set, what="a's turn to reach the provider")
            proxy.partition()
            wait_until(
                lambda: _post(b, prompt="on b", session_id=sid).status_code == 200,
                timeout=15,
                what="b to take the session over once a's lease expired",
            )
            lost = turn.result(timeout=30)  # still gated: cancelled by a's keeper
            proxy.partition(False)
        assert lost.status_code == 409
        assert lost.json()["error"]["type"] == "session_lease_lost"
        assert a_claude.open_streams == 0
        a_claude.gate.set()
        turns = httpx.get(f"{b.url}/v1/sessions/{sid}").json()["turns"]
        assert [t["text"] for t in turns if t["role"] == "user"] == ["first", "on b"]


def test_a_client_leaving_during_the_commit_does_not_cut_it_off(
    proxied: tuple[ThreadedGateway, FaultyProxy],
) -> None:
    gw, proxy = proxied
    gw.app.state.chat.store = RedisSessionStore(proxy.url, 600, socket_timeout=3.0)
    claude = _claude(gw)
    claude.arm()
    sid = _post(gw, prompt="first").json()["session_id"]
    key = str(uuid.uuid4())
    body = json.dumps({"provider": "claude", "prompt": "!gate leaving", "session_id": sid})
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    sock.sendall(
        (
            f"POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Idempotency-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        ).encode()
    )
    wait_until(claude.started.is_set, what="the turn to reach the provider")
    proxy.delay_next_reply(1.0)  # the commit is in Redis's hands, its reply is slow...
    claude.gate.set()
    time.sleep(0.3)
    sock.close()  # ...and the client leaves meanwhile
    calls = len(claude.requests)
    wait_until(
        lambda: (
            _post(gw, {"Idempotency-Key": key}, prompt="!gate leaving", session_id=sid).status_code
            == 200
        ),
        what="the retry to find the stored answer (409 while the commit finishes)",
    )
    assert len(claude.requests) == calls  # no second provider call
    turns = httpx.get(f"{gw.url}/v1/sessions/{sid}").json()["turns"]
    assert [t["text"] for t in turns if t["role"] == "user"] == ["first", "!gate leaving"]


async def test_native_session_id_is_kept_by_commits_in_both_stores(store: SessionStore) -> None:
    """The CLI's own session id travels with the turn that produced it; a turn that reports
    none keeps the earlier one, so the next turn on any replica can resume natively."""
    sid = str(uuid.uuid4())
    assert await store.create(sid, "claude", "m-1")
    session = await store.get(sid)
    assert session is not None
    assert session.native is None
    assert await store.lock(sid, "a", 60_000)
    first = TurnRecord("t1", "q", "a", "m-1", 1, "fp", native="cli-session-1")
    assert await store.commit(sid, "a", first) is CommitOutcome.STORED
    assert await store.lock(sid, "b", 60_000)
    assert await store.commit(sid, "b", _record("t2")) is CommitOutcome.STORED
    session = await store.get(sid)
    assert session is not None
    assert session.native == "cli-session-1"
    assert await store.lock(sid, "c", 60_000)
    third = TurnRecord("t3", "q", "a", "m-1", 1, "fp", native="cli-session-2")
    assert await store.commit(sid, "c", third) is CommitOutcome.STORED
    session = await store.get(sid)
    assert session is not None
    assert session.native == "cli-session-2"
