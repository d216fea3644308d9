"""SIGTERM drains a replica: readiness goes false, new turns get 503 + Retry-After, running
turns end with an explicit ``shutting_down`` (SSE error event, JSON 503) and release their
leases, so another replica continues the same sessions at once. Real uvicorn subprocesses on
one real redis-server, served by the production ``server.serve``."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.gateway.conftest import GatewayProcess, RedisServer, wait_until

Replicas = Callable[[dict[str, str], int], list[GatewayProcess]]


def _chat(gw: GatewayProcess, **body: object) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/chat", json={"provider": "claude", **body}, timeout=30)


def _in_flight(gw: GatewayProcess) -> float:
    for line in httpx.get(f"{gw.admin_url}/metrics", timeout=5).text.splitlines():
        if line.startswith('llmhub_gateway_provider_in_flight{provider="claude"}'):
            return float(line.split()[-1])
    return 0.0


def test_sigterm_drains_turns_and_another_replica_continues_at_once(
    redis_server: RedisServer, replicas: Replicas
) -> None:
    env = {
        "REDIS_URL": redis_server.url,
        "SHUTDOWN_DRAIN_SECONDS": "2",
        "SHUTDOWN_GRACEFUL_SECONDS": "3",
    }
    a, b = replicas(env, 2)
    streamed_sid = _chat(a, prompt="one").json()["session_id"]
    plain_sid = _chat(a, prompt="two").json()["session_id"]
    first_delta = threading.Event()

    def stream() -> list[tuple[str, dict[str, object]]]:
        body = {"provider": "claude", "prompt": "!slow", "session_id": streamed_sid, "stream": True}
        events, name = [], "message"
        with httpx.stream("POST", f"{a.url}/v1/chat", json=body, timeout=60) as response:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((name, json.loads(line.removeprefix("data: "))))
                    if name == "delta":
                        first_delta.set()
        return events

    def openai_stream() -> list[str]:
        body = {
            "model": "claude-x",
            "stream": True,
            "messages": [{"role": "user", "content": "!slow"}],
        }
        with httpx.stream("POST", f"{a.url}/v1/chat/completions", json=body, timeout=60) as r:
            return [line for line in r.iter_lines() if line.startswith("data: ")]

    with ThreadPoolExecutor(3) as pool:
        streaming = pool.submit(stream)
        plain = pool.submit(_chat, a, prompt="!slow", session_id=plain_sid)
        stateless = pool.submit(openai_stream)
        wait_until(lambda: _in_flight(a) == 3.0, what="three turns running on replica a")
        assert first_delta.wait(10)
        assert a.proc is not None
        signalled = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)

        wait_until(
            lambda: httpx.get(f"{a.url}/health/ready", timeout=5).status_code == 503,
            timeout=5,
            what="readiness false",
        )
        assert "shutting down" in httpx.get(f"{a.url}/health/ready").json()["reasons"]
        refused = _chat(a, prompt="new turn")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["type"] == "shutting_down"
        assert httpx.get(f"{b.url}/health/ready").status_code == 200

        plain_answer = plain.result(timeout=30)
        events = streaming.result(timeout=30)
        chunks = stateless.result(timeout=30)
    ended = time.monotonic() - signalled
    assert 1.5 < ended < 8  # the bounded drain (2 s), not the provider's 30 s
    assert plain_answer.status_code == 503
    assert plain_answer.headers["retry-after"] == "1"
    assert plain_answer.json()["error"]["type"] == "shutting_down"
    assert events[0][0] == "session"
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "shutting_down"  # type: ignore[index]
    assert chunks[-1] == "data: [DONE]"  # the OpenAI stream: an error chunk, then [DONE]
    assert json.loads(chunks[-2].removeprefix("data: "))["error"]["type"] == "shutting_down"

    # The leases were released: replica b continues both sessions at once, no 409.
    for sid, first in ((streamed_sid, "one"), (plain_sid, "two")):
        follow = _chat(b, prompt="continued on b", session_id=sid)
        assert follow.status_code == 200, follow.text
        turns = httpx.get(f"{b.url}/v1/sessions/{sid}").json()["turns"]
        assert [t["text"] for t in turns if t["role"] == "user"] == [first, "continued on b"]

    a.proc.wait(timeout=15)  # uvicorn then exits by itself
    assert a.proc.returncode in (0, -signal.SIGTERM)
