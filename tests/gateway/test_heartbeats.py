"""SSE streams send a comment line while the provider is silent, so proxies with an idle
timeout keep long turns open. The interval is a setting; the tests use 0.25 s (15 s default)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from llmhub_gateway.core.config import Settings
from tests.gateway.conftest import ThreadedGateway
from tests.gateway.fake_provider import GatedProvider

SILENCE_S = 2.0
HEARTBEAT_S = 0.25


@pytest.fixture(scope="module")
def gw() -> Iterator[ThreadedGateway]:
    providers = [
        GatedProvider("claude", "claude-sonnet-4-5-20250929"),
        GatedProvider("gemini", "gemini-2.5-pro"),
    ]
    with ThreadedGateway(Settings(sse_heartbeat_seconds=HEARTBEAT_S), providers) as gateway:
        yield gateway


def _silent_then_open(provider: GatedProvider) -> None:
    provider.arm()
    threading.Timer(SILENCE_S, provider.gate.set).start()


def _raw_lines(gw: ThreadedGateway, path: str, body: dict[str, object]) -> list[tuple[float, str]]:
    started = time.monotonic()
    with httpx.stream("POST", f"{gw.url}{path}", json=body, timeout=30) as response:
        assert response.status_code == 200
        return [(time.monotonic() - started, line) for line in response.iter_lines()]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat", {"provider": "claude", "prompt": "!gate quiet", "stream": True}),
        (
            "/v1/chat/completions",
            {
                "model": "claude-x",
                "stream": True,
                "messages": [{"role": "user", "content": "!gate"}],
            },
        ),
    ],
)
def test_a_silent_turn_receives_heartbeats(
    gw: ThreadedGateway, path: str, body: dict[str, object]
) -> None:
    provider = gw.providers["claude"]
    assert isinstance(provider, GatedProvider)
    _silent_then_open(provider)
    lines = _raw_lines(gw, path, body)
    beats = [at for at, line in lines if line == ": keepalive"]
    # One every HEARTBEAT_S of silence: ~8 in 2 s (generous bounds for a loaded machine).
    assert 4 <= len(beats) <= SILENCE_S / HEARTBEAT_S + 2
    assert max(b - a for a, b in zip([0.0, *beats], beats, strict=False)) < 4 * HEARTBEAT_S
    assert beats[-1] < SILENCE_S + 1
    content = [line for _, line in lines if line]
    if path == "/v1/chat":
        assert content[-2] == "event: done"
    else:
        assert content[-1] == "data: [DONE]"


def test_the_openai_sdk_ignores_the_heartbeats(gw: ThreadedGateway) -> None:
    provider = gw.providers["claude"]
    assert isinstance(provider, GatedProvider)
    _silent_then_open(provider)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="claude-sonnet-4-5-20250929",
            messages=[{"role": "user", "content": "!gate after silence"}],
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.endswith("!gate after silence ")
