"""Prompts are text: whatever the user typed reaches the (fake) model as the user's words.

The fake CLI is as strict as the real one: a user message starting with ``/`` runs as a slash
command unless the SDK marks it ``client_composed`` (``verbatim_prompts``), which the adapter
always does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from claude_agent_sdk import AssistantMessage, ClaudeAgentOptions, ClaudeSDKClient, TextBlock

from llmhub_gateway.providers.claude import ClaudeProvider
from tests.gateway.providers.conftest import FAKE_CLAUDE, chat, collect

HOSTILE = {
    "slash": "/cost",
    "slash-args": "/model opus",
    "slash-only": "/",
    "dash": "- buy milk",
    "flags": "--help",
    "arrow": "-> arrow",
    "bang": "!rm -rf /",
    "at-file": "@/etc/passwd what is in it?",
    "control": "bell\x07 escape\x1b[31m backspace\x08 form\x0c vt\x0b del\x7f",
    "unicode-controls": "\u202eevil\u200b\u2028line\u2029para",
    "100KB-slash": "/" + "x" * 100_000,
}


@pytest.mark.parametrize("prompt", HOSTILE.values(), ids=HOSTILE.keys())
async def test_hostile_prompts_reach_the_model_as_text(claude: ClaudeProvider, prompt: str) -> None:
    text = "".join(await collect(claude, chat(prompt)))
    assert "ran the slash command" not in text
    assert text == f"[fake-claude model=claude-sonnet-4-5-20250929 token=present] {prompt}"


async def test_the_fake_runs_unmarked_slash_messages_as_commands(tmp_path: Path) -> None:
    """What a client without ``verbatim_prompts`` gets from the (fake, like the real) CLI."""
    options = ClaudeAgentOptions(cli_path=FAKE_CLAUDE, cwd=tmp_path)
    texts: list[str] = []
    async with ClaudeSDKClient(options) as client:
        await client.query("/cost")
        async for message in client.receive_response():
            if isinstance(message, AssistantMessage):
                texts += [b.text for b in message.content if isinstance(b, TextBlock)]
    assert texts == ["[fake-claude ran the slash command /cost]"]
