"""The limiter of a single replica (no REDIS_URL): the same rules as ``redis.py``, in memory.

Every method runs without awaiting in between, so on one event loop it is atomic too.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict

from llmhub_gateway.limits.base import DAY_MS, WINDOW_MS, Limits, Slot, UsageRow, refusal, utc_day


class MemoryLimiter:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._windows: dict[str, list[int]] = defaultdict(list)
        self._slots: dict[str, dict[str, int]] = defaultdict(dict)
        self._tokens: dict[tuple[str, str], int] = defaultdict(int)
        self._usage: dict[str, dict[tuple[str, str], list[int]]] = defaultdict(dict)

    def _window_wait(self, key: str, limit: int, now: int) -> int:
        if limit <= 0:
            return 0
        window = [t for t in self._windows[key] if t > now - WINDOW_MS]
        self._windows[key] = window
        return window[0] + WINDOW_MS - now if len(window) >= limit else 0

    def _slots_full(self, key: str, limit: int, now: int) -> bool:
        if limit <= 0:
            return False
        live = {k: exp for k, exp in self._slots[key].items() if exp > now}
        self._slots[key] = live
        return len(live) >= limit

    async def acquire(self, caller: str, provider: str) -> Slot:
        lim = self.limits
        now = int(time.time() * 1000)
        day = utc_day(now / 1000)
        checks = (
            (1, self._window_wait(f"c:{caller}", lim.caller_rpm, now)),
            (2, 1000 if self._slots_full(f"c:{caller}", lim.caller_concurrent, now) else 0),
            (
                3,
                DAY_MS - now % DAY_MS
                if 0 < lim.caller_daily_tokens <= self._tokens[(day, caller)]
                else 0,
            ),
            (4, self._window_wait(f"s:{provider}", lim.subscription_rpm, now)),
            (5, 1000 if self._slots_full(f"s:{provider}", lim.subscription_concurrent, now) else 0),
        )
        for code, wait in checks:
            if wait > 0:
                raise refusal(code, wait)
        slot = Slot(caller, provider, secrets.token_hex(8))
        for key in (f"c:{caller}", f"s:{provider}"):
            self._windows[key].append(now)
            self._slots[key][slot.slot_id] = now + lim.slot_ttl_s * 1000
        return slot

    async def release(self, slot: Slot) -> None:
        self._slots[f"c:{slot.caller}"].pop(slot.slot_id, None)
        self._slots[f"s:{slot.provider}"].pop(slot.slot_id, None)

    async def record(self, caller: str, provider: str, tokens_in: int, tokens_out: int) -> None:
        day = utc_day()
        row = self._usage[day].setdefault((caller, provider), [0, 0, 0])
        row[0] += 1
        row[1] += tokens_in
        row[2] += tokens_out
        self._tokens[(day, caller)] += tokens_in + tokens_out

    async def usage(self, day: str) -> list[UsageRow]:
        return [
            UsageRow(caller, provider, *counts)
            for (caller, provider), counts in sorted(self._usage.get(day, {}).items())
        ]

    async def aclose(self) -> None:
        return None
