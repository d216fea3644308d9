"""One Claude Code CLI in streaming-input mode, serving many turns one after another.

The SDK requires one client to be driven from one task (its anyio task group lives in the task
that connected it). So each process has a worker task that owns the client: it connects, then
takes turns from an inbox and puts each turn's items on that turn's own queue. Whoever consumes
a turn, and whichever task closes the process, never touches the client itself.

Caller text is always sent ``client_composed`` (the CLI delivers it as written: no slash
command, no ``@path``); the one message that is not is the gateway's own ``/clear``
(``reset``), which starts a new conversation in the running CLI. The SDK's ``verbatim_prompts``
has no per-message opt-out, so the process marks each message itself, as the SDK advises.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_agent_sdk import (
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ConversationResetMessage,
    ResultMessage,
)

from llmhub_gateway.providers.base import ProviderCrashed, ProviderError
from llmhub_gateway.providers.claude_items import Done, Item, map_sdk_error, relay
from llmhub_gateway.providers.diagnostics import Tail
from llmhub_gateway.providers.procs import descendants, kill_tree, running

_WORKER_GRACE_S = 10.0
GRACEFUL_EXIT_S = 2.0  # a CLI whose stdin was closed gets this long to exit by itself

# What a process is bound to: the model and the system prompt it was started with.
Key = tuple[str, str | None]


# The CLI's own command that discards the conversation and starts a new one in-process.
CLEAR = "/clear"


@dataclass(slots=True)
class _Job:
    prompt: str
    out: asyncio.Queue[Item]
    control: bool = False  # the gateway's own slash command, never caller text


def _message(text: str, *, composed: bool) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "user",
        "message": {"role": "user", "content": text},
        "parent_tool_use_id": None,
        "session_id": "default",
    }
    if composed:
        message["client_composed"] = True
    return message


def _retrieved(task: asyncio.Task[None]) -> None:
    """A reset nobody waited for (its CLI was dropped) failed: that is no news."""
    if not task.cancelled():
        task.exception()


def _exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited (a zombie not reaped yet, or reaped already)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


async def _once(message: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    yield message


async def _cleared(client: ClaudeSDKClient, out: asyncio.Queue[Item]) -> None:
    """Read the answer to ``/clear`` as strictly as the CLI gives it: a conversation reset,
    then a successful, empty result under a new session id; anything else fails the CLI."""
    reset: ConversationResetMessage | None = None
    async for message in client.receive_response():
        if isinstance(message, ConversationResetMessage):
            reset = message
        elif isinstance(message, ResultMessage):
            if (
                reset is None
                or message.is_error
                or message.result
                or message.session_id == reset.session_id
            ):
                raise ProviderCrashed("claude: the CLI did not start a new conversation")
            out.put_nowait(Done())
            return
    raise ProviderCrashed("claude: the CLI ended without a result")


class ClaudeProcess:
    """A CLI and the task that owns its client. ``session`` is the CLI's session id once it
    reported one; ``context`` counts the transcript turns (user and assistant messages) the
    CLI holds, so a process that missed turns (answered on another replica) is never reused."""

    def __init__(
        self,
        options: ClaudeAgentOptions,
        *,
        key: Key,
        scratch: Path,
        stderr: Tail,
        session: str | None = None,
        context: int = 0,
    ) -> None:
        self.key = key
        self.scratch = scratch
        self.stderr = stderr
        self.session = session
        self.resumed = session is not None
        # Holds no conversation yet (just started, or cleared): a new one may start here.
        self.clean = session is None
        self.context = context
        self.turns = 0
        self.started = time.monotonic()
        self.startup_s: float | None = None  # spawn to ready, once it started
        self.last_used = self.started
        self.busy = False
        self.closed = False
        self.failure: ProviderError | None = None
        self.start_error: str | None = None  # why connect() failed, as raised (no secret in it)
        self.ready = asyncio.Event()
        self._client = ClaudeSDKClient(options)
        self._inbox: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._closing: asyncio.Future[None] | None = None
        self._clearing: asyncio.Task[None] | None = None  # a /clear sent, its answer awaited
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            try:
                await self._client.connect()
                self.startup_s = time.monotonic() - self.started
            except Exception as exc:  # everything the SDK raises ends as one of ours
                self.start_error = str(exc)
                self.failure = map_sdk_error(exc, self.stderr.text())
                return
            finally:
                self.ready.set()
            while (job := await self._inbox.get()) is not None:
                try:
                    message = _message(job.prompt, composed=not job.control)
                    await self._client.query(_once(message))
                    await (_cleared if job.control else relay)(self._client, job.out)
                except Exception as exc:
                    self.failure = map_sdk_error(exc, self.stderr.text())
                    job.out.put_nowait(self.failure)
                    return
                finally:
                    # Never leave the reader waiting; after Done or an error this is never read.
                    job.out.put_nowait(ProviderCrashed("claude: the adapter stopped unexpectedly"))
        finally:
            while not self._inbox.empty():  # jobs queued behind a failure are answered too
                if (left := self._inbox.get_nowait()) is not None:
                    left.out.put_nowait(self.failure or ProviderCrashed("claude: the CLI stopped"))
            with contextlib.suppress(Exception):
                await self._client.disconnect()

    def submit(self, prompt: str) -> asyncio.Queue[Item]:
        """Start a turn; its items (ending with Done or an error) arrive on the queue."""
        out: asyncio.Queue[Item] = asyncio.Queue()
        self._inbox.put_nowait(_Job(prompt, out))
        return out

    @property
    def clearing(self) -> bool:
        """A reset started by ``clear_soon`` is still running."""
        return self._clearing is not None and not self._clearing.done()

    def clear_soon(self) -> None:
        """Start the reset now, while the CLI is idle (its conversation ended with its turn),
        so the next new conversation does not wait for it: ``reset`` then only waits for
        what is left of it. A failure shows there and in ``alive``."""
        if self._clearing is None or self._clearing.done():
            self._clearing = asyncio.create_task(self._clear())
            self._clearing.add_done_callback(_retrieved)

    async def reset(self) -> None:
        """Discard the conversation this CLI holds and start a new one in-process (the CLI's
        ``/clear``: no model call, tens of milliseconds), so a new conversation needs no new
        CLI. The system prompt and model stay (they are start-up flags). Raises the failure
        (the CLI is then unusable) when the CLI did not reset."""
        self.clear_soon()
        assert self._clearing is not None
        await asyncio.shield(self._clearing)

    async def _clear(self) -> None:
        if self._task.done():  # the worker is gone: nobody would answer the job
            raise self.failure or ProviderCrashed("claude: the CLI stopped")
        out: asyncio.Queue[Item] = asyncio.Queue()
        self._inbox.put_nowait(_Job(CLEAR, out, control=True))
        item = await out.get()
        if isinstance(item, ProviderError):
            raise item
        self.session = None
        self.resumed = False
        self.context = 0
        self.clean = True

    def _process(self) -> object:
        """The SDK's handle on the CLI (private to it, hence the defensive lookup)."""
        return getattr(getattr(self._client, "_transport", None), "_process", None)

    @property
    def pid(self) -> int | None:
        """The CLI's PID."""
        pid = getattr(self._process(), "pid", None)
        return pid if isinstance(pid, int) else None

    def alive(self) -> bool:
        """Usable for another turn: not closed or failed, and (once spawned) not exited.

        The pool asks this of every CLI several times per turn, so it asks the kernel with one
        ``waitid`` (the CLI is the gateway's own child: the launcher ``exec``s it) instead of
        reading /proc; ``WNOWAIT`` leaves the reaping to the event loop's child watcher."""
        if self.closed or self.failure is not None or self._task.done():
            return False
        process = self._process()
        if process is None:
            return True
        pid = getattr(process, "pid", None)
        if getattr(process, "returncode", None) is not None or not isinstance(pid, int):
            return False
        return not _exited(pid)

    def rss_mb(self) -> float:
        """Resident memory of the CLI and its children, from /proc."""
        pid = self.pid
        if pid is None:
            return 0.0
        total_kb = 0
        for each in (pid, *descendants(pid)):
            with (
                contextlib.suppress(OSError, ValueError),
                open(f"/proc/{each}/status", encoding="ascii", errors="replace") as fh,
            ):
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
        return total_kb / 1024

    async def close(self, *, graceful: bool) -> None:
        """Stop the CLI: a graceful close lets it exit after its stdin closes; then (or at
        once) its whole tree is killed and the worker task ended. Its scratch dir goes too.
        Closing twice waits for the first close."""
        if self._closing is None:
            self.closed = True
            self._inbox.put_nowait(None)
            self._closing = asyncio.ensure_future(self._close(graceful=graceful))
        await asyncio.shield(self._closing)

    async def _close(self, *, graceful: bool) -> None:
        try:
            await self._stop(graceful=graceful)
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)

    async def _stop(self, *, graceful: bool) -> None:
        loop = asyncio.get_running_loop()
        pid = self.pid
        tree = [pid, *descendants(pid)] if pid is not None else []
        if graceful:
            await asyncio.wait([self._task], timeout=GRACEFUL_EXIT_S)
        for leftover in tree:  # children the CLI left behind when it exited by itself
            if running(leftover):
                await kill_tree(leftover)
        killed: set[int] = set()
        deadline = loop.time() + _WORKER_GRACE_S
        # Looping covers a close that comes before the SDK has even spawned the CLI.
        while not self._task.done() and loop.time() < deadline:
            pid = self.pid
            if pid is not None and pid not in killed:
                killed.add(pid)
                await kill_tree(pid)
            await asyncio.wait([self._task], timeout=0.1)
        if not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task], timeout=_WORKER_GRACE_S)
