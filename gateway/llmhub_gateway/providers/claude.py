"""Claude through the real claude-agent-sdk, which drives the Claude Code CLI over stream-json.

The agent is a pure chat model here: no built-in tools, no MCP servers, no settings or hooks
read from the host, permission mode that denies anything not pre-approved, and a throw-away
working directory per request. History is replayed in the prompt, so no CLI session state is
needed and any replica can continue any session.

The SDK runs inside a worker task that feeds a queue: the SDK's anyio task group then lives and
dies in one task, whatever task consumes the stream or closes it early.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ClaudeSDKError,
    CLIConnectionError,
    CLIJSONDecodeError,
    CLINotFoundError,
    ProcessError,
    ResultMessage,
    TextBlock,
)
from claude_agent_sdk.types import StreamEvent

from llmhub_common.logging import secrets
from llmhub_gateway.providers.base import (
    ChatRequest,
    ProviderAuthError,
    ProviderCrashed,
    ProviderError,
    ProviderNotConfigured,
    Usage,
)
from llmhub_gateway.providers.diagnostics import Tail, safe_detail
from llmhub_gateway.providers.procs import finish, kill_tree, resolve_executable
from llmhub_gateway.providers.transcript import render_prompt

log = logging.getLogger(__name__)

TOKEN_ENV = "CLAUDE_CODE_OAUTH_TOKEN"
OTHER_MODELS = ("sonnet", "opus", "haiku")
# Belt and braces on top of tools=[]: nothing that touches the host or the network.
DENIED_TOOLS = [
    "Bash",
    "BashOutput",
    "KillShell",
    "Edit",
    "MultiEdit",
    "Write",
    "NotebookEdit",
    "Read",
    "Glob",
    "Grep",
    "WebFetch",
    "WebSearch",
    "Task",
    "Skill",
]
_WORKER_GRACE_S = 10.0
_GRACEFUL_EXIT_S = 2.0  # a CLI that answered gets this long to exit by itself


@dataclass(frozen=True, slots=True)
class _Done:
    """End of the answer."""


_Item = str | Usage | ProviderError | _Done


class ClaudeProvider:
    """A base.Provider starting one Claude Code CLI per request."""

    name = "claude"

    def __init__(
        self,
        *,
        token: str | None,
        default_model: str,
        cli_path: str | None,
        scratch_root: Path,
    ) -> None:
        self.default_model = default_model
        self._token = token or None
        self._cli_path = resolve_executable(cli_path) if cli_path else None
        self._scratch_root = scratch_root
        secrets.add(self._token)  # the log filter now redacts it wherever it shows up

    def configured(self) -> bool:
        return self._token is not None

    def models(self) -> Sequence[str]:
        return (self.default_model, *(m for m in OTHER_MODELS if m != self.default_model))

    def problem(self) -> str | None:
        """Readiness: an explicit CLAUDE_CLI_PATH must be an executable file (the SDK's
        bundled CLI is part of the image)."""
        path = self._cli_path
        if path is not None and not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return "claude: the Claude Code CLI is not installed or not executable"
        return None

    async def aclose(self) -> None:
        """Per-request dirs are removed as requests end; drop the root if nothing is left."""
        with contextlib.suppress(OSError):
            self._scratch_root.rmdir()

    async def stream(self, request: ChatRequest) -> AsyncIterator[str | Usage]:
        if self._token is None:
            raise ProviderNotConfigured("claude: no OAuth token configured")
        scratch = self._scratch_root / uuid.uuid4().hex
        scratch.mkdir(parents=True, mode=0o700)
        stderr_tail = Tail()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        client = ClaudeSDKClient(self._options(request, scratch, stderr_tail))
        worker = asyncio.create_task(_drive(client, render_prompt(request), queue, stderr_tail))
        answered = False
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Done):
                    answered = True
                    return
                if isinstance(item, ProviderError):
                    raise item
                yield item
        finally:
            await finish(_cleanup(client, worker, scratch, graceful=answered))

    def _options(self, request: ChatRequest, scratch: Path, stderr: Tail) -> ClaudeAgentOptions:
        assert self._token is not None
        return ClaudeAgentOptions(
            model=request.model or self.default_model,
            system_prompt=request.system,
            cli_path=self._cli_path,
            cwd=scratch,
            env={TOKEN_ENV: self._token, "CLAUDE_CONFIG_DIR": str(scratch / ".claude")},
            tools=[],
            allowed_tools=[],
            disallowed_tools=DENIED_TOOLS,
            permission_mode="dontAsk",
            setting_sources=[],
            strict_mcp_config=True,
            include_partial_messages=True,
            stderr=stderr.add,
        )


async def _drive(
    client: ClaudeSDKClient, prompt: str, queue: asyncio.Queue[_Item], stderr: Tail
) -> None:
    """Run one exchange and put text deltas, then _Done or a ProviderError, on the queue."""
    try:
        await client.connect()
        await client.query(prompt)
        await _relay(client, queue)
    except ProviderError as exc:
        queue.put_nowait(exc)
    except Exception as exc:  # everything the SDK raises ends as one of ours
        queue.put_nowait(_map_sdk_error(exc, stderr.text()))
    finally:
        # Never leave the reader waiting; after a _Done or an error this is never read.
        queue.put_nowait(ProviderCrashed("claude: the adapter stopped unexpectedly"))
        with contextlib.suppress(Exception):
            await client.disconnect()


async def _relay(client: ClaudeSDKClient, queue: asyncio.Queue[_Item]) -> None:
    streamed = False
    async for message in client.receive_response():
        if isinstance(message, StreamEvent):
            text = _delta_text(message.event)
            if text:
                streamed = True
                queue.put_nowait(text)
        elif isinstance(message, AssistantMessage):
            if message.error == "authentication_failed":
                raise ProviderAuthError("claude: the CLI rejected the OAuth token")
            if message.error:
                raise ProviderError(f"claude: the API answered {message.error}")
            if not streamed:  # no partial messages came: send the whole text at once
                for block in message.content:
                    if isinstance(block, TextBlock) and block.text:
                        queue.put_nowait(block.text)
            streamed = False
        elif isinstance(message, ResultMessage):
            if message.is_error:
                raise _result_failure(message.result or " ".join(message.errors or []))
            if message.usage:
                queue.put_nowait(usage_of(message.usage))
            queue.put_nowait(_Done())
            return
    raise ProviderCrashed("claude: the CLI ended without a result")


def _delta_text(event: dict[str, Any]) -> str | None:
    if event.get("type") != "content_block_delta":
        return None
    delta = event.get("delta") or {}
    text = delta.get("text") if delta.get("type") == "text_delta" else None
    return text if isinstance(text, str) else None


def _result_failure(detail: str) -> ProviderError:
    """An error result; auth failures arrive structured (``AssistantMessage.error``), so this
    is a category for the client and the text for the log."""
    log.warning("claude reported an error: %s", safe_detail(detail))
    return ProviderError("claude: the provider reported an error")


def _map_sdk_error(exc: Exception, stderr: str) -> ProviderError:
    """Sort SDK failures into the base.py tree; messages stay free of secrets and stderr."""
    if isinstance(exc, CLINotFoundError):
        return ProviderNotConfigured("claude: the Claude Code CLI was not found")
    if isinstance(exc, ProcessError):  # classified by its exit status, not its stderr words
        log.warning("claude CLI failed: %s | %s", safe_detail(str(exc)), safe_detail(stderr))
        return ProviderCrashed(f"claude: the CLI exited with status {exc.exit_code}")
    if isinstance(exc, CLIJSONDecodeError):
        return ProviderCrashed("claude: the CLI wrote output that is not valid JSON")
    if isinstance(exc, CLIConnectionError | ClaudeSDKError):
        log.warning("claude CLI failed: %s", safe_detail(str(exc)))
        return ProviderCrashed("claude: lost the connection to the CLI")
    log.warning("claude adapter failed: %s", safe_detail(repr(exc)))
    return ProviderError("claude: unexpected failure")


async def _cleanup(
    client: ClaudeSDKClient, worker: asyncio.Task[None], scratch: Path, *, graceful: bool
) -> None:
    try:
        await _stop(client, worker, graceful=graceful)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def _stop(client: ClaudeSDKClient, worker: asyncio.Task[None], *, graceful: bool) -> None:
    """Let a finished CLI exit on its own briefly; otherwise kill its tree, then the worker."""
    loop = asyncio.get_running_loop()
    if graceful:
        await asyncio.wait([worker], timeout=_GRACEFUL_EXIT_S)
    killed: set[int] = set()
    deadline = loop.time() + _WORKER_GRACE_S
    # Looping covers a close that comes before the SDK has even spawned the CLI.
    while not worker.done() and loop.time() < deadline:
        pid = _cli_pid(client)
        if pid is not None and pid not in killed:
            killed.add(pid)
            await kill_tree(pid)
        await asyncio.wait([worker], timeout=0.1)
    if not worker.done():
        worker.cancel()
        await asyncio.wait([worker], timeout=_WORKER_GRACE_S)


def _cli_pid(client: ClaudeSDKClient) -> int | None:
    """The CLI's PID. The SDK keeps its process private, hence the defensive lookup."""
    transport = getattr(client, "_transport", None)
    process = getattr(transport, "_process", None)
    pid = getattr(process, "pid", None)
    return pid if isinstance(pid, int) else None


def usage_of(usage: dict[str, Any]) -> Usage:
    """Tokens from the CLI's ``result``: every input token (fresh, cache writes, cache reads:
    all count against the subscription's use) and the output tokens."""

    def count(key: str) -> int:
        value = usage.get(key)
        return value if isinstance(value, int) and value > 0 else 0

    tokens_in = sum(
        count(k) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return Usage(tokens_in=tokens_in, tokens_out=count("output_tokens"))
