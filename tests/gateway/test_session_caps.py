"""Per-session caps (SESSION_MAX_TURNS, SESSION_MAX_BYTES): a session cannot grow without
bound. Each API refuses the turn before anything runs, with a status (400 / 413) and a message
that names the limit and says to start a new session; REST, OpenAI (the official client) and
MCP (the official client)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from llmhub_gateway.core.config import Settings
from tests.gateway.conftest import ThreadedGateway
from tests.gateway.fake_provider import echo_providers
from tests.gateway.test_mcp import call

MAX_BYTES = 4096


@pytest.fixture(scope="module")
def capped() -> Iterator[ThreadedGateway]:
    settings = Settings(session_max_turns=2, session_max_bytes=MAX_BYTES)
    with ThreadedGateway(settings, echo_providers()) as gw:
        yield gw


def _chat(gw: ThreadedGateway, prompt: str, session: str | None = None) -> httpx.Response:
    body = {"provider": "claude", "prompt": prompt, "session_id": session}
    return httpx.post(f"{gw.url}/v1/chat", json=body, timeout=10)


def test_rest_refuses_a_turn_beyond_the_turn_cap(capped: ThreadedGateway) -> None:
    first = _chat(capped, "one")
    session = first.json()["session_id"]
    assert _chat(capped, "two", session).status_code == 200
    third = _chat(capped, "three", session)
    assert third.status_code == 400
    error = third.json()["error"]
    assert error["type"] == "session_too_long"
    assert "SESSION_MAX_TURNS=2" in error["message"]
    assert "start a new session" in error["message"]
    listed = httpx.get(f"{capped.url}/v1/sessions/{session}", timeout=10).json()
    assert len(listed["turns"]) == 4  # nothing of the refused turn was stored


def test_rest_refuses_a_turn_that_would_pass_the_byte_cap(capped: ThreadedGateway) -> None:
    first = _chat(capped, "x" * 3000)  # the echo answer repeats it: 6000 bytes of history
    assert first.status_code == 200
    refused = _chat(capped, "more", first.json()["session_id"])
    assert refused.status_code == 413
    error = refused.json()["error"]
    assert error["type"] == "session_too_large"
    assert f"SESSION_MAX_BYTES={MAX_BYTES}" in error["message"]
    assert "start a new session" in error["message"]


def test_openai_refuses_a_conversation_beyond_the_caps(capped: ThreadedGateway) -> None:
    client = openai.OpenAI(base_url=f"{capped.url}/v1", api_key="unused", max_retries=0)
    model = "claude-sonnet-4-5-20250929"
    history: list[dict[str, str]] = []
    for n in range(2):
        history += [{"role": "user", "content": f"q{n}"}, {"role": "assistant", "content": "a"}]
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(
            model=model,
            messages=[*history, {"role": "user", "content": "q3"}],  # type: ignore[list-item]
        )
    assert "SESSION_MAX_TURNS=2" in str(too_long.value)
    with pytest.raises(openai.APIStatusError) as too_large:
        client.chat.completions.create(
            model=model,
            messages=[
                {"role": "user", "content": "y" * 3000},
                {"role": "assistant", "content": "z" * 3000},
                {"role": "user", "content": "next"},
            ],
        )
    assert too_large.value.status_code == 413
    assert f"SESSION_MAX_BYTES={MAX_BYTES}" in str(too_large.value)


async def test_mcp_reports_the_cap_as_a_tool_error(capped: ThreadedGateway) -> None:
    first = await call(capped, "claude_chat", {"prompt": "one"})
    session = first.structured_content["session_id"]
    await call(capped, "claude_chat", {"prompt": "two", "session_id": session})
    refused = await call(capped, "claude_chat", {"prompt": "three", "session_id": session})
    assert refused.is_error is True
    text = refused.content[0].text
    assert "session_too_long" in text
    assert "SESSION_MAX_TURNS=2" in text
