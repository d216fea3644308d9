"""OpenAI requests on warm Claude CLIs, through the official openai client, real uvicorn, the
real claude-agent-sdk and the fake CLI: each request is a new conversation whose history is the
request itself; it runs on a CLI that is already running (reset with ``/clear`` after the
previous request), and nothing of an earlier request reaches a later one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from llmhub_gateway.core.config import Settings
from llmhub_gateway.providers.claude import ClaudePoolLimits
from tests.gateway.conftest import ThreadedGateway
from tests.gateway.providers.conftest import claude_provider

MODEL = "claude-sonnet-4-5-20250929"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_openai_requests_carry_their_history_on_one_warm_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns = tmp_path / "turns.jsonl"
    spawns = tmp_path / "spawns.jsonl"
    monkeypatch.setenv("FAKE_CLI_TURNS_FILE", str(turns))
    monkeypatch.setenv("FAKE_CLI_SPAWN_LOG", str(spawns))
    monkeypatch.setenv("FAKE_CLI_ECHO_CONTEXT", "1")
    provider = claude_provider(tmp_path, pool=ClaudePoolLimits(idle=0))
    with ThreadedGateway(Settings(), [provider]) as gw:
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0)
        first = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "my locker code is 4711"}]
        )
        second = client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "my name is Bo"},
                {"role": "assistant", "content": "Hello Bo"},
                {"role": "user", "content": "what is my name?"},
            ],
        )
    assert "4711" in (first.choices[0].message.content or "")
    answer = second.choices[0].message.content or ""
    assert "4711" not in answer  # the CLI was reset between the two requests
    one, two = _lines(turns)
    assert len(_lines(spawns)) == 1  # the second request took the warm CLI
    assert one["pid"] == two["pid"]
    assert one["session"] != two["session"]
    # The request is the history: rendered into the one prompt the reset CLI got.
    assert "my name is Bo" in two["prompt"]
    assert "Hello Bo" in two["prompt"]
    assert two["prompt"].rstrip().endswith("what is my name?")
    assert two["resumed"] == 0  # nothing resumed from a store
