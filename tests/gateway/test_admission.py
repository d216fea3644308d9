"""At capacity the answer is 429 + Retry-After before any stream starts (never a 200 with an
in-band error): the per-pod cap (``CappedProvider``) takes its slot while the turn is
prepared, and a provider's own ``admit`` (a pool) is asked there too. REST SSE, OpenAI
streaming with the official client (which retries on Retry-After), and MCP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from llmhub_gateway.core.config import Settings
from llmhub_gateway.providers.limits import CappedProvider
from tests.gateway.conftest import ThreadedGateway, wait_until
from tests.gateway.fake_provider import PoolProvider

MODEL = "claude-sonnet-4-5-20250929"


@pytest.fixture(scope="module")
def capped() -> Iterator[ThreadedGateway]:
    """Claude behind a cap of one turn; its inner adapter has a pool's ``admit``."""
    claude = CappedProvider(PoolProvider("claude", MODEL), max_concurrency=1, timeout_s=30)
    gemini = CappedProvider(
        PoolProvider("gemini", "gemini-2.5-pro"), max_concurrency=4, timeout_s=30
    )
    with ThreadedGateway(Settings(), [claude, gemini]) as gw:
        yield gw


@pytest.fixture
def held(capped: ThreadedGateway) -> Iterator[PoolProvider]:
    """One gated turn holds claude's only slot until the test opens the gate."""
    claude: PoolProvider = capped.providers["claude"]
    claude.arm()
    answers: list[httpx.Response] = []
    runner = threading.Thread(
        target=lambda: answers.append(
            httpx.post(
                f"{capped.url}/v1/chat",
                json={"provider": "claude", "prompt": "!gate"},
                timeout=30,
            )
        )
    )
    runner.start()
    assert claude.started.wait(10)
    yield claude
    claude.gate.set()
    runner.join(timeout=30)
    assert [a.status_code for a in answers] == [200]


def _stream_rest(gw: ThreadedGateway, prompt: str) -> tuple[int, dict[str, str], str]:
    body = {"provider": "claude", "prompt": prompt, "stream": True}
    with httpx.stream("POST", f"{gw.url}/v1/chat", json=body, timeout=30) as answer:
        return answer.status_code, dict(answer.headers), answer.read().decode()


def test_rest_sse_over_the_cap_is_429_before_the_stream(
    capped: ThreadedGateway, held: PoolProvider
) -> None:
    seen = len(held.requests)
    status, headers, body = _stream_rest(capped, "over the cap")
    assert status == 429
    assert headers["content-type"] == "application/json"
    assert headers["retry-after"] == "1"
    assert '"provider_busy"' in body
    assert "event:" not in body
    assert len(held.requests) == seen  # nothing ran
    held.gate.set()
    wait_until(lambda: capped.providers["claude"].open_streams == 0, what="the gated turn")
    wait_until(lambda: _stream_rest(capped, "again")[0] == 200, what="the slot freed")


def test_openai_streaming_sees_a_rate_limit_error_and_retries_after_it(
    capped: ThreadedGateway, held: PoolProvider
) -> None:
    client = openai.OpenAI(base_url=f"{capped.url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert refused.value.response.headers["retry-after"] == "1"
    # With retries on, the SDK waits the Retry-After and tries again: the slot is free by then.
    threading.Timer(0.3, held.gate.set).start()
    started = time.monotonic()
    retrying = openai.OpenAI(base_url=f"{capped.url}/v1", api_key="x", max_retries=3)
    stream = retrying.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "retried"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert "retried" in text
    assert time.monotonic() - started >= 0.9  # it honoured Retry-After: 1


def test_a_pools_admit_refuses_before_the_stream_and_frees_the_cap_slot(
    capped: ThreadedGateway,
) -> None:
    claude: PoolProvider = capped.providers["claude"]
    seen = len(claude.requests)
    sessions = len(capped.app.state.chat.store)
    status, headers, body = _stream_rest(capped, "!full")
    assert status == 429
    assert headers["retry-after"] == "3"
    assert "no warm process free" in body
    assert len(capped.app.state.chat.store) == sessions  # no empty session left behind
    completion = httpx.post(
        f"{capped.url}/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "!full"}], "stream": True},
    )
    assert completion.status_code == 429
    assert completion.headers["retry-after"] == "3"
    assert len(claude.requests) == seen
    # The cap's slot taken before the pool said no was given back: the next turn runs.
    status, _, body = _stream_rest(capped, "fits")
    assert status == 200
    assert "fits" in body
    assert claude.admitted[-1].prompt == "fits"


async def test_mcp_over_the_cap_is_429_before_the_event_stream(
    capped: ThreadedGateway, held: PoolProvider
) -> None:
    from tests.gateway.test_auth_mcp import ACCEPT
    from tests.gateway.test_mcp import call, mcp_error

    seen = len(held.requests)
    refused = await mcp_error(call(capped, "claude_chat", {"prompt": "over the cap"}))
    assert refused.data["type"] == "provider_busy"
    assert refused.data["retry_after"] == 1
    tool_call = {
        "jsonrpc": "2.0",
        "id": "c1",
        "method": "tools/call",
        "params": {"name": "claude_chat", "arguments": {"prompt": "over the cap"}},
    }
    raw = httpx.post(f"{capped.url}/mcp", json=tool_call, headers=ACCEPT)
    assert raw.status_code == 429
    assert raw.headers["content-type"] == "application/json"
    assert raw.headers["Retry-After"] == "1"
    assert raw.json()["id"] == "c1"
    assert len(held.requests) == seen
    # The gemini tool has slots of its own, and a freed claude slot serves MCP again.
    gemini = await call(capped, "gemini_chat", {"prompt": "fine"})
    assert gemini.is_error is False
    held.gate.set()
    wait_until(lambda: capped.providers["claude"].open_streams == 0, what="the gated turn")
    assert (await call(capped, "claude_chat", {"prompt": "now"})).is_error is False
