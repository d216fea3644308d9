"""The pools' memory readings: one walk of /proc for every CLI tree, kept for a while."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from llmhub_gateway.providers.child_memory import read_child_memory
from llmhub_gateway.providers.sampled import Sampled

# A child that starts a grandchild holding 200 MiB, then prints its PID once it is resident.
PARENT = (
    "import subprocess, sys; g = subprocess.Popen([sys.executable, '-c', "
    "\"import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
    "print('x', flush=True); time.sleep(60)\"], stdout=subprocess.PIPE); "
    "g.stdout.readline(); print(g.pid, flush=True); g.wait()"
)


def test_a_reading_is_kept_until_it_is_too_old() -> None:
    now = [0.0]
    reads: list[float] = []

    def read() -> int:
        reads.append(now[0])
        return len(reads)

    sampled = Sampled(read, 1.0, clock=lambda: now[0])
    assert sampled.get() == 1
    now[0] = 0.9
    assert sampled.get() == 1  # still fresh: /proc is not walked again
    assert sampled.taken == 0.0
    now[0] = 1.0
    assert sampled.get() == 2
    assert reads == [0.0, 1.0]
    assert sampled.taken == 1.0


def test_a_grandchilds_memory_counts_for_the_cli_it_belongs_to() -> None:
    child = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE)
    assert child.stdout is not None
    grandchild = int(child.stdout.readline())
    try:
        memory = read_child_memory()
        assert memory.of(child.pid) >= 200  # the child's own tree, grandchild included
        assert grandchild not in memory.trees_mb  # counted under its CLI, not on its own
        assert memory.total_mb >= memory.of(child.pid)
        assert memory.of(None) == 0.0
    finally:
        os.kill(grandchild, signal.SIGKILL)  # the child reaps it and exits
        child.wait(timeout=10)
