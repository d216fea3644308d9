"""The subscriptions' rate-limit state as the CLIs report it, shared by every replica.

Claude's CLI reports the account's state mid-turn (``rate_limit_event``, a ``RateLimitNotice``
here): ``status`` (allowed | allowed_warning | rejected) of the *currently limiting* window
(``rate_limit_type``: five_hour, seven_day, seven_day_opus, seven_day_sonnet,
seven_day_overage_included or overage), its ``utilization`` and ``resets_at``, and whether paid
extra usage ("overage") may cover what the plan no longer does (``overage_status``). The CLI
itself counts a turn as paid overage when ``status`` is rejected and ``overage_status`` is
allowed or allowed_warning (its ``isUsingOverage``): the plan's window is used up and the
vendor bills the rest. A ``rate_limit_type`` of ``overage`` means the limiting window is the
extra-usage one, so the plan is used up too.

The rule (``judge``) reads the latest notice of a provider only, as the CLI means it: a
window's own record may say rejected while the top-level status (the latest notice) says
whether requests are refused now:
- rejected, overage not available: ``subscription_rate_limited`` until ``resets_at``;
- in overage (as above) and ``LIMIT_ALLOW_OVERAGE`` false: ``subscription_overage_blocked``
  until the window resets; with it true the turn runs;
- allowed / allowed_warning of a plan window: nothing refused (metrics only).
A record lives until the moment it stops being true: its ``resets_at``; a notice without one
for ``NO_RESET_S``; an ``overage`` window's record at most ``OVERAGE_RECHECK_S`` (its own reset
can be a month away while the plan's windows reset sooner; one turn then learns the state
again). The first turn that crosses a limit has already run when the CLI reports it.

Storage: the latest record per provider (``current``, what ``judge`` reads) and per window
(metrics, the status endpoint), each expiring at its reset: in Redis (``PXAT``) when REDIS_URL
is set, else in memory. A record never overwrites a newer one. When Redis is unreachable the
replica falls back to what it last wrote or read itself, so the state is advisory, not a
reason to refuse traffic.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Final, Protocol

import redis.asyncio as aioredis

from llmhub_gateway import redis_client
from llmhub_gateway.errors import RateLimited, StoreUnavailable
from llmhub_gateway.metrics import Metrics
from llmhub_gateway.providers.base import RateLimitNotice

log = logging.getLogger(__name__)
# The metric label ``window`` takes only these values (bounded cardinality).
WINDOWS: Final = (
    "five_hour",
    "seven_day",
    "seven_day_opus",
    "seven_day_sonnet",
    "seven_day_overage_included",
    "overage",
    "other",
)
OVERAGE_AVAILABLE: Final = ("allowed", "allowed_warning")
NO_RESET_S: Final = 60.0
OVERAGE_RECHECK_S: Final = 5 * 3600.0
REASONS: Final = ("subscription_rate_limited", "subscription_overage_blocked")


class SubscriptionRateLimited(RateLimited):
    """The vendor refuses this subscription until its window resets (429)."""

    error_type = "subscription_rate_limited"


class SubscriptionOverageBlocked(RateLimited):
    """The subscription would be billed as paid overage and LIMIT_ALLOW_OVERAGE is off (429)."""

    error_type = "subscription_overage_blocked"


@dataclass(frozen=True, slots=True)
class Window:
    """One provider's reported state of one rate-limit window, until ``expires_at``."""

    window: str
    status: str
    utilization: float | None
    resets_at: float | None
    overage_status: str | None
    overage_resets_at: float | None
    observed_at: float
    expires_at: float

    def in_overage(self) -> bool:
        """The CLI's own test for paid extra usage (``isUsingOverage``), or the limiting
        window is the extra-usage one."""
        if self.status == "rejected":
            return self.overage_status in OVERAGE_AVAILABLE
        return self.window == "overage"

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, text: bytes | str) -> Window:
        return cls(**json.loads(text))


def window_of(rate_limit_type: str | None) -> str:
    if rate_limit_type in WINDOWS:
        return rate_limit_type
    return "other"


