"""Every answer carries the turn's usage as the provider reported it: REST JSON, the SSE
``done`` event and the MCP tool result (structured content), as OpenAI's ``usage`` does."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from llmhub_gateway.core.config import Settings
from tests.gateway.conftest import ThreadedGateway
from tests.gateway.fake_provider import UsageProvider
from tests.gateway.test_mcp import call, structured

# UsageProvider: tokens_in = words of the prompt, tokens_out = words of the answer (its
# "[claude|model|turns=0]" header and the prompt's words).
EXPECTED = {"tokens_in": 3, "tokens_out": 4}


@pytest.fixture(scope="module")
def counting() -> Iterator[ThreadedGateway]:
    providers = [
        UsageProvider("claude", "claude-sonnet-4-5-20250929"),
        UsageProvider("gemini", "gemini-2.5-pro"),
    ]
    with ThreadedGateway(Settings(), providers) as gw:
        yield gw


def test_rest_json_answer_has_usage(counting: ThreadedGateway) -> None:
    answer = httpx.post(
        f"{counting.url}/v1/chat", json={"provider": "claude", "prompt": "one two three"}
    )
    assert answer.status_code == 200
    assert answer.json()["usage"] == EXPECTED


def test_the_sse_done_event_has_usage(counting: ThreadedGateway) -> None:
    body = {"provider": "gemini", "prompt": "one two three", "stream": True}
    with httpx.stream("POST", f"{counting.url}/v1/chat", json=body) as answer:
        lines = list(answer.iter_lines())
    done = lines[lines.index("event: done") + 1]
    assert json.loads(done.removeprefix("data: "))["usage"] == EXPECTED


async def test_the_mcp_tool_result_has_usage(counting: ThreadedGateway) -> None:
    result = structured(await call(counting, "claude_chat", {"prompt": "one two three"}))
    assert result["usage"] == EXPECTED
