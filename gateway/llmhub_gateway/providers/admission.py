"""Claims with deadlines: the one admission primitive of the per-pod cap and both CLI pools.

A streaming answer must be refused (429/503 with ``Retry-After``) before its 200, but the turn
only takes its process (or slot) when its stream starts. In between, the turn holds a *claim*:
it counts against the capacity, so turns admitted together never overfill it and fail inside
their streams. A claim ends when the stream starts using it (``release``), when the request is
abandoned (``release`` again), or by itself at its deadline (the client left between prepare
and the first byte), so no claim outlives its request for long.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Claims:
    """Claims of admitted requests, keyed by the request object itself (its identity: two
    equal requests are two claims)."""

    def __init__(self, hold_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if hold_s <= 0:
            raise ValueError("hold_s must be > 0")
        self.hold_s = hold_s
        self._clock = clock
        self._held: dict[int, tuple[object, float]] = {}  # id -> (owner, kept alive; deadline)

    def __len__(self) -> int:
        """Claims still held (expired ones are dropped first)."""
        now = self._clock()
        for key in [k for k, (_, deadline) in self._held.items() if deadline <= now]:
            del self._held[key]
        return len(self._held)

    def admit(self, owner: object, room: int, refuse: Callable[[], Exception]) -> None:
        """Take a claim for ``owner`` if fewer than ``room`` claims are held, else raise
        ``refuse()`` (nothing is taken then)."""
        if len(self) >= room:
            raise refuse()
        self._held[id(owner)] = (owner, self._clock() + self.hold_s)

    def release(self, owner: object) -> bool:
        """End ``owner``'s claim (its stream started, or it never will); True if it held one
        (not yet swept)."""
        entry = self._held.get(id(owner))
        if entry is None or entry[0] is not owner:
            return False
        del self._held[id(owner)]
        return True
