"""What the Claude CLI says, as the adapter's stream items and errors.

``_items`` is the one place where an SDK message becomes text deltas, usage, the CLI's session
id or a rate-limit notice; failures become the base.py error tree with a client-safe message,
while the CLI's own words go to the log, redacted.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeSDKClient,
    ClaudeSDKError,
    CLIConnectionError,
    CLIJSONDecodeError,
    CLINotFoundError,
    ProcessError,
    RateLimitEvent,
    ResultMessage,
    SystemMessage,
    TextBlock,
)
from claude_agent_sdk.types import Message, StreamEvent

from llmhub_gateway.providers.base import (
    NativeSession,
    ProviderAccountUnsupported,
    ProviderAuthError,
    ProviderCrashed,
    ProviderError,
    ProviderNotConfigured,
    ProviderRateLimited,
    RateLimitNotice,
    StreamItem,
    Usage,
)
from llmhub_gateway.providers.diagnostics import safe_detail

log = logging.getLogger("llmhub_gateway.providers.claude")

# Network failures the CLI names in its own error text (Node's error codes): the API is out of
# reach, which the client should hear instead of a bare "server_error".
_NETWORK = re.compile(r"\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH)\b")
_RESET_AT = re.compile(r"\|(\d{10})\b")  # "Claude AI usage limit reached|1767225600"


@dataclass(frozen=True, slots=True)
class Done:
    """End of the answer."""


@dataclass(frozen=True, slots=True)
class MirrorLost:
    """The SDK could not mirror part of this session's transcript into the session store: the
    stored copy is incomplete, so no other CLI may resume from it."""

    session_id: str


Item = StreamItem | ProviderError | Done | MirrorLost
# Between the parts of a native handle (the CLI's session id, the transcript's last entry).
_HANDLE_SEP = "#"


def native_handle(session_id: str, tail: str | None, turns: int | None = None) -> str:
    """What the gateway stores as a turn's native session: the CLI's session id, the uuid of
    the last transcript entry the turn wrote and the number of history turns (user and
    assistant) the session held after it, so a later resume can check that the stored
    transcript ends exactly there and that no committed turn is missing from it."""
    if not tail:
        return session_id
    suffix = f"{_HANDLE_SEP}{turns}" if turns is not None else ""
    return f"{session_id}{_HANDLE_SEP}{tail}{suffix}"


def parse_handle(handle: str) -> tuple[str, str | None, int | None]:
    """(session id, last entry uuid, history turns); None for parts a handle does not have
    (stored before handles had them)."""
    session, _, rest = handle.partition(_HANDLE_SEP)
    tail, _, turns = rest.partition(_HANDLE_SEP)
    return session, tail or None, int(turns) if turns.isdigit() else None


def _items(
    message: Message, *, streamed: bool, tail: str | None = None
) -> list[StreamItem | Done | MirrorLost]:
    """The stream items of one SDK message; ``streamed``: this answer's text already came as
    deltas (so a whole assistant message would repeat it); ``tail``: the uuid of the turn's
    last assistant message. Raises the error a failure maps to."""
    if isinstance(message, StreamEvent):
        text = _delta_text(message.event)
        return [text] if text else []
    if isinstance(message, AssistantMessage):
        if message.error:
            raise _assistant_failure(message)
        if streamed:
            return []
        return [b.text for b in message.content if isinstance(b, TextBlock) and b.text]
    if isinstance(message, RateLimitEvent):
        info = message.rate_limit_info
        return [
            RateLimitNotice(
                status=info.status,
                resets_at=_seconds(info.resets_at),
                rate_limit_type=info.rate_limit_type,
                utilization=info.utilization,
                overage_status=info.overage_status,
                overage_resets_at=_seconds(info.overage_resets_at),
            )
        ]
    if isinstance(message, ResultMessage):
        if message.is_error:
            raise _result_failure(message.result or " ".join(message.errors or []))
        handle = native_handle(message.session_id, tail)
        found: list[StreamItem | Done | MirrorLost] = [NativeSession(handle)]
        if message.usage:
            found.append(usage_of(message.usage))
        return [*found, Done()]
    if isinstance(message, SystemMessage) and message.subtype == "mirror_error":
        log.warning("claude: the session store lost transcript lines: %s", _mirror_detail(message))
        session = message.data.get("session_id")
        return [MirrorLost(session)] if isinstance(session, str) and session else []
    return []


def _mirror_detail(message: SystemMessage) -> str:
    return safe_detail(str(message.data.get("error", "")))


async def relay(client: ClaudeSDKClient, out: asyncio.Queue[Item]) -> None:
    """One turn's messages onto ``out``, ending with ``Done`` (errors raise)."""
    streamed = False
    tail: str | None = None
    async for message in client.receive_response():
        if isinstance(message, AssistantMessage) and message.uuid:
            tail = message.uuid
        for item in _items(message, streamed=streamed, tail=tail):
            out.put_nowait(item)
            if isinstance(item, Done):
                return
            if isinstance(item, str) and isinstance(message, StreamEvent):
                streamed = True
        if isinstance(message, AssistantMessage):
            streamed = False
    raise ProviderCrashed("claude: the CLI ended without a result")


