"""The official openai SDK against /v1/chat/completions and /v1/models.

Each client-library behaviour of issue 18 item 11 is proven here with the openai SDK (which
LangChain's ChatOpenAI and litellm drive underneath) and on the wire with httpx: the usage chunk
LangChain's ``usage_metadata`` and litellm's ``usage`` are read from, ``BadRequestError`` with
``code``/``param``, and the documented aliases.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmhub_gateway.core.config import Settings
from llmhub_gateway.registry import MODEL_ALIASES
from tests.gateway.conftest import ThreadedGateway
from tests.gateway.fake_provider import EchoProvider, UsageProvider, echo_providers, expected_text


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
    listed = {m.id: m.owned_by for m in client.models.list()}
    assert {"claude-sonnet", "claude-opus", "claude-haiku"} <= set(listed)
    for model, owner in listed.items():
        answer = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "which"}]
        )
        assert (answer.choices[0].message.content or "").startswith(f"[{owner}|{model}|"), model


def test_documented_aliases_are_served(client: openai.OpenAI) -> None:
    """``sonnet``, ``opus``, ``haiku`` (as docs and Claude users name them) run as the listed
    ``claude-*`` id, which the Claude adapter runs as the CLI's alias; answers name that id."""
    for alias in ("sonnet", "opus", "haiku"):
        answer = client.chat.completions.create(
            model=alias, messages=[{"role": "user", "content": "which"}]
        )
        assert answer.model == f"claude-{alias}"
        assert (answer.choices[0].message.content or "").startswith(f"[claude|claude-{alias}|")
        stream = client.chat.completions.create(
            model=alias, messages=[{"role": "user", "content": "which"}], stream=True
        )
        assert {chunk.model for chunk in stream} == {f"claude-{alias}"}


def test_the_fake_lists_what_the_claude_adapter_lists(tmp_path: Path) -> None:
    """The fake is no more generous than the real adapter: aliases resolve to its ids."""
    from llmhub_gateway.providers.claude import ClaudeProvider

    default = "claude-sonnet-4-5-20250929"
    real = ClaudeProvider(token=None, default_model=default, cli_path=None, scratch_root=tmp_path)
    fake = next(p for p in echo_providers() if p.name == "claude")
    assert set(real.models()) <= set(fake.models())
    assert set(MODEL_ALIASES.values()) <= set(real.models())


KEY = "openai-client-key"


@pytest.fixture(scope="module")
def usage_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedGateway]:
    """Providers that report usage, as the real CLIs do; a 16 KiB body limit; callers need
    the static key ``KEY``."""
    keys = tmp_path_factory.mktemp("openai-keys") / "keys"
    keys.write_text(f"alice sha256:{hashlib.sha256(KEY.encode()).hexdigest()}\n")
    settings = Settings(max_body_bytes=16384, auth_modes="static", auth_static_keys_file=keys)
    providers: list[EchoProvider] = [
        UsageProvider("claude", "claude-sonnet-4-5-20250929"),
        UsageProvider("gemini", "gemini-2.5-pro"),
    ]
    with ThreadedGateway(settings, providers) as gw:
        yield gw


def keyed(gw: ThreadedGateway, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)


