"""Issue 14, lane 3: the per-tick memo of the venues' risk figures (SimVenues._risk_memo) and the
monitors' per-tick caches give exactly what a fresh computation gives, and follow every change
of their inputs: the tick (prices), the book (Book.apply / Book.restore bump ``book.version``).

Real venue YAML, real market data, the real simulator; values compared with ``==`` (a cache
must return the same floats, not close ones).
"""
from __future__ import annotations

from trimtab.accounting.book import Fill, Leg
from trimtab.engine.monitors import Monitors
from trimtab.venues import aave, margin, perps
from trimtab.venues.sim import SimVenues

ETH, BTC = "binance:Perp:ETHUSDT", "binance:Perp:BTCUSDT"


def _deposit(st_, venue, usdt):
    st_.book.apply(Fill(0, venue, "deposit", "capital", [Leg(f"{venue}:Margin:USDT", usdt, usdt)]))


def _trade(st_, key, size, price):
    st_.book.apply(Fill(0, key.split(":")[0], "trade", "trading_fees", [Leg(key, size, size)], price=price), price)


def _reference_liquidation_prices(sim, book, venue):
    """The cross-margin liquidation prices as computed before the memo (each position against
    the others' maintenance and P&L at their marks), from the uncached margin balance."""
    tables = sim.venues[venue].perp.risk_limits
    keys = [k for k in sim.perp_keys if k.startswith(venue + ":") and book.qty(k)]
    eq, _ = perps.margin_balance(sim, book, venue)
    upnl = {k: book.qty(k) * (sim.px.mark(k) - book.entry.get(k, 0.0)) for k in keys}
    mm = {k: margin.maintenance(tables[k], book.qty(k), sim.px.mark(k)) for k in keys}
    wallet = eq - sum(upnl.values())
    return {k: margin.liquidation_price(wallet, sum(v for j, v in mm.items() if j != k),
                                        sum(v for j, v in upnl.items() if j != k), book.qty(k), book.entry.get(k, 0.0), tables[k])
            for k in keys}


def _fresh(sim, book, venue):
    eq, notional = perps.margin_balance(sim, book, venue)
    return eq, notional, perps.maintenance_usd(sim, book, venue), _reference_liquidation_prices(sim, book, venue)


def _memo(sim, book, venue):
    """The memoised figures, read as the monitors read them (perp_risk first, so the account
    comes from perps.account_state's single pass), and the other accessors agreeing."""
    eq, notional, ratio, mm, lps = sim.perp_risk(book, venue)
    assert sim.perp_account(book, venue) == (eq, notional, ratio)
    assert sim.perp_maintenance(book, venue) == mm and sim.perp_liquidation_prices(book, venue) is lps
    return eq, notional, mm, dict(lps)


def test_perp_account_memo_follows_fills_ticks_and_restores(stages):
    st_ = stages("2024-08-05", "2024-08-07")
    sim, book, view = st_.sim, st_.book, st_.view
    view.i = 5
    _deposit(st_, "binance", 30_000.0)
    _trade(st_, ETH, -8.0, st_.px.mark(ETH))
    first = _memo(sim, book, "binance")
    assert first == _fresh(sim, book, "binance") and first[3][ETH] > st_.px.mark(ETH)
    snap = book.snapshot()
    # a fill: more margin moves the short's liquidation price up
    _deposit(st_, "binance", 5_000.0)
    second = _memo(sim, book, "binance")
    assert second == _fresh(sim, book, "binance") and second[0] == first[0] + 5_000.0 and second[3][ETH] > first[3][ETH]
    # a second position on the account: cross margin, each price against the other's margin and P&L
    _trade(st_, BTC, 0.2, st_.px.mark(BTC))
    third = _memo(sim, book, "binance")
    assert third == _fresh(sim, book, "binance") and set(third[3]) == {ETH, BTC}
    # the next tick: new marks, new figures
    view.i = 6
    assert st_.px.mark(ETH) != view.get("perp.binance.ETHUSDT.close", 5)
    later = _memo(sim, book, "binance")
    assert later == _fresh(sim, book, "binance") and later[0] != third[0]
    # a restore (a resumed run, a rolled-back plan) is a new book state too
    book.restore(snap)
    assert _memo(sim, book, "binance") == _fresh(sim, book, "binance")
    assert set(sim.perp_liquidation_prices(book, "binance")) == {ETH}


def test_aave_health_memo_follows_fills_and_ticks(stages):
    st_ = stages("2024-08-05", "2024-08-07")
    sim, px, book, view = st_.sim, st_.px, st_.book, st_.view
    view.i = 3
    col, debt = "aave_v3:aToken:aweETH", "aave_v3:debtToken:debtWETH"
    book.apply(Fill(0, "aave_v3", "supply", "capital", [Leg(col, 10.0 / px.index(col), 10.0)]))
    book.apply(Fill(0, "aave_v3", "borrow", "capital", [Leg(debt, 8.0 / px.index(debt), 8.0)]))
    h1 = sim.aave_health(book, "aave_v3")
    assert h1 == aave.health(sim, book, "aave_v3") and 1.0 < h1[0] < 2.0
    book.apply(Fill(0, "aave_v3", "borrow", "capital", [Leg(debt, 1.0 / px.index(debt), 1.0)]))
    h2 = sim.aave_health(book, "aave_v3")
    assert h2 == aave.health(sim, book, "aave_v3") and h2[0] < h1[0]
    view.i = 30  # a day later: indices and prices moved
    h3 = sim.aave_health(book, "aave_v3")
    assert h3 == aave.health(sim, book, "aave_v3") and h3 != h2


