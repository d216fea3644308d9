"""One chat turn, shared by REST, OpenAI and MCP: resolve the session, call, record the turns.

Everything that can fail before the first byte (unknown session, store down, wrong provider)
fails in ``prepare`` so streaming endpoints can still answer with an honest status code.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass

from llmhub_gateway.metrics import Metrics
from llmhub_gateway.providers.base import (
    ChatRequest,
    Provider,
    ProviderError,
    ProviderNotConfigured,
    ProviderTimeout,
    Turn,
)
from llmhub_gateway.registry import Registry
from llmhub_gateway.sessions.base import SessionStore


class SessionNotFound(LookupError):
    """The client named a session this gateway does not know (404)."""


class SessionConflict(ValueError):
    """The session belongs to another provider (400)."""


@dataclass(frozen=True, slots=True)
class ChatResult:
    session_id: str
    provider: str
    model: str
    text: str
    duration_ms: int

    def as_dict(self) -> dict[str, str | int]:
        """Cheaper than dataclasses.asdict (no deep copy) on the hot path."""
        return {
            "session_id": self.session_id,
            "provider": self.provider,
            "model": self.model,
            "text": self.text,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True, slots=True)
class PreparedChat:
    provider: Provider
    request: ChatRequest
    persist: bool


class ChatService:
    def __init__(self, registry: Registry, store: SessionStore, metrics: Metrics) -> None:
        self.registry = registry
        self.store = store
        self.metrics = metrics

    async def prepare(
        self,
        *,
        provider: str,
        prompt: str,
        session_id: str | None = None,
        model: str | None = None,
        system: str | None = None,
    ) -> PreparedChat:
        """Find or create the session and build the provider request with its history."""
        adapter = self.registry.get(provider)
        if not adapter.configured():  # before a session is created for nothing
            raise ProviderNotConfigured(f"provider '{adapter.name}' has no credential configured")
        history: Sequence[Turn] = ()
        if session_id is None:
            session_id = str(uuid.uuid4())
            await self.store.create(session_id, adapter.name, model or adapter.default_model)
        else:
            session = await self.store.get(session_id)
            if session is None:
                raise SessionNotFound(f"session '{session_id}' not found")
            if session.provider != adapter.name:
                raise SessionConflict(
                    f"session '{session_id}' belongs to provider '{session.provider}'"
                )
            history = session.turns
        request = ChatRequest(
            prompt=prompt,
            model=model or adapter.default_model,
            session_id=session_id,
            history=tuple(history),
            system=system,
        )
        return PreparedChat(adapter, request, persist=True)

    def prepare_stateless(
        self,
        *,
        provider: Provider,
        prompt: str,
        history: Sequence[Turn],
        model: str,
        system: str | None,
    ) -> PreparedChat:
        """For OpenAI clients, who send the whole history each time: nothing is stored."""
        request = ChatRequest(
            prompt=prompt,
            model=model,
            session_id=str(uuid.uuid4()),
            history=tuple(history),
            system=system,
        )
        return PreparedChat(provider, request, persist=False)

    async def stream(self, chat: PreparedChat) -> AsyncGenerator[str, None]:
        """Yield deltas; closing this generator early closes the provider stream (kills the CLI)."""
        parts: list[str] = []
        with self.metrics.provider_call(chat.provider.name) as call:
            try:
                async with closing(chat.provider.stream(chat.request)) as deltas:
                    async for delta in deltas:
                        parts.append(delta)
                        yield delta
            except ProviderError as exc:
                call["outcome"] = outcome_of(exc)
                raise
            call["outcome"] = "ok"
        if chat.persist:
            await self.store.append(
                chat.request.session_id,
                (Turn("user", chat.request.prompt), Turn("assistant", "".join(parts))),
                chat.request.model,
            )

    async def complete(self, chat: PreparedChat) -> ChatResult:
        """Run the whole turn and return the full answer."""
        started = time.perf_counter()
        async with aclosing(self.stream(chat)) as deltas:
            parts = [delta async for delta in deltas]
        return self.result(chat, "".join(parts), started)

    def result(self, chat: PreparedChat, text: str, started: float) -> ChatResult:
        return ChatResult(
            session_id=chat.request.session_id,
            provider=chat.provider.name,
            model=chat.request.model,
            text=text,
            duration_ms=int((time.perf_counter() - started) * 1000),
        )


@asynccontextmanager
async def closing(stream: AsyncIterator[str]) -> AsyncIterator[AsyncIterator[str]]:
    """Always close a provider stream (the protocol types it as a plain AsyncIterator)."""
    try:
        yield stream
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def outcome_of(exc: BaseException) -> str:
    """Metric label for a failed call."""
    if isinstance(exc, ProviderTimeout):
        return "timeout"
    if isinstance(exc, ProviderError):
        return exc.error_type
    return "error"