def _seconds(value: float | None) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _delta_text(event: dict[str, Any]) -> str | None:
    if event.get("type") != "content_block_delta":
        return None
    delta = event.get("delta") or {}
    text = delta.get("text") if delta.get("type") == "text_delta" else None
    return text if isinstance(text, str) else None


def _assistant_text(message: AssistantMessage) -> str:
    return " ".join(b.text for b in message.content if isinstance(b, TextBlock))


def _assistant_failure(message: AssistantMessage) -> ProviderError:
    """The CLI's structured error code picks the category; its text goes to the log (and
    names a network failure, the one detail clients need to act on)."""
    text = _assistant_text(message)
    log.warning("claude reported %s: %s", message.error, safe_detail(text))
    if message.error == "authentication_failed":
        return ProviderAuthError("claude: the CLI rejected the OAuth token")
    if message.error == "rate_limit":
        reset = _RESET_AT.search(text)
        return ProviderRateLimited(
            "claude: the subscription's usage limit is reached", retry_after=_retry_after(reset)
        )
    if message.error == "billing_error":
        return ProviderAccountUnsupported("claude: the account's plan or billing refused the call")
    network = _NETWORK.search(text)
    if network:
        return ProviderError(f"claude: cannot reach the Anthropic API ({network.group(1)})")
    return ProviderError(f"claude: the API answered {message.error}")


def _retry_after(reset: re.Match[str] | None) -> int:
    if reset is None:
        return 60
    return max(1, min(int(reset.group(1)) - int(time.time()), 7 * 86400))


def _result_failure(detail: str) -> ProviderError:
    """An error result without a structured assistant error: a category for the client (a
    network failure named), the text for the log."""
    log.warning("claude reported an error: %s", safe_detail(detail))
    network = _NETWORK.search(detail)
    if network:
        return ProviderError(f"claude: cannot reach the Anthropic API ({network.group(1)})")
    return ProviderError("claude: the provider reported an error")


def map_sdk_error(exc: BaseException, stderr: str) -> ProviderError:
    """Sort SDK failures into the base.py tree; messages stay free of secrets and stderr."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, CLINotFoundError):
        return ProviderNotConfigured("claude: the Claude Code CLI was not found")
    if isinstance(exc, ProcessError):  # classified by its exit status, not its stderr words
        log.warning("claude CLI failed: %s | %s", safe_detail(str(exc)), safe_detail(stderr))
        return ProviderCrashed(f"claude: the CLI exited with status {exc.exit_code}")
    if isinstance(exc, CLIJSONDecodeError):
        return ProviderCrashed("claude: the CLI wrote output that is not valid JSON")
    if isinstance(exc, CLIConnectionError | ClaudeSDKError):
        log.warning("claude CLI failed: %s | %s", safe_detail(str(exc)), safe_detail(stderr))
        return ProviderCrashed("claude: lost the connection to the CLI")
    log.warning("claude adapter failed: %s | %s", safe_detail(repr(exc)), safe_detail(stderr))
    return ProviderError("claude: unexpected failure")


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
