"""A bounded pool of warm Claude CLIs on this replica.

Starting the CLI costs seconds (the SDK's initialize handshake), so processes outlive turns:
each active session keeps its process (its context already holds the conversation), and a few
idle processes for the default model and no system prompt are started ahead, so a new session
pays no start-up. A new conversation also takes an idle CLI that served another one (same model
and system prompt, least recently used first): the provider resets it in-process (``/clear``)
before the turn, so new conversations stay warm at any rate while the pool has an idle CLI. A
CLI whose conversation ended with its turn (an OpenAI request) is reset right after that turn,
off the next caller's path, and is taken first.
A process is recycled after ``max_turns`` turns, ``max_age_s`` seconds or ``max_rss_mb`` of
memory, replaced when it crashed or hung, and the pool never holds more than
``max_processes`` (the replica's memory budget): at capacity an idle process is evicted, and
when every process is busy the caller gets ProviderBusy before anything is spawned.

Spares follow demand (demand.py): the pool keeps ``rate of new conversations * start-up time``
clean spares for the default key (at least ``idle``), within the budget, and stops the surplus
when demand drops.

Admission reserves: ``admit`` takes a claim (admission.Claims) that counts against the
processes a turn could get (idle ones, which may be evicted, and room to start more), so
turns admitted together never overfill the pool and fail inside their streams; the turn's
``take`` turns the claim into a busy process, and ``withdraw`` ends a claim whose turn never
started (or it expires after ``claim_s``).

Choosing a process never awaits, so two turns can never take the same one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmhub_gateway.providers.admission import Claims
from llmhub_gateway.providers.base import ChatRequest, ProviderBusy
from llmhub_gateway.providers.child_memory import read_child_memory
from llmhub_gateway.providers.claude_items import parse_handle
from llmhub_gateway.providers.claude_process import ClaudeProcess, Key
from llmhub_gateway.providers.demand import Demand
from llmhub_gateway.providers.procs import background
from llmhub_gateway.providers.sampled import Sampled
from llmhub_gateway.providers.start_state import StartState

log = logging.getLogger("llmhub_gateway.providers.claude")

# (key, session to resume or None, transcript turns that session holds) -> a starting process
Spawn = Callable[[Key, str | None, int], ClaudeProcess]


@dataclass(frozen=True, slots=True)
class ClaudePoolLimits:
    idle: int = 1
    max_processes: int = 4
    max_turns: int = 100
    max_age_s: float = 3600.0
    max_rss_mb: float = 300.0
    # The replica's budget for all CLI children, both providers (PROVIDER_MEMORY_MB): no new
    # CLI starts unless the children's resident memory leaves room for one more. 0: no check.
    memory_mb: float = 0.0
    check_s: float = 5.0  # how often idle CLIs are checked (died, too old) and spares refilled
    start_backoff_s: float = 30.0  # no new spares this long after one failed to start
    claim_s: float = 30.0  # an admitted turn holds its place this long until its stream starts
    demand_window_s: float = 60.0  # new conversations per second are counted over this window
    # The CLIs' resident memory is read from /proc at most this often (child_memory.py):
    # every admission and every turn's end check it; a CLI started since counts as max_rss_mb.
    memory_sample_s: float = 1.0


class ClaudePool:
    def __init__(self, spawn: Spawn, *, default_key: Key, limits: ClaudePoolLimits) -> None:
        self._spawn = spawn
        self._default_key = default_key
        self.limits = limits
        self._procs: list[ClaudeProcess] = []
        self._closing = False
        self._quiet = asyncio.Event()  # set while no turn is running (shutdown waits on it)
        self._quiet.set()
        self._watchdog: asyncio.Task[None] | None = None
        self._no_spares_until = 0.0
        self._claims = Claims(limits.claim_s)  # admitted turns whose streams have not started
        self.start_state = StartState("claude")  # readiness reads it (registry.problems)
        self.demand = Demand(limits.demand_window_s)
        self._timed: set[int] = set()  # ids of processes whose start-up time was counted
        self._memory = Sampled(read_child_memory, limits.memory_sample_s)

    @property
    def processes(self) -> list[ClaudeProcess]:
        """Live processes (for metrics and tests)."""
        return list(self._procs)

    def start(self) -> None:
        """Pre-start the idle processes and watch them (needs a running loop): a spare that
        died or aged out is replaced even while no turn comes."""
        self._refill()
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.limits.check_s)
            self._refill()

    # -- choosing a process ------------------------------------------------------------------

    def session_process(self, request: ChatRequest, key: Key) -> ClaudeProcess | None:
        """The live process already holding this conversation, if it is current; a process
        that missed turns (they ran on another replica) or lost its CLI is dropped."""
        if request.native_session is None:
            return None
        native = parse_handle(request.native_session)[0]
        for proc in self._procs:
            if proc.session != native or proc.busy:
                continue
            if proc.key == key and proc.alive() and proc.context == len(request.history):
                return proc
            if proc.alive():  # its conversation moved on elsewhere: reusable once cleared
                proc.session = None
            else:
                self._drop(proc, graceful=False)
        return None

    def admit(self, request: ChatRequest) -> None:
        """Claim a process for this request's turn, or raise ProviderBusy when every one is
        busy or claimed by turns admitted before."""
        if self._closing:
            raise ProviderBusy("claude: this replica is shutting down", retry_after=1)
        self._sweep()
        self._claims.admit(request, self._room(), self._busy)

    def withdraw(self, request: ChatRequest) -> None:
        """End the claim of a turn whose stream will never start."""
        self._claims.release(request)

    def _busy(self) -> ProviderBusy:
        return ProviderBusy(
            f"claude: all {self.limits.max_processes} CLI processes are busy", retry_after=2
        )

    def _room(self) -> int:
        """Turns that could get a process now: idle ones (reused or evicted) and the ones the
        pool may still start within its size and memory budget."""
        idle = sum(1 for p in self._procs if not p.busy)
        return idle + (self.limits.max_processes - len(self._procs) if self._can_grow() else 0)

    def take(
        self, request: ChatRequest, key: Key, *, resume: bool, spawn: bool = False
    ) -> tuple[ClaudeProcess, bool]:
        """A process for this turn, marked busy, and whether it holds (or will resume) the
        conversation natively; otherwise the caller replays the history (on a process that
        is ``clean`` or must be reset first). ``spawn``: a new process, none reused. A turn
        admitted before uses its claim; one that was not needs a place no claim holds."""
        claimed = self._claims.release(request)
        if self._closing:
            raise ProviderBusy("claude: this replica is shutting down", retry_after=1)
        self._sweep()
        if not claimed and len(self._claims) >= self._room():
            raise self._busy()
        if request.native_session is None and not spawn and key == self._default_key:
            self.demand.arrived()
        proc = self.session_process(request, key)
        native = proc is not None
        if proc is None and resume and request.native_session is not None:
            self._make_room()
            proc = self._add(key, parse_handle(request.native_session)[0], len(request.history))
            native = True
        if proc is None and not spawn:
            proc = self._idle(key)
        if proc is None:
            self._make_room()
            proc = self._add(key, None, 0)
        proc.busy = True
        self._quiet.clear()
        self._refill()
        return proc, native

    def _settled(self) -> None:
        if not any(p.busy for p in self._procs):
            self._quiet.set()

    def give_back(self, proc: ClaudeProcess, *, ok: bool, context: int, ended: bool) -> None:
        """After a turn: keep a healthy process for its session, recycle or drop the rest. A
        conversation that ``ended`` with its turn (no later turn continues it) is cleared
        now, while the CLI is idle, so the next new conversation finds it clean."""
        proc.busy = False
        self._settled()
        proc.clean = False
        proc.turns += 1
        proc.last_used = time.monotonic()
        proc.context = context
        if not ok or not proc.alive():
            self._drop(proc, graceful=False)
        elif self._worn(proc):
            log.info("claude: recycling a CLI after %d turns", proc.turns)
            self._drop(proc, graceful=True)
        elif ended:
            proc.clear_soon()
        self._refill()

    def discard(self, proc: ClaudeProcess) -> None:
        """A process that failed before its turn (start-up failed): drop it."""
        proc.busy = False
        self._drop(proc, graceful=False)
        self._settled()

    # -- housekeeping ------------------------------------------------------------------------

    def _worn(self, proc: ClaudeProcess) -> bool:
        limits = self.limits
        return (
            proc.turns >= limits.max_turns
            or time.monotonic() - proc.started >= limits.max_age_s
            or self._memory.get().of(proc.pid) >= limits.max_rss_mb
        )

    def _idle(self, key: Key) -> ClaudeProcess | None:
        """An idle process with this key for a new conversation: a ready one that was
        cleared, else one being cleared (its turn waits for the few milliseconds left), else
        a pre-started spare (taking one starts a replacement), else a ready one that served
        another conversation (reset before use: first those whose session moved elsewhere,
        then the least recently used), else a spare still starting."""
        idle = [p for p in self._procs if not p.busy and p.key == key and p.alive()]
        ready = [p for p in idle if p.ready.is_set()]
        used = sorted(
            (p for p in ready if not p.clean and not p.clearing),
            key=lambda p: (p.session is not None, p.last_used),
        )
        ordered = [
            *(p for p in ready if p.clean and p.turns),
            *(p for p in ready if p.clearing),
            *(p for p in ready if p.clean and not p.turns),
            *used,
            *(p for p in idle if p.clean and not p.ready.is_set()),
        ]
        return ordered[0] if ordered else None

    def _can_grow(self) -> bool:
        if len(self._procs) >= self.limits.max_processes:
            return False
        budget = self.limits.memory_mb
        if budget <= 0:
            return True
        # CLIs started since the reading are not in it: each counts as its share.
        used = self._memory.get().total_mb
        unseen = sum(1 for p in self._procs if p.started >= self._memory.taken)
        return used + (unseen + 1) * self.limits.max_rss_mb <= budget

    def _victim(self) -> ClaudeProcess | None:
        """The idle process to evict first: the least recently used session, then spares."""
        idle = [p for p in self._procs if not p.busy]
        if not idle:
            return None
        return min(idle, key=lambda p: (p.session is None, p.last_used))

    def _make_room(self) -> None:
        if self._can_grow():
            return
        victim = self._victim()
        if victim is None:
            raise self._busy()
        self._drop(victim, graceful=True)

    def _add(self, key: Key, session: str | None, context: int) -> ClaudeProcess:
        proc = self._spawn(key, session, context)
        self._procs.append(proc)
        return proc

    def _drop(self, proc: ClaudeProcess, *, graceful: bool) -> None:
        if proc in self._procs:
            self._procs.remove(proc)
        background(proc.close(graceful=graceful))

    def _sweep(self) -> None:
        """Drop idle processes that died (crashed between turns) or grew too old."""
        for proc in list(self._procs):
            if proc.ready.is_set() and proc.alive():
                self.start_state.started()
            if proc.busy:
                continue
            if proc.ready.is_set() and not proc.alive():
                if proc.failure is not None and proc.turns == 0:
                    log.warning("claude: a CLI failed to start: %s", proc.failure)
                    self.start_state.failed(proc.start_error or str(proc.failure))
                    self._no_spares_until = time.monotonic() + self.limits.start_backoff_s
                else:
                    log.warning("claude: a CLI exited while idle; replacing it")
                self._drop(proc, graceful=False)
            elif time.monotonic() - proc.started >= self.limits.max_age_s:
                self._drop(proc, graceful=True)

    def _refill(self) -> None:
        """Keep as many spare processes for the default key as demand asks (at least
        ``idle``), within the budget; stop the surplus (ready ones, oldest first)."""
        if self._closing:
            return
        self._sweep()
        self._time_startups()
        target = self.demand.spares(self.limits.idle)
        spares = [p for p in self._procs if p is self._idle_of(p)]
        surplus = sorted((p for p in spares if p.ready.is_set()), key=lambda p: p.started)
        for proc in surplus[: max(0, len(spares) - target)]:
            self._drop(proc, graceful=True)
        if time.monotonic() < self._no_spares_until:
            return
        count = len(spares)
        while count < target and self._can_grow():
            self._add(self._default_key, None, 0)
            count += 1

    def _time_startups(self) -> None:
        """Feed each process's start-up time to the demand estimate, once."""
        live = {id(p) for p in self._procs}
        self._timed &= live
        for proc in self._procs:
            if proc.startup_s is not None and id(proc) not in self._timed:
                self._timed.add(id(proc))
                self.demand.started(proc.startup_s)

    def _idle_of(self, proc: ClaudeProcess) -> ClaudeProcess | None:
        """A pre-started spare: never used (a cleared CLI is reused, but neither counts
        towards the spares demand asks for nor is stopped as their surplus)."""
        spare = not proc.busy and proc.clean and not proc.turns and proc.key == self._default_key
        return proc if spare else None

    async def aclose(self, grace_s: float) -> None:
        """Shutdown: no new turns; turns in flight get ``grace_s`` to finish; then every CLI
        is stopped (idle ones gracefully, the rest killed with their process tree)."""
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), grace_s)
        procs, self._procs = self._procs, []
        await asyncio.gather(*(p.close(graceful=not p.busy) for p in procs))
