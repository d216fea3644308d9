"""Warm ``gemini --acp`` processes, several conversations each.

A process costs seconds to start and hundreds of MB, so the pool keeps up to ``max_processes``
of them alive and runs up to ``sessions_per_process`` turns in each at once. It keeps one spare
process with free room for the default model started ahead of need, so a new conversation pays
no start-up. A conversation keeps its ACP session in the process that created it: the next turn
sends only the new message (``NativeSession`` carries the id to the store). With a recording
store (Redis), each turn's CLI recording is kept there, and a turn whose session is not held here
(another replica, a recycled process) puts it into a process's home and ``session/load``s it,
again sending only the new message; without one, or when the recording is missing, too big,
behind the conversation or refused, it starts a new session with the transcript replayed.
Processes are recycled after ``max_turns`` turns or ``max_age_s`` seconds (once idle) and
replaced when they die. A caller's cancellation never ends a process that serves anyone else:
a process is killed only for its own hang -- a ``session/new``/``session/load`` or a cancelled
prompt left unanswered for ``hang_s``, or a stdin it stopped reading (``acp_client``) -- or
when the cancelled turn that ignores its cancel was the only one on it. The pool never grows
past ``memory_mb`` of CLI memory on this replica (all CLI children, both providers, measured
from /proc). Each process has its own home, hence its own copy of the credentials: two
processes never refresh one file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmhub_gateway.errors import StoreUnavailable
from llmhub_gateway.providers.acp_client import AcpClosed, AcpConnection, AcpError, AcpStalled
from llmhub_gateway.providers.admission import Claims
from llmhub_gateway.providers.base import (
    ChatRequest,
    NativeSession,
    ProviderAuthError,
    ProviderBusy,
    ProviderCrashed,
    ProviderError,
    ProviderNotConfigured,
    ProviderRateLimited,
    ProviderTimeout,
    StreamItem,
    Usage,
)
from llmhub_gateway.providers.child_memory import read_child_memory
from llmhub_gateway.providers.diagnostics import category, safe_detail
from llmhub_gateway.providers.gemini_accounts import account_refusal
from llmhub_gateway.providers.gemini_recordings import (
    Recording,
    RecordingStore,
    claim_project,
    find,
    history_answers,
    restore,
)
from llmhub_gateway.providers.owners import owned, sweep
from llmhub_gateway.providers.procs import (
    background,
    detached,
    finish,
)
from llmhub_gateway.providers.prompt_text import command_safe_blocks
from llmhub_gateway.providers.sampled import Sampled
from llmhub_gateway.providers.transcript import render_prompt

log = logging.getLogger(__name__)
CLAIM_S = 30.0  # an admitted turn holds its place this long until its stream starts

EXIT_AUTH = 41  # the CLI's FATAL_AUTHENTICATION_ERROR
ACP_PROTOCOL_VERSION = 1
# The CLI's interactive login (refused cached credentials) writes this on stdout and then
# reads the "code" from stdin, i.e. from our JSON-RPC channel: never let it wait there.
LOGIN_PROMPT = "authorize the application"
_LOAD_HISTORY_S = 5.0  # for a loaded session's history updates to have come through


class AcpUnsupported(Exception):
    """The CLI has no ACP mode (older CLI, unknown flag): use the one-shot path instead."""


@dataclass
class PoolLimits:
    max_processes: int = 2
    sessions_per_process: int = 4
    max_turns: int = 200
    max_age_s: float = 3600.0
    memory_mb: int = 3072
    process_mb: int = 300  # what one more process is expected to cost before it runs
    start_timeout_s: float = 60.0
    shutdown_grace_s: float = 10.0
    # A process that leaves session/new, session/load or a cancelled prompt unanswered this
    # long is hung (for everyone on it) and is killed; a caller's cancel alone never kills.
    hang_s: float = 60.0
    cancel_grace_s: float = 2.0  # for a cancelled prompt to be acknowledged
    write_timeout_s: float = 30.0  # for a CLI to take a message from its stdin
    # The CLIs' resident memory is read from /proc at most this often (child_memory.py): every
    # admission checks it; a process started since the reading counts as process_mb.
    memory_sample_s: float = 1.0


@dataclass
class HeldSession:
    id: str
    history_len: int  # len(request.history) this session's context matches, for its next turn
    busy: bool = False
    last_used: float = field(default_factory=time.monotonic)


class AcpProcess:
    """One warm CLI: its connection (once started), home, sessions and counters."""

    def __init__(self, model: str, home: Path, fingerprint: str) -> None:
        self.model = model
        self.home = home
        self.fingerprint = fingerprint  # of the creds and env it was started with
        self.workdir = home / "work"
        self.conn: AcpConnection | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.started = time.monotonic()
        self.turns = 0
        self.active = 0  # turns reserved or running here
        self.sessions: dict[str, HeldSession] = {}
        self.retiring = False
        self.hung = False  # killed by a hang timer: its turns' errors say so

    @property
    def alive(self) -> bool:
        if self.ready.done() and self.ready.exception() is not None:
            return False
        return self.conn is None or (self.conn.closed is None and not self.conn.eof)

    def usable(self, model: str, fingerprint: str) -> bool:
        return (
            self.alive
            and not self.retiring
            and self.model == model
            and self.fingerprint == fingerprint
        )


Launch = Callable[[str, Path, str], tuple[list[str], dict[str, str]]]
Fingerprint = Callable[[], str]


class AcpPool:
    """The warm processes of one provider. ``launch(model, home, flag)`` prepares ``home``
    (creds, settings) and gives argv (ACP through ``flag``) and env; ``default_model`` is what
    the spare runs. ``fingerprint()`` digests what a process is started with (mounted creds,
    env): a process started with other values (a rotated Secret, a new project) takes no new
    turn and is recycled once idle."""

    def __init__(
        self,
        *,
        root: Path,
        launch: Launch,
        fingerprint: Fingerprint,
        default_model: str,
        limits: PoolLimits,
        recordings: RecordingStore | None = None,
    ) -> None:
        self.recordings = recordings
        # Homes a killed gateway left behind (the emptyDir outlives a container restart); a
        # live gateway on this machine may share ``root``: only dead owners' homes go.
        sweep(root)
        self.root = owned(root)
        self._fingerprint = fingerprint
        self.limits = limits
        self.default_model = default_model
        self._launch = launch
        self.processes: list[AcpProcess] = []
        self.spawned = 0  # processes ever started (tests, metrics)
        self.unsupported = False
        self.flag = ACP_FLAG  # OLD_ACP_FLAG once the CLI refused --acp
        self._closing = False
        self._quiet = asyncio.Event()  # set when no turn is running (for a graceful shutdown)
        self._work: set[asyncio.Task[None]] = set()  # starts and retirements under way
        # Turns admitted but not yet placed on a process: they count against the room, so
        # turns admitted together never overfill the pool and fail after their 200.
        self._claims = Claims(CLAIM_S)
        self._memory = Sampled(lambda: read_child_memory().total_mb, limits.memory_sample_s)

    # -- admission -------------------------------------------------------------------------

    def admit(self, request: ChatRequest) -> None:
        """Raise ProviderBusy (before any stream starts) when this turn could not get a slot."""
        if self.unsupported:
            return
        if self._closing:
            raise ProviderBusy("gemini: this replica is shutting down", retry_after=2)
        model = request.model or self.default_model
        room = self._room(model, self._fingerprint())
        self._claims.admit(request, room, self._busy)

    def _busy(self) -> ProviderBusy:
        return ProviderBusy(
            f"gemini: all {self.limits.max_processes} warm CLI processes are busy, retry later",
            retry_after=2,
        )

    def withdraw(self, request: ChatRequest) -> None:
        """Give up the place ``admit`` took for a turn whose stream will never start."""
        self._claims.release(request)

    def _room(self, model: str, fingerprint: str) -> int:
        """Turns of ``model`` that could start now: free places on usable processes, plus
        those of processes the pool may still start (or start in an idle one's place)."""
        live = self._live()
        free = sum(
            self.limits.sessions_per_process - p.active
            for p in live
            if p.usable(model, fingerprint)
        )
        if self._can_grow():
            starting = self.limits.max_processes - sum(not p.retiring for p in live)
            free += starting * self.limits.sessions_per_process
        elif self._evictable(model, fingerprint) is not None:
            free += self.limits.sessions_per_process
        return max(0, free)

    def _has_room(self, proc: AcpProcess, model: str, fingerprint: str) -> bool:
        return proc.usable(model, fingerprint) and proc.active < self.limits.sessions_per_process

    def _live(self) -> list[AcpProcess]:
        self.processes = [p for p in self.processes if p.alive]
        return self.processes

    def _can_grow(self) -> bool:
        if sum(not p.retiring for p in self._live()) >= self.limits.max_processes:
            return False
        # One /proc walk a second at most (it was one per admission); processes started since
        # that reading are not in it, so each counts as a whole process_mb, as the next does.
        used = self._memory.get()
        unseen = sum(1 for p in self.processes if p.started >= self._memory.taken)
        return used + (unseen + 1) * self.limits.process_mb <= self.limits.memory_mb

    def _evictable(self, model: str, fingerprint: str) -> AcpProcess | None:
        """An idle process of another model (or stale) whose place a new one could take."""
        for proc in self._live():
            other = proc.model != model or proc.fingerprint != fingerprint
            if other and proc.active == 0 and proc.ready.done():
                return proc
        return None

    # -- processes -------------------------------------------------------------------------

    def warm(self) -> None:
        """Start a spare for the default model unless one has room (called on every turn)."""
        if self._closing or self.unsupported:
            return
        model, current = self.default_model, self._fingerprint()
        if any(self._has_room(p, model, current) for p in self._live()):
            return
        if self._can_grow():
            self._spawn(model, current)

    def _spawn(self, model: str, fingerprint: str) -> AcpProcess:
        home = self.root / f"proc-{uuid.uuid4().hex[:12]}"
        proc = AcpProcess(model, home, fingerprint)
        self.processes.append(proc)
        self.spawned += 1
        task = background(self._start(proc))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        return proc

    async def _start(self, proc: AcpProcess) -> None:
        try:
            proc.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                await self._open(proc, self.flag)
            except AcpUnsupported:
                if self.flag != ACP_FLAG:
                    raise
                # A CLI from before --acp refuses it as an unknown argument (yargs strict).
                log.info("the gemini CLI has no %s; using %s", ACP_FLAG, OLD_ACP_FLAG)
                self.flag = OLD_ACP_FLAG
                await self._open(proc, self.flag)
        except BaseException as exc:
            if isinstance(exc, AcpUnsupported):
                self.unsupported = True
            await self._retire_now(proc)  # gone before anyone hears of the failure
            if not proc.ready.done():
                failure = (
                    exc
                    if isinstance(exc, Exception)
                    else ProviderCrashed("gemini: the CLI did not start")
                )
                proc.ready.set_exception(failure)
                proc.ready.exception()  # retrieved: waiters re-raise it themselves
            if not isinstance(exc, Exception):
                raise
            return
        proc.ready.set_result(None)

    async def _open(self, proc: AcpProcess, flag: str) -> None:
        """Start the CLI with ``flag`` and do the handshake (a failed attempt is closed)."""
        if proc.conn is not None:
            await proc.conn.close(grace_s=0.5)
        argv, env = self._launch(proc.model, proc.home, flag)
        claim_project(proc.home, proc.workdir)
        try:
            proc.conn = await AcpConnection.start(
                argv, env=env, cwd=proc.workdir, write_timeout_s=self.limits.write_timeout_s
            )
        except (FileNotFoundError, PermissionError) as exc:
            raise ProviderNotConfigured("gemini: the gemini CLI was not found") from exc
        except OSError as exc:
            log.warning("gemini CLI did not start: %s", safe_detail(str(exc)))
            raise ProviderError("gemini: the CLI could not be started") from exc
        await self._initialize(proc.conn)

    async def _initialize(self, conn: AcpConnection) -> None:
        params = {
            "protocolVersion": ACP_PROTOCOL_VERSION,
            "clientCapabilities": {"fs": {"readTextFile": False, "writeTextFile": False}},
        }
        call = asyncio.ensure_future(conn.request("initialize", params))
        deadline = time.monotonic() + self.limits.start_timeout_s
        try:
            while not call.done():
                if LOGIN_PROMPT in conn.noise.text():
                    raise ProviderAuthError("gemini: the CLI rejected the OAuth credentials")
                if time.monotonic() > deadline:
                    raise ProviderCrashed(
                        f"gemini: the CLI did not start within {self.limits.start_timeout_s:g} s"
                    )
                await asyncio.wait([call], timeout=0.05)
            result = call.result()
        except AcpError as exc:
            if exc.code == -32601:
                raise AcpUnsupported() from exc
            raise ProviderCrashed("gemini: the CLI refused the ACP handshake") from exc
        except AcpClosed as exc:
            raise _start_failure(exc.status, conn.noise.text()) from exc
        finally:
            call.cancel()
        if not isinstance(result, dict) or not isinstance(result.get("protocolVersion"), int):
            raise ProviderCrashed("gemini: the CLI answered the ACP handshake with garbage")

    def _retire_later(self, proc: AcpProcess) -> None:
        task = background(self._retire_now(proc))
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def _retire_now(self, proc: AcpProcess) -> None:
        """Kill the process group, forget the process, remove its home."""
        proc.retiring = True
        if proc in self.processes:
            self.processes.remove(proc)
        try:
            if proc.conn is not None:
                await proc.conn.close(grace_s=2.0)
        finally:
            shutil.rmtree(proc.home, ignore_errors=True)

    def _maybe_recycle(self, proc: AcpProcess, fingerprint: str | None = None) -> None:
        worn = (
            proc.turns >= self.limits.max_turns
            or (fingerprint is not None and proc.fingerprint != fingerprint)
            or time.monotonic() - proc.started >= self.limits.max_age_s
        )
        if worn:
            proc.retiring = True
        if proc.retiring and proc.active == 0 and proc in self.processes:
            self._retire_later(proc)

    # -- turns -----------------------------------------------------------------------------

    def _reserve(self, request: ChatRequest) -> tuple[AcpProcess, HeldSession | None]:
        self.withdraw(request)  # placed now: its claim becomes this turn's place
        model = request.model or self.default_model
        current = self._fingerprint()
        for proc in self._live():  # recycling of old or stale idle processes
            self._maybe_recycle(proc, current)
        native = request.native_session
        if native:
            for proc in self._live():
                held = proc.sessions.get(native)
                if held is not None and held.history_len != len(request.history):
                    del proc.sessions[native]  # the conversation went on elsewhere: stale
                    continue
                if held is not None and not held.busy and self._has_room(proc, model, current):
                    proc.active += 1
                    self._quiet.clear()
                    held.busy = True
                    return proc, held
        candidates = [p for p in self._live() if self._has_room(p, model, current)]
        if candidates:
            proc = min(candidates, key=lambda p: (not p.ready.done(), p.active))
        elif self._can_grow():
            proc = self._spawn(model, current)
        elif (victim := self._evictable(model, current)) is not None:
            victim.retiring = True
            self._retire_later(victim)
            proc = self._spawn(model, current)
        else:
            raise ProviderBusy(
                f"gemini: all {self.limits.max_processes} warm CLI processes are busy, retry later",
                retry_after=2,
            )
        proc.active += 1
        self._quiet.clear()
        return proc, None

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamItem, None]:
        """One turn; raises AcpUnsupported (before yielding) when the CLI has no ACP.

        A process can die between turns and be picked before its death is noticed (its
        stdout's EOF not yet read): a turn that finds its process dead before any answer
        came is run once more on another, its session replayed there."""
        answered = False
        try:
            async for item in self._turn(request):
                answered = True
                yield item
        except _DiedBeforeAnswer as died:
            if answered:  # cannot happen (raised before the first item); never run twice
                raise died.error from None
            log.warning("gemini ACP process %s was gone before it answered; retrying", died.pid)
            try:
                async for item in self._turn(request):
                    yield item
            except _DiedBeforeAnswer as again:  # twice: a real crash, not a stale process
                raise again.error from None

    async def _turn(self, request: ChatRequest) -> AsyncGenerator[StreamItem, None]:
        if self._closing:
            raise ProviderBusy("gemini: this replica is shutting down", retry_after=2)
        proc, held = self._reserve(request)
        reused = proc.turns > 0 or held is not None
        answered = False
        self.warm()
        session_id: str | None = None
        ok = False
        prompt_call: asyncio.Future[Any] | None = None
        try:
            await asyncio.shield(proc.ready)
            conn = proc.conn
            assert conn is not None
            queue: asyncio.Queue[dict[str, Any] | None] | None = None
            if held is None:
                queue = await self._load_session(conn, proc, request)
                if queue is not None:
                    session_id = request.native_session
                    text = request.prompt
                else:
                    session_id = await self._new_session(conn, proc)
                    text = render_prompt(request, include_system=True)
            else:
                session_id = held.id
                text = request.prompt
            assert session_id is not None
            if queue is None:
                queue = conn.subscribe(session_id)
            params = {"sessionId": session_id, "prompt": command_safe_blocks(text)}
            prompt_call = asyncio.ensure_future(conn.request("session/prompt", params))
            async for delta in _deltas(queue, prompt_call):
                answered = True
                yield delta
            result = prompt_call.result()
            usage = _usage(result)
            if usage is not None:
                yield usage
            await self._keep_recording(proc, session_id, request)
            if held is None:
                yield NativeSession(session_id)
            ok = True
        except AcpError as exc:
            raise _turn_failure(exc) from exc
        except AcpStalled as exc:
            raise ProviderTimeout("gemini: the CLI stopped reading its input") from exc
        except AcpClosed as exc:
            if proc.hung:
                raise ProviderCrashed(
                    f"gemini: the CLI stopped answering for {self.limits.hang_s:g} s; "
                    "it was restarted"
                ) from exc
            error = _crash(exc.status, proc)
            if reused and not answered:
                raise _DiedBeforeAnswer(error, proc.conn.pid if proc.conn else None) from exc
            raise error from exc
        finally:
            await finish(self._end_turn(proc, held, session_id, request, ok, prompt_call))

    async def _timed(self, proc: AcpProcess, call: asyncio.Future[Any], what: str) -> Any:
        """Await ``call`` (a session/new or session/load) under the hang timer. A caller that
        leaves does not take the call with it: it runs on (other turns share the process), and
        only the timer, never a cancel, decides that the process hangs."""
        detached(self._watch(proc, call, what))
        return await asyncio.shield(call)

    async def _watch(self, proc: AcpProcess, call: asyncio.Future[Any], what: str) -> None:
        """Kill ``proc`` if ``call`` is still unanswered after ``hang_s``."""
        done, _ = await asyncio.wait([call], timeout=self.limits.hang_s)
        if not done and proc.alive:
            log.warning(
                "gemini ACP process %s left %s unanswered for %g s; killing it",
                proc.conn.pid if proc.conn else None,
                what,
                self.limits.hang_s,
            )
            proc.hung = True
            await self._retire_now(proc)
            await asyncio.wait([call], timeout=self.limits.cancel_grace_s)
        if call.done() and not call.cancelled():
            call.exception()  # retrieved: its turn may be gone
        else:
            call.cancel()

    async def _new_session(self, conn: AcpConnection, proc: AcpProcess) -> str:
        params = {"cwd": str(proc.workdir), "mcpServers": []}
        call = asyncio.ensure_future(conn.request("session/new", params))
        result = await self._timed(proc, call, "session/new")
        session_id = result.get("sessionId") if isinstance(result, dict) else None
        if not isinstance(session_id, str) or not session_id:
            raise ProviderCrashed("gemini: the CLI answered session/new without a session id")
        return session_id

    async def _load_session(
        self, conn: AcpConnection, proc: AcpProcess, request: ChatRequest
    ) -> asyncio.Queue[dict[str, Any] | None] | None:
        """Open the request's native session here from its stored recording: the queue of the
        session, its loaded history already consumed; None when it cannot be (then replay)."""
        native = request.native_session
        if not native or self.recordings is None:
            return None
        try:
            recording = await self.recordings.load(native)
        except StoreUnavailable:
            log.warning("gemini: the recording store is unreachable; replaying the history")
            return None
        if recording is None or recording.history_len != len(request.history):
            return None  # none kept, or behind the conversation (a turn's copy failed)
        try:
            restore(proc.home, recording)
        except OSError as exc:
            log.warning("gemini: could not restore a recording: %s", safe_detail(str(exc)))
            return None
        expected = history_answers(recording.data)
        queue = conn.subscribe(native)
        params = {"sessionId": native, "cwd": str(proc.workdir), "mcpServers": []}
        try:
            call = asyncio.ensure_future(conn.request("session/load", params))
            await self._timed(proc, call, "session/load")
            if await _skip_history(queue, expected):
                return queue
            log.warning("gemini: a loaded session's history did not come through; replaying")
        except AcpError as exc:
            log.warning("gemini: session/load refused (%s); replaying", exc.code)
        except BaseException:
            conn.unsubscribe(native)
            raise
        conn.unsubscribe(native)
        return None

    async def _keep_recording(
        self, proc: AcpProcess, session_id: str, request: ChatRequest
    ) -> None:
        """Copy the CLI's recording of this session to the store, for a turn elsewhere."""
        if self.recordings is None:
            return
        path = find(proc.home, session_id)
        if path is None:
            log.info("gemini: no recording of this session; its next turn elsewhere replays")
            return
        try:
            size = path.stat().st_size
            if size > self.recordings.max_bytes:  # not even read
                await self.recordings.forget(session_id, size)
                return
            data = await asyncio.to_thread(path.read_text, encoding="utf-8")
            await self.recordings.save(
                session_id, Recording(path.name, data, len(request.history) + 2)
            )
        except (OSError, UnicodeDecodeError, StoreUnavailable) as exc:
            log.warning("gemini: could not keep a recording: %s", safe_detail(str(exc)))

    async def _end_turn(
        self,
        proc: AcpProcess,
        held: HeldSession | None,
        session_id: str | None,
        request: ChatRequest,
        ok: bool,
        prompt_call: asyncio.Future[Any] | None,
    ) -> None:
        """Account the turn; on failure forget the session (its context may hold the failed
        message) and, if the prompt is still running, cancel it. Bounded by about twice
        ``cancel_grace_s`` plus a kill, whatever the CLI does. A prompt that ignores its cancel
        gets the process killed at once when it was the only turn there; with other turns on
        the process it gets ``hang_s`` to end first (their answers are not the caller's to
        end)."""
        conn = proc.conn
        grace = self.limits.cancel_grace_s
        try:
            if prompt_call is not None and not prompt_call.done() and conn is not None:
                with contextlib.suppress(AcpClosed):  # AcpStalled: it killed itself
                    await conn.notify("session/cancel", {"sessionId": session_id}, timeout_s=grace)
                done, _ = await asyncio.wait([prompt_call], timeout=grace)
                if not done and proc.active > 1:
                    detached(self._watch(proc, prompt_call, "a cancelled prompt"))
                elif not done:  # only this turn was here: recycle the process now
                    log.warning("gemini ACP process %s ignored a cancel; killing it", conn.pid)
                    prompt_call.cancel()
                    await self._retire_now(proc)
            if prompt_call is not None and prompt_call.done() and not prompt_call.cancelled():
                prompt_call.exception()  # retrieved
            if conn is not None and session_id is not None:
                conn.unsubscribe(session_id)
        finally:
            proc.active -= 1
            if session_id is not None:
                if ok:
                    proc.turns += 1
                    kept = held or HeldSession(session_id, 0)
                    kept.busy = False
                    kept.history_len = len(request.history) + 2
                    kept.last_used = time.monotonic()
                    proc.sessions[session_id] = kept
                    self._bound_sessions(proc)
                else:
                    proc.sessions.pop(session_id, None)
            if not any(p.active for p in self.processes):
                self._quiet.set()
            if not proc.alive and proc in self.processes:
                await self._retire_now(proc)
            else:
                self._maybe_recycle(proc)

    def _bound_sessions(self, proc: AcpProcess) -> None:
        """Keep at most ``sessions_per_process`` idle sessions per process (LRU): a forgotten
        session only costs a replay on its next turn."""
        idle = sorted((s for s in proc.sessions.values() if not s.busy), key=lambda s: s.last_used)
        excess = len(proc.sessions) - self.limits.sessions_per_process
        for held in idle[: max(0, excess)]:
            del proc.sessions[held.id]

    async def aclose(self) -> None:
        """Graceful: refuse new turns, let running ones finish within the grace, then kill."""
        self._closing = True
        if any(p.active for p in self.processes):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._quiet.wait(), self.limits.shutdown_grace_s)
        if self._work:  # a process still starting would otherwise outlive the pool
            await asyncio.wait(set(self._work), timeout=self.limits.shutdown_grace_s)
        for proc in list(self.processes):
            await self._retire_now(proc)
        with contextlib.suppress(OSError):
            self.root.rmdir()  # empty now: every home went with its process


