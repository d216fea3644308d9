"""claude-agent-sdk's ``SessionStore`` on Redis: the CLI's transcripts, shared by replicas.

The SDK mirrors every transcript line the CLI writes into ``append`` and, for ``resume``, loads
the whole transcript back (``load``) into a temporary config dir the new CLI resumes from. So a
session continues natively on whichever replica gets its next turn.

Layout under ``prefix``: a list of JSON entries per transcript key, a set of the entry uuids
seen (the SDK retries batches, so appends are idempotent per uuid), a sorted set of sessions
per project (score: write time in ms), a set of subpaths per session and the SDK's folded
summary per session (read-fold-write under WATCH, so racing appends never lose one). Every key
expires
after ``ttl_s`` without writes (retention is the adapter's job; the gateway's own sessions
expire after the same time).
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as aioredis
from claude_agent_sdk import fold_session_summary
from claude_agent_sdk.types import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStore,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
)
from redis.exceptions import WatchError

from llmhub_gateway.redis_client import call

# KEYS: entries list, uuid set, index (project's sessions zset or session's subpath set)
# ARGV: ttl, mtime, member, is_main, then uuid/json pairs ("" uuid: append without dedup)
_APPEND = """
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  if id == "" or redis.call("SADD", KEYS[2], id) == 1 then
    redis.call("RPUSH", KEYS[1], ARGV[i + 1])
  end
end
if ARGV[4] == "1" then
  redis.call("ZADD", KEYS[3], ARGV[2], ARGV[3])
else
  redis.call("SADD", KEYS[3], ARGV[3])
end
for i = 1, 3 do
  if redis.call("EXISTS", KEYS[i]) == 1 then redis.call("EXPIRE", KEYS[i], ARGV[1]) end
