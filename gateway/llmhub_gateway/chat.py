"""One chat turn, shared by REST, OpenAI and MCP: resolve the session, call, record the turns.

Everything that can fail before the first byte (unknown session, store down, wrong provider,
session busy) fails in ``prepare`` so streaming endpoints can still answer with an honest status
code.

One turn at a time per session: ``prepare`` takes the session's lease in the store (across
replicas with Redis) or raises SessionBusy (409); ``stream`` keeps it renewed while the provider
answers and releases it when the turn ends, however it ends. A lease whose stream never starts
(the client left in between) expires by itself after LEASE_S.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
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
from llmhub_gateway.providers.procs import finish
from llmhub_gateway.registry import Registry
from llmhub_gateway.sessions.base import SessionStore, StoreUnavailable

log = logging.getLogger(__name__)
LEASE_S = 30.0  # renewed every third of it while a turn runs
SESSION_BUSY_RETRY_AFTER_S = 2
KEEPER_GRACE_S = 5.0


class SessionNotFound(LookupError):
    """The client named a session this gateway does not know (404)."""


class SessionConflict(ValueError):
    """The session belongs to another provider (400)."""


class SessionBusy(RuntimeError):
    """Another turn on this session is running, here or on another replica (409)."""

    retry_after = SESSION_BUSY_RETRY_AFTER_S


@dataclass(frozen=True, slots=True)
class Lease:
    session_id: str
    token: str


@dataclass(slots=True)
class _Keeper:
    """Renews a lease while a turn runs. Armed as a timer: the renewing task only exists for
    turns that outlive a third of the lease, so a short turn pays no extra task."""

    stop: asyncio.Event
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task[None] | None = None


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
    lease: Lease | None = None


class ChatService:
    def __init__(
        self, registry: Registry, store: SessionStore, metrics: Metrics, lease_s: float = LEASE_S
    ) -> None:
        self.registry = registry
        self.store = store
        self.metrics = metrics
        self.lease_s = lease_s

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
            lease = await self._lease(session_id)  # its id is announced before the answer
        else:
            lease = await self._lease(session_id)
            try:
                session = await self.store.get(session_id)
                if session is None:
                    raise SessionNotFound(f"session '{session_id}' not found")
                if session.provider != adapter.name:
                    raise SessionConflict(
                        f"session '{session_id}' belongs to provider '{session.provider}'"
                    )
            except BaseException:
                await finish(self._release(lease))
                raise
            history = session.turns
        request = ChatRequest(
            prompt=prompt,
            model=model or adapter.default_model,
            session_id=session_id,
            history=tuple(history),
            system=system,
        )
        return PreparedChat(adapter, request, persist=True, lease=lease)

    async def _lease(self, session_id: str) -> Lease:
        lease = Lease(session_id, secrets.token_hex(16))
        if not await self.store.lock(session_id, lease.token, self._lease_ms):
            raise SessionBusy(f"session '{session_id}' is answering another request")
        return lease

    @property
    def _lease_ms(self) -> int:
        return int(self.lease_s * 1000)

    async def _keep(self, lease: Lease, stop: asyncio.Event) -> None:
        """Renew the lease while the turn runs (a provider may take minutes). It is stopped by
        ``stop``, never cancelled, so no store command is ever cut off half-way."""
        while not stop.is_set():  # started a third of a lease into the turn: renew first
            try:
                if not await self.store.renew(lease.session_id, lease.token, self._lease_ms):
                    log.warning("lost the turn lease of a session")
                    return
            except StoreUnavailable:
                pass  # the store may come back before the lease runs out
            try:
                await asyncio.wait_for(stop.wait(), self.lease_s / 3)
            except TimeoutError:
                continue

    def _arm_keeper(self, lease: Lease) -> _Keeper:
        keeper = _Keeper(asyncio.Event())

        def start() -> None:
            if not keeper.stop.is_set():
                keeper.task = asyncio.create_task(self._keep(lease, keeper.stop))

        keeper.timer = asyncio.get_running_loop().call_later(self.lease_s / 3, start)
        return keeper

    async def _release(self, lease: Lease | None, keeper: _Keeper | None = None) -> None:
        if keeper is not None:
            if keeper.timer is not None:
                keeper.timer.cancel()
            keeper.stop.set()
            if keeper.task is not None:
                _, running = await asyncio.wait([keeper.task], timeout=KEEPER_GRACE_S)
                for task in running:  # a renew stuck past the store's own socket timeout
                    task.cancel()
        if lease is None:
            return
        try:
            await self.store.unlock(lease.session_id, lease.token)
        except StoreUnavailable:
            log.warning("could not release a session's turn lease; it expires by itself")

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
        """Yield deltas; closing this generator early closes the provider stream (kills the CLI)
        and releases the session's lease."""
        keeper = None
        if chat.lease is not None:
            keeper = self._arm_keeper(chat.lease)
        try:
            async with aclosing(self._turn(chat)) as deltas:
                async for delta in deltas:
                    yield delta
        finally:
            await finish(self._release(chat.lease, keeper))

    async def _turn(self, chat: PreparedChat) -> AsyncGenerator[str, None]:
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