def test_stream_with_include_usage_ends_with_the_usage_chunk(
    usage_gateway: ThreadedGateway,
) -> None:
    """As OpenAI: a last chunk with ``choices: []`` and ``usage`` (what LangChain's
    ``usage_metadata`` and litellm's streamed ``usage`` are built from)."""
    client = keyed(usage_gateway)
    chunks = list(
        client.chat.completions.create(
            model="gemini-2.5-pro",
            messages=[{"role": "user", "content": "count these four words"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    *answer, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.total_tokens) == (4, 4 + 5)
    assert last.usage.completion_tokens == 5  # the "[gemini|…]" header and the four words
    assert all(c.usage is None and len(c.choices) == 1 for c in answer)
    assert answer[-1].choices[0].finish_reason == "stop"
    plain = client.chat.completions.create(
        model="gemini-2.5-pro", messages=[{"role": "user", "content": "no usage"}], stream=True
    )
    assert all(c.usage is None and len(c.choices) == 1 for c in plain)


def test_include_usage_on_the_wire(usage_gateway: ThreadedGateway) -> None:
    """Every chunk carries ``"usage": null`` until the last, as OpenAI sends them."""
    body = {
        "model": "claude-sonnet-4-5-20250929",
        "messages": [{"role": "user", "content": "a b"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    url = f"{usage_gateway.url}/v1/chat/completions"
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.stream("POST", url, json=body, headers=auth) as response:
        data = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all("usage" in c for c in chunks)
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert chunks[-1]["choices"] == []
    assert all(c["usage"] is None for c in chunks[:-1])


def _bad_request(client: openai.OpenAI, **kwargs: Any) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**{"model": "claude-sonnet-4-5-20250929", **kwargs})
    return info.value


def test_schema_errors_are_openai_bad_requests(client: openai.OpenAI) -> None:
    """400, not 422: code catching ``openai.BadRequestError`` sees them, with code and param."""
    missing = _bad_request(client, messages=[])
    assert (missing.status_code, missing.code, missing.param) == (
        400,
        "invalid_request",
        "messages",
    )
    wrong_role = _bad_request(client, messages=[{"role": "wizard", "content": "x"}])
    assert wrong_role.param == "messages[0].role"
    assert "messages[0].role" in wrong_role.message
    assert wrong_role.type == "invalid_request"


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_id": "file-1"}},
    ],
)
def test_content_parts_other_than_text_are_refused_by_name(
    client: openai.OpenAI, gateway: ThreadedGateway, part: dict[str, Any]
) -> None:
    """An image-only (or audio, file) message is never silently dropped."""
    sent = len(gateway.providers["claude"].requests)
    error = _bad_request(
        client, messages=[{"role": "user", "content": [{"type": "text", "text": "see"}, part]}]
    )
    assert error.code == "unsupported_content"
    assert error.param == "messages[0].content[1].type"
    assert f"'{part['type']}'" in error.message
    assert len(gateway.providers["claude"].requests) == sent


def test_text_parts_are_joined(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="claude-sonnet-4-5-20250929",
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "one "}, {"type": "text", "text": "two"}],
            }
        ],
    )
    assert answer.choices[0].message.content == expected_text(
        "claude", "claude-sonnet-4-5-20250929", 0, "one two"
    )


def test_every_openai_error_has_openai_shape(gateway: ThreadedGateway) -> None:
    url = f"{gateway.url}/v1/chat/completions"
    answers = {
        "model": httpx.post(
            url, json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
        ),
        "messages": httpx.post(url, json={"model": "claude-x", "messages": "x"}),
        None: httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}),
    }
    for param, response in answers.items():
        assert response.status_code in (400, 404), response.text
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert error["code"] == error["type"]
        assert error["param"] == param
    assert answers["model"].json()["error"]["code"] == "model_not_found"


def test_mid_stream_failure_raises_with_its_code(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="claude-sonnet-4-5-20250929",
        messages=[{"role": "user", "content": "!crash"}],
        stream=True,
    )
    with pytest.raises(openai.APIError) as info:
        list(stream)
    assert info.value.code == "provider_crashed"


def test_a_body_over_the_limit_is_413_in_openai_shape(usage_gateway: ThreadedGateway) -> None:
    """Refused by the body-limit middleware before any route runs, yet in OpenAI's shape."""
    client = keyed(usage_gateway)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="claude-sonnet-4-5-20250929",
            messages=[{"role": "user", "content": "x" * 20000}],
        )
    assert info.value.status_code == 413
    assert info.value.code == "payload_too_large"
    assert set(info.value.body) == {"message", "type", "param", "code"}  # type: ignore[arg-type]


def test_a_refused_caller_gets_openai_authentication_error(usage_gateway: ThreadedGateway) -> None:
    for call in (
        lambda c: c.models.list(),
        lambda c: c.chat.completions.create(
            model="gemini-2.5-pro", messages=[{"role": "user", "content": "x"}]
        ),
    ):
        with pytest.raises(openai.AuthenticationError) as info:
            call(keyed(usage_gateway, "not-the-key"))
        assert (info.value.status_code, info.value.code) == (401, "unauthorized")
        assert set(info.value.body) == {"message", "type", "param", "code"}  # type: ignore[arg-type]