end
return 1
"""
_WHAT = "the Claude session store"


class ClaudeTranscriptStore(SessionStore):
    """A ``claude_agent_sdk.types.SessionStore`` with every optional method.

    ``single_project`` files every key under one project: the SDK derives the project from the
    CLI's working directory, which is a fresh scratch dir per process here, and a session must
    be found again from any process on any replica."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str,
        ttl_s: int,
        single_project: str | None = None,
        owns_client: bool = False,
    ) -> None:
        self._redis = redis
        self._owns_client = owns_client
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._single = single_project
        self._append = redis.register_script(_APPEND)
        self._last_ms = 0

    def _project(self, project_key: str) -> str:
        return self._single if self._single is not None else project_key

    def _main(self, project: str, session: str) -> str:
        return f"{self._prefix}t:{project}:{session}"

    def _entries_key(self, key: SessionKey) -> str:
        main = self._main(self._project(key["project_key"]), key["session_id"])
        subpath = key.get("subpath")
        return f"{main}:sub:{subpath}" if subpath else main

    def _sessions_key(self, project: str) -> str:
        return f"{self._prefix}sessions:{project}"

    def _subkeys_key(self, project: str, session: str) -> str:
        return f"{self._main(project, session)}:subkeys"

    def _now_ms(self) -> int:
        """Write time in epoch ms, strictly increasing within this process."""
        now = max(int(time.time() * 1000), self._last_ms + 1)
        self._last_ms = now
        return now

    async def aclose(self) -> None:
        """Close the Redis client if this store made it its own."""
        if self._owns_client:
            await self._redis.aclose()

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        if not entries:
            return
        project = self._project(key["project_key"])
        entries_key = self._entries_key(key)
        subpath = key.get("subpath")
        index = (
            self._subkeys_key(project, key["session_id"])
            if subpath
            else self._sessions_key(project)
        )
        args: list[Any] = [self._ttl_s, self._now_ms(), subpath or key["session_id"]]
        args.append("0" if subpath else "1")
        for entry in entries:
            uuid = entry.get("uuid")
            args += [uuid if isinstance(uuid, str) else "", json.dumps(entry)]
        keys = [entries_key, f"{entries_key}:uuids", index]
        await call(self._append(keys=keys, args=args), _WHAT)
        if not subpath:  # subagent transcripts never touch the session's summary
            await call(self._fold(key, entries, mtime=args[1]), _WHAT)

    def _summary_key(self, project: str, session: str) -> str:
        return f"{self._main(project, session)}:summary"

    async def _fold(self, key: SessionKey, entries: list[SessionStoreEntry], *, mtime: int) -> None:
        summary_key = self._summary_key(self._project(key["project_key"]), key["session_id"])
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(summary_key)
                    raw = await pipe.get(summary_key)
                    prev: SessionSummaryEntry | None = json.loads(raw) if raw else None
                    folded = fold_session_summary(prev, key, entries)
                    folded["mtime"] = max(mtime, prev["mtime"] if prev else 0)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(summary_key, json.dumps(folded), ex=self._ttl_s)
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        project = self._project(project_key)
        sessions = await self.list_sessions(project_key)
        if not sessions:
            return []
        keys = [self._summary_key(project, s["session_id"]) for s in sessions]
        raw: Any = await call(self._redis.mget(keys), _WHAT)
        return [json.loads(item) for item in raw if item]

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        raw = await call(self._redis.lrange(self._entries_key(key), 0, -1), _WHAT)
        return [json.loads(line) for line in raw] if raw else None

    async def exists(self, session_id: str, project_key: str = "") -> bool:
        """Whether a complete main transcript is stored (a resume would find all of it)."""
        main = self._entries_key({"project_key": project_key, "session_id": session_id})
        stored, lost = (
            await call(self._redis.exists(main), _WHAT),
            await call(self._redis.exists(f"{main}:lost"), _WHAT),
        )
        return bool(stored) and not lost

    async def continues(self, session_id: str, *, tail: str) -> bool:
        """Whether the stored transcript ends with the committed conversation: complete, and
        its entry ``tail`` (the last one the last committed turn wrote) followed by no user or
        assistant entry. A turn that ran but was never committed (its commit failed, or it was
        cancelled) left such entries: resuming would continue that phantom turn, so the
        caller replays instead."""
        if not await self.exists(session_id):
            return False
        main = self._entries_key({"project_key": "", "session_id": session_id})
        raw: Any = await call(self._redis.lrange(main, 0, -1), _WHAT)
        try:
            entries = [json.loads(line) for line in raw]
        except ValueError:  # a damaged transcript cannot be resumed either
            return False
        ends = [i for i, e in enumerate(entries) if isinstance(e, dict) and e.get("uuid") == tail]
        if not ends:
            return False
        return not any(_is_message(e) for e in entries[ends[-1] + 1 :])

    async def mark_incomplete(self, session_id: str, project_key: str = "") -> None:
        """Lines of this transcript were lost (a mirror append failed): ``exists`` is False from
        now on, so other replicas replay the gateway's history instead of resuming it."""
        main = self._entries_key({"project_key": project_key, "session_id": session_id})
        await call(self._redis.set(f"{main}:lost", "1", ex=self._ttl_s), _WHAT)

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        index = self._sessions_key(self._project(project_key))
        expired_before = self._now_ms() - self._ttl_s * 1000
        await call(self._redis.zremrangebyscore(index, "-inf", expired_before), _WHAT)
        found: Any = await call(self._redis.zrange(index, 0, -1, withscores=True), _WHAT)
        return [{"session_id": str(member), "mtime": int(score)} for member, score in found]

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        project = self._project(key["project_key"])
        members: Any = await call(
            self._redis.smembers(self._subkeys_key(project, key["session_id"])), _WHAT
        )
        return sorted(members)

    async def delete(self, key: SessionKey) -> None:
        project = self._project(key["project_key"])
        entries_key = self._entries_key(key)
        subpath = key.get("subpath")
        doomed = [entries_key, f"{entries_key}:uuids", f"{entries_key}:lost"]
        async with self._redis.pipeline(transaction=True) as pipe:
            if subpath:
                pipe.srem(self._subkeys_key(project, key["session_id"]), subpath)
            else:
                subkeys_key = self._subkeys_key(project, key["session_id"])
                subs: Any = await call(self._redis.smembers(subkeys_key), _WHAT)
                for sub in subs:
                    doomed += [f"{entries_key}:sub:{sub}", f"{entries_key}:sub:{sub}:uuids"]
                doomed += [subkeys_key, self._summary_key(project, key["session_id"])]
                pipe.zrem(self._sessions_key(project), key["session_id"])
            pipe.delete(*doomed)
            await call(pipe.execute(), _WHAT)


def _is_message(entry: Any) -> bool:
    """A user or assistant message of the conversation (not a CLI note or summary)."""
    return isinstance(entry, dict) and entry.get("type") in ("user", "assistant")
