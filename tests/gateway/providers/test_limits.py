"""CappedProvider: concurrency cap without a queue, one deadline per stream, inner always closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from llmhub_gateway.providers.base import (
    ChatRequest,
    Provider,
    ProviderBusy,
    ProviderCrashed,
    ProviderTimeout,
)
from llmhub_gateway.providers.limits import CappedProvider
from llmhub_gateway.providers.procs import finish
from tests.gateway.providers.conftest import chat, collect, consume_until_anyio_cancels


class Ticker:
    """A real Provider yielding ``count`` deltas ``every`` seconds; records what was closed."""

    name = "ticker"
    default_model = "tick-1"

    def __init__(self, *, every: float = 0.0, count: int = 3, fail_at: int | None = None) -> None:
        self.every, self.count, self.fail_at = every, count, fail_at
        self.closed: list[str] = []
        self.shut = False

    def configured(self) -> bool:
        return True

    def models(self) -> Sequence[str]:
        return ("tick-1", "tick-2")

    async def aclose(self) -> None:
        self.shut = True

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        try:
            for i in range(self.count):
                if i == self.fail_at:
                    raise ProviderCrashed("ticker broke")
                await asyncio.sleep(self.every)
                yield f"{request.prompt}-{i}"
        finally:
            self.closed.append(request.prompt)


def test_a_limited_provider_is_a_provider_and_delegates() -> None:
    inner = Ticker()
    limited = CappedProvider(inner, max_concurrency=2, timeout_s=5)
    assert isinstance(limited, Provider)
    assert (limited.name, limited.default_model) == ("ticker", "tick-1")
    assert limited.configured()
    assert list(limited.models()) == ["tick-1", "tick-2"]
    asyncio.run(limited.aclose())
    assert inner.shut


async def test_answers_pass_through_and_the_slot_is_released() -> None:
    inner = Ticker()
    limited = CappedProvider(inner, max_concurrency=1, timeout_s=5)
    assert await collect(limited, chat("a")) == ["a-0", "a-1", "a-2"]
    assert await collect(limited, chat("b")) == ["b-0", "b-1", "b-2"]
    assert limited.active == 0
    assert inner.closed == ["a", "b"]


async def test_beyond_the_cap_requests_fail_at_once_and_are_accepted_again_after() -> None:
    limited = CappedProvider(
        Ticker(every=0.01, count=1000), max_concurrency=2, timeout_s=30, retry_after=7
    )
    holders = [limited.stream(chat(p)) for p in ("a", "b")]
    for holder in holders:
        await anext(holder)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ProviderBusy) as caught:
        await collect(limited, chat("c"))
    assert loop.time() - started < 0.5
    assert caught.value.retry_after == 7
    assert caught.value.status_code == 429
    await holders[0].aclose()
    assert limited.active == 1
    assert await anext(limited.stream(chat("d"))) == "d-0"
    await holders[1].aclose()


async def test_the_deadline_covers_the_whole_stream_and_closes_the_inner() -> None:
    inner = Ticker(every=0.2, count=1000)  # every delta is quick, the whole answer is not
    limited = CappedProvider(inner, max_concurrency=1, timeout_s=0.9)
    got: list[str] = []

    async def consume() -> None:
        async for delta in limited.stream(chat("t")):
            got.append(delta)

    with pytest.raises(ProviderTimeout):
        await consume()
    assert 2 <= len(got) <= 5
    assert inner.closed == ["t"]
    assert limited.active == 0


async def test_inner_errors_propagate_and_release_the_slot() -> None:
    inner = Ticker(fail_at=1)
    limited = CappedProvider(inner, max_concurrency=1, timeout_s=5)
    with pytest.raises(ProviderCrashed):
        await collect(limited, chat("e"))
    assert inner.closed == ["e"]
    assert limited.active == 0


async def test_consumer_closing_early_closes_the_inner() -> None:
    inner = Ticker(every=0.01, count=1000)
    limited = CappedProvider(inner, max_concurrency=1, timeout_s=5)
    stream = limited.stream(chat("x"))
    assert await anext(stream) == "x-0"
    await stream.aclose()
    assert inner.closed == ["x"]
    assert limited.active == 0


async def test_a_cancelled_consumer_closes_the_inner() -> None:
    inner = Ticker(every=0.05, count=1000)
    limited = CappedProvider(inner, max_concurrency=1, timeout_s=5)
    task = asyncio.create_task(collect(limited, chat("k")))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert inner.closed == ["k"]
    assert limited.active == 0


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        CappedProvider(Ticker(), max_concurrency=0, timeout_s=1)


class SlowCleanup(Ticker):
    """Its stream's cleanup (like an adapter killing its CLI) runs through procs.finish and
    takes ``cleanup_s``; cancelling the consumer does not wait for it."""

    def __init__(self, cleanup_s: float) -> None:
        super().__init__(every=0.01, count=1000)
        self.cleanup_s = cleanup_s
        self.cleaned = asyncio.Event()

    async def _cleanup(self) -> None:
        await asyncio.sleep(self.cleanup_s)
        self.cleaned.set()

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        try:
            async for delta in super().stream(request):
                yield delta
        finally:
            await finish(self._cleanup())


async def test_a_slot_is_freed_only_when_the_cleanup_is_over() -> None:
    inner = SlowCleanup(cleanup_s=0.5)
    limited = CappedProvider(inner, max_concurrency=1, timeout_s=30)
    await consume_until_anyio_cancels(limited, chat("k"), after=0.1)  # as Starlette does
    assert not inner.cleaned.is_set()
    assert limited.active == 1
    with pytest.raises(ProviderBusy):
        await collect(limited, chat("over the cap"))
    await asyncio.wait_for(inner.cleaned.wait(), 5)
    await asyncio.sleep(0)  # done callbacks run on the next loop turn
    assert limited.active == 0
    assert await anext(limited.stream(chat("next"))) == "next-0"


class RaisesAtOnce(Ticker):
    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        raise ProviderCrashed("could not even start")
        yield ""  # an async generator that fails at its first step


class NotAGenerator(Ticker):
    def stream(self, request: ChatRequest) -> AsyncIterator[str]:  # type: ignore[override]
        raise ProviderCrashed("refused before any step")


@pytest.mark.parametrize("inner", [RaisesAtOnce(), NotAGenerator()])
async def test_a_stream_that_raises_before_its_first_step_leaks_no_slot(inner: Ticker) -> None:
    limited = CappedProvider(inner, max_concurrency=1, timeout_s=5)
    for _ in range(3):
        with pytest.raises(ProviderCrashed):
            await collect(limited, chat("x"))
        assert limited.active == 0


async def test_admit_takes_the_slot_before_the_stream_and_an_unclaimed_one_expires() -> None:
    limited = CappedProvider(Ticker(), max_concurrency=1, timeout_s=5, claim_s=0.2)
    first, second = chat("first"), chat("second")
    limited.admit(first)
    with pytest.raises(ProviderBusy):
        limited.admit(second)  # the slot is taken though no stream runs yet
    assert await collect(limited, first) == ["first-0", "first-1", "first-2"]
    limited.admit(second)  # freed when the admitted stream ended
    limited.withdraw(second)  # its stream never ran: given back
    limited.admit(second)
    await asyncio.sleep(0.25)  # never claimed by a stream (the client left): it expires
    third = chat("third")
    limited.admit(third)
    limited.withdraw(third)
    limited.withdraw(third)  # twice is harmless
    assert limited.active == 0
