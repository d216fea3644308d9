"""A reading that is costly to take, re-taken at most every so often.

The warm pools check their memory on every admission, take and give-back. Each reading walks
``/proc`` (psutil finds a process's descendants by reading every process's ``stat``), which on
a busy host costs milliseconds of the event loop per call, several times per turn. Memory moves
slowly, so a reading a second old decides as well; what it cannot show yet (a CLI started
after it) the caller counts itself, from ``taken``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Sampled(Generic[T]):
    """``read()``'s last result while it is younger than ``max_age_s``."""

    def __init__(
        self,
        read: Callable[[], T],
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.max_age_s = max_age_s
        self._clock = clock
        self._value: T | None = None
        self.taken = 0.0  # when the current value was read (``clock``)

    def get(self) -> T:
        now = self._clock()
        if self._value is None or now - self.taken >= self.max_age_s:
            self._value = self._read()
            self.taken = now
        return self._value