def from_notice(notice: RateLimitNotice, now: float) -> Window | None:
    """The record a notice makes, or None when it is already out of date."""
    window = window_of(notice.rate_limit_type)
    if notice.resets_at is None:
        expires = now + NO_RESET_S
    elif window == "overage":
        expires = min(float(notice.resets_at), now + OVERAGE_RECHECK_S)
    else:
        expires = float(notice.resets_at)
    if expires <= now:
        return None
    return Window(
        window=window,
        status=notice.status,
        utilization=notice.utilization,
        resets_at=None if notice.resets_at is None else float(notice.resets_at),
        overage_status=notice.overage_status,
        overage_resets_at=(
            None if notice.overage_resets_at is None else float(notice.overage_resets_at)
        ),
        observed_at=now,
        expires_at=expires,
    )


def judge(
    provider: str, current: Window | None, allow_overage: bool, now: float
) -> RateLimited | None:
    """The refusal a provider's latest state calls for, or None (see the module's rule)."""
    if current is None or current.expires_at <= now:
        return None
    wait = max(1, math.ceil(current.expires_at - now))
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(current.expires_at))
    if current.in_overage():
        if allow_overage:
            return None
        return SubscriptionOverageBlocked(
            f"the {provider} subscription has used up its plan ({current.window} window) and "
            f"further turns would be billed as paid overage; refused until {when} "
            "(LIMIT_ALLOW_OVERAGE=true allows overage)",
            retry_after=wait,
        )
    if current.status == "rejected":
        return SubscriptionRateLimited(
            f"the {provider} subscription is rate-limited ({current.window} window) until {when}",
            retry_after=wait,
        )
    return None


class SubscriptionState(Protocol):
    async def record(self, provider: str, window: Window) -> None:
        """Keep ``window`` as the provider's latest and as its window's, unless newer ones
        are already kept."""
        ...

    async def current(self, provider: str) -> Window | None: ...

    async def windows(self, provider: str) -> list[Window]: ...

    async def aclose(self) -> None: ...


class MemorySubscriptionState:
    """One replica's state (no REDIS_URL); also the Redis variant's fallback."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], Window] = {}

    def _put(self, key: tuple[str, str], window: Window) -> None:
        kept = self._records.get(key)
        if kept is None or kept.observed_at <= window.observed_at or kept.expires_at <= time.time():
            self._records[key] = window

    def _get(self, key: tuple[str, str]) -> Window | None:
        kept = self._records.get(key)
        if kept is not None and kept.expires_at <= time.time():
            del self._records[key]
            return None
        return kept

    async def record(self, provider: str, window: Window) -> None:
        self._put((provider, ""), window)
        self._put((provider, window.window), window)

    async def current(self, provider: str) -> Window | None:
        return self._get((provider, ""))

    async def windows(self, provider: str) -> list[Window]:
        found = (self._get((provider, name)) for name in WINDOWS)
        return [w for w in found if w is not None]

    async def aclose(self) -> None:
        return None


# KEYS: the provider's current and window keys. ARGV: the record (JSON), its observed_at,
# its expiry (ms, Unix). Sets each key unless it holds a newer record; keys expire with the
# record.
_PUT = """
local set = 0
for _, key in ipairs(KEYS) do
  local kept = redis.call('GET', key)
  local newer = false
  if kept then
    local ok, old = pcall(cjson.decode, kept)
    newer = ok and tonumber(old['observed_at']) > tonumber(ARGV[2])
  end
  if not newer then
    redis.call('SET', key, ARGV[1], 'PXAT', ARGV[3])
    set = set + 1
  end
