"""PtyRun: async line reading from a real PTY, control sequences stripped, groups killed."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from llmhub_gateway.providers import procs, pty_runner
from llmhub_gateway.providers.pty_runner import PtyRun, split_lines, strip_control
from tests.gateway.providers.conftest import our_zombies

WRITER = r"""
import sys, time
out = sys.stdout
out.write("\x1b[?25l\x1b]0;title\x07\x1b[32mgreen\x1b[0m\n")
out.write('{"half": '); out.flush(); time.sleep(0.05)
out.write('"done"}\r\n'); out.flush()
out.write("tty=%s\n" % sys.stdout.isatty())
out.write("stdin=%s\n" % sys.stdin.read().strip() if not sys.stdin.isatty() else "stdin=tty\n")
out.write("no newline at the end")
"""


def test_strip_control_keeps_text_and_drops_sequences() -> None:
    raw = "\x1b[1;31mred\x1b[0m \x1b]0;t\x07plain\x00\x07\x1b=\ttab"
    assert strip_control(raw) == "red plain\ttab"


async def test_lines_are_reassembled_cleaned_and_complete(tmp_path: Path) -> None:
    run = await PtyRun.start(
        [sys.executable, "-c", WRITER], env=dict(os.environ), cwd=tmp_path, stdin_data=None
    )
    try:
        lines = [line async for line in run.lines()]
    finally:
        await run.terminate()
    assert lines == [
        "green",
        '{"half": "done"}',
        "tty=True",
        "stdin=tty",
        "no newline at the end",
    ]
    assert run.exit_status == 0


async def test_stdin_data_goes_through_a_pipe(tmp_path: Path) -> None:
    payload = "p" * 300_000  # more than a pipe buffer: written without blocking the loop
    run = await PtyRun.start(
        [sys.executable, "-c", WRITER],
        env=dict(os.environ),
        cwd=tmp_path,
        stdin_data=payload.encode(),
    )
    try:
        lines = [line async for line in run.lines()]
    finally:
        await run.terminate()
    assert f"stdin={payload}" in lines


async def test_terminate_kills_the_whole_group_and_reaps(tmp_path: Path) -> None:
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    run = await PtyRun.start([sys.executable, "-c", script], env=dict(os.environ), cwd=tmp_path)
    lines = run.lines()
    assert await anext(lines) == "ready"
    tree = [run.pid, *procs.descendants(run.pid)]
    assert len(tree) == 2
    started = time.monotonic()
    await run.terminate(grace_s=0.5)
    assert time.monotonic() - started < 5
    assert not any(procs.running(pid) for pid in tree)
    assert run.exit_status is not None
    assert run.exit_status < 0
    assert our_zombies() == []


async def test_a_huge_single_line_is_split_in_linear_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One 4 MB line arriving in many reads: each character is searched for a line end once
    (the old splitter re-split the growing buffer on every read: quadratic)."""
    size = 4_000_000
    scanned: list[int] = []

    def counting(text: str) -> list[str]:
        scanned.append(len(text))
        return split_lines(text)

    monkeypatch.setattr(pty_runner, "split_lines", counting)
    script = f"import sys; sys.stdout.write('z' * {size}); sys.stdout.write('\\nend\\n')"
    run = await PtyRun.start([sys.executable, "-c", script], env=dict(os.environ), cwd=tmp_path)
    try:
        lines = [line async for line in run.lines()]
    finally:
        await run.terminate()
    assert lines == ["z" * size, "end"]
    assert len(scanned) > 10  # it did arrive in many reads...
    assert sum(scanned) <= size + 64  # ...and each character was scanned once
