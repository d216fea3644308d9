"""What a limiter decides, independent of where its counters live.

Per caller: requests per minute (sliding window), concurrent turns, daily token budget (UTC
day, from the usage the provider reports). Per subscription (one per provider): requests per
minute and concurrent turns. A turn takes a *slot* in both concurrency sets; a slot expires by
itself after ``slot_ttl_s`` so a crashed replica cannot hold it forever. ``Retry-After`` is
when the limit frees: the oldest request leaving the minute window, UTC midnight for the
token budget, and 1 s for concurrency (a running turn's end cannot be known in advance).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from llmhub_gateway.core.config import Settings
from llmhub_gateway.errors import RateLimited

WINDOW_MS = 60_000
DAY_MS = 86_400_000
# The order of checks, and the code the Redis script returns for each refusal.
REASONS = (
    "",
    "caller requests per minute",
    "caller concurrent turns",
    "caller daily token budget",
    "subscription requests per minute",
    "subscription concurrent turns",
)


@dataclass(frozen=True, slots=True)
class Limits:
    caller_rpm: int = 0
    caller_concurrent: int = 0
    caller_daily_tokens: int = 0
    subscription_rpm: int = 0
    subscription_concurrent: int = 0
    slot_ttl_s: int = 900

    def any(self) -> bool:
        """False when every limit is off: admission then needs no store round trip."""
        return any(
            n > 0
            for n in (
                self.caller_rpm,
                self.caller_concurrent,
                self.caller_daily_tokens,
                self.subscription_rpm,
                self.subscription_concurrent,
            )
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            caller_rpm=settings.limit_caller_requests_per_minute,
            caller_concurrent=settings.limit_caller_concurrent_turns,
            caller_daily_tokens=settings.limit_caller_daily_tokens,
            subscription_rpm=settings.limit_subscription_requests_per_minute,
            subscription_concurrent=settings.limit_subscription_concurrent_turns,
            slot_ttl_s=settings.limit_slot_ttl_seconds,
        )


@dataclass(frozen=True, slots=True)
class Slot:
    """One admitted turn; released when the turn ends."""

    caller: str
    provider: str
    slot_id: str


@dataclass(frozen=True, slots=True)
class UsageRow:
    caller: str
    provider: str
    requests: int
    tokens_in: int
    tokens_out: int


def refusal(code: int, wait_ms: int) -> RateLimited:
    seconds = -(-max(wait_ms, 0) // 1000)  # ceiling: never earlier than the limit frees
    return RateLimited(f"limit reached: {REASONS[code]}", retry_after=max(1, seconds))


def utc_day(now_s: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if now_s is None else now_s))


class Limiter(Protocol):
    async def acquire(self, caller: str, provider: str) -> Slot:
        """Admit one turn or raise RateLimited (nothing is counted when refused)."""
        ...

    async def release(self, slot: Slot) -> None: ...

    async def record(self, caller: str, provider: str, tokens_in: int, tokens_out: int) -> None:
        """Count a finished request and its tokens (today's usage and the caller's budget)."""
        ...

    async def usage(self, day: str) -> list[UsageRow]: ...

    async def aclose(self) -> None: ...
