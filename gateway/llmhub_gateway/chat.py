"""The turn runner, shared by REST JSON, REST SSE, OpenAI chunks and MCP.

``prepare`` does everything that can fail before the first byte (draining, bad ids or text,
unknown session, store down, wrong provider, session busy, the session's caps on bytes and
turns, caller and subscription limits, the provider's capacity through its optional ``admit``,
which claims a slot or process), so streaming endpoints can still answer
with an honest status code. ``run`` then yields the answer's deltas (``str``),
``HEARTBEAT`` while the provider is silent (when asked), and finally the ``ChatResult``; it
raises only ``errors.GatewayError`` subclasses (or CancelledError). The edges format these.

One turn at a time per session: ``prepare`` takes the session's lease (across replicas with
Redis) or raises SessionBusy; the keeper renews it while the provider answers. The turn ends
with the store's atomic ``commit`` (lease held, session still there, turn id not yet stored);
a turn that lost its lease is cancelled at once and never written; a session deleted during
the turn refuses the commit (404, nothing resurrected). With an Idempotency-Key the turn id is
stable, so a retried request gets the stored answer without running the provider again, and a
commit whose reply was lost is retried safely. A lease whose stream never starts (the client
left in between) expires by itself after the lease time.

With masking on (``masking/``, MASKING_*), ``prepare`` hands the provider a request whose
system text, history and prompt are masked, and ``run`` unmasks the answer's deltas before
anything is yielded; the store keeps the caller's clear text.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Final

from llmhub_gateway.auth.principal import ANONYMOUS, Principal
from llmhub_gateway.drain import Drain
from llmhub_gateway.errors import (
    GatewayError,
    IdempotencyKeyReused,
    LeaseLost,
    SessionBusy,
    SessionConflict,
    SessionNotFound,
    ShuttingDown,
)
from llmhub_gateway.lease import Keeper, Lease
from llmhub_gateway.limits.base import Limiter, Limits, Slot
from llmhub_gateway.limits.memory import MemoryLimiter
from llmhub_gateway.masking.stage import MaskedTurn, MaskingStage
from llmhub_gateway.masking.store import MemoryMaskStore
from llmhub_gateway.metrics import Metrics
from llmhub_gateway.providers.base import (
    ChatRequest,
    NativeSession,
    Provider,
    ProviderError,
    ProviderNotConfigured,
    ProviderTimeout,
    RateLimitNotice,
    StreamItem,
    Turn,
    Usage,
)
from llmhub_gateway.providers.procs import background, finish
from llmhub_gateway.registry import Registry
from llmhub_gateway.sessions.base import (
    CommitOutcome,
    SessionStore,
    StoredTurn,
    StoreUnavailable,
    TurnRecord,
    may_access,
)
from llmhub_gateway.sessions.caps import SessionCaps
from llmhub_gateway.sessions.ids import new_session_id, parse_session_id, turn_id
from llmhub_gateway.subscription_state import (
    MemorySubscriptionState,
    SubscriptionGuard,
    SubscriptionState,
)
from llmhub_gateway.text_rules import MAX_PROMPT_BYTES, check_model, check_text
from llmhub_gateway.usage import Accounting

log = logging.getLogger(__name__)
LEASE_S = 30.0  # renewed every third of it while a turn runs
COMMIT_ATTEMPTS = 3  # a commit whose reply was lost is retried; the turn id makes that safe
COMMIT_RETRY_S = 0.2
NO_USAGE: Final = Usage()
ANONYMOUS_CALLER: Final = Principal(ANONYMOUS, "none", label=ANONYMOUS)


class _Heartbeat:
    __slots__ = ()

    def __repr__(self) -> str:
        return "HEARTBEAT"


HEARTBEAT: Final = _Heartbeat()
_END: Final = object()
_LOST: Final = object()
_SHUTDOWN: Final = object()


@dataclass(frozen=True, slots=True)
class ChatResult:
    session_id: str
    provider: str
    model: str
    text: str
    duration_ms: int
    usage: Usage = NO_USAGE  # as the provider reported it (zeros when it reports nothing)

    def as_dict(self) -> dict[str, str | int | dict[str, int]]:
        """Cheaper than dataclasses.asdict (no deep copy) on the hot path. ``usage`` is what
        the provider reported for this turn (zeros for a replayed answer: nothing ran)."""
        return {
            "session_id": self.session_id,
            "provider": self.provider,
            "model": self.model,
            "text": self.text,
            "duration_ms": self.duration_ms,
            "usage": {"tokens_in": self.usage.tokens_in, "tokens_out": self.usage.tokens_out},
        }


@dataclass(frozen=True, slots=True)
class PreparedChat:
    provider: Provider
    request: ChatRequest
    persist: bool
    lease: Lease | None = None
    turn_id: str = ""
    fingerprint: str = ""
    replay: StoredTurn | None = None  # a retried turn: its stored answer, no provider call
    caller: Principal = ANONYMOUS_CALLER
    slot: Slot | None = None  # the caller's and subscription's concurrency slot
    masked: MaskedTurn | None = None  # masking on: ``request`` is masked, this puts it back


Event = str | _Heartbeat | ChatResult


class ChatService:
    def __init__(
        self,
        registry: Registry,
        store: SessionStore,
        metrics: Metrics,
        lease_s: float = LEASE_S,
        drain: Drain | None = None,
        limiter: Limiter | None = None,
        subscriptions: SubscriptionState | None = None,
        allow_overage: bool = False,
        max_prompt_bytes: int = MAX_PROMPT_BYTES,
        admins: frozenset[str] = frozenset(),
        caps: SessionCaps | None = None,
        masking: MaskingStage | None = None,
    ) -> None:
        # Off unless configured (MASKING_*); the session store stays clear text (stage.py).
        self.masking = masking or MaskingStage(None, MemoryMaskStore(1), metrics)
        self.max_prompt_bytes = max_prompt_bytes
        self.caps = caps or SessionCaps()  # SESSION_MAX_BYTES / SESSION_MAX_TURNS
        self.admins = admins  # callers who may use any caller's session (AUTH_ADMIN_CALLERS)
        self.registry = registry
        self.store = store
        self.metrics = metrics
        self.lease_s = lease_s
        self.drain = drain or Drain()
        self.limiter: Limiter = limiter or MemoryLimiter(Limits())
        self.accounting = Accounting(self.limiter, metrics)
        self.subscriptions = SubscriptionGuard(
            subscriptions or MemorySubscriptionState(), metrics, allow_overage
        )

    async def prepare(
        self,
        *,
        provider: str,
        prompt: str,
        session_id: str | None = None,
        model: str | None = None,
        system: str | None = None,
        idempotency_key: str | None = None,
        caller: Principal = ANONYMOUS_CALLER,
    ) -> PreparedChat:
        """Admit the caller (limits), find or create the session, take its lease and build
        the request with its history (or find the stored answer of a retried turn)."""
        self.drain.check()
        adapter = self.registry.get(provider)
        check_text(prompt, system or "", max_bytes=self.max_prompt_bytes)
        if session_id is not None:
            session_id = parse_session_id(session_id)
        if model is not None:
            check_model(model)
        if not adapter.configured():  # before a session is created for nothing
            raise ProviderNotConfigured(f"provider '{adapter.name}' has no credential configured")
        model = model or adapter.default_model
        await self._check_subscription(caller, adapter.name, model, session_id)
        slot = await self._admit(caller, adapter.name, model, session_id)
        try:
            return await self._prepare(
                adapter, prompt, session_id, model, system, idempotency_key, caller, slot
            )
        except BaseException as exc:
            await finish(self.limiter.release(slot))
            if isinstance(exc, GatewayError):
                self.accounting.refused(caller, adapter.name, model, session_id, exc)
            raise

    async def _check_subscription(
        self, caller: Principal, provider: str, model: str, session_id: str | None
    ) -> None:
        """Refuse before anything is spawned while the subscription's reported state says
        a turn is doomed (rate-limited) or would be billed as overage (subscription_state)."""
        try:
            await self.subscriptions.check(provider)
        except GatewayError as exc:
            self.accounting.refused(caller, provider, model, session_id, exc)
            raise

    async def _admit(
        self, caller: Principal, provider: str, model: str, session_id: str | None
    ) -> Slot:
        try:
            return await self.limiter.acquire(caller.name, provider)
        except GatewayError as exc:
            self.accounting.refused(caller, provider, model, session_id, exc)
            raise

    async def _prepare(
        self,
        adapter: Provider,
        prompt: str,
        session_id: str | None,
        model: str,
        system: str | None,
        idempotency_key: str | None,
        caller: Principal,
        slot: Slot,
    ) -> PreparedChat:
        principal = caller.name
        tid = turn_id(principal, idempotency_key)
        fingerprint = _fingerprint(adapter.name, model, system, prompt)
        created = False
        if session_id is None:
            session_id = new_session_id(principal, idempotency_key)
            created = await self.store.create(session_id, adapter.name, model, principal)
        if not created and not may_access(
            await self.store.owner(session_id), principal, self.admins
        ):
            # Before the lease: another caller's session is never locked, busy or revealed.
            raise SessionNotFound(f"session '{session_id}' not found")
        lease = await self._lease(session_id)
        history: Sequence[Turn] = ()
        native: str | None = None
        replay = None
        try:
            if not created:  # a continuation, or the retry of a first turn
                session = await self.store.get(session_id)
                if session is None:
                    raise SessionNotFound(f"session '{session_id}' not found")
                if session.provider != adapter.name:
                    raise SessionConflict(
                        f"session '{session_id}' belongs to provider '{session.provider}'"
                    )
                history = session.turns
                native = session.native
                if idempotency_key is not None:
                    replay = await self.store.recorded(session_id, tid)
                if replay is None:  # a retry gets its stored answer even at the cap
                    self.caps.check(history, prompt, system or "")
            if replay is not None:
                if replay.fingerprint != fingerprint:
                    raise IdempotencyKeyReused(
                        "this Idempotency-Key was used for a different request on this session"
                    )
                await finish(self._release(lease))
        except BaseException:
            await finish(self._release(lease))
            raise
        request = ChatRequest(
            prompt=prompt,
            model=model,
            session_id=session_id,
            history=tuple(history),
            system=system,
            native_session=native,
        )
        masked = None
        if replay is None:  # a stored answer needs no provider slot
            try:
                request, masked = await self.masking.mask(request, adapter.name, stored=True)
                admit_provider(adapter, request)
            except BaseException:
                await finish(self._release(lease))
                if created:  # refused before its first turn: leave no empty session behind
                    await finish(self._forget(session_id))
                raise
        return PreparedChat(
            adapter,
            request,
            persist=True,
            lease=None if replay is not None else lease,
            turn_id=tid,
            fingerprint=fingerprint,
            replay=replay,
            caller=caller,
            slot=slot,
            masked=masked,
        )

    async def abandon(self, chat: PreparedChat) -> None:
        """A prepared turn that will never run (the request was refused after it was
        prepared): free its session lease, provider slot and limit slot now."""
        await finish(self._release(chat.lease))
        withdraw_provider(chat.provider, chat.request)
        if chat.slot is not None:
            await finish(self.limiter.release(chat.slot))

    async def _forget(self, session_id: str) -> None:
        try:
            await self.store.delete(session_id)
            await self.masking.forget(session_id)
        except StoreUnavailable:
            log.warning("could not remove a refused new session; it expires by itself")

    async def _lease(self, session_id: str) -> Lease:
        lease = Lease(session_id, secrets.token_hex(16))
        if not await self.store.lock(session_id, lease.token, int(self.lease_s * 1000)):
            raise SessionBusy(f"session '{session_id}' is answering another request")
        return lease

    async def _release(self, lease: Lease | None, keeper: Keeper | None = None) -> None:
        if keeper is not None:
            await keeper.stop()
        if lease is None:
            return
        try:
            await self.store.unlock(lease.session_id, lease.token)
        except StoreUnavailable:
            log.warning("could not release a session's turn lease; it expires by itself")

    async def prepare_stateless(
        self,
        *,
        provider: Provider,
        prompt: str,
        history: Sequence[Turn],
        model: str,
        system: str | None,
        caller: Principal = ANONYMOUS_CALLER,
    ) -> PreparedChat:
        """For OpenAI clients, who send the whole history each time: nothing is stored."""
        self.drain.check()
        check_model(model)
        check_text(
            prompt,
            system or "",
            *(turn.text for turn in history),
            max_bytes=self.max_prompt_bytes,
        )
        self.caps.check(history, prompt, system or "")
        await self._check_subscription(caller, provider.name, model, None)
        slot = await self._admit(caller, provider.name, model, None)
        request = ChatRequest(
            prompt=prompt,
            model=model,
            session_id=new_session_id("", None),
            history=tuple(history),
            system=system,
            stateless=True,
        )
        try:
            request, masked = await self.masking.mask(request, provider.name, stored=False)
            admit_provider(provider, request)
        except BaseException as exc:
            await finish(self.limiter.release(slot))
            if isinstance(exc, GatewayError):
                self.accounting.refused(caller, provider.name, model, None, exc)
            raise
        return PreparedChat(
            provider, request, persist=False, caller=caller, slot=slot, masked=masked
        )

    async def run(
        self, chat: PreparedChat, heartbeat_s: float | None = None
    ) -> AsyncGenerator[Event, None]:
        """Deltas, HEARTBEAT every ``heartbeat_s`` of provider silence, then the ChatResult.

        Closing this generator early (client gone) cancels the provider call (the adapter
        kills its CLI) and releases the lease; nothing is stored. However the turn ends, its
        limit slot is released and it is accounted (usage, audit line, token metric).
        """
        started = time.perf_counter()
        status = "client_closed_request"
        result: ChatResult | None = None
        try:
            async with aclosing(self._turn(chat, heartbeat_s)) as events:
                async for item in events:
                    if isinstance(item, ChatResult):  # the last item: the turn is done
                        result, status = item, "ok"
                    yield item
        except GatewayError as exc:
            status = exc.error_type
            raise
        finally:
            duration_ms = int((time.perf_counter() - started) * 1000)
            # One task: in a cancelled scope every further await is cancelled again.
            await finish(self._settle(chat, result, status, duration_ms))

    async def _settle(
        self, chat: PreparedChat, result: ChatResult | None, status: str, duration_ms: int
    ) -> None:
        withdraw_provider(chat.provider, chat.request)  # a slot whose stream never ran
        if chat.slot is not None:
            await self.limiter.release(chat.slot)
        await self.accounting.finished(chat, result, status, duration_ms)

    async def _turn(
        self, chat: PreparedChat, heartbeat_s: float | None
    ) -> AsyncGenerator[Event, None]:
        started = time.perf_counter()
        usage: list[Usage] = []
        native: list[str] = []  # the CLI's session id, if it reported one
        if chat.replay is not None:
            yield chat.replay.text
            yield ChatResult(
                chat.request.session_id,
                chat.provider.name,
                chat.replay.model,
                chat.replay.text,
                chat.replay.duration_ms,
            )
            return
        if self.drain.draining:  # prepared just before the drain began: never started
            await finish(self._release(chat.lease))
            self.drain.check()
        queue: asyncio.Queue[object] = asyncio.Queue()
        handle = self.drain.add(lambda: queue.put_nowait(_SHUTDOWN))
        keeper = None
        if chat.lease is not None:
            keeper = Keeper(self.store, chat.lease, self.lease_s, lambda: queue.put_nowait(_LOST))
        pump = asyncio.create_task(self._pump(chat, queue, usage, native))
        commit: asyncio.Task[bool] | None = None
        unmasker = chat.masked.unmasker() if chat.masked is not None else None
        try:
            parts: list[str] = []
            while True:
                if heartbeat_s is None:
                    item = await queue.get()
                else:
                    try:
                        async with asyncio.timeout(heartbeat_s):
                            item = await queue.get()
                    except TimeoutError:
                        yield HEARTBEAT
                        continue
                if isinstance(item, str):
                    if unmasker is not None:
                        item = unmasker.feed(item)  # a placeholder is never sent half
                        if not item:
                            continue
                    parts.append(item)
                    yield item
                elif item is _END:
                    tail = unmasker.flush() if unmasker is not None else ""
                    if tail:
                        parts.append(tail)
                        yield tail
                    break
                elif item is _LOST:
                    raise LeaseLost(
                        f"session '{chat.request.session_id}' was taken over while this turn "
                        "ran (store failover or partition); the turn was cancelled, not stored"
                    )
                elif item is _SHUTDOWN:
                    raise ShuttingDown(
                        "this gateway replica is shutting down; the turn was stopped and not "
                        "stored; retry on another replica"
                    )
                elif isinstance(item, BaseException):
                    raise item
            text = "".join(parts)
            duration_ms = int((time.perf_counter() - started) * 1000)
            if chat.persist and chat.lease is not None:
                if keeper is not None:
                    await keeper.stop()
                # A client leaving now does not cut the commit off: it runs to its end, and
                # the lease is released only after it (a retry may find the answer).
                commit = background(
                    self._commit(chat, chat.lease, text, duration_ms, native[-1] if native else "")
                )
                await asyncio.shield(commit)
            yield ChatResult(
                chat.request.session_id,
                chat.provider.name,
                chat.request.model,
                text,
                duration_ms,
                Usage(sum(u.tokens_in for u in usage), sum(u.tokens_out for u in usage)),
            )
        finally:
            self.drain.discard(handle)
            if not pump.done():
                pump.cancel()
            await finish(self._end(pump, chat.lease, keeper, commit))

    async def _end(
        self,
        pump: asyncio.Task[None],
        lease: Lease | None,
        keeper: Keeper | None,
        commit: asyncio.Task[bool] | None,
    ) -> None:
        await asyncio.wait([pump])
        if commit is not None:
            await asyncio.wait([commit])
            if not commit.cancelled() and commit.exception() is None:
                lease = None  # the commit script released it
        await self._release(lease, keeper)

    async def _pump(
        self,
        chat: PreparedChat,
        queue: asyncio.Queue[object],
        usage: list[Usage],
        native: list[str],
    ) -> None:
        """Run the provider stream in its own task, so the runner can wake up for heartbeats,
        a lost lease or a drain while the provider is silent, and cancel it."""
        with self.metrics.provider_call(chat.provider.name) as call:
            try:
                async with closing(chat.provider.stream(chat.request)) as deltas:
                    async for delta in deltas:
                        if isinstance(delta, str):
                            queue.put_nowait(delta)
                        elif isinstance(delta, Usage):
                            usage.append(delta)
                        elif isinstance(delta, NativeSession):
                            native.append(delta.id)
                        elif isinstance(delta, RateLimitNotice):
                            await self.on_rate_limit(chat, delta)
            except asyncio.CancelledError:
                call["outcome"] = "cancelled"
                raise
            except GatewayError as exc:
                call["outcome"] = outcome_of(exc)
                queue.put_nowait(exc)
                return
            except Exception as exc:  # a bug in an adapter: a 500 with a fixed message
                log.error("provider adapter failed: %s", type(exc).__name__, exc_info=exc)
                queue.put_nowait(GatewayError("internal error"))
                return
            call["outcome"] = "ok"
        queue.put_nowait(_END)

    async def on_rate_limit(self, chat: PreparedChat, notice: RateLimitNotice) -> None:
        """The subscription's rate-limit state changed (reported mid-turn by the CLI): shared
        with every replica, so the next turn is refused before it spawns when it must be."""
        await self.subscriptions.observe(chat.provider.name, notice)

    async def _commit(
        self, chat: PreparedChat, lease: Lease, text: str, duration_ms: int, native: str = ""
    ) -> bool:
        record = TurnRecord(
            turn_id=chat.turn_id,
            prompt=chat.masked.prompt if chat.masked is not None else chat.request.prompt,
            text=text,
            model=chat.request.model,
            duration_ms=duration_ms,
            fingerprint=chat.fingerprint,
            native=native,
        )
        sid = chat.request.session_id
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                outcome = await self.store.commit(sid, lease.token, record)
                break
            except StoreUnavailable:
                if attempt == COMMIT_ATTEMPTS:
                    raise
                log.warning("commit of a turn got no reply; retrying (attempt %d)", attempt + 1)
                await asyncio.sleep(COMMIT_RETRY_S * attempt)
        if outcome is CommitOutcome.LEASE_LOST:
            raise LeaseLost(
                f"session '{sid}' lease was lost before the answer could be stored; "
                "the turn was not stored"
            )
        if outcome is CommitOutcome.SESSION_GONE:
            raise SessionNotFound(
                f"session '{sid}' was deleted (or expired) while the turn ran; "
                "the answer was not stored"
            )
        return True

    async def complete(self, chat: PreparedChat) -> ChatResult:
        """Run the whole turn and return the full answer."""
        async with aclosing(self.run(chat)) as events:
            async for item in events:
                if isinstance(item, ChatResult):
                    return item
        raise GatewayError("internal error")  # run() always ends with a result or raises


def admit_provider(provider: Provider, request: ChatRequest) -> None:
    """The provider's optional admission before the first byte: ``admit(request)`` takes a
    concurrency slot (``providers.limits.CappedProvider``) or checks a pool's capacity, raising
    ProviderBusy (429 + Retry-After) while the API can still answer with a status. The slot is
    freed when the run ends (``withdraw(request)`` if its stream never started)."""
    admit = getattr(provider, "admit", None)
    if callable(admit):
        admit(request)


def withdraw_provider(provider: Provider, request: ChatRequest) -> None:
    """Give back what ``admit`` took if the request's stream never claimed it (no-op else)."""
    withdraw = getattr(provider, "withdraw", None)
    if callable(withdraw):
        withdraw(request)


def _fingerprint(provider: str, model: str, system: str | None, prompt: str) -> str:
    digest = hashlib.sha256()
    for part in (provider, model, system or "", prompt):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@asynccontextmanager
async def closing(
    stream: AsyncIterator[StreamItem],
) -> AsyncIterator[AsyncIterator[StreamItem]]:
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
