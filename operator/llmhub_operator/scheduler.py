"""One operator-level scheduler for every LLMProvider's periodic sync.

It replaces a kopf daemon per object: daemons make kopf put a finalizer on each LLMProvider, so
deletion would wait for the operator, and each one costs a task and its memory. Here one loop
keeps a heap of due times, runs a bounded number of syncs at once, and only while this replica
leads. Followers keep the same view (fed by the watch), so a new leader starts at once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmhub_operator.leader import Leadership
from llmhub_operator.model import refresh_seconds
from llmhub_operator.reconcile import Outcome

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
SyncFn = Callable[[Key, Mapping[str, Any], bool], Awaitable[Outcome]]
JITTER = 0.1  # ±10 % so many LLMProviders with one interval do not hit Key Vault together
DEFAULT_CONCURRENCY = 32


@dataclass
class _Entry:
    body: Mapping[str, Any]
    due: float
    generation: object = None
    failures: int = 0
    running: bool = False
    again: bool = False  # asked to run while running: run once more right after
    reuse_fetch: bool = False  # the next run only repairs; it may reuse the last Key Vault read
    forgotten: bool = False
    # Callers of sync_now(): resolved with the outcome of the next pass that starts.
    waiters: list[asyncio.Future[Outcome]] = field(default_factory=list)


@dataclass
class Scheduler:
    """Level-based resync: Key Vault can rotate without any event on the LLMProvider."""

    sync: SyncFn
    leadership: Leadership
    concurrency: int = DEFAULT_CONCURRENCY
    # While set, no interval is longer (push rotation's events are down: polling takes over).
    max_interval: float | None = None
    _entries: dict[Key, _Entry] = field(default_factory=dict)
    _heap: list[tuple[float, int, Key]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __contains__(self, key: Key) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def observe(self, body: Mapping[str, Any]) -> None:
        """The latest object from the watch; a new object or a new generation syncs now."""
        meta = body.get("metadata") or {}
        key: Key = (meta.get("namespace") or "", meta.get("name") or "")
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(body=body, due=0.0, generation=meta.get("generation"))
            self._push(key, time.monotonic())
            return
        if _uid(body) != _uid(entry.body):  # deleted and re-created under the same name
            entry.body, entry.generation = body, meta.get("generation")
            entry.failures, entry.reuse_fetch = 0, False
            self._run_soon(key, entry)
            return
        if _newer(body, entry.body):
            entry.body = body
        if meta.get("generation") != entry.generation:
            entry.generation = meta.get("generation")
            entry.failures, entry.reuse_fetch = 0, False
            self._run_soon(key, entry)

    def update_body(self, body: Mapping[str, Any]) -> None:
        """A write's answer (e.g. the status patch): newer than what the watch has shown."""
        meta = body.get("metadata") or {}
        entry = self._entries.get((meta.get("namespace") or "", meta.get("name") or ""))
        if entry is not None and _newer(body, entry.body):
            entry.body = body

    def repair(self, key: Key) -> None:
        """Something we manage drifted (e.g. its Secret was deleted): fix it now, from cache."""
        entry = self._entries.get(key)
        if entry is not None:
            # A pass an event asked for (sync_now) reads Key Vault: its acknowledgement says
            # the Secret holds what Key Vault holds now, so a repair never turns it into a reuse.
            entry.reuse_fetch = not entry.waiters
            self._run_soon(key, entry)

    def sync_now(self, key: Key) -> asyncio.Future[Outcome] | None:
        """A fresh Key Vault read now (a Key Vault event named its secret); the future gets the
        outcome of a pass that starts after this call. None: ``key`` is not scheduled."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        entry.waiters.append(waiter)
        entry.reuse_fetch = False
        self._run_soon(key, entry)
        return waiter

    def poll_all_now(self) -> None:
        """Every object due now (events may have been missed while they were down)."""
        self._all_due_now()

    def bodies(self) -> list[tuple[Key, Mapping[str, Any]]]:
        """The latest object of every LLMProvider known (a snapshot, safe to act on)."""
        return [(key, entry.body) for key, entry in self._entries.items()]

    def uid(self, key: Key) -> str | None:
        """The uid of the object scheduled under ``key`` (None: not scheduled)."""
        entry = self._entries.get(key)
        return None if entry is None else _uid(entry.body)

    def forget(self, key: Key, uid: str | None = None) -> bool:
        """Stop syncing ``key``; with ``uid``, only if that object is still the one scheduled
        (a re-created object of the same name is kept). True when something was dropped."""
        entry = self._entries.get(key)
        if entry is None or (uid is not None and _uid(entry.body) != uid):
            return False
        del self._entries[key]
        entry.forgotten = True
        _resolve(entry.waiters, Outcome(None, "LLMProvider is gone", gone=True))
        return True

    def resync(
        self, namespace: str | None, listed: Iterable[Mapping[str, Any]], version: str
    ) -> list[Key]:
        """Make the set match a fresh LIST (of ``namespace``, or of all): returns the keys dropped.

        uid-keyed: an object that is gone, or was re-created under its name, is dropped; an
        object the watch never delivered is added. An entry the watch showed at a newer
        resourceVersion than the list's is kept (it was created after the list was taken).
        """
        live: dict[Key, Mapping[str, Any]] = {}
        for item in listed:
            meta = item.get("metadata") or {}
            if not meta.get("deletionTimestamp"):
                live[(meta.get("namespace") or "", meta.get("name") or "")] = item
        dropped = []
        taken = {"metadata": {"resourceVersion": version}}
        for key, entry in list(self._entries.items()):
            if namespace is not None and key[0] != namespace:
                continue
            listed_body = live.get(key)
            if listed_body is not None and _uid(listed_body) == _uid(entry.body):
                continue
            if _newer(entry.body, taken, strict=True):
                continue
            self.forget(key)
            dropped.append(key)
        for key, body in live.items():
            kept = self._entries.get(key)
            if kept is None or _uid(kept.body) == _uid(body):  # else: a newer one is kept
                self.observe(body)
        return dropped

    async def run(self) -> None:
        """Run due syncs while leading; on gaining the lead, everything is due at once."""
        slots = asyncio.Semaphore(self.concurrency)
        try:
            while True:
                if not self.leadership.leading.is_set():
                    await self.leadership.leading.wait()
                    self._all_due_now()
                self.leadership.changed.clear()
                key = await self._next_due()
                if key is None:
                    continue
                await slots.acquire()
                if not self.leadership.leading.is_set():
                    slots.release()
                    self._push(key, time.monotonic())
                    continue
                task = asyncio.create_task(self._work(key), name=f"sync {key[0]}/{key[1]}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                # Released when the task ends, even one cancelled before it started.
                task.add_done_callback(lambda _: slots.release())
        finally:
            await self.cancel_inflight()

    async def cancel_inflight(self) -> None:
        """Leadership lost: cancel every sync in flight and return once all have stopped. What
        they were doing is due again (it runs when this replica leads again)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._all_due_now()

    # -- internals ---------------------------------------------------------------------------

    async def _next_due(self) -> Key | None:
        """Pop the next due key, or None when woken (new work, lost or regained the lead)."""
        while self._heap:
            due, _, key = self._heap[0]
            entry = self._entries.get(key)
            if entry is None or entry.due != due or entry.running:
                heapq.heappop(self._heap)  # stale: rescheduled, running or forgotten
                continue
            delay = due - time.monotonic()
            if delay <= 0:
                heapq.heappop(self._heap)
                return key
            await self._sleep(delay)
            return None
        await self._sleep(None)
        return None

    async def _sleep(self, seconds: float | None) -> None:
        self._wake.clear()
        waits = [asyncio.ensure_future(self._wake.wait())]
        waits.append(asyncio.ensure_future(self.leadership.changed.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def _work(self, key: Key) -> None:
        entry = self._entries.get(key)
        if entry is None:  # forgotten between being picked and starting
            return
        entry.running, reuse = True, entry.reuse_fetch
        entry.reuse_fetch = entry.again = False
        waiters, entry.waiters = entry.waiters, []
        uid, started = _uid(entry.body), time.monotonic()
        try:
            outcome = await self.sync(key, entry.body, reuse)
        except asyncio.CancelledError:
            entry.waiters[:0] = waiters  # answered by the pass that runs once this replica leads
            raise
        except Exception:  # one object's crash must not stop the others
            log.exception("sync of %s/%s crashed; retrying with backoff", *key)
            outcome = Outcome(None, "sync crashed", transient=True)
        finally:
            entry.running = False
        _resolve(waiters, outcome)
        if outcome.gone:  # the pass found it deleted (or re-created): not this object's key anymore
            self.forget(key, uid)
        if entry.forgotten:
            return
        entry.failures = entry.failures + 1 if outcome.transient else 0
        if outcome.body is not None:
            self.update_body(outcome.body)
        if entry.again:
            self._push(key, time.monotonic())
            return
        interval = jittered(entry.body.get("spec", {}).get("refreshInterval"))
        if self.max_interval is not None:
            interval = min(interval, self.max_interval)
        # An interval counts from the pass's start (its own API calls do not stretch it); a
        # retry's backoff from its end.
        now = time.monotonic()
        since = now if outcome.transient else started
        self._push(key, max(now, since + next_wait(outcome, entry.failures, interval)))

    def _run_soon(self, key: Key, entry: _Entry) -> None:
        if entry.running:
            entry.again = True
        else:
            self._push(key, time.monotonic())

    def _push(self, key: Key, due: float) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        entry.due = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        self._wake.set()

    def _all_due_now(self) -> None:
        now = time.monotonic()
        for key, entry in self._entries.items():
            if not entry.running:
                self._push(key, now)


def next_wait(outcome: Outcome, failures: int, interval: float) -> float:
    """A transient failure retries with exponential backoff (capped by the interval), and never
    before the source's Retry-After; anything else waits for the next interval."""
    if not outcome.transient:
        return interval
    backoff = min(2.0 ** (failures - 1), interval)
    return max(outcome.retry_after or 0.0, backoff)


def jittered(interval: object) -> float:
    return refresh_seconds(interval) * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 (not security)


def _newer(
    candidate: Mapping[str, Any], current: Mapping[str, Any], *, strict: bool = False
) -> bool:
    """resourceVersion is opaque, but etcd's are integers; when not, trust arrival order
    (and, when ``strict``, the other side)."""
    new = (candidate.get("metadata") or {}).get("resourceVersion")
    old = (current.get("metadata") or {}).get("resourceVersion")
    try:
        return int(str(new)) > int(str(old)) if strict else int(str(new)) >= int(str(old))
    except (TypeError, ValueError):
        return not strict


def _resolve(waiters: list[asyncio.Future[Outcome]], outcome: Outcome) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(outcome)
    waiters.clear()


def _uid(body: Mapping[str, Any]) -> str | None:
    uid = (body.get("metadata") or {}).get("uid")
    return str(uid) if uid else None
