"""Resuming a long live run: the resume's cost against the run's length (issue 14: linear).

For each N (default 1,000, 5,000 and 10,000 ticks) the flagship runs on the live feed
(:func:`trimtab.live.runner.run_live` with ``feed="live"``: the LiveFeed, the LiveStore, the
engine growing one hour at a time, a checkpoint committed every tick) over N + 1 hours from
2024-06-01T00:00Z on a fake wall clock, and is killed after tick N - 1 is committed (an
exception from the progress callback: the process dies between ticks). Then the run is resumed
(``resume=True``): the journal is checked, its observations are read back into the store, the
engine is rebuilt to tick N - 1 and the last tick is stepped. The resume is timed, whole; its
seconds per N, per 1,000 ticks, and the ratio of the largest N's to the smallest's (for a linear
resume, about N_max / N_min) are printed. Figures only: nothing here asserts on time.

The market data is the bundle's rows, each returned by the collector at the first tick after
it became available (chain series as the bundle's samples, not a read of the latest block every
hour). No network: the collector is the one thing replaced.

    python bench/resume.py                  # N = 1000 5000 10000
    python bench/resume.py --ticks 500 1000 --json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from trimtab.config.load import load_strategy
from trimtab.data.catalog import BY_NAME
from trimtab.data.feed import load_market_data
from trimtab.data.market import series_of
from trimtab.live import runner
from trimtab.live.collect import LiveStore, Observation, _SpanTick
from trimtab.live.sources import load_sources
from trimtab.venues.pricing import Pricing
from trimtab.venues.sim import SimVenues

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"
START = "2024-06-01T00:00"
HOUR = 3600


class BundleCollector:
    """The live collector's interface (:class:`trimtab.live.collect.Collector`) over the bundle:
    ``collect(tick, now, store)`` returns every bundle row of the needed series whose
    availability is in ``(previous tick, tick]`` (the first tick: the warm-up hours before it
    too), so the store holds the bundle's own rows, each known at the first tick after it
    became available."""

    exchanges: list = []
    chain = None

    def __init__(self, market, sources, needed: set[str]):
        self.warmup = sources.warmup_hours * HOUR
        self.rows = {}
        for name in sorted(needed):
            if sources.series.get(name) is None or name not in market.series_names():
                continue
            raw = market._get(name)   # the bundle's rows, as a venue would return them
            ts = raw.ts if raw.ts is not None else raw.avail
            self.rows[name] = (raw.avail, ts.tolist(), {c: raw.values[c].tolist() for c in BY_NAME[name].columns})
        self.last: int | None = None

    def collect(self, tick: int, now: float, store) -> tuple[list, list]:
        lo = tick - self.warmup - HOUR if self.last is None else self.last
        self.last = tick
        obs = []
        for name, (avail, ts, vals) in self.rows.items():
            a, b = np.searchsorted(avail, [lo, tick], side="right")
            for k in range(int(a), int(b)):
                obs.append(Observation(name, int(ts[k]), int(avail[k]), {c: v[k] for c, v in vals.items()}))
        return obs, []


class PrefetchedStore(LiveStore):
    """The live loop's store for *making* the run to resume (not for the timed resume): a one-tick
    read is a slice of one MarketData of the whole window, built once (``oracle``).

    Exact, not an approximation: the bench's rows all arrive on time (each at the first tick
    after its availability), and then tick ``t`` of any MarketData holding more rows reads
    exactly what the rows known at ``t`` give (LiveStore._span_slice says why;
    tests/unit/test_live_store_span.py checks it). It spares the data checks over every row at
    every tick -- O(N^2) for the run that is being set up -- and ``--check`` compares a run made
    this way with one made by the plain store."""

    oracle = None
    checked: dict = {}

    def market(self, start, end, known=None):
        o = PrefetchedStore.oracle
        if self._added and start == end == (end if known is None else known) and o is not None \
                and int(o.epoch[0]) <= start <= int(o.epoch[-1]):
            return _SpanTick(o, (start - int(o.epoch[0])) // HOUR, PrefetchedStore.checked)
        return super().market(start, end, known)

    def tick(self, t, bands=None):
        """The live loop's newest hour, from the oracle too (the loop reads it through ``tick``)."""
        if PrefetchedStore.oracle is None:
            return super().tick(t, bands)
        return self.market(t, t).with_checks(bands)


def oracle(market, sources, needed, t0: int, t1: int):
    """One MarketData of every row the bench's collector serves for ticks ``t0..t1``."""
    c, store = BundleCollector(market, sources, needed), LiveStore(market.static, set(sources.series))
    for t in range(t0, t1 + HOUR, HOUR):
        for o in c.collect(t, t, store)[0]:
            store.add(o, t)
    return store.market(t0, t1)


