"""Sessions in Redis so any replica continues any conversation.

Keys of one session share one hash slot (``{<uuid>}``), ready for Redis Cluster:

- ``<prefix>{<id>}:meta``  hash: provider, model, created_at, updated_at, owner (the caller
  who created it), native (the CLI's session id, once reported)
- ``<prefix>{<id>}:turns`` list of JSON turns
- ``<prefix>{<id>}:done``  hash: turn id -> ``<index of its answer>:<JSON model/duration/fp>``
- ``<prefix>{<id>}:lock``  the turn lease: a random token with a PX expiry
- ``<prefix>{<id>}:mask``  hash: placeholder -> value (``masking/store.py``), deleted and
  kept alive with the session

Ids are validated before they get here (``sessions/ids.py``), so no id can name another key.
Creating, committing a turn, renewing and releasing the lease are Lua scripts, so each is one
atomic step: a commit never lands without the lease, never resurrects a deleted or flushed
session, and a commit retried after a lost reply is recognised by its turn id. Connection
failures become StoreUnavailable; redis-py reconnects (and reloads scripts) by itself but never
resends a command on its own (its default would), since each script is written to be retried by
the caller: lock with the same token, create-if-absent, commit with its turn id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import redis.asyncio as aioredis

from llmhub_gateway import redis_client
from llmhub_gateway.providers.base import Turn
from llmhub_gateway.sessions.base import (
    CommitOutcome,
    Session,
    StoredTurn,
    TurnRecord,
)

T = TypeVar("T")
DEFAULT_PREFIX = "llmhub:s:"
_CREATE = """
if redis.call('exists', KEYS[1]) == 1 then return 0 end
redis.call('hset', KEYS[1], 'provider', ARGV[1], 'model', ARGV[2],
           'created_at', ARGV[3], 'updated_at', ARGV[3], 'owner', ARGV[5])
redis.call('expire', KEYS[1], ARGV[4])
return 1
"""
# KEYS: meta, turns, done, lock, mask. ARGV: token, turn id, ttl, model, now, user turn,
# assistant turn, record (JSON), native session id ("" keeps the stored one). Returns 1 stored,
# 0 already stored, -1 lease lost, -2 session gone. The masking placeholders live exactly as
# long as the session: a table that expired before it would renumber values the provider's
# native context already knows under the old placeholders.
_COMMIT = """
if redis.call('hexists', KEYS[3], ARGV[2]) == 1 then
  if redis.call('get', KEYS[4]) == ARGV[1] then redis.call('del', KEYS[4]) end
  return 0
end
if redis.call('get', KEYS[4]) ~= ARGV[1] then return -1 end
if redis.call('exists', KEYS[1]) == 0 then
  redis.call('del', KEYS[4])
  return -2
end
local n = redis.call('rpush', KEYS[2], ARGV[6], ARGV[7])
redis.call('hset', KEYS[1], 'model', ARGV[4], 'updated_at', ARGV[5])
if ARGV[9] ~= '' then redis.call('hset', KEYS[1], 'native', ARGV[9]) end
redis.call('hset', KEYS[3], ARGV[2], tostring(n - 1) .. ':' .. ARGV[8])
for i = 1, 3 do redis.call('expire', KEYS[i], ARGV[3]) end
redis.call('expire', KEYS[5], ARGV[3])
redis.call('del', KEYS[4])
return 1
"""
# Taking the lease again with the same token succeeds, so a retried lock is harmless.
_LOCK = """
local held = redis.call('get', KEYS[1])
if held == ARGV[1] or not held then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
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
_OUTCOMES = {
    1: CommitOutcome.STORED,
    0: CommitOutcome.ALREADY_STORED,
    -1: CommitOutcome.LEASE_LOST,
    -2: CommitOutcome.SESSION_GONE,
}


