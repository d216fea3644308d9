"""How many spare CLIs to keep: Little's law over the observed demand.

A new conversation that finds no idle CLI pays the whole start-up. Spares started ahead hide
it if there are enough of them: a spare taken now is replaced only after the start-up time, so
in the meantime the arrivals in that time need spares of their own. By Little's law that is
``rate of new conversations * start-up time`` spares in flight. The rate is counted over a
sliding window (so the number shrinks when demand drops), the start-up time is a moving
average of what the CLIs actually took.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

_SMOOTHING = 0.3  # weight of the newest start-up time in the moving average


class Demand:
    """Arrivals of new conversations and start-up times, to size the spares."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self.window_s = window_s
        self.startup_s: float | None = None  # None until a CLI was seen starting
        self._clock = clock
        self._arrivals: deque[float] = deque()

    def arrived(self) -> None:
        """A new conversation asked for a CLI."""
        self._arrivals.append(self._clock())

    def started(self, seconds: float) -> None:
        """A CLI took ``seconds`` from spawn to ready."""
        previous = self.startup_s
        self.startup_s = (
            seconds if previous is None else (_SMOOTHING * seconds + (1 - _SMOOTHING) * previous)
        )

    def rate(self) -> float:
        """New conversations per second over the window."""
        horizon = self._clock() - self.window_s
        while self._arrivals and self._arrivals[0] <= horizon:
            self._arrivals.popleft()
        return len(self._arrivals) / self.window_s

    def spares(self, floor: int) -> int:
        """Spares to keep: at least ``floor``, else rate * start-up time (the CLIs that
        Little's law has starting at once), rounded to the nearest whole CLI."""
        if self.startup_s is None:
            return floor
        return max(floor, math.floor(self.rate() * self.startup_s + 0.5))
