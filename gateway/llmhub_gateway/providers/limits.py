"""A wrapper Provider adding the per-pod concurrency cap and one deadline over a whole answer.

It never queues: a request beyond the cap fails at once with ProviderBusy (the API turns that
into 429 + Retry-After). The turn runner takes a claim (admission.Claims) with
``admit(request)`` while it prepares the turn, before a streaming answer's 200 (so the refusal
is a status, never an in-band error); the stream then runs on that slot, and
``withdraw(request)`` frees a claim whose stream never ran. A claim not used by a stream within
``claim_s`` (the client left between prepare and the first byte) expires by itself. A stream
started without ``admit`` takes its slot as it starts. It always closes the inner stream -- on
success, error, timeout or a consumer that stops early (client disconnect) -- which is what
makes adapters kill their CLI. The cap counts live processes: a slot is freed only when the
cleanups the adapter started with ``procs.finish`` (killing and reaping its CLI) are over, even
if the consumer was cancelled and left before them. An adapter whose ``stream()`` raises before
its first step frees its slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from llmhub_gateway.providers.admission import Claims
from llmhub_gateway.providers.base import (
    ChatRequest,
    Provider,
    ProviderBusy,
    ProviderTimeout,
    StreamItem,
)
from llmhub_gateway.providers.procs import tracking


class CappedProvider:
    """Wraps ``inner``; at most ``max_concurrency`` streams, each within ``timeout_s``."""

    def __init__(
        self,
        inner: Provider,
        *,
        max_concurrency: int,
        timeout_s: float,
        retry_after: int = 1,
        claim_s: float = 30.0,
    ) -> None:
        if max_concurrency < 1 or timeout_s <= 0:
            raise ValueError("max_concurrency must be >= 1 and timeout_s > 0")
        self.inner = inner
        self.name = inner.name
        self.default_model = inner.default_model
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.retry_after = retry_after
        self._active = 0
        self._claims = Claims(claim_s)  # admitted requests whose streams have not started

    @property
    def active(self) -> int:
        """Streams running now (for metrics and tests)."""
        return self._active

    def configured(self) -> bool:
        return self.inner.configured()

    def models(self) -> Sequence[str]:
        return self.inner.models()

    def problem(self) -> str | None:
        check = getattr(self.inner, "problem", None)
        return check() if callable(check) else None

    def account_problem(self) -> tuple[str, str] | None:
        check = getattr(self.inner, "account_problem", None)
        result = check() if callable(check) else None
        return result if isinstance(result, tuple) else None

    async def aclose(self) -> None:
        await self.inner.aclose()

    # Optional hook of the inner adapter (a warm pool): passed through when present.
    async def start(self) -> None:
        start = getattr(self.inner, "start", None)
        if callable(start):
            await start()

    def _busy(self) -> ProviderBusy:
        return ProviderBusy(
            f"{self.name}: all {self.max_concurrency} slots are busy, retry later",
            retry_after=self.retry_after,
        )

    def admit(self, request: ChatRequest) -> None:
        """Take a slot for ``request`` now (ProviderBusy when none is free), then ask the
        inner adapter's own ``admit`` (a pool's check), if it has one."""
        self._claims.admit(request, self.max_concurrency - self._active, self._busy)
        check = getattr(self.inner, "admit", None)
        if callable(check):
            try:
                check(request)
            except BaseException:
                self.withdraw(request)
                raise

    def withdraw(self, request: ChatRequest) -> None:
        """Free the claim ``admit`` took if no stream used it (a no-op once one did), and the
        inner pool's too: a stream that failed before it took its process left that one."""
        self._claims.release(request)
        withdraw = getattr(self.inner, "withdraw", None)
        if callable(withdraw):
            withdraw(request)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        claimed = self._claims.release(request)
        if not claimed and self._active + len(self._claims) >= self.max_concurrency:
            raise self._busy()  # not admitted first, and no slot free
        self._active += 1
        cleanups: list[asyncio.Task[Any]] = []  # the inner's CLI kills, started via finish()
        inner: AsyncIterator[StreamItem] | None = None
        try:
            deadline = asyncio.get_running_loop().time() + self.timeout_s
            with tracking(cleanups):
                inner = aiter(self.inner.stream(request))
            while True:
                try:
                    with tracking(cleanups):
                        async with asyncio.timeout_at(deadline):
                            text = await anext(inner)
                except StopAsyncIteration:
                    return
                except TimeoutError as exc:
                    raise ProviderTimeout(
                        f"{self.name}: no complete answer within {self.timeout_s:g} s"
                    ) from exc
                yield text
        finally:
            try:
                aclose = getattr(inner, "aclose", None)
                if aclose is not None:
                    with tracking(cleanups):
                        await aclose()
            finally:
                self._release_after(cleanups)

    def _release_after(self, cleanups: list[asyncio.Task[Any]]) -> None:
        """Free the slot once every cleanup the stream started has finished: a process in its
        SIGTERM grace still counts, so the cap is never exceeded by dying CLIs."""
        pending = [task for task in cleanups if not task.done()]
        if not pending:
            self._active -= 1
            return
        remaining = {"n": len(pending)}

        def done(_: asyncio.Task[Any]) -> None:
            remaining["n"] -= 1
            if remaining["n"] == 0:
                self._active -= 1

        for task in pending:
            task.add_done_callback(done)
