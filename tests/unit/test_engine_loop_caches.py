"""Issue 14, lane 8: the engine loop's per-book-version and per-view caches give exactly what the
code before them computed, and follow every change of their inputs.

* Monitors: held positions compiled per ``book.version`` (fixed values and deltas kept), hedge
  weights and allocations kept while the parameters are equal;
* Attribution.market_move: the moving positions kept per ``book.version``, the telescoping
  unrolled for one to three factors;
* aave.health: the account's positions kept per ``book.version``; RewardAccrual.observe: the
  weETH positions kept per ``book.version``; perps.account_state: static venue facts;
* Pricing.mark / tradable / mark_is_fresh: the view's freshness flags and ages read from the
  lists the view keeps, which MarketView.extend grows in place (a live run).

Real venue YAML, real market data, the real simulator; floats compared with ``==``.
"""
from __future__ import annotations

import pandas as pd
import pytest

from trimtab.accounting.attribution import Attribution
from trimtab.accounting.book import Fill, Leg
from trimtab.data.feed import DataError
from trimtab.engine.kernel import Engine
from trimtab.engine.monitors import Monitors
from trimtab.venues import aave
from trimtab.venues.rewards import TOKEN, RewardAccrual
from trimtab.venues.sim import SimVenues

COLL, DEBT = "aave_v3:aToken:aweETH", "aave_v3:debtToken:debtWETH"
PERPS = ("binance:Perp:ETHUSDT", "bybit:Perp:ETHUSDT", "okx:Perp:ETHUSDT")


