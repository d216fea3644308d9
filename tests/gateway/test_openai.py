"""The official openai SDK against /v1/chat/completions and /v1/models."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.gateway.conftest import ThreadedGateway
from tests.gateway.fake_provider import expected_text


@pytest.fixture
def client(gateway: ThreadedGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)


def test_models_lists_configured_providers(client: openai.OpenAI) -> None:
    models = {m.id: m.owned_by for m in client.models.list()}
    assert models["claude-sonnet-4-5-20250929"] == "claude"
    assert models["gemini-2.5-pro"] == "gemini"


def test_completion_routes_by_model_and_replays_messages(
    client: openai.OpenAI, gateway: ThreadedGateway
) -> None:
    completion = client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[
            {"role": "system", "content": "terse"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": "second question"},
        ],
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].finish_reason == "stop"
    text = completion.choices[0].message.content
    assert text == "[gemini|gemini-2.5-flash|turns=2|system=terse] second question "
    request = gateway.providers["gemini"].requests[-1]
    assert [(t.role, t.text) for t in request.history] == [
        ("user", "first"),
        ("assistant", "answer"),
    ]


def test_streaming_completion(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="claude-sonnet-4-5-20250929",
        messages=[{"role": "user", "content": "stream this"}],
        stream=True,
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == expected_text("claude", "claude-sonnet-4-5-20250929", 0, "stream this")
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_ends_with_done_marker(gateway: ThreadedGateway) -> None:
    body = {"model": "claude-x", "messages": [{"role": "user", "content": "a"}], "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 404
    assert info.value.body["type"] == "model_not_found"  # type: ignore[index]


def test_last_message_must_be_user(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="claude-sonnet-4-5-20250929",
            messages=[{"role": "assistant", "content": "x"}],
        )


def test_busy_provider_is_429_with_retry_after(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="claude-sonnet-4-5-20250929", messages=[{"role": "user", "content": "!busy"}]
        )
    assert info.value.response.headers["retry-after"] == "2"


def test_every_listed_model_is_servable(client: openai.OpenAI) -> None:
    """Aliases without the provider's prefix (``sonnet``) included: none of them is a 404."""
    listed = {m.id: m.owned_by for m in client.models.list()}
    assert {"sonnet", "opus", "haiku"} <= set(listed)
    for model, owner in listed.items():
        answer = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "which"}]
        )
        assert (answer.choices[0].message.content or "").startswith(f"[{owner}|{model}|"), model
