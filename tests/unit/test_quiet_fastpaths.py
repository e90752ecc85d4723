"""The quiet spans' funding and attribution fast paths keep what the general code gives.

- :meth:`SimVenues.funding_state` / :meth:`SimVenues.restore_funding`: the part of a snapshot
  that funding changes, put back as :meth:`SimVenues.restore` would, stops left alone;
- :meth:`SimVenues.funding`: its fills' fields and note text, and ``read`` holding only the
  stale marks (those read again when booked ahead);
- :func:`trimtab.accounting.attribution._layout`: the columns grouped by category;
- :meth:`Book.apply`: a malformed key still raises on every fill, a perp's realised P&L leg.
"""
from __future__ import annotations

import numpy as np
import pytest

from test_quiet import ROOT

from trimtab.accounting.attribution import _layout
from trimtab.accounting.book import Book, Fill, Leg
from trimtab.config.load import load_strategy
from trimtab.engine.kernel import Engine

FLAGSHIP = "usdt_eth_staking_hedged_leveraged.yaml"


def test_layout_groups_columns_by_category_in_first_appearance_order():
    names, order, starts, ends = _layout(("price_delta", "basis", "price_delta", "supply_yield", "basis"))
    assert names == ["price_delta", "basis", "supply_yield"]
    assert order == [0, 2, 1, 4, 3]
    assert (starts, ends) == ([0, 2, 4], [2, 4, 5])
    assert _layout(()) == ([], [], [], [])


def test_book_apply_keeps_its_checks_and_realised_leg():
    b = Book({"binance:Margin:USDT": 100.0}, {}, {"binance:Margin:USDT": 100.0})
    for _ in range(2):  # the key's type is memoised: a malformed key raises every time
        with pytest.raises(Exception):
            b.apply(Fill(0, "x", "op", "gas", [Leg("not a key", 1.0, 1.0)]))
    b.apply(Fill(0, "binance", "trade", "trading_fees", [Leg("binance:Perp:ETHUSDT", -2.0, -2.0)]), 3000.0)
    legs = [Leg("binance:Perp:ETHUSDT", 1.0, 1.0), Leg("binance:Margin:USDT", 0.0, 0.0)]
    fill = Fill(0, "binance", "trade", "trading_fees", legs)
    b.apply(fill, 2900.0)  # buys back half: 1 x (3000 - 2900) realised into the margin
    assert [(leg.key, leg.delta) for leg in fill.legs] == [("binance:Perp:ETHUSDT", 1.0), ("binance:Margin:USDT", 0.0),
                                                          ("binance:Margin:USDT", 100.0)]
    assert b.bal == {"binance:Margin:USDT": 200.0, "binance:Perp:ETHUSDT": -1.0}
    assert b.check_fills() == []


@pytest.fixture(scope="module")
def engine(market, tmp_path_factory):
    # OKX's data stopping in April 2025: settlements that read stale marks and proxy rates
    return Engine(load_strategy(ROOT / "configs" / FLAGSHIP), market.slice("2025-03-25", "2025-04-10"),
                  tmp_path_factory.mktemp("fastpaths"), bulk=False)


def test_funding_state_round_trip(engine):
    sim = engine.sim
    sim.last_rate, sim.funding_proxies, sim.funding_missing = {"a": 0.5}, {"a": 2}, {"b": 1}
    sim.stops = {"k": (1.0, 2.0)}
    state = sim.funding_state()
    full = sim.snapshot()
    sim.last_rate["a"], sim.funding_proxies["a"], sim.funding_missing["c"] = 0.7, 3, 1
    sim.restore_funding(state)
    assert sim.snapshot() == full
    sim.last_rate["a"] = 0.9
    assert state[0] == {"a": 0.5}  # restored as a copy: the state can be loaded again
    sim.stops, sim.last_rate, sim.funding_proxies, sim.funding_missing = {}, {}, {}, {}


def test_funding_fills_and_stale_reads(engine):
    e = engine
    settled = stale = 0
    while e.next_tick < e.view.n:
        i = e.next_tick
        if e.funding_due[i] and any(e.book.qty(k) for k in e.sim.perp_keys):
            e.view.i = i
            state, px_state = e.sim.snapshot(), e.px.snapshot()
            read: list[str] = []
            fills = e.sim.funding(i, e.book, read)
            held = [k for k in e.sim.perp_keys if e.book.qty(k)]
            marks = {k: e.px.mark(k) for k in held}
            want_read = [k for k in held if not e.px.mark_is_fresh(k, i)]
            assert read == [k for k in want_read if any(f.venue == e.px.info[k].venue for f in fills)]
            for f in fills:
                (key,) = [k for k in held if e.px.info[k].venue == f.venue]
                s, rate = e.book.qty(key), f.price
                assert (f.operation, f.category, f.plan_id, f.step_id) == ("funding", "funding", None, None)
                assert f.note == f"-size x mark x rate = {-s:.4f} x {marks[key]:.2f} x {rate:.6g}"
                assert f.legs[0].delta == -s * marks[key] * rate
            settled += len(fills)
            stale += len(read)
            e.sim.restore(state)
            e.px.restore(px_state)
        e.step(i)
    assert settled > 50 and stale > 0