class RedisSessionStore:
    def __init__(
        self,
        url: str,
        ttl_seconds: int,
        prefix: str = DEFAULT_PREFIX,
        *,
        socket_timeout: float = 2.0,
    ) -> None:
        self._ttl = ttl_seconds
        self._prefix = prefix
        self._redis: aioredis.Redis = redis_client.connect(url, socket_timeout=socket_timeout)
        self._create = self._redis.register_script(_CREATE)
        self._lock = self._redis.register_script(_LOCK)
        self._commit = self._redis.register_script(_COMMIT)
        self._renew = self._redis.register_script(_RENEW)
        self._unlock = self._redis.register_script(_UNLOCK)

    @property
    def redis(self) -> aioredis.Redis:
        """The client, lent to the masking store (``masking/store.py``) for its hash."""
        return self._redis

    @property
    def prefix(self) -> str:
        return self._prefix

    def _key(self, session_id: str, part: str) -> str:
        return f"{self._prefix}{{{session_id}}}:{part}"

    def _keys(self, session_id: str) -> list[str]:
        return [self._key(session_id, part) for part in ("meta", "turns", "done", "lock")]

    async def _call(self, awaitable: Awaitable[T]) -> T:
        return await redis_client.call(awaitable, "session store")

    async def create(self, session_id: str, provider: str, model: str, owner: str = "") -> bool:
        meta = self._key(session_id, "meta")
        created = await self._call(
            self._create(keys=[meta], args=[provider, model, time.time(), self._ttl, owner])
        )
        return bool(created)

    async def owner(self, session_id: str) -> str | None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.exists(self._key(session_id, "meta"))
        pipe.hget(self._key(session_id, "meta"), "owner")
        exists, owner = await self._call(pipe.execute())
        return (owner or "") if exists else None

    async def get(self, session_id: str) -> Session | None:
        meta, turns_key, done, _ = self._keys(session_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(meta)
        pipe.lrange(turns_key, 0, -1)
        for key in (meta, turns_key, done):
            pipe.expire(key, self._ttl)
        pipe.expire(mask_key(self._prefix, session_id), self._ttl)
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
            native=fields.get("native") or None,
            owner=fields.get("owner", ""),
        )

    async def recorded(self, session_id: str, turn_id: str) -> StoredTurn | None:
        raw: str | None = await self._call(
            self._redis.hget(self._key(session_id, "done"), turn_id)  # type: ignore[arg-type]
        )
        if raw is None:
            return None
        index, _, record = raw.partition(":")
        item = await self._call(
            self._redis.lindex(self._key(session_id, "turns"), int(index))  # type: ignore[arg-type]
        )
        if item is None:
            return None
        meta = json.loads(record)
        return StoredTurn(
            text=_turn(json.loads(item)).text,
            model=str(meta["model"]),
            duration_ms=int(meta["duration_ms"]),
            fingerprint=str(meta["fp"]),
        )

    async def commit(self, session_id: str, token: str, turn: TurnRecord) -> CommitOutcome:
        record = {"model": turn.model, "duration_ms": turn.duration_ms, "fp": turn.fingerprint}
        args: list[str | int | float] = [
            token,
            turn.turn_id,
            self._ttl,
            turn.model,
            time.time(),
            json.dumps({"role": "user", "text": turn.prompt}),
            json.dumps({"role": "assistant", "text": turn.text}),
            json.dumps(record),
            turn.native,
        ]
        keys = [*self._keys(session_id), mask_key(self._prefix, session_id)]
        result = await self._call(self._commit(keys=keys, args=args))
        return _OUTCOMES[int(result)]

    async def delete(self, session_id: str) -> bool:
        meta, turns, done, _ = self._keys(session_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(meta, turns, done)
        pipe.delete(mask_key(self._prefix, session_id))
        removed, _ = await self._call(pipe.execute())
        return int(removed) > 0

    async def lock(self, session_id: str, token: str, ttl_ms: int) -> bool:
        key = self._key(session_id, "lock")
        return bool(await self._call(self._lock(keys=[key], args=[token, ttl_ms])))

    async def renew(self, session_id: str, token: str, ttl_ms: int) -> bool:
        key = self._key(session_id, "lock")
        return bool(await self._call(self._renew(keys=[key], args=[token, ttl_ms])))

    async def unlock(self, session_id: str, token: str) -> None:
        await self._call(self._unlock(keys=[self._key(session_id, "lock")], args=[token]))

    async def ping(self) -> None:
        await self._call(self._redis.ping())  # type: ignore[arg-type]

    async def aclose(self) -> None:
        await self._redis.aclose()


def mask_key(prefix: str, session_id: str) -> str:
    """The session's masking placeholders (``masking/store.py``), in the session's slot."""
    return f"{prefix}{{{session_id}}}:mask"


def _turn(item: Any) -> Turn:
    text = str(item.get("text", ""))
    return Turn("assistant", text) if item.get("role") == "assistant" else Turn("user", text)