class Clock:
    """A wall clock that ``sleep`` advances: every tick is due at once."""

    def __init__(self, now: float):
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def sleep(self, dt: float) -> None:
        self.now += max(dt, 0.0)


class Killed(Exception):
    """The process "dies" after a committed tick."""


def needed_series(strategy, market) -> set[str]:
    from trimtab.data.market import MarketView

    v = MarketView(market.slice(START, START), set())
    px = Pricing(strategy, v)
    return {series_of(f) for f in px.fields() | SimVenues(strategy, px, market.static).fields()}


def one(n: int, strategy, market, sources, needed, tmp: Path, prefetch: bool = True) -> dict:
    """Run ``n`` ticks live, kill, resume; the resume's wall seconds."""
    t0 = int(pd.Timestamp(START, tz="UTC").timestamp())
    end = pd.Timestamp(t0 + n * HOUR, unit="s", tz="UTC")
    collector = BundleCollector(market, sources, needed)
    original = runner.build_collector
    runner.build_collector = lambda *a, **k: collector   # the one replaced part: no network
    if prefetch:
        PrefetchedStore.oracle, PrefetchedStore.checked = oracle(market, sources, needed, t0, t0 + n * HOUR), {}
        runner.LiveStore = PrefetchedStore
    try:
        clock = Clock(t0 + sources.settle_s + 1)

        def kill(done, total):
            if done >= n:
                raise Killed

        t = time.perf_counter()
        try:
            runner.run_live(strategy, out=tmp, run_id=f"n{n}", end=end, feed="live", sources=sources, clock=clock,
                            sleep=clock.sleep, static=market.static, poll_s=HOUR, progress=kill)
        except Killed:
            pass
        first_run = time.perf_counter() - t
        runner.LiveStore, PrefetchedStore.oracle = LiveStore, None   # the resume runs the real store
        clock.now = t0 + n * HOUR + sources.settle_s + 1   # the restarted process: the last tick is due
        t = time.perf_counter()
        r = runner.run_live(strategy, out=tmp, run_id=f"n{n}", feed="live", sources=sources, clock=clock, sleep=clock.sleep,
                            static=market.static, poll_s=HOUR, resume=True)
        resume = time.perf_counter() - t
    finally:
        runner.build_collector = original
        runner.LiveStore, PrefetchedStore.oracle = LiveStore, None
    return {"ticks": n, "run_s": first_run, "resume_s": resume, "final_ticks": len(r.equity),
            "final_equity": float(r.summary["final_equity"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ticks", type=int, nargs="+", default=[1000, 5000, 10000], help="run lengths N before the kill")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--check", action="store_true",
                    help="first make the smallest N's run with the plain store too and check both end the same")
    a = ap.parse_args()
    strategy = load_strategy(FLAGSHIP)
    market = load_market_data()
    sources = load_sources()
    needed = needed_series(strategy, market)
    rows = []
    # Run directories in memory where there is a RAM disk: each live tick commits (and fsyncs)
    # its checkpoint, and the bench times the resume, not the disk.
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="trimtab-resume-bench-", dir=shm if shm.is_dir() else None) as tmp:
        if a.check:
            n = min(a.ticks)
            plain = one(n, strategy, market, sources, needed, Path(tmp) / "plain", prefetch=False)
            fast = one(n, strategy, market, sources, needed, Path(tmp) / "fast")
            same = (plain["final_equity"], plain["final_ticks"]) == (fast["final_equity"], fast["final_ticks"])
            print(f"  check N = {n}: plain store {plain['final_equity']!r}, prefetched {fast['final_equity']!r}: "
                  f"{'same' if same else 'DIFFERENT'}", flush=True)
            if not same:
                raise SystemExit(1)
        for n in a.ticks:
            rows.append(one(n, strategy, market, sources, needed, Path(tmp)))
            if not a.json:
                r = rows[-1]
                print(f"  N = {n:6d}  live run {r['run_s']:7.2f} s  resume {r['resume_s']:6.2f} s"
                      f"  ({1000 * r['resume_s'] / n:.3f} s per 1,000 ticks)", flush=True)
    lo, hi = rows[0], rows[-1]
    out = {"config": str(FLAGSHIP.relative_to(ROOT)), "start": START, "runs": rows,
           "resume_ratio": hi["resume_s"] / lo["resume_s"], "length_ratio": hi["ticks"] / lo["ticks"]}
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"resume after N live ticks: resume time x{out['resume_ratio']:.1f} for N x{out['length_ratio']:.0f} "
          f"(linear: about x{out['length_ratio']:.0f}; quadratic: about x{out['length_ratio'] ** 2:.0f})")


if __name__ == "__main__":
    main()
