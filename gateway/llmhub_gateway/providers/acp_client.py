"""A minimal Agent Client Protocol client: JSON-RPC 2.0 over a child's stdio, one JSON
message per line.

One job: framing and routing. Requests get increasing ids and a future each; responses resolve
them; ``session/update`` notifications go to the queue of their session; requests the agent
makes of us (permission prompts, file reads) are refused, since the gateway grants nothing.
When the child dies, every pending call fails with ``AcpClosed`` and every session queue gets
``None``, so nobody waits forever. Lines are read with ``StreamReader.readuntil``, which scans
each byte once: a 10 MB line costs linear time, and lines above ``MAX_LINE`` end the connection.

Every write is bounded. A message is handed to the pipe whole in one synchronous ``write`` (so
messages never interleave and no lock is needed); only the wait for the pipe to take it
(``drain``) can block, and it is bounded: an agent that stops reading its stdin for
``write_timeout_s`` (or the shorter bound a caller gives, e.g. for ``session/cancel``) is
wedged for every session it serves, so its process group is killed and every call fails with
``AcpStalled``. ``close`` is bounded too. The ACP Python SDK was evaluated for this job and not
adopted; docs/gateway.md ("Gemini runtime") says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llmhub_gateway.providers.diagnostics import Tail, safe_detail
from llmhub_gateway.providers.procs import kill_tree

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024 * 1024
WRITE_TIMEOUT_S = 30.0  # an agent that takes nothing from its stdin this long is wedged
_CLOSE_WAIT_S = 5.0  # for the killed process to be reaped and its pipes to end
# JSON-RPC's "method not found": what we answer to any request the agent sends us.
METHOD_NOT_FOUND = -32601


class AcpError(Exception):
    """The agent answered a request with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class AcpClosed(Exception):
    """The agent's process ended (or its stdout closed) before answering."""

    def __init__(self, status: int | None) -> None:
        super().__init__(f"the agent exited (status {status})")
        self.status = status


class AcpStalled(AcpClosed):
    """The agent stopped reading its stdin: it was killed, and nothing it had is answered."""

    def __init__(self) -> None:
        super().__init__(None)
        self.args = ("the agent stopped reading its input",)


Update = dict[str, Any]


