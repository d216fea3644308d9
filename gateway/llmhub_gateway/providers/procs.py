"""Killing a CLI's whole process tree (TERM, then KILL) without leaving anything running.

Descendants are found with psutil (it reads /proc on Linux), because the Claude SDK starts its
CLI in the gateway's own process group, so a group kill alone cannot reach it. psutil's own
``wait_procs`` sleeps, so the wait for the tree to go stays an async poll here.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import shutil
import signal
import time
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any, TypeVar

import psutil

_POLL_S = 0.02
_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def running(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() not in _GONE
    except psutil.Error:
        return False


def descendants(pid: int) -> list[int]:
    """All descendants of ``pid`` (zombies included, for the reaping checks)."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def children_rss_mb() -> int:
    """Resident memory of every descendant of this gateway (both providers' CLIs), in MB."""
    total = 0
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total // (1024 * 1024)


def _signal(pids: Iterable[int], pgid: int | None, sig: signal.Signals) -> None:
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


async def kill_tree(pid: int, *, pgid: int | None = None, grace_s: float = 2.0) -> None:
    """SIGTERM the tree (and group), wait up to ``grace_s``, then SIGKILL what is left.

    Reaping the direct child stays with whoever spawned it (ptyprocess, anyio).
    """
    pids = [pid, *descendants(pid)]
    _signal(pids, pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not any(running(p) for p in pids):
            return
        await asyncio.sleep(_POLL_S)  # exits are not signalled to us for grandchildren
    leftover = [p for p in pids if running(p)]
    if not leftover:
        return
    _signal(leftover, pgid, signal.SIGKILL)
    # SIGKILL is delivered asynchronously: wait (bounded) until the kernel has torn them down,
    # so callers that check right after never see a survivor.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        if not any(running(p) for p in leftover):
            return
        await asyncio.sleep(_POLL_S)


def resolve_executable(path: str) -> str:
    """An absolute path for ``path``: the CLI runs in a scratch cwd, so relative paths break."""
    if os.path.isabs(path):
        return path
    if os.sep in path:
        return os.path.abspath(path)
    return shutil.which(path) or path


T = TypeVar("T")
_cleanups: set[asyncio.Task[Any]] = set()
# CappedProvider sets this around every step of an inner stream, to learn which cleanups (CLI kills)
# that stream started, and frees its slot only when they are done.
_tracker: contextvars.ContextVar[list[asyncio.Task[Any]] | None] = contextvars.ContextVar(
    "llmhub_cleanup_tracker", default=None
)


async def finish(cleanup: Coroutine[Any, Any, T]) -> T:
    """Run ``cleanup`` to the end even if the caller is cancelled while it runs.

    Streams are closed from cancelled contexts (client disconnects inside anyio task groups,
    where every further await is cancelled again), and a half-run cleanup would leave a CLI
    alive. The cleanup therefore runs in its own task; the caller waits for it when it can.
    """
    return await asyncio.shield(background(cleanup))


def background(work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Start ``work`` as a task that shutdown waits for (``drain_cleanups``) and that nobody's
    cancellation reaches; ``finish`` is this plus a shielded wait."""
    task = asyncio.create_task(work)
    _cleanups.add(task)
    task.add_done_callback(_cleanups.discard)
    tracked = _tracker.get()
    if tracked is not None:
        tracked.append(task)
    return task


_detached: set[asyncio.Task[Any]] = set()


def detached(work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task nobody's cancellation reaches that is neither a stream's cleanup nor waited for
    at shutdown: a watch that may outlast its turn (a shared process's hang timer) must not
    hold the turn's slot, nor delay shutdown, which kills the processes it watches anyway."""
    task = asyncio.create_task(work, context=contextvars.Context())
    _detached.add(task)  # the loop keeps only a weak reference
    task.add_done_callback(_detached.discard)
    return task


@contextlib.contextmanager
def tracking(tasks: list[asyncio.Task[Any]]) -> Iterator[None]:
    """Collect into ``tasks`` the cleanups that ``finish`` starts inside this block."""
    token = _tracker.set(tasks)
    try:
        yield
    finally:
        _tracker.reset(token)


async def drain_cleanups(timeout_s: float) -> int:
    """Wait (bounded) for every cleanup still running; the number left unfinished.

    Called at shutdown before the session store closes: a cleanup may still release a lease.
    """
    pending = set(_cleanups)
    if pending:
        _, pending = await asyncio.wait(pending, timeout=timeout_s)
    return len(pending)
