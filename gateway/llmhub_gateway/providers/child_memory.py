"""The resident memory of the gateway's CLI children, all of them at once.

The Claude pool checks memory on every admission (the budget, ``PROVIDER_MEMORY_MB``) and after
every turn (a CLI past ``CLAUDE_POOL_MAX_RSS_MB`` is recycled). psutil finds descendants by
reading every process's ``stat`` under /proc, so reading each CLI's tree separately walked /proc
once per check: on a busy host that was most of the gateway's CPU per turn at 8 clients
(py-spy, issue 19). One walk here gives the total and every CLI's share; ``Sampled`` keeps it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import psutil


@dataclass(frozen=True, slots=True)
class ChildMemory:
    total_mb: float = 0.0  # every descendant of the gateway (both providers' CLIs)
    trees_mb: dict[int, float] = field(default_factory=dict)  # a direct child and its tree

    def of(self, pid: int | None) -> float:
        """The memory of the CLI ``pid`` (a direct child of the gateway) and its children."""
        return self.trees_mb.get(pid, 0.0) if pid is not None else 0.0


def read_child_memory() -> ChildMemory:
    """One walk of /proc: the RSS of each direct child's tree, and of all of them."""
    me = psutil.Process()
    rss: dict[int, int] = {}
    parent: dict[int, int] = {}
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            parent[child.pid] = child.ppid()
            rss[child.pid] = child.memory_info().rss
    trees: dict[int, float] = {}
    for pid, size in rss.items():
        root = pid
        while parent.get(root, me.pid) != me.pid and parent.get(root) in parent:
            root = parent[root]
        trees[root] = trees.get(root, 0.0) + size / 2**20
    return ChildMemory(sum(rss.values()) / 2**20, trees)
