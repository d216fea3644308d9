"""Which gateway process owns a scratch or home directory, so only a dead one's are swept.

The CLIs' scratch directories and homes live in an emptyDir (or /tmp) that outlives a killed
gateway, and that two gateway processes on one machine may share. Each process puts its
directories under ``<root>/gw-<pid>-<start>-<boot>``: its pid, its start time (psutil's, in
hundredths of a second, so a recycled pid is another owner) and the first 8 hex digits of
/proc/sys/kernel/random/boot_id (so a pid from before a reboot is another owner).
At start a gateway sweeps, under each root, the owner directories whose process is gone, and
nothing else: a live gateway's directories, and entries it cannot read as an owner, stay.
Owners are told apart through /proc, so gateways sharing a root must share a pid namespace (one
container, as the chart runs it).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
from pathlib import Path

import psutil

from llmhub_gateway.providers.procs import running

log = logging.getLogger(__name__)

_PREFIX = "gw-"
_NAME = re.compile(r"^gw-(\d+)-(\d+)-([0-9a-f]{8})$")


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip().replace("-", "")[:8].lower()
    except OSError:
        return "00000000"


def _started(pid: int) -> int | None:
    """When the process started (hundredths of a second), None when it is gone."""
    if not running(pid):
        return None
    try:
        return int(psutil.Process(pid).create_time() * 100)
    except psutil.Error:
        return None


def owner_name(pid: int | None = None) -> str:
    """The owner directory's name for ``pid`` (this process by default)."""
    pid = os.getpid() if pid is None else pid
    return f"{_PREFIX}{pid}-{_started(pid) or 0}-{_boot_id()}"


@functools.cache
def _mine() -> str:
    return owner_name()


def owned(root: Path) -> Path:
    """This process's directory under ``root`` (not created here)."""
    return root / _mine()


def alive(name: str) -> bool:
    """Whether the owner ``name`` (a directory name under a root) is a running process."""
    match = _NAME.match(name)
    if match is None:
        return True  # not an owner's: never ours to remove
    pid, start, boot = int(match[1]), int(match[2]), match[3]
    return boot == _boot_id() and _started(pid) == start


def sweep(root: Path) -> int:
    """Remove the directories that dead owners left under ``root``; how many."""
    try:
        entries = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return 0
    dead = [p for p in entries if p.name.startswith(_PREFIX) and not alive(p.name)]
    for path in dead:
        shutil.rmtree(path, ignore_errors=True)
    if dead:
        log.info("swept %d directories of gateway processes gone from %s", len(dead), root)
    return len(dead)
