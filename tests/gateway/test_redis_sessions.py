"""Sessions in a real redis-server: two gateway processes share them; Redis outages heal."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai

from tests.gateway.conftest import GatewayProcess, RedisServer, free_port, wait_until

Start = Callable[[dict[str, str]], GatewayProcess]


def _chat(gw: GatewayProcess, **body: object) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/chat", json=body, timeout=10)


def test_two_replicas_continue_one_session(
    redis_server: RedisServer, replicas: Callable[[dict[str, str], int], list[GatewayProcess]]
) -> None:
    env = {"REDIS_URL": redis_server.url, "SESSION_TTL_SECONDS": "600"}
    a, b = replicas(env, 2)
    first = _chat(a, provider="claude", prompt="hello from a").json()
    second = _chat(b, provider="claude", prompt="hello from b", session_id=first["session_id"])
    assert second.status_code == 200
    assert second.json()["text"].startswith("[claude|claude-sonnet-4-5-20250929|turns=2]")
    seen_by_a = httpx.get(f"{a.url}/v1/sessions/{first['session_id']}").json()
    assert [t["text"] for t in seen_by_a["turns"] if t["role"] == "user"] == [
        "hello from a",
        "hello from b",
    ]
    assert httpx.delete(f"{b.url}/v1/sessions/{first['session_id']}").status_code == 204
    assert httpx.get(f"{a.url}/v1/sessions/{first['session_id']}").status_code == 404


def test_ttl_is_set_and_refreshed(redis_server: RedisServer, gateway_process: Start) -> None:
    import redis

    gw = gateway_process({"REDIS_URL": redis_server.url, "SESSION_TTL_SECONDS": "120"})
    sid = _chat(gw, provider="gemini", prompt="x").json()["session_id"]
    client = redis.Redis.from_url(redis_server.url)
    try:
        key = f"llmhub:s:{{{sid}}}:meta"  # one hash slot per session: ready for Cluster
        assert 100 < client.ttl(key) <= 120
        assert 100 < client.ttl(f"llmhub:s:{{{sid}}}:turns") <= 120
        assert 100 < client.ttl(f"llmhub:s:{{{sid}}}:done") <= 120
        assert not client.exists(f"llmhub:s:{{{sid}}}:lock")  # released by the commit
        client.expire(key, 30)
        httpx.get(f"{gw.url}/v1/sessions/{sid}")
        assert client.ttl(key) > 100
    finally:
        client.close()


def test_redis_outage_gives_503_and_recovers_while_stateless_traffic_keeps_working(
    gateway_process: Start,
) -> None:
    """Readiness is per replica: a Redis outage must not take every replica out of the
    Service (contract change: readiness used to fail with Redis)."""
    redis = RedisServer()
    redis.start()
    try:
        gw = gateway_process({"REDIS_URL": redis.url})
        sid = _chat(gw, provider="claude", prompt="before").json()["session_id"]
        redis.stop()

        ready = httpx.get(f"{gw.url}/health/ready", timeout=10)
        assert ready.status_code == 200
        assert ready.json()["reasons"] == []
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0)
        completion = client.chat.completions.create(
            model="claude-sonnet-4-5-20250929",
            messages=[{"role": "user", "content": "stateless while redis is down"}],
        )
        assert "stateless while redis is down" in (completion.choices[0].message.content or "")
        streamed = client.chat.completions.create(
            model="gemini-2.5-pro", messages=[{"role": "user", "content": "s"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed).startswith("[gemini")
        down = _chat(gw, provider="claude", prompt="during")
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        assert down.json()["error"]["type"] == "session_store_unavailable"
        assert "redis://" not in down.text
        assert httpx.get(f"{gw.url}/health/live").status_code == 200

        for path in (f"/v1/sessions/{sid}",):
            gone = httpx.get(f"{gw.url}{path}", timeout=10)
            assert (gone.status_code, gone.headers["retry-after"]) == (503, "5")
        redis.start()  # same port, empty data: the old session is gone, new ones work
        wait_until(
            lambda: _chat(gw, provider="claude", prompt="after").status_code == 200,
            what="sessions work again",
        )
        assert _chat(gw, provider="claude", prompt="x", session_id=sid).status_code == 404
    finally:
        redis.stop()


def test_unreachable_redis_at_start_is_still_ready_and_sessions_answer_503(
    gateway_process: Start,
) -> None:
    gw = gateway_process({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    ready = httpx.get(f"{gw.url}/health/ready", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    down = _chat(gw, provider="claude", prompt="x")
    assert down.status_code == 503
    assert down.headers["retry-after"] == "5"
