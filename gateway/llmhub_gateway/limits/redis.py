"""Limits shared by every replica: one Lua script checks all five limits and, only if all
pass, counts the request and takes the concurrency slots, in one atomic step on Redis's clock.

Keys (``<prefix>`` default ``llmhub:l:``), all under the hash tag ``{<prefix>}``:
- ``rpm:c:<caller>`` / ``rpm:s:<provider>``  sorted sets of request times (ms), 60 s window
- ``run:c:<caller>`` / ``run:s:<provider>``  sorted sets of slot ids scored by their expiry
- ``tok:<day>:<caller>``  the caller's tokens today (the budget)
- ``use:<day>``  hash ``<caller>\\x1f<provider>\\x1f{req,in,out}`` -> count (GET /v1/usage)
With every limit off, admission makes no Redis call (only usage is counted). When Redis is
unreachable and limits are on, turns are refused with 503 (limits are not silently dropped).
Every key starts with the hash tag ``{<prefix>}``, so all limit keys share one hash slot: the
script and the usage transaction (which touch caller and subscription keys together) work on a
Redis Cluster too, where keys of one script must live in one slot.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable
from typing import TypeVar

import redis.asyncio as aioredis

from llmhub_gateway import redis_client
from llmhub_gateway.errors import StoreUnavailable
from llmhub_gateway.limits.base import Limits, Slot, UsageRow, refusal, utc_day

T = TypeVar("T")
log = logging.getLogger(__name__)
SEP = "\x1f"
USAGE_TTL_S = 40 * 86400
# KEYS: rpm caller, run caller, tokens caller, rpm sub, run sub.
# ARGV: caller rpm, caller concurrent, caller budget, sub rpm, sub concurrent, slot id, ttl ms.
# Returns {0, 0} admitted, or {code, ms until the limit frees}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function window(key, limit)
  if limit <= 0 then return 0 end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 60000)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return math.max(1, tonumber(oldest[2]) + 60000 - now)
  end
  return 0
end
local function running(key, limit)
  if limit <= 0 then return 0 end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= limit then return 1000 end
  return 0
end
local function budget(key, limit)
  if limit <= 0 then return 0 end
  if tonumber(redis.call('GET', key) or '0') >= limit then return 86400000 - now % 86400000 end
  return 0
end
local waits = {
  window(KEYS[1], tonumber(ARGV[1])),
  running(KEYS[2], tonumber(ARGV[2])),
  budget(KEYS[3], tonumber(ARGV[3])),
  window(KEYS[4], tonumber(ARGV[4])),
  running(KEYS[5], tonumber(ARGV[5])),
}
for code = 1, 5 do
  if waits[code] > 0 then return {code, waits[code]} end
end
local ttl = tonumber(ARGV[7])
for _, key in ipairs({KEYS[1], KEYS[4]}) do
  redis.call('ZADD', key, now, ARGV[6])
  redis.call('PEXPIRE', key, 61000)
end
for _, key in ipairs({KEYS[2], KEYS[5]}) do
  redis.call('ZADD', key, now + ttl, ARGV[6])
  redis.call('PEXPIRE', key, ttl)
end
return {0, 0}
"""


class RedisLimiter:
    def __init__(self, url: str, limits: Limits, prefix: str = "llmhub:l:") -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("the limit key prefix becomes a hash tag: no braces in it")
        self.limits = limits
        self._prefix = "{" + prefix + "}"  # one hash slot for every key (Redis Cluster)
        self._redis: aioredis.Redis = redis_client.connect(url)
        self._acquire = self._redis.register_script(_ACQUIRE)

    async def _call(self, awaitable: Awaitable[T]) -> T:
        return await redis_client.call(awaitable, "limit store")

    async def acquire(self, caller: str, provider: str) -> Slot:
        lim = self.limits
        if not lim.any():
            return Slot(caller, provider, "")
        p = self._prefix
        slot = Slot(caller, provider, secrets.token_hex(8))
        keys = [
            f"{p}rpm:c:{caller}",
            f"{p}run:c:{caller}",
            f"{p}tok:{utc_day()}:{caller}",
            f"{p}rpm:s:{provider}",
            f"{p}run:s:{provider}",
        ]
        args: list[int | str] = [
            lim.caller_rpm,
            lim.caller_concurrent,
            lim.caller_daily_tokens,
            lim.subscription_rpm,
            lim.subscription_concurrent,
            slot.slot_id,
            lim.slot_ttl_s * 1000,
        ]
        code, wait_ms = await self._call(self._acquire(keys=keys, args=args))
        if int(code) != 0:
            raise refusal(int(code), int(wait_ms))
        return slot

    async def release(self, slot: Slot) -> None:
        """Free the slot; if Redis is away it expires by itself (``slot_ttl_s``)."""
        if not slot.slot_id:
            return
        p = self._prefix
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrem(f"{p}run:c:{slot.caller}", slot.slot_id)
                pipe.zrem(f"{p}run:s:{slot.provider}", slot.slot_id)
                await self._call(pipe.execute())
        except StoreUnavailable:
            log.warning("could not release a concurrency slot; it expires by itself")

    async def record(self, caller: str, provider: str, tokens_in: int, tokens_out: int) -> None:
        day = utc_day()
        p = self._prefix
        field = f"{caller}{SEP}{provider}{SEP}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(f"{p}use:{day}", field + "req", 1)
            pipe.hincrby(f"{p}use:{day}", field + "in", tokens_in)
            pipe.hincrby(f"{p}use:{day}", field + "out", tokens_out)
            pipe.expire(f"{p}use:{day}", USAGE_TTL_S)
            pipe.incrby(f"{p}tok:{day}:{caller}", tokens_in + tokens_out)
            pipe.expire(f"{p}tok:{day}:{caller}", 2 * 86400)
            await self._call(pipe.execute())

    async def usage(self, day: str) -> list[UsageRow]:
        raw = await self._call(self._redis.hgetall(f"{self._prefix}use:{day}"))
        rows: dict[tuple[str, str], dict[str, int]] = {}
        for key, value in raw.items():
            caller, provider, kind = str(key).split(SEP)
            rows.setdefault((caller, provider), {})[kind] = int(value)
        return [
            UsageRow(c, p, v.get("req", 0), v.get("in", 0), v.get("out", 0))
            for (c, p), v in sorted(rows.items())
        ]

    async def aclose(self) -> None:
        await self._redis.aclose()
