"""The fast paths of trimtab.engine.stretch and trimtab.venues.margin give what the general code
gives, bit for bit: ``_ratio`` when every denominator is positive, the NaN-tick lists that end a
stretch (against :meth:`Stretches.first_at_or_after`) and the per-table arrays margin keeps.
(Whole runs with and without stretches: tests/unit/test_stretch.py; the columns read from the
data's arrays, MarketView.column_array: tests/unit/test_market_fastpaths.py.)"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from trimtab.engine.stretch import Stretches, _Inputs, _ratio
from trimtab.venues import margin

from test_stretch import _Table  # the margin tests' risk-table stand-in (tests/unit on sys.path)


def _general_ratio(num, den, zero):
    positive = np.asarray(den) > 0
    return np.where(positive, num / np.where(positive, den, 1.0), zero)


def _bits(x) -> list:
    return np.asarray(x, dtype=np.float64).view(np.int64).ravel().tolist()


@pytest.mark.parametrize("zero", [math.inf, 0.0])
def test_ratio_fast_path_is_the_general_one(zero):
    rng = np.random.default_rng(3)
    num = np.concatenate([rng.uniform(-1e6, 1e6, 300), [0.0, -0.0, math.nan, math.inf, -math.inf]])
    positive = np.concatenate([rng.uniform(1e-9, 1e7, 300), [1.0, 2.0, 3.0, 1e-300, math.inf]])
    mixed = positive.copy()
    mixed[[3, 7, 11, 13]] = [0.0, -0.0, -5.0, math.nan]
    with np.errstate(all="ignore"):
        for den in (positive, mixed, 2.5, 0.0):
            for n in (num, 7.0, 0.0):
                want = _general_ratio(n, den, zero)
                got = _ratio(n, den, zero)
                assert _bits(got) == _bits(want)
                assert np.shape(got) == np.shape(want)


def _stretches_over(cols: dict[str, np.ndarray]) -> Stretches:
    """A Stretches reading only ``cols`` (next_nan and column need no more)."""
    n = len(next(iter(cols.values())))
    st = Stretches.__new__(Stretches)
    st.view = SimpleNamespace(n=n, column_array=lambda f: cols.get(f))  # MarketView.column_array's answer
    st._n, st._cols, st._nan, st._flags, st._memo = n, {}, {}, {}, {}
    return st


def test_valid_is_first_at_or_after():
    """_Inputs.valid by the NaN-tick lists equals the per-tick lists of first_at_or_after."""
    rng = np.random.default_rng(5)
    n = 400
    cols = {}
    for name, p in (("none", 0.0), ("few", 0.01), ("many", 0.3), ("all", 1.0)):
        c = rng.uniform(1.0, 2.0, n)
        c[rng.random(n) < p] = math.nan
        cols[name] = c
    cols["edges"] = np.where(np.isin(np.arange(n), [0, n - 1]), math.nan, 1.0)
    st = _stretches_over(cols)
    per_tick = {f: Stretches.first_at_or_after(np.isnan(c)) for f, c in cols.items()}
    for fields in (["none"], ["few"], ["few", "many"], ["edges"], ["all"], list(cols)):
        for lo in range(0, n, 7):
            for hi in (lo + 1, min(n, lo + 64), n):
                inp = _Inputs(st, lo, hi)
                for f in fields:
                    inp.need(f)
                want = hi - lo
                for f in fields:
                    want = min(want, per_tick[f][lo] - lo)
                assert inp.valid() == want


def test_table_arrays_are_kept_per_table():
    tiers = [(50_000.0, 0.004, 0.0), (600_000.0, 0.005, 50.0)]
    a, b = _Table("notional", tiers), _Table("notional", tiers[::-1])
    caps, mmrs, cums = margin._table_arrays(a)
    assert margin._table_arrays(a)[0] is caps  # made once
    assert caps.tolist() == [50_000.0, 600_000.0] and mmrs.tolist() == [0.004, 0.005] and cums.tolist() == [0.0, 50.0]
    assert not caps.flags.writeable and not mmrs.flags.writeable
    assert margin._table_arrays(b)[0] is None  # not ascending: its own entry
    assert margin.maintenance_array(b, 1.0, np.array([1000.0])) is None
    assert margin.liquidation_price_array(np.array([1000.0]), 1.0, 3000.0, b) is None
    got = margin.maintenance_array(a, -7.25, np.array([3000.0, 90_000.0]))
    assert _bits(got) == _bits([margin.maintenance(a, -7.25, 3000.0), margin.maintenance(a, -7.25, 90_000.0)])