def test_liquidation_check_reads_the_book_it_is_given_not_the_memo(stages):
    """The memo is warm for a healthy account (the monitors ran); a fill then leaves the short
    with a liquidation price the hour's high crossed: the check must see the new book."""
    st_ = stages("2024-08-05", "2024-08-07")
    sim, px, book, view = st_.sim, st_.px, st_.book, st_.view
    i = next(j for j in range(1, 40) if view.get("perp.binance.ETHUSDT.high", j) > view.get("perp.binance.ETHUSDT.close", j) * 1.003)
    view.i = i
    mark, high = px.mark(ETH), view.get("perp.binance.ETHUSDT.high")
    size = -20.0
    lp_target = (mark + high) / 2
    wallet = margin.maintenance(sim.venues["binance"].perp.risk_limits[ETH], size, lp_target) - size * (lp_target - mark)
    _deposit(st_, "binance", wallet + 50_000.0)   # healthy first
    _trade(st_, ETH, size, mark)
    st_.monitors.run(i, False, dict(st_.strategy.params))  # warms the memo, as the kernel does
    assert sim.perp_liquidation_prices(book, "binance")[ETH] > high
    assert not [f for f, _ in sim.liquidations(i, book) if f.venue == "binance"]
    # withdraw the excess margin: now the liquidation price sits between the close and the high
    book.apply(Fill(i, "binance", "withdraw", "capital", [Leg("binance:Margin:USDT", -50_000.0, -50_000.0)]))
    hit = [(f, p) for f, p in sim.liquidations(i, book) if f.venue == "binance"]
    closes = [(f, p) for f, p in hit if f.legs[0].key == ETH]
    assert len(closes) == 1 and mark < closes[0][1] < high and closes[0][0].price_field.endswith(".high")
    # the same as a simulator that never cached anything
    fresh = SimVenues(st_.strategy, px, st_.data.static)
    again = [(f, p) for f, p in fresh.liquidations(i, book) if f.venue == "binance"]
    assert [(f.legs[0].key, f.legs[0].delta, f.price, f.note, p) for f, p in hit] == \
        [(f.legs[0].key, f.legs[0].delta, f.price, f.note, p) for f, p in again]


def test_monitors_with_warm_caches_publish_what_fresh_monitors_publish(stages):
    """Run the monitors tick after tick, fills in between, and compare every metric (names,
    order and values) with monitors and a simulator built at that tick: the per-tick caches
    (risk memo, tradable flags, delta kinds) must not carry anything over."""
    st_ = stages("2024-08-05", "2024-08-07")
    s, px, book, view = st_.strategy, st_.px, st_.book, st_.view
    params = dict(s.params)
    st_.fund(100_000.0)
    view.i = 2
    _deposit(st_, "bybit", 20_000.0)
    for i, (key, size) in enumerate([("bybit:Perp:ETHUSDT", -3.0), (None, 0), ("bybit:Perp:ETHUSDT", -1.0), (None, 0)], start=2):
        view.i = i
        if key:
            _trade(st_, key, size, px.mark(key))
        before = st_.monitors.run(i, False, params)
        _deposit(st_, "bybit", 1_000.0)   # a fill inside the tick, as a plan's first step makes
        warm = st_.monitors.run(i, False, params)
        again = st_.monitors.run(i, False, params)
        fresh_mon = Monitors(s, px, SimVenues(s, px, st_.data.static), book)
        fresh_mon.restore(st_.monitors.snapshot())
        fresh = fresh_mon.run(i, False, params)
        assert list(warm.items()) == list(fresh.items()) == list(again.items())
        assert warm["liquidation_price.bybit.ETHUSDT"] > before["liquidation_price.bybit.ETHUSDT"] > 0
        assert warm["margin_ratio.bybit"] > before["margin_ratio.bybit"]


def _reference_drift(strategy, params, book, live_of):
    """hedge_allocation_drift as written before the per-tick arguments (dicts and sum())."""
    from trimtab.templates.registry import template_for
    worst = 0.0
    for t in strategy.config.targets:
        legs = template_for(t).hedge_legs(t)
        sizes = {leg.instrument: book.qty(leg.instrument) for leg in legs}
        total = sum(abs(s) for s in sizes.values())
        if total <= 0:
            continue
        weights = {leg.instrument: strategy.target_value(leg.weight, params) for leg in legs}
        live = {k: w for k, w in weights.items() if live_of[k]}
        frozen_share = sum(abs(sizes[k]) for k in weights if k not in live) / total
        wsum = sum(live.values())
        for k in weights:
            share = abs(sizes[k]) / total
            target = share if k not in live else (1 - frozen_share) * live[k] / wsum
            worst = max(worst, abs(share - target))
    return worst


def test_hedge_allocation_drift_with_precomputed_legs_and_flags_is_the_same_float(stages):
    from trimtab.planner.targets import hedge_allocation_drift

    st_ = stages("2024-08-05", "2024-08-07")
    s, px, book, view, mon = st_.strategy, st_.px, st_.book, st_.view, st_.monitors
    params = dict(s.params)
    view.i = 4
    keys = mon.hedge_keys
    assert len(keys) >= 3
    for venue in {k.split(":")[0] for k in keys}:
        _deposit(st_, venue, 10_000.0)
    for key, size in zip(keys, (-3.1, -1.7, -0.9)):
        _trade(st_, key, size, px.mark(key))
    flags = [{k: True for k in keys}, {k: k != keys[1] for k in keys}, {k: k == keys[0] for k in keys}]
    seen = set()
    for live in flags:
        got = hedge_allocation_drift(s, params, px, book, mon.hedges, live)
        assert got == _reference_drift(s, params, book, live)
        seen.add(got)
    assert len(seen) == 3 and max(seen) > 0   # the frozen legs change the answer
    assert hedge_allocation_drift(s, params, px, book) == _reference_drift(s, params, book, {k: px.tradable(k) for k in keys})