async def _deltas(
    queue: asyncio.Queue[dict[str, Any] | None], call: asyncio.Future[Any]
) -> AsyncIterator[str]:
    """Text of the session's agent message chunks until the prompt call completes. The agent
    writes every update before its response on the one pipe, so once the call is done the
    queue already holds the rest."""
    while True:
        if call.done() and queue.empty():
            call.result()  # raises the call's error, if any
            return
        getter = asyncio.ensure_future(queue.get())
        try:
            await asyncio.wait([getter, call], return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if not getter.done() or getter.cancelled():
            continue
        update = getter.result()
        if update is None:  # the process died; the call fails with AcpClosed
            await asyncio.wait([call])
            call.result()
            return
        text = _chunk_text(update)
        if text:
            yield text


async def _skip_history(queue: asyncio.Queue[dict[str, Any] | None], answers: int) -> bool:
    """Consume a loaded session's history updates up to its last ``agent_message_chunk``
    (the agent streams them without awaiting, so some may follow its answer to the load).
    False if they did not all come within _LOAD_HISTORY_S or the agent died."""
    deadline = time.monotonic() + _LOAD_HISTORY_S
    while answers > 0:
        try:
            update = await asyncio.wait_for(queue.get(), deadline - time.monotonic())
        except TimeoutError:
            return False
        if update is None:
            return False
        if update.get("sessionUpdate") == "agent_message_chunk":
            answers -= 1
    return True


def _chunk_text(update: Mapping[str, Any]) -> str | None:
    if update.get("sessionUpdate") != "agent_message_chunk":
        return None  # thoughts, commands lists, loaded history, tool calls: not the answer
    content = update.get("content")
    if isinstance(content, dict) and content.get("type") == "text":
        text = content.get("text")
        return text if isinstance(text, str) else None
    return None


def _usage(result: object) -> Usage | None:
    """``_meta.quota.token_count`` of the session/prompt response (0.61)."""
    if not isinstance(result, dict):
        return None
    meta = result.get("_meta")
    quota = meta.get("quota") if isinstance(meta, dict) else None
    counts = quota.get("token_count") if isinstance(quota, dict) else None
    if not isinstance(counts, dict):
        return None
    tokens_in, tokens_out = counts.get("input_tokens"), counts.get("output_tokens")
    if not isinstance(tokens_in, int) or not isinstance(tokens_out, int):
        return None
    return Usage(tokens_in=max(0, tokens_in), tokens_out=max(0, tokens_out))


def _turn_failure(exc: AcpError) -> ProviderError:
    refusal = account_refusal(exc.message)
    if refusal is not None:
        return refusal
    error = {"code": exc.code, "type": "AcpError"}
    if exc.code in (-32000, 401, 403):  # the agent's "Authentication required"
        log.warning("gemini ACP auth failure: %s", safe_detail(exc.message))
        return ProviderAuthError("gemini: the CLI rejected the OAuth credentials")
    log.warning("gemini ACP error %s: %s", exc.code, safe_detail(exc.message))
    if exc.code == 429:
        return ProviderRateLimited(category("gemini", error))
    return ProviderError(category("gemini", error))


class _DiedBeforeAnswer(Exception):
    """A reused process turned out dead before it answered: the turn may run elsewhere."""

    def __init__(self, error: ProviderError, pid: int | None) -> None:
        super().__init__(str(error))
        self.error, self.pid = error, pid


def _crash(status: int | None, proc: AcpProcess) -> ProviderError:
    noise = proc.conn.noise.text() if proc.conn is not None else ""
    log.warning("gemini ACP process exited with %s: %s", status, safe_detail(noise))
    if status == EXIT_AUTH:
        return account_refusal(noise) or ProviderAuthError(
            "gemini: the CLI rejected the OAuth credentials"
        )
    if status:
        return ProviderCrashed(f"gemini: the CLI exited with status {status}")
    return ProviderCrashed("gemini: the CLI ended without an answer")


def _start_failure(status: int | None, noise: str) -> Exception:
    if status == EXIT_AUTH or LOGIN_PROMPT in noise:
        return account_refusal(noise) or ProviderAuthError(
            "gemini: the CLI rejected the OAuth credentials"
        )
    if "Unknown argument" in noise:
        return AcpUnsupported()
    log.warning("gemini ACP process exited at start with %s: %s", status, safe_detail(noise))
    return ProviderCrashed(f"gemini: the CLI exited with status {status}")


ACP_FLAG = "--acp"
OLD_ACP_FLAG = "--experimental-acp"  # deprecated since the CLI gained --acp (0.61 has both)


def argv_for(cli: str, model: str, flag: str = ACP_FLAG) -> list[str]:
    return [cli, flag, "-m", model, "--approval-mode", "default"]
