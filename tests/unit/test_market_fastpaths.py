"""Whole-window fast paths of the market view and pricing (freshness and age flags, columns) read
the data's own arrays (no list built and converted back): they must give exactly what the
per-tick lists give, before and after a live view grows (MarketView.extend), with quarantined
rows and stale feeds in the window."""
from __future__ import annotations

import math
import struct

import numpy as np
import pandas as pd

from trimtab.data.feed import MarketData, Series
from trimtab.data.market import MarketView, _unique_inverse, float_list, series_of

H = 3600
T0 = int(pd.Timestamp("2024-08-01", tz="UTC").value // 10**9)
BARS = ("perp.binance.ETHUSDT", "perp.bybit.ETHUSDT", "spot.bybit.ETHUSDT", "dex.uniswapv3.WETHUSDT")


def _bits(xs) -> list[bytes]:
    return [struct.pack("<d", x) for x in xs]


def _per_tick(view: MarketView, field: str, max_age: float) -> list[bool]:
    """MarketView.fresh's rule, tick by tick from the view's lists."""
    if field not in view.cols:
        return [False] * view.n
    ages, q = view.ages[series_of(field)], view.quar.get(series_of(field))
    return [not math.isnan(v) and a <= max_age and not (q and q[k])
            for k, (v, a) in enumerate(zip(view.cols[field], ages))]


def _market(n: int = 60) -> MarketData:
    """Four ETH venues, hourly: a spiked close (quarantined) on binance, a four-hour hole on bybit."""
    rng = np.random.default_rng(3)
    base = 3000 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    series = {}
    for k, name in enumerate(BARS):
        c = base * (1 + 0.001 * k)
        if k == 0:
            c[20] *= 100.0
        avail = T0 + H * (1 + np.arange(n, dtype=np.int64))
        keep = np.ones(n, dtype=bool)
        if k == 1:
            keep[30:34] = False
        vals = {f: c[keep].copy() for f in ("open", "high", "low", "close")}
        vals["volume"] = np.ones(int(keep.sum()))
        series[name] = Series(name, avail[keep], vals, 1.0, "asof", (), {}, avail[keep] - H)
    return MarketData(pd.date_range(pd.Timestamp(T0 + H, unit="s", tz="UTC"), periods=n, freq="h"), series, {})


def test_unique_inverse_is_numpys():
    rng = np.random.default_rng(0)
    odd = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, np.nan]).view(np.int64)
    for x in (np.array([5], dtype=np.int64), rng.integers(-4, 4, 1000), np.repeat(rng.integers(0, 1 << 62, 50), 7),
              np.arange(300, dtype=np.int64) % 9, odd):
        want_u, want_w = np.unique(x, return_inverse=True)
        got_u, got_w = _unique_inverse(x)
        assert np.array_equal(got_u, want_u) and np.array_equal(got_w, want_w.reshape(-1))


def test_float_list_distinct_keeps_every_bit_and_shares_equal_values():
    ages = np.concatenate([np.full(3, np.inf), np.arange(40) % 8, [0.0, -0.0, np.nan, 2.5, 2.5, 7.0]])
    out = float_list(ages, distinct=True)
    assert _bits(out) == _bits(ages.tolist())
    assert out[3] is out[11] and out[-1] is out[10]   # equal values: one object
    assert float_list(np.array([]), distinct=True) == []


def test_fresh_flags_and_ages_from_the_arrays_match_the_lists():
    md = _market()
    fields = {f"{s}.close" for s in BARS}
    view = MarketView(md, fields)
    assert "perp.binance.ETHUSDT" in view.quar   # the spike is quarantined
    for f in sorted(fields) + ["perp.okx.ETHUSDT.close"]:
        for max_age in (0, 1.0, 2, 3.5):
            got = view.fresh_array(f, max_age)
            assert got.dtype == bool and got.shape == (view.n,)
            assert view.fresh_flags(f, max_age) == got.tolist() == _per_tick(view, f, max_age), (f, max_age)
        s = series_of(f)
        ages = view.ages_array(f)
        if s in view.ages:
            assert ages.dtype == np.float64 and _bits(ages.tolist()) == _bits(view.ages_of(f))
            for max_age in (0, 1.0, 3):
                assert view.age_flags(f, max_age) == [a <= max_age for a in view.ages_of(f)]
            assert view.age_flags(f, 2) is view.age_flags(s, 2.0)   # kept
        else:
            assert ages is None and view.ages_of(f) is None and view.age_flags(f, 2) is None
    assert view.age_flags("perp.bybit.ETHUSDT", None) is None   # not a number: compared tick by tick by the caller
    col = view.column_array("perp.bybit.ETHUSDT.close")
    assert col.dtype == np.float64 and _bits(col.tolist()) == _bits(view.cols["perp.bybit.ETHUSDT.close"])
    assert view.column_array("perp.okx.ETHUSDT.close") is None


def test_after_extend_the_arrays_are_the_grown_lists():
    md = _market(60)
    fields = {f"{s}.close" for s in BARS}
    whole = MarketView(md, fields)
    view = MarketView(md.slice(md.index[0], md.index[39]), fields)
    view.fresh_flags("perp.bybit.ETHUSDT.close", 1.0)   # kept, and grown by extend
    kept = view.age_flags("perp.bybit.ETHUSDT", 1.0)
    view.extend(md.slice(md.index[40], md.index[59]))
    assert view.n == whole.n == 60
    for f in sorted(fields):
        for max_age in (1.0, 2):
            assert view.fresh_array(f, max_age).tolist() == view.fresh_flags(f, max_age) == _per_tick(view, f, max_age)
            assert view.fresh_flags(f, max_age) == whole.fresh_flags(f, max_age)
        assert _bits(view.ages_array(f).tolist()) == _bits(view.ages_of(f)) == _bits(whole.ages_of(f))
        assert _bits(view.column_array(f).tolist()) == _bits(view.cols[f]) == _bits(whole.column_array(f).tolist())
        assert view.age_flags(f, 2) == whole.age_flags(f, 2) == [a <= 2 for a in whole.ages_of(f)]
    assert kept is view.age_flags("perp.bybit.ETHUSDT.close", 1.0) and kept == whole.age_flags("perp.bybit.ETHUSDT", 1.0)
    assert not all(kept)   # the hole