end
return set
"""


class RedisSubscriptionState:
    """Shared by every replica. Keys (``<prefix>`` default ``llmhub:sub:``):
    ``<provider>:current`` and ``<provider>:w:<window>``, JSON of a ``Window``, expiring at
    the record's ``expires_at``."""

    def __init__(self, url: str, prefix: str = "llmhub:sub:") -> None:
        self._prefix = prefix
        self._redis: aioredis.Redis = redis_client.connect(url)
        self._put = self._redis.register_script(_PUT)
        self._local = MemorySubscriptionState()

    def _key(self, provider: str, window: str = "") -> str:
        return f"{self._prefix}{provider}:{'current' if not window else 'w:' + window}"

    async def record(self, provider: str, window: Window) -> None:
        await self._local.record(provider, window)
        args: list[str | int] = [
            window.dumps(),
            repr(window.observed_at),
            int(window.expires_at * 1000),
        ]
        keys = [self._key(provider), self._key(provider, window.window)]
        await redis_client.call(self._put(keys=keys, args=args), "subscription state")

    async def current(self, provider: str) -> Window | None:
        try:
            text = await redis_client.call(
                self._redis.get(self._key(provider)), "subscription state"
            )
        except StoreUnavailable:
            log.warning("subscription state unreachable; using this replica's last known state")
            return await self._local.current(provider)
        found = _alive(text)
        if found is not None:
            await self._local.record(provider, found)
        return found

    async def windows(self, provider: str) -> list[Window]:
        keys = [self._key(provider, name) for name in WINDOWS]
        try:
            texts = await redis_client.call(self._redis.mget(keys), "subscription state")
        except StoreUnavailable:
            log.warning("subscription state unreachable; using this replica's last known state")
            return await self._local.windows(provider)
        return [w for w in map(_alive, texts) if w is not None]

    async def aclose(self) -> None:
        await self._redis.aclose()


def _alive(text: bytes | str | None) -> Window | None:
    if text is None:
        return None
    try:
        window = Window.loads(text)
    except (ValueError, TypeError):
        return None
    return window if window.expires_at > time.time() else None


class SubscriptionGuard:
    """What the turn runner asks: refuse before spawning (``check``), learn from the CLI
    (``observe``); and what the metrics and the status endpoint show (``export``)."""

    def __init__(self, state: SubscriptionState, metrics: Metrics, allow_overage: bool) -> None:
        self.state = state
        self.metrics = metrics
        self.allow_overage = allow_overage

    async def check(self, provider: str) -> None:
        """Raise the refusal the provider's shared state calls for (429 + Retry-After)."""
        refusal = judge(
            provider, await self.state.current(provider), self.allow_overage, time.time()
        )
        self.metrics.subscription_limited.labels(provider).set(0 if refusal is None else 1)
        if refusal is not None:
            self.metrics.subscription_refusals.labels(provider, refusal.error_type).inc()
            raise refusal

    async def observe(self, provider: str, notice: RateLimitNotice) -> None:
        """Record a notice (shared), and show it in the metrics at once."""
        now = time.time()
        window = from_notice(notice, now)
        log.info(
            "provider %s rate limit: %s (%s, resets at %s)",
            provider,
            notice.status,
            notice.rate_limit_type,
            notice.resets_at,
        )
        if window is None:
            return
        self._publish(provider, window)
        limited = judge(provider, window, self.allow_overage, now) is not None
        self.metrics.subscription_limited.labels(provider).set(1 if limited else 0)
        try:
            await self.state.record(provider, window)
        except StoreUnavailable:
            log.warning("could not share a subscription's rate-limit state (store unreachable)")

    async def export(self, providers: list[str]) -> None:
        """Refresh the gauges from the shared state (on scrape: every replica shows all)."""
        now = time.time()
        for provider in providers:
            windows = {w.window: w for w in await self.state.windows(provider)}
            for name in WINDOWS:
                if name in windows:
                    self._publish(provider, windows[name])
                else:
                    _drop(self.metrics, provider, name)
            current = await self.state.current(provider)
            limited = judge(provider, current, self.allow_overage, now) is not None
            self.metrics.subscription_limited.labels(provider).set(1 if limited else 0)

    def _publish(self, provider: str, window: Window) -> None:
        if window.utilization is not None:
            self.metrics.subscription_utilization.labels(provider, window.window).set(
                window.utilization
            )
        if window.resets_at is not None:
            self.metrics.subscription_resets_at.labels(provider, window.window).set(
                window.resets_at
            )


def _drop(metrics: Metrics, provider: str, window: str) -> None:
    for gauge in (metrics.subscription_utilization, metrics.subscription_resets_at):
        with contextlib.suppress(KeyError):
            gauge.remove(provider, window)
