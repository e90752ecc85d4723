"""A live run's cost per tick against its length (issue 14: it must not grow with the run).

Runs the flagship through the live loop for N ticks from 2024-06-01T00:00Z and prints the mean
wall time per tick around ticks 100, 1,000, 5,000 and 10,000 (each over the 100 ticks before
it) and at the run's last tick, for both live loops:

* ``feed``: the live feed (:func:`trimtab.live.runner.run_live` with ``feed="live"``: the
  LiveFeed, the LiveStore and its data checks, the engine growing one hour at a time, a
  checkpoint committed every tick), its collector serving the bundle's rows at the first tick
  after they became available (bench/resume.py's ``BundleCollector``; no network);
* ``replay``: ``--live --replay`` at full speed (the window known up front, a checkpoint every
  tick).

``--plain`` puts each live-feed tick on the clock the way the loop did before the store's
rolling checks (``store.market(t, t)``: every stored row checked again each hour), for the
before/after figures; it is quadratic, so give it short runs. Figures only: nothing here
asserts on time.

    python bench/live_ticks.py                         # feed and replay, N = 10,000
    python bench/live_ticks.py --ticks 1000 --plain --loops feed
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from resume import FLAGSHIP, HOUR, START, BundleCollector, Clock, needed_series  # noqa: E402

from trimtab.config.load import load_strategy  # noqa: E402
from trimtab.data.feed import load_market_data  # noqa: E402
from trimtab.live import runner  # noqa: E402
from trimtab.live.collect import LiveStore  # noqa: E402
from trimtab.live.sources import load_sources  # noqa: E402

MARKS = (100, 1000, 5000, 10000)
SPAN = 100


def timed(run) -> list[float]:
    """Wall seconds of each tick of ``run(progress)`` (between successive progress calls)."""
    stamps = [time.perf_counter()]
    run(lambda done, total: stamps.append(time.perf_counter()))
    return [b - a for a, b in zip(stamps[1:], stamps[2:])]   # the first tick builds the engine


def feed_run(n: int, strategy, market, sources, needed, tmp: Path, plain: bool) -> list[float]:
    t0 = int(pd.Timestamp(START, tz="UTC").timestamp())
    collector = BundleCollector(market, sources, needed)
    original, tick = runner.build_collector, LiveStore.tick
    runner.build_collector = lambda *a, **k: collector
    if plain:
        LiveStore.tick = lambda self, t, bands=None: self.market(t, t).with_checks(bands)
    clock = Clock(t0 + sources.settle_s + 1)
    try:
        return timed(lambda progress: runner.run_live(
            strategy, out=tmp, run_id=f"feed{n}", end=pd.Timestamp(t0 + (n - 1) * HOUR, unit="s", tz="UTC"), feed="live",
            sources=sources, clock=clock, sleep=clock.sleep, static=market.static, poll_s=HOUR, progress=progress))
    finally:
        runner.build_collector, LiveStore.tick = original, tick


def replay_run(n: int, strategy, market, tmp: Path) -> list[float]:
    start = pd.Timestamp(START, tz="UTC")
    end = start + pd.Timedelta(hours=n - 1)
    return timed(lambda progress: runner.run_live(strategy, out=tmp, run_id=f"replay{n}", start=start, end=end,
                                                  speed=float("inf"), data=market, progress=progress))


def marks(per_tick: list[float]) -> dict[int, float]:
    """Mean microseconds per tick over the ``SPAN`` ticks up to each mark the run reached."""
    out = {}
    for m in sorted({*MARKS, len(per_tick) + 1}):      # and the run's last tick
        part = per_tick[max(0, m - SPAN - 1):m - 1]     # per_tick[k] is tick k + 1
        if m - 1 <= len(per_tick) and part:
            out[m] = 1e6 * sum(part) / len(part)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ticks", type=int, default=10000, help="run length N (ticks)")
    ap.add_argument("--loops", nargs="+", default=["feed", "replay"], choices=["feed", "replay"])
    ap.add_argument("--plain", action="store_true", help="the live feed without the rolling checks (before)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    strategy, market, sources = load_strategy(FLAGSHIP), load_market_data(), load_sources()
    needed = needed_series(strategy, market)
    out = {"config": str(FLAGSHIP.name), "start": START, "ticks": a.ticks, "plain": a.plain, "us_per_tick": {}}
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="trimtab-live-ticks-", dir=shm if shm.is_dir() else None) as tmp:
        for loop in a.loops:
            t = time.perf_counter()
            per = (feed_run(a.ticks, strategy, market, sources, needed, Path(tmp), a.plain) if loop == "feed"
                   else replay_run(a.ticks, strategy, market, Path(tmp)))
            m = marks(per)
            out["us_per_tick"][loop] = m
            if not a.json:
                figs = "  ".join(f"tick {k:>6,}: {v:8.0f} us" for k, v in m.items())
                print(f"{loop:6s}{' (plain)' if a.plain and loop == 'feed' else ''}  {figs}   "
                      f"(whole run {time.perf_counter() - t:.1f} s)", flush=True)
    if a.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