def utc(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def _apply(book, key, delta, price=None):
    book.apply(Fill(0, key.split(":")[0], "test", "capital", [Leg(key, delta, delta)], price=price), price)


def _hedged_book(st_):
    """A flagship-like book: wallet USDT and ETH, a weETH loop on Aave, three perp shorts with margin."""
    px, book = st_.px, st_.book
    st_.fund(50_000.0)
    _apply(book, "wallet:BaseToken:ETH", 1.5)
    _apply(book, COLL, 20.0 / px.index(COLL))
    _apply(book, DEBT, 12.0 / px.index(DEBT))
    for key, size in zip(PERPS, (-4.0, -3.0, -3.0)):
        _apply(book, f"{key.split(':')[0]}:Margin:USDT", 15_000.0)
        _apply(book, key, size, px.mark(key))


def _reference_market_move(book, px, i0, i1) -> dict[str, float]:
    """Attribution.market_move as written before the caches: every key of the book, the
    telescoping loop over any number of factors."""
    tick: dict[str, float] = {}
    for key, qty in book.bal.items():
        if qty == 0.0 or key in px.fixed_keys:
            continue
        if px.info[key].ptype == "Perp":
            m0, r0, n0 = px.perp_parts(key, i0)
            m1, r1, n1 = px.perp_parts(key, i1)
            e = book.entry.get(key, 0.0)
            for cat, amount in (("price_delta", qty * (r1 - r0) * n1 + qty * (m0 - e) * (n1 - n0)),
                                ("basis", qty * ((m1 - m0) - (r1 - r0)) * n1)):
                if amount:
                    tick[cat] = tick.get(cat, 0.0) + amount
            continue
        sign, f0 = px.factors(key, i0)
        _, f1 = px.factors(key, i1)
        n = len(f0)
        for k in range(n):
            if f1[k][1] == f0[k][1]:
                continue
            part = sign * qty * (f1[k][1] - f0[k][1])
            for j in range(k):
                part *= f1[j][1]
            for j in range(k + 1, n):
                part *= f0[j][1]
            if part:
                tick[f0[k][0]] = tick.get(f0[k][0], 0.0) + part
    return tick


def _reference_health(sim, book, venue):
    """aave.health as written before the per-version positions: every key of the book."""
    risk, cat, px = sim.venues[venue].risk, sim.emode.get(venue), sim.px
    coll = debt = weighted = 0.0
    for key, q in book.bal.items():
        if q == 0.0 or not key.startswith(venue + ":"):
            continue
        inf = px.info[key]
        usd = px.amount(key, q) * px.asset_usd(inf.asset)
        if inf.ptype == "aToken":
            coll += usd
            weighted += usd * risk.params(inf.asset, cat).liquidation_threshold
        elif inf.ptype == "debtToken":
            debt += usd
    return (weighted / debt if debt > 0 else float("inf")), (debt / coll if coll > 0 else 0.0), coll, debt


def test_market_move_follows_fills_and_restores_on_real_data(stages):
    st_ = stages("2024-08-05", "2024-08-09")
    px, book, view = st_.px, st_.book, st_.view
    view.i = 1
    _hedged_book(st_)
    attr = Attribution()
    snap = None
    seen = set()
    for i in range(2, 60):
        view.i = i
        attr.start_tick()
        attr.market_move(book, px, i - 1, i)
        assert attr.tick == _reference_market_move(book, px, i - 1, i)
        seen |= set(attr.tick)
        if i == 10:
            snap = book.snapshot()
        if i % 7 == 0:   # fills between ticks change what is held: the kept positions must follow
            _apply(book, COLL, 0.5 / px.index(COLL))
            _apply(book, PERPS[i % 3], -0.25, px.mark(PERPS[i % 3]))
        if i == 40:
            book.restore(snap)
    # every branch ran: perps (price_delta, basis) and one-, two- and three-factor keys
    assert {"price_delta", "basis", "supply_yield", "borrow_cost", "staking_yield"} <= seen


def test_monitors_follow_fills_and_parameter_changes(stages):
    st_ = stages("2024-08-05", "2024-08-07")
    s, px, book, view = st_.strategy, st_.px, st_.book, st_.view
    view.i = 3
    _hedged_book(st_)
    params = dict(s.params)
    mon = st_.monitors

    def fresh(i):
        m = Monitors(s, px, SimVenues(s, px, st_.data.static), book)
        m.restore(mon.snapshot())
        return m.run(i, False, params)

    first = mon.run(3, False, params)
    assert list(first.items()) == list(fresh(3).items()) and first["hedge_allocation_drift"] > 0
    # a parameter changed in place (live control): weights and allocations are evaluated again
    params["hedge_allocation_binance"], params["hedge_allocation_okx"] = 0.2, 0.5
    moved = mon.run(3, False, params)
    assert list(moved.items()) == list(fresh(3).items())
    assert moved["hedge_allocation_drift"] != first["hedge_allocation_drift"]
    # a fill of a fixed-price key (its value is kept per book version) and of a perp
    _apply(book, "wallet:BaseToken:USDT", -1_000.0)
    _apply(book, PERPS[0], -1.0, px.mark(PERPS[0]))
    after = mon.run(3, False, params)
    assert list(after.items()) == list(fresh(3).items())
    assert after["equity"] != moved["equity"] and after["net_delta"] != moved["net_delta"]
    view.i = 4
    assert list(mon.run(4, False, params).items()) == list(fresh(4).items())


def test_aave_health_and_rewards_observe_follow_the_book_version(stages):
    st_ = stages("2024-08-05", "2024-08-07")
    sim, px, book, view = st_.sim, st_.px, st_.book, st_.view
    view.i = 2
    _hedged_book(st_)
    acc = RewardAccrual(st_.data.static, view.epoch)

    def eeth():
        held = [k for k, inf in px.info.items() if inf.asset == TOKEN and book.qty(k)]
        return sum(px.amount(k, book.qty(k)) for k in held) * px.eth_rate(TOKEN) if held else 0.0

    h = aave.health(sim, book, "aave_v3")
    assert h == _reference_health(sim, book, "aave_v3") and 1.0 < h[0] < 3.0
    assert acc.observe(book, px) == eeth() > 0
    snap = book.snapshot()
    _apply(book, DEBT, 2.0 / px.index(DEBT))
    _apply(book, "wallet:BaseToken:weETH", 3.0)
    h2 = aave.health(sim, book, "aave_v3")
    assert h2 == _reference_health(sim, book, "aave_v3") and h2[0] < h[0]
    assert acc.observe(book, px) == eeth()
    view.i = 30   # new indices and rates, the same book version
    assert aave.health(sim, book, "aave_v3") == _reference_health(sim, book, "aave_v3") != h2
    assert acc.observe(book, px) == eeth()
    book.restore(snap)
    assert aave.health(sim, book, "aave_v3") == _reference_health(sim, book, "aave_v3")
    assert acc.observe(book, px) == eeth()
    _apply(book, COLL, -book.qty(COLL))
    _apply(book, DEBT, -book.qty(DEBT))
    assert aave.health(sim, book, "aave_v3") == (float("inf"), 0.0, 0.0, 0.0)
    assert acc.observe(book, px) == 0.0 and len(acc.held) == 5


def test_marks_and_tradable_flags_follow_a_view_extended_hour_by_hour(flagship, market, tmp_path):
    """Pricing keeps the view's freshness flags, ages and columns; a live run's MarketView.extend
    grows them in place, so the new ticks read exactly as a view over the whole window reads
    them through MarketView.fresh / age / get."""
    grown = Engine(flagship, market.slice(utc("2024-06-01"), utc("2024-06-05 07:00")), tmp_path / "grown")
    px, view = grown.px, grown.view
    for k in PERPS:   # warm every kept reference on the short view
        px.tradable(k, 5), px.mark_is_fresh(k, 5), px.mark(k)
    for start, end in (("2024-06-05 08:00", "2024-06-05 08:00"), ("2024-06-05 09:00", "2024-06-12 23:00")):
        grown.extend(market.slice(utc(start), utc(end)))
    whole = Engine(flagship, market.slice(utc("2024-06-01"), utc("2024-06-12 23:00")), tmp_path / "whole").view
    assert view.n == whole.n
    untradable = 0
    for j in range(view.n):
        view.i = j
        for k in PERPS:
            inf = px.info[k]
            fresh = whole.fresh(inf.mark_field, inf.stale_after_h, j)
            ok = fresh and whole.age(inf.funding_field, j) <= px.funding_max_age[k]
            assert px.mark_is_fresh(k) == fresh and px.tradable(k) == ok and px.tradable(k, j) == ok
            if fresh:
                assert px.mark(k) == whole.get(inf.mark_field, j)
            untradable += not ok
    assert untradable > 0   # the window holds stale or missing funding hours: both answers were seen


def test_value_and_delta_is_value_and_delta_for_every_moving_key(stages):
    """Pricing.value_and_delta (the monitors' one pass) against Pricing.value and Pricing.delta,
    for every non-perp instrument of the flagship whose value moves, at ticks days apart."""
    st_ = stages("2024-08-05", "2024-08-12")
    px, view = st_.px, st_.view
    keys = [k for k, inf in px.info.items() if inf.ptype != "Perp" and not px.value_is_static(k)]
    assert {COLL, DEBT, "wallet:BaseToken:ETH", "wallet:BaseToken:weETH"} <= set(keys)
    compared = 0
    for i in (1, 50, 120):
        view.i = i
        for k in keys:
            for q in (3.25, -0.5):
                try:
                    want = (px.value(k, q), px.delta(k, q)[1])
                except DataError:   # a series without data yet (EIGEN's pool): both refuse
                    with pytest.raises(DataError):
                        px.value_and_delta(k, q)
                    continue
                assert px.value_and_delta(k, q) == want
                compared += 1
    assert compared >= 5 * len(keys)