class AcpConnection:
    """One agent process and its JSON-RPC channel; ``start``, then ``request``/``notify``."""

    def __init__(
        self, proc: asyncio.subprocess.Process, *, write_timeout_s: float = WRITE_TIMEOUT_S
    ) -> None:
        self.proc = proc
        self.write_timeout_s = write_timeout_s
        self.pid: int = proc.pid
        self.noise = Tail()  # non-JSON stdout/stderr lines, for the log when it fails
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._sessions: dict[str, asyncio.Queue[Update | None]] = {}
        self._closed: AcpClosed | None = None
        self.eof = False  # stdout ended: the agent is gone even before it is reaped
        self._killing: asyncio.Task[int | None] | None = None  # once it was found wedged
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        write_timeout_s: float = WRITE_TIMEOUT_S,
    ) -> AcpConnection:
        """Spawn ``argv`` in its own session (so its whole group can be killed)."""
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            cwd=str(cwd),
            start_new_session=True,
            limit=MAX_LINE,
        )
        return cls(proc, write_timeout_s=write_timeout_s)

    @property
    def closed(self) -> AcpClosed | None:
        """Why the channel is gone, or None while it is up."""
        return self._closed

    async def request(self, method: str, params: Mapping[str, Any]) -> Any:
        """Send a request; its ``result``, or AcpError / AcpClosed."""
        if self._closed is not None:
            raise self._closed
        self._next_id += 1
        rid = self._next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            try:
                await self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
            except BaseException:
                if future.done() and not future.cancelled():
                    future.exception()  # failed with the connection: retrieved
                raise
            return await future
        finally:
            self._pending.pop(rid, None)

    async def notify(
        self, method: str, params: Mapping[str, Any], *, timeout_s: float | None = None
    ) -> None:
        """Send a notification; ``timeout_s`` bounds the wait for the pipe to take it (at most
        ``write_timeout_s``), past which the agent counts as wedged (AcpStalled)."""
        if self._closed is None:
            message = {"jsonrpc": "2.0", "method": method, "params": params}
            await self._send(message, timeout_s=timeout_s)

    def subscribe(self, session_id: str) -> asyncio.Queue[Update | None]:
        """The queue of ``session/update`` payloads of one session (None: the agent died)."""
        queue: asyncio.Queue[Update | None] = asyncio.Queue()
        if self._closed is not None:
            queue.put_nowait(None)
        self._sessions[session_id] = queue
        return queue

    def unsubscribe(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    async def close(self, grace_s: float = 2.0) -> int | None:
        """Kill the process group (TERM, then KILL) and reap; the exit status. Bounded: what
        is still unwritten is dropped, and a child that cannot be reaped is left to init."""
        if self.proc.returncode is None:
            await kill_tree(self.pid, pgid=self.pid, grace_s=grace_s)
        stdin = self.proc.stdin
        if stdin is not None and not stdin.transport.is_closing():
            stdin.transport.abort()  # close() would wait to flush to a deaf reader
        status: int | None = None
        with contextlib.suppress(TimeoutError):
            status = await asyncio.wait_for(self.proc.wait(), _CLOSE_WAIT_S)
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=_CLOSE_WAIT_S)
            for task in stuck:
                task.cancel()
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved
        self._fail_all(status)
        return status

    async def _send(self, message: Mapping[str, Any], *, timeout_s: float | None = None) -> None:
        if self._closed is not None:
            raise self._closed
        stdin = self.proc.stdin
        assert stdin is not None
        line = json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n"
        bound = self.write_timeout_s if timeout_s is None else min(timeout_s, self.write_timeout_s)
        try:
            stdin.write(line.encode())  # whole, at once: messages never interleave
            await asyncio.wait_for(stdin.drain(), bound)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise AcpClosed(self.proc.returncode) from exc
        except TimeoutError:
            self._stalled()
            raise AcpStalled() from None

    def _stalled(self) -> None:
        """The agent took nothing from its stdin within the bound: wedged for every session,
        so fail everything now and kill its group (in the background: callers do not wait)."""
        if self._killing is None:
            log.warning("ACP agent %s stopped reading its input; killing it", self.pid)
            self._fail_all(None, AcpStalled())
            self._killing = asyncio.create_task(self.close(grace_s=0.0))

    async def _read_stdout(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while True:
                try:
                    raw = await stdout.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        self._dispatch(exc.partial)
                    break
                except asyncio.LimitOverrunError:
                    log.warning("ACP agent %s sent a line over %d bytes", self.pid, MAX_LINE)
                    self.proc.kill()
                    break
                self._dispatch(raw)
            # stdout closed: the agent is exiting; its status says how (bounded wait)
            self.eof = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 5.0)
        finally:
            self._fail_all(self.proc.returncode)

    async def _read_stderr(self) -> None:
        stderr = self.proc.stderr
        assert stderr is not None
        while line := await stderr.readline():
            self.noise.add(line.decode(errors="replace").rstrip())

    def _dispatch(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self.noise.add(raw.decode(errors="replace").rstrip()[:500])
            return
        if "method" in message:
            self._incoming(message)
            return
        rid = message.get("id")
        future = self._pending.get(rid) if isinstance(rid, int) else None
        if future is None or future.done():
            return
        error = message.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            future.set_exception(
                AcpError(
                    code if isinstance(code, int) else -32603,
                    str(error.get("message", "")),
                    error.get("data"),
                )
            )
        else:
            future.set_result(message.get("result"))

    def _incoming(self, message: dict[str, Any]) -> None:
        method = message["method"]
        params = message.get("params")
        if method == "session/update" and isinstance(params, dict):
            queue = self._sessions.get(str(params.get("sessionId")))
            update = params.get("update")
            if queue is not None and isinstance(update, dict):
                queue.put_nowait(update)
            return
        if "id" in message:  # a request of the agent: we grant nothing
            log.info("ACP agent %s asked %s; refused", self.pid, safe_detail(str(method)))
            reply = {
                "jsonrpc": "2.0",
                "id": message["id"],
                "error": {"code": METHOD_NOT_FOUND, "message": "not supported by this client"},
            }
            task = asyncio.create_task(self._send(reply))
            self._tasks.append(task)

    def _fail_all(self, status: int | None, reason: AcpClosed | None = None) -> None:
        if self._closed is None:
            self._closed = reason or AcpClosed(status)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(self._closed)
        for queue in self._sessions.values():
            queue.put_nowait(None)
        self._sessions.clear()
