"""The shortcuts of trimtab.data.quality give its plain computations bit for bit.

* ``_hour_grid`` + ``_grid_rows`` (a peer's as-of rows read off an hour grid) find the rows
  ``_asof_rows`` (a search) finds, at any tick, for any rows, gaps, duplicates and ages.
* ``_take_asof`` is ``_asof``; ``_last_ok`` / ``_prev_good`` are the running maximum they
  replace; ``_all_pass`` says "no per-value check fires" exactly when none does.
* Judging through the grids, or through the search (grids switched off), gives the same
  verdicts on the real bundle corrupted at random, judged whole and lazily.
"""
from __future__ import annotations

import numpy as np
import pytest

from trimtab.data import quality as Q
from trimtab.data.feed import Series, load_market_data

H = 3600


def _rows_via_search(avail, ok, at, age):
    hit, src = Q._asof_rows(avail, ok, at, age)
    k = np.full(at.shape, -1, dtype=np.intp)
    k[hit] = src
    return k


@pytest.mark.parametrize("seed", range(40))
def test_hour_grid_finds_the_rows_the_search_finds(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 300))
    step = rng.choice([H, 8 * H, 86400, 1])
    avail = 1_700_000_000 + np.cumsum(rng.integers(0, 3, n) * step).astype(np.int64)
    if seed % 3 == 0:
        avail = avail + rng.integers(0, H, n)           # off the hour, then sorted again
        avail.sort()
    ok = rng.random(n) < rng.choice([1.0, 0.9, 0.3, 0.0])
    at = np.sort(-(-np.concatenate([avail, rng.integers(1_699_990_000, 1_702_000_000, 50)]) // H)) * H
    for age in (2.0 * H, H - 1.0, 0.0, 5.5 * H):
        grid = Q._hour_grid(avail, ok, age)
        if not ok.any():
            assert grid is None
            continue
        k, miss = Q._grid_rows(grid, at // H)
        want = _rows_via_search(avail, ok, at, age)
        assert np.array_equal(k, want)
        assert np.array_equal(miss, np.flatnonzero(want < 0))


def test_hour_grid_declines_what_it_cannot_do():
    avail = np.array([3 * H, 2 * H, 5 * H], dtype=np.int64)
    ok = np.ones(3, dtype=bool)
    assert Q._hour_grid(avail, ok, 2.0 * H) is None                       # rows out of order
    assert Q._hour_grid(avail.astype(float), ok, 2.0 * H) is None          # not int64
    assert Q._hour_grid(np.array([0, 10**12], dtype=np.int64), np.ones(2, bool), 2.0 * H) is None   # too long
    assert Q._hour_grid(np.sort(avail), ok, float("inf")) is None


@pytest.mark.parametrize("seed", range(10))
def test_take_asof_is_asof(seed):
    rng = np.random.default_rng(seed)
    n = 200
    avail = np.cumsum(rng.integers(0, 2, n) * H).astype(np.int64) + 10 * H
    ok = rng.random(n) < 0.8
    values = rng.normal(size=n)
    at = (np.arange(-5, n + 20) * H).astype(np.int64)
    k = _rows_via_search(avail, ok, at, 2.0 * H)
    got = Q._take_asof(values, k, np.flatnonzero(k < 0))
    want = Q._asof(avail, values, ok, at, 2.0 * H)
    assert got.dtype == want.dtype == np.float64
    assert got.tobytes() == want.tobytes()
    none = np.full(at.shape, -1, dtype=np.intp)
    assert Q._take_asof(values[:0], none, np.arange(at.size)).tobytes() == np.full(at.shape, np.nan).tobytes()


@pytest.mark.parametrize("seed", range(20))
def test_last_ok_and_prev_good_are_the_running_maximum(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 60))
    ok = rng.random(n) < rng.choice([1.0, 0.7, 0.2, 0.0])
    want = np.maximum.accumulate(np.where(ok, np.arange(n), -1)) if n else np.zeros(0, dtype=np.intp)
    assert np.array_equal(Q._last_ok(ok), want)
    values = rng.normal(size=n)
    prev = np.full(n, np.nan)
    prev[1:] = np.where(want[:-1] >= 0, values[np.maximum(want[:-1], 0)], np.nan)
    assert Q._prev_good(values, ok).tobytes() == prev.tobytes()


def test_all_pass_is_no_check_firing():
    hostile = [np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1e-310, 1e308, 5.0]
    rng = np.random.default_rng(0)
    for _ in range(300):
        v = rng.choice(hostile, size=int(rng.integers(1, 4)))
        for rule in ("price", "index", "rate", "funding", "finite"):
            fires = np.isnan(v).any() or np.isinf(v).any()
            if rule in ("price", "index"):
                fires = fires or (v == 0).any() or (v < 0).any()
            elif rule == "rate":
                fires = fires or (v < 0).any()
            assert Q._all_pass(v, rule) is (not fires), (v, rule)


def _corrupted(seed: int) -> dict[str, Series]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, s in load_market_data()._series.items():
        vals = {c: v.copy() for c, v in s.values.items()}
        for v in vals.values():
            r = rng.integers(0, v.size, 6)
            v[r[:2]] *= rng.choice([100.0, 0.01, 1.7, 0.3])
            v[r[2]], v[r[3]] = np.nan, 0.0
            v[r[4]:r[4] + 30] *= 2.5                      # a run that stays off
        avail = s.avail.copy()
        if seed % 2:
            avail = np.maximum.accumulate(avail + rng.integers(0, 2, avail.size) * rng.integers(0, H, avail.size))
        out[name] = Series(s.name, avail, vals, s.interval_h, s.fill, s.geometric, s.meta, s.ts)
    return out


def _fields(q: dict) -> dict:
    return {n: (x.code.tobytes(), x.column.tobytes(), x.ref.tobytes(), x.keep.tobytes(), x.columns, x.duplicates)
            for n, x in q.items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_grids_and_searches_give_the_same_verdicts(seed, monkeypatch):
    series = _corrupted(seed)
    bands = Q.Bands(max_cross_venue_deviation=0.01, max_jump=0.02, max_funding_deviation=1e-4)
    judged = Q.assess(series, bands)
    assert sum(x.faulty for x in judged.values()) > 1000
    with_grids = _fields(judged)
    lazy = Q.Checked(series, bands)
    assert _fields({n: lazy[n] for n in reversed(list(series))}) == with_grids
    monkeypatch.setattr(Q, "_GRID_MAX_H", 0)          # no grid: every peer is searched
    assert _fields(Q.assess(series, bands)) == with_grids
