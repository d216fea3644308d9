"""Run one CLI under a pseudo-terminal and read its output as lines, without blocking the loop.

The child gets its own session and process group (ptyprocess forks through pty.fork), so
``terminate()`` can take down everything it started. Reads use ``loop.add_reader`` on the PTY
master: no thread per process, no blocking read.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import os
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from ptyprocess import PtyProcess, PtyProcessError

from llmhub_gateway.providers.procs import kill_tree

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), other ESC sequences (ESC =, ESC ( B), then the
# remaining C0 controls except tab (newlines are handled by the line splitter).
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[ -/]*[0-~]"
    r"|[\x00-\x08\x0b-\x1f\x7f]"
)
_LINE_END = re.compile(r"\r\n|\n|\r")
_READ_SIZE = 65536
_POLL_S = 0.02


def strip_control(text: str) -> str:
    """Drop terminal control sequences and control characters from one line."""
    return _CONTROL.sub("", text)


class PtyRun:
    """One running CLI; iterate ``lines()``, then ``terminate()`` (always, in a finally)."""

    def __init__(self, proc: PtyProcess) -> None:
        self._proc = proc
        self.pid: int = proc.pid
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        os.set_blocking(proc.fd, False)
        self._loop.add_reader(proc.fd, self._on_readable)
        self._reading = True
        self._feeder: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        stdin_data: bytes | None = None,
    ) -> PtyRun:
        """Spawn ``argv`` (never through a shell); ``stdin_data`` goes through a pipe on fd 0."""
        read_fd: int | None = None
        write_fd: int | None = None
        if stdin_data is not None:
            read_fd, write_fd = os.pipe()
        pipe_fd = read_fd

        def use_pipe_as_stdin() -> None:
            if pipe_fd is not None:
                os.dup2(pipe_fd, 0)
                os.close(pipe_fd)

        try:
            proc = PtyProcess.spawn(
                list(argv),
                cwd=str(cwd),
                env=dict(env),
                echo=False,
                dimensions=(50, 500),
                preexec_fn=use_pipe_as_stdin,
                pass_fds=() if read_fd is None else (read_fd,),
            )
        finally:
            if read_fd is not None:
                os.close(read_fd)
        proc.delayafterclose = 0.0  # ptyprocess would otherwise sleep in the event loop
        proc.delayafterterminate = 0.0
        run = cls(proc)
        if write_fd is not None and stdin_data is not None:
            run._feeder = asyncio.create_task(run._feed(write_fd, stdin_data))
        return run

    async def _feed(self, fd: int, data: bytes) -> None:
        """Write the stdin pipe without blocking the loop (a pipe holds only 64 KiB)."""
        os.set_blocking(fd, False)
        view = memoryview(data)
        try:
            while view:
                try:
                    written = os.write(fd, view)
                    view = view[written:]
                except BlockingIOError:
                    await asyncio.sleep(_POLL_S)
        except BrokenPipeError:
            pass  # the CLI exited before reading it all; its output will say why
        finally:
            os.close(fd)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._proc.fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: every holder of the slave side has closed it
            if exc.errno not in (errno.EIO, errno.EBADF):
                raise
            data = b""
        if data:
            self._queue.put_nowait(data)
        else:
            self._stop_reading()
            self._queue.put_nowait(None)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._proc.fd)

    async def lines(self) -> AsyncIterator[str]:
        """Yield decoded output lines, CR/LF normalised, control sequences stripped.

        Linear in the output: only each new chunk is searched for line ends, and the pieces of
        an unfinished line are kept in a list and joined once, when the line ends."""
        pending: list[str] = []
        decoder = _utf8_decoder()
        while True:
            chunk = await self._queue.get()
            if chunk is None:
                pending.append(decoder.decode(b"", final=True))
                rest = "".join(pending)
                if rest.strip():
                    yield strip_control(rest).strip()
                return
            *complete, tail = split_lines(decoder.decode(chunk))
            if complete:
                complete[0] = "".join([*pending, complete[0]])
                pending = []
            pending.append(tail)
            for line in complete:
                cleaned = strip_control(line).strip()
                if cleaned:
                    yield cleaned

    @property
    def exit_status(self) -> int | None:
        """Exit code once reaped (negative signal number if killed), else None."""
        try:
            if self._proc.isalive():
                return None
        except PtyProcessError:  # already reaped elsewhere
            return -1
        if self._proc.signalstatus is not None:
            return -int(self._proc.signalstatus)
        return int(self._proc.exitstatus or 0)

    async def wait(self, timeout_s: float) -> int | None:
        """Reap the child if it exits within ``timeout_s``; its exit status, else None."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.exit_status
            if status is not None or time.monotonic() >= deadline:
                return status
            await asyncio.sleep(_POLL_S)

    async def terminate(self, grace_s: float = 2.0) -> None:
        """Kill the process group (TERM, then KILL), reap the child, close the PTY."""
        self._stop_reading()
        if self._feeder is not None and not self._feeder.done():
            self._feeder.cancel()
        if self.exit_status is None:
            await kill_tree(self.pid, pgid=self.pid, grace_s=grace_s)
        else:  # the child is gone, but what it left in its group may not be
            await kill_tree(self.pid, pgid=self.pid, grace_s=0.5)
        await self.wait(grace_s)
        with contextlib.suppress(OSError):
            self._proc.close(force=True)


def split_lines(text: str) -> list[str]:
    """Split one decoded chunk at CR, LF and CRLF; the last piece is an unfinished line. (A
    CRLF torn between two chunks yields an empty line, which ``lines`` skips.)"""
    return _LINE_END.split(text)


def _utf8_decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")(errors="replace")
