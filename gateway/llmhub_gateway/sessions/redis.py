"""Sessions in Redis so any replica continues any conversation.

Layout per session (``<prefix><id>``): a hash with the metadata and ``<prefix><id>:turns``, a
list of JSON turns. Both keys share one TTL, refreshed on every use. ``<prefix><id>:lock`` is
the turn lease: ``SET NX PX`` with a random token; renew and release are compare-and-set Lua
scripts, so only the holder extends or frees it, and a crashed holder's lease simply expires.
Connection failures become StoreUnavailable; redis-py reconnects on the next command, so
recovery needs no restart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from llmhub_gateway.providers.base import Turn
from llmhub_gateway.sessions.base import Session, StoreUnavailable

T = TypeVar("T")
DEFAULT_PREFIX = "llmhub:session:"
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisSessionStore:
    def __init__(self, url: str, ttl_seconds: int, prefix: str = DEFAULT_PREFIX) -> None:
        self._ttl = ttl_seconds
        self._prefix = prefix
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=1.0,
            socket_timeout=2.0,
            health_check_interval=10,
        )
        self._renew = self._redis.register_script(_RENEW)
        self._unlock = self._redis.register_script(_UNLOCK)

    def _keys(self, session_id: str) -> tuple[str, str]:
        meta = f"{self._prefix}{session_id}"
        return meta, f"{meta}:turns"

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            # The message names no URL: REDIS_URL may carry a password.
            raise StoreUnavailable("session store (Redis) is unreachable") from exc

    async def create(self, session_id: str, provider: str, model: str) -> Session:
        meta, _ = self._keys(session_id)
        now = time.time()
        mapping = {"provider": provider, "model": model, "created_at": now, "updated_at": now}
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(meta, mapping=mapping)  # type: ignore[arg-type]
        pipe.expire(meta, self._ttl)
        await self._call(pipe.execute())
        return Session(session_id, provider, model, now, now, ())

    async def get(self, session_id: str) -> Session | None:
        meta, turns_key = self._keys(session_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(meta)
        pipe.lrange(turns_key, 0, -1)
        pipe.expire(meta, self._ttl)
        pipe.expire(turns_key, self._ttl)
        fields, raw_turns, *_ = await self._call(pipe.execute())
        if not fields:
            return None
        return Session(
            id=session_id,
            provider=fields["provider"],
            model=fields["model"],
            created_at=float(fields["created_at"]),
            updated_at=float(fields["updated_at"]),
            turns=tuple(_turn(json.loads(item)) for item in raw_turns),
        )

    async def append(self, session_id: str, turns: Sequence[Turn], model: str) -> None:
        meta, turns_key = self._keys(session_id)
        payload = [json.dumps({"role": t.role, "text": t.text}) for t in turns]
        pipe = self._redis.pipeline(transaction=True)
        pipe.rpush(turns_key, *payload)
        pipe.hset(meta, mapping={"model": model, "updated_at": time.time()})
        pipe.expire(meta, self._ttl)
        pipe.expire(turns_key, self._ttl)
        await self._call(pipe.execute())

    async def delete(self, session_id: str) -> bool:
        meta, turns_key = self._keys(session_id)
        removed: int = await self._call(self._redis.delete(meta, turns_key))
        return removed > 0

    async def lock(self, session_id: str, token: str, ttl_ms: int) -> bool:
        key = f"{self._prefix}{session_id}:lock"
        taken = await self._call(self._redis.set(key, token, nx=True, px=ttl_ms))
        return bool(taken)

    async def renew(self, session_id: str, token: str, ttl_ms: int) -> bool:
        key = f"{self._prefix}{session_id}:lock"
        return bool(await self._call(self._renew(keys=[key], args=[token, ttl_ms])))

    async def unlock(self, session_id: str, token: str) -> None:
        await self._call(self._unlock(keys=[f"{self._prefix}{session_id}:lock"], args=[token]))

    async def ping(self) -> None:
        await self._call(self._redis.ping())  # type: ignore[arg-type]

    async def aclose(self) -> None:
        await self._redis.aclose()


def _turn(item: Any) -> Turn:
    text = str(item.get("text", ""))
    return Turn("assistant", text) if item.get("role") == "assistant" else Turn("user", text)
