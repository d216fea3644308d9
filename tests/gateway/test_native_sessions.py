"""The CLI's own session id: reported by an adapter, stored with the turn, handed back on the
next turn (on any replica: it lives in the store), and kept when a turn fails."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from llmhub_gateway.chat import ChatService
from llmhub_gateway.core.config import Settings
from llmhub_gateway.metrics import Metrics
from llmhub_gateway.providers.base import (
    ChatRequest,
    NativeSession,
    ProviderCrashed,
    StreamItem,
)
from llmhub_gateway.registry import Registry
from llmhub_gateway.sessions.base import SessionStore


class NativeProvider:
    """Reports a new native id each turn (``native-<n>``); ``!crash`` fails after reporting."""

    name = "claude"
    default_model = "m"

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    def configured(self) -> bool:
        return True

    def models(self) -> Sequence[str]:
        return ("m",)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        self.requests.append(request)
        yield NativeSession(f"native-{len(self.requests)}")
        if "!crash" in request.prompt:
            raise ProviderCrashed("the CLI exited with status 1")
        yield "ok"

    async def aclose(self) -> None:
        return None


async def test_native_id_reaches_the_next_turn_and_survives_a_failed_one(
    store: SessionStore,
) -> None:
    provider = NativeProvider()
    first = ChatService(Registry([provider], Settings()), store, Metrics())
    result = await first.complete(await first.prepare(provider="claude", prompt="one"))
    assert provider.requests[0].native_session is None
    # Another ChatService on the same store: another replica.
    second = ChatService(Registry([provider], Settings()), store, Metrics())
    chat = await second.prepare(provider="claude", prompt="two", session_id=result.session_id)
    assert chat.request.native_session == "native-1"
    await second.complete(chat)
    failed = await second.prepare(provider="claude", prompt="!crash", session_id=result.session_id)
    with pytest.raises(ProviderCrashed):
        await second.complete(failed)
    # The failed turn's id was never committed: the next turn resumes the last stored one.
    chat = await first.prepare(provider="claude", prompt="four", session_id=result.session_id)
    assert chat.request.native_session == "native-2"
