"""The drift basket's per-tick caches (issue 14, lane 7) are invalidated exactly.

:class:`trimtab.planner.drift.Basket` keeps its price table per ``(view.i, max age, max
divergence)`` and its parameter-derived values (weights, limits) until the parameters change.
These tests drive one long-lived basket over real ticks (forwards, backwards, repeated) and
with parameters changed in place and by a new dict, and hold every answer against a fresh
basket that has never cached anything; and the per-tick ``metrics`` against ``state``.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from trimtab.accounting.book import Fill, Leg
from trimtab.config.load import load_strategy
from trimtab.planner.drift import DIVERGED, HEALTHY, Basket

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def drift():
    return load_strategy(ROOT / "configs" / "portfolio_drift.yaml")


def _fresh(st, strategy) -> Basket:
    return Basket(strategy, strategy.config.targets[0], st.px, st.sim)


def _same(a, b) -> bool:
    """Equal, with NaN equal to NaN (a token without a price)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _hold(st, **usd):
    for tok, v in usd.items():
        q = v / st.px.asset_usd(tok)
        st.book.apply(Fill(st.view.i, "wallet", "deposit_capital", "capital", [Leg(f"wallet:BaseToken:{tok}", q, q)]))


def test_prices_follow_the_tick_back_and_forth(stages, drift):
    st = stages("2024-08-04T00:00", "2024-08-08T00:00", drift)  # the August 2024 crash: prices move every hour
    kept = _fresh(st, drift)
    seen = set()
    for i in list(range(0, 60)) + [30, 30, 5, 59, 0]:
        st.view.i = i
        got = kept.prices(drift.params)
        assert _same(got, _fresh(st, drift).prices(drift.params)), i
        seen.add(got["ETH"][0])
    assert len(seen) > 30  # the table really changed with the tick


def test_prices_and_state_follow_parameters_changed_in_place(stages, drift):
    st = stages("2024-08-05T03:00", "2024-08-06T00:00", drift)
    st.view.i = 0
    _hold(st, ETH=50_000, BTC=30_000, USDT=20_000)
    kept = _fresh(st, drift)
    p = dict(drift.params)
    assert kept.prices(p)["ETH"][3] == HEALTHY
    p["price_max_divergence"] = 1e-6  # same dict, same tick: pool and CEX never agree to 1e-6
    assert kept.prices(p)["ETH"][3] == DIVERGED
    assert kept.metrics(0, st.book, p, 0.0)["unhealthy_tokens"] == 1.0
    p["price_max_divergence"] = drift.params["price_max_divergence"]
    assert kept.prices(p)["ETH"][3] == HEALTHY
    before = kept.state(st.book, p).by_token()["ETH"].target
    p["eth_weight"], p["usdt_weight"] = 0.5, 0.1  # weights changed in place
    after = kept.state(st.book, p).by_token()
    assert after["ETH"].target == pytest.approx(before * 0.5 / 0.4)
    assert _same([list(vars(t).values()) for t in after.values()],
                 [list(vars(t).values()) for t in _fresh(st, drift).state(st.book, p).tokens])
    assert kept.state(st.book, drift.params).by_token()["ETH"].weight == 0.4  # a new dict: the old weights again


def test_metrics_are_the_state_and_follow_the_book(stages, drift):
    st = stages("2024-08-05T03:00", "2024-08-06T00:00", drift)
    kept = _fresh(st, drift)
    for i, usd in ((0, {"ETH": 50_000, "BTC": 30_000, "USDT": 20_000}), (1, {"BTC": 25_000}), (1, {"USDT": 5_000}), (2, {})):
        st.view.i = i
        _hold(st, **usd)
        m = kept.metrics(i, st.book, drift.params, 1_000.0)
        s = _fresh(st, drift).state(st.book, drift.params, 1_000.0)
        assert m["max_drift"] == s.max_drift and m["unhealthy_tokens"] == float(s.unhealthy)
        assert {k: v for k, v in m.items() if k.startswith("drift.")} == {f"drift.{t.token}": t.drift for t in s.tokens}
    assert m["drift.BTC"] != 0.0 and m["max_drift"] > 0.0
