"""Feeds and clocks for live runs.

:class:`ReplayFeed` plays the bundled history through the live loop at an accelerated wall
clock: tick k (an hour of market time) becomes available ``k x 3600 / speed`` seconds of wall
time after the run (or its resumption) started, so the live path, its checkpoints and its
kill switch are exercised with no network. Decisions see exactly what a backtest sees at the
same tick, because both read the same :class:`trimtab.data.market.MarketView` and the engine
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


class LiveFeed:
    """Yields each hour of market time once it has closed on the wall clock, with its data.

    Tick ``t`` (epoch seconds, on the hour) is due at ``t + settle_s``: the bar that opened
    at ``t - 1h`` has closed and the venues have published it. When due, the collector fetches
    what became available (:meth:`trimtab.live.collect.Collector.collect`), the rows go into
    the store, and ``(t, observations, errors)`` is yielded; the runner puts tick ``t`` on the
    engine's clock with ``store.market(t, t)``. The first tick also fetches the warm-up
    history (``warmup_hours`` before it), so as-of values and funding ages exist at once.
    A tick that is already due (a resumed run catching up) is processed at once.

    Args:
        collector, store: see :mod:`trimtab.live.collect`.
        end: last tick (epoch s) or None to run until stopped.
        settle_s: seconds after the hour before the hour is fetched.
        clock, sleep: wall clock (``time.time``) and sleep; injectable for tests.
        poll_s: longest single sleep, so ``interrupt`` is checked while waiting.
    """

    def __init__(self, collector, store, end: int | None = None, settle_s: float = 30.0,
                 clock=time.time, sleep=time.sleep, poll_s: float = 5.0):
        self.collector = collector
        self.store = store
        self.end = end
        self.settle_s = settle_s
        self.clock = clock
        self.sleep = sleep
        self.poll_s = poll_s

    def ticks(self, first: int, interrupt=lambda: False) -> Iterator[tuple[int, list, list]]:
        """``(tick epoch, observations, fetch errors)`` from tick ``first`` on; ends after
        ``end`` or when ``interrupt()`` is true while waiting for the next hour."""
        if first % 3600:
            raise ValueError(f"tick {first} is not on the hour")
        t = first
        while self.end is None or t <= self.end:
            due = t + self.settle_s
            while (now := self.clock()) < due:
                if interrupt():
                    return
                self.sleep(min(self.poll_s, due - now))
            obs, errs = self.collector.collect(t, self.clock(), self.store)
            kept = [o for o in obs if self.store.add(o, t)]
            yield t, kept, errs
            t += 3600


def last_closed_hour(now: float, settle_s: float = 0.0) -> int:
    """The latest hour ``t`` (epoch s) with ``t + settle_s <= now``: where a live run starts."""
    return int((now - settle_s) // 3600 * 3600)
