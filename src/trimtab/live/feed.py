"""Feeds and clocks for live runs.

:class:`ReplayFeed` plays the bundled history through the live loop at an accelerated wall
clock: tick k (an hour of market time) becomes available ``k x 3600 / speed`` seconds of wall
time after the run (or its resumption) started, so the live path, its checkpoints and its
kill switch are exercised with no network. Decisions see exactly what a backtest sees at the
same tick, because both read the same :class:`trimtab.engine.market.MarketView` and the engine
never reads beyond the tick it is on.
"""
from __future__ import annotations

import time
from collections.abc import Iterator


class ReplayFeed:
    """Yields tick indices ``first .. n-1`` no sooner than their accelerated wall time.

    Args:
        n: number of ticks in the window.
        speed: market hours per wall hour (3600 plays one market hour per wall second);
            ``float('inf')`` replays as fast as the engine goes.
        sleep: the sleeping function (time.sleep).
    """

    def __init__(self, n: int, speed: float = 3600.0, sleep=time.sleep, clock=time.monotonic):
        if not speed > 0:
            raise ValueError(f"replay speed must be positive, got {speed}")
        self.n = n
        self.speed = speed
        self.sleep = sleep
        self.clock = clock

    def ticks(self, first: int = 0) -> Iterator[int]:
        t0 = self.clock()
        for k in range(first, self.n):
            due = t0 + (k - first) * 3600.0 / self.speed
            wait = due - self.clock()
            if wait > 0:
                self.sleep(wait)
            yield k
