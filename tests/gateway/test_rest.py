"""POST /v1/chat, sessions and the error contract against a real uvicorn."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.gateway.conftest import ThreadedGateway
from tests.gateway.fake_provider import LEAKY_SECRET, expected_text
from tests.leaks import assert_no_leak

CLAUDE = "claude-sonnet-4-5-20250929"


def chat(gw: ThreadedGateway, **body: object) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/chat", json=body, timeout=10)


def test_chat_creates_a_session_and_answers(gateway: ThreadedGateway) -> None:
    response = chat(gateway, provider="claude", prompt="hello there")
    assert response.status_code == 200
    body = response.json()
    assert body["provider"] == "claude"
    assert body["model"] == CLAUDE
    assert body["text"] == expected_text("claude", CLAUDE, 0, "hello there")
    assert isinstance(body["duration_ms"], int)
    assert len(body["session_id"]) == 36


def test_session_continues_with_history_replayed(gateway: ThreadedGateway) -> None:
    first = chat(gateway, provider="gemini", prompt="one", model="gemini-2.5-flash").json()
    second = chat(gateway, provider="gemini", prompt="two", session_id=first["session_id"]).json()
    assert second["session_id"] == first["session_id"]
    assert second["text"].startswith("[gemini|gemini-2.5-pro|turns=2]")
    replayed = gateway.providers["gemini"].requests[-1].history
    assert [(t.role, t.text) for t in replayed] == [("user", "one"), ("assistant", first["text"])]

    stored = httpx.get(f"{gateway.url}/v1/sessions/{first['session_id']}").json()
    assert stored["provider"] == "gemini"
    assert [t["role"] for t in stored["turns"]] == ["user", "assistant", "user", "assistant"]
    assert stored["turns"][2]["text"] == "two"


def test_system_prompt_reaches_the_provider(gateway: ThreadedGateway) -> None:
    body = chat(gateway, provider="claude", prompt="hi", system="be brief").json()
    assert "|system=be brief]" in body["text"]


def test_sessions_are_isolated(gateway: ThreadedGateway) -> None:
    a = chat(gateway, provider="claude", prompt="secret-of-a").json()
    b = chat(gateway, provider="claude", prompt="secret-of-b").json()
    assert a["session_id"] != b["session_id"]
    session_b = httpx.get(f"{gateway.url}/v1/sessions/{b['session_id']}").json()
    assert "secret-of-a" not in json.dumps(session_b)
    follow_up = chat(gateway, provider="claude", prompt="again", session_id=b["session_id"])
    history = gateway.providers["claude"].requests[-1].history
    assert follow_up.status_code == 200
    assert all("secret-of-a" not in t.text for t in history)


def test_unknown_session_is_404_and_never_created(gateway: ThreadedGateway) -> None:
    made_up = str(uuid.uuid4())
    response = chat(gateway, provider="claude", prompt="x", session_id=made_up)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "session_not_found"
    assert httpx.get(f"{gateway.url}/v1/sessions/{made_up}").status_code == 404


def test_session_of_another_provider_is_400(gateway: ThreadedGateway) -> None:
    sid = chat(gateway, provider="claude", prompt="x").json()["session_id"]
    response = chat(gateway, provider="gemini", prompt="y", session_id=sid)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "session_provider_mismatch"


def test_delete_session(gateway: ThreadedGateway) -> None:
    sid = chat(gateway, provider="claude", prompt="x").json()["session_id"]
    assert httpx.delete(f"{gateway.url}/v1/sessions/{sid}").status_code == 204
    gone = httpx.delete(f"{gateway.url}/v1/sessions/{sid}")
    assert gone.status_code == 404
    assert gone.json() == {
        "error": {"type": "session_not_found", "message": gone.json()["error"]["message"]}
    }


def test_failed_turn_is_not_recorded(gateway: ThreadedGateway) -> None:
    sid = chat(gateway, provider="claude", prompt="ok").json()["session_id"]
    assert chat(gateway, provider="claude", prompt="!crash", session_id=sid).status_code == 502
    turns = httpx.get(f"{gateway.url}/v1/sessions/{sid}").json()["turns"]
    assert [t["text"] for t in turns if t["role"] == "user"] == ["ok"]


def test_provider_errors_map_to_honest_codes(gateway: ThreadedGateway) -> None:
    busy = chat(gateway, provider="claude", prompt="!busy")
    assert busy.status_code == 429
    assert busy.headers["retry-after"] == "2"
    assert busy.json()["error"]["type"] == "provider_busy"
    timeout = chat(gateway, provider="claude", prompt="!timeout")
    assert (timeout.status_code, timeout.json()["error"]["type"]) == (504, "provider_timeout")
    crash = chat(gateway, provider="gemini", prompt="!crash")
    assert (crash.status_code, crash.json()["error"]["type"]) == (502, "provider_crashed")
    auth = chat(gateway, provider="gemini", prompt="!auth")
    assert (auth.status_code, auth.json()["error"]["type"]) == (502, "provider_auth_error")


def test_framework_errors_use_the_error_shape(gateway: ThreadedGateway) -> None:
    missing = httpx.get(f"{gateway.url}/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"
    wrong_method = httpx.put(f"{gateway.url}/v1/chat")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["type"] == "method_not_allowed"
    invalid = chat(gateway, provider="mistral", prompt="")
    assert invalid.status_code == 422
    error = invalid.json()["error"]
    assert error["type"] == "invalid_request"
    assert "provider" in error["message"]
    assert "prompt" in error["message"]
    not_json = httpx.post(
        f"{gateway.url}/v1/chat", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    assert not_json.json()["error"]["type"] == "invalid_request"


def test_sse_streams_deltas_then_the_result(gateway: ThreadedGateway) -> None:
    events = sse_events(
        gateway, {"provider": "claude", "prompt": "stream me please", "stream": True}
    )
    names = [name for name, _ in events]
    assert names[0] == "session"
    assert names[-1] == "done"
    assert names.count("delta") == 4
    deltas = "".join(data["text"] for name, data in events if name == "delta")
    done = events[-1][1]
    assert done["text"] == deltas == expected_text("claude", CLAUDE, 0, "stream me please")
    assert done["session_id"] == events[0][1]["session_id"]
    turns = httpx.get(f"{gateway.url}/v1/sessions/{done['session_id']}").json()["turns"]
    assert turns[1]["text"] == deltas


def test_sse_reports_provider_failure_as_error_event(gateway: ThreadedGateway) -> None:
    events = sse_events(gateway, {"provider": "claude", "prompt": "!timeout", "stream": True})
    assert [name for name, _ in events] == ["session", "error"]
    assert events[-1][1]["error"]["type"] == "provider_timeout"


def test_sse_unknown_session_fails_before_streaming(gateway: ThreadedGateway) -> None:
    response = chat(
        gateway, provider="claude", prompt="x", session_id=str(uuid.uuid4()), stream=True
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"


def sse_events(gw: ThreadedGateway, body: dict[str, object]) -> list[tuple[str, dict[str, object]]]:
    events: list[tuple[str, dict[str, object]]] = []
    with httpx.stream("POST", f"{gw.url}/v1/chat", json=body, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = "message"
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
                name = "message"
    return events


def test_unexpected_errors_are_500_without_details(gateway: ThreadedGateway) -> None:
    response = chat(gateway, provider="claude", prompt="!bug")
    assert response.status_code == 500
    assert response.json() == {"error": {"type": "internal_error", "message": "internal error"}}
    events = sse_events(gateway, {"provider": "claude", "prompt": "!bug", "stream": True})
    assert events[-1] == (
        "error",
        {"error": {"type": "internal_error", "message": "internal error"}},
    )
    assert_no_leak(response.text, leaky=LEAKY_SECRET)
