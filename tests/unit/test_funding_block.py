"""A quiet span's funding settlements worked out column-wise are :meth:`SimVenues.funding`'s.

:meth:`SimVenues.funding_block` gives, for a run of funding ticks with the perp sizes held, the
rows a quiet span books (trimtab.engine.quiet) instead of building a fill per settlement. On
the flagship's real data, where OKX's funding series and marks stop in April 2025 (proxy rates,
marks at the reference price) while Binance and Bybit settle on, each row must be the fill
``funding()`` gives tick after tick, number for number and character for character, with the
stale-mark reads and proxies marked, and :meth:`SimVenues.funding_settled` must leave the sim's
funding state as those calls do. Where ``funding()`` alone can settle (a margin whose value
moves with prices), the block declines.
"""
from __future__ import annotations

from test_quiet import ROOT  # the spans' own tests' root

from trimtab.config.load import load_strategy
from trimtab.engine.kernel import Engine

FLAGSHIP = "usdt_eth_staking_hedged_leveraged.yaml"


def _held_engine(market, config: str, start: str, end: str, out):
    """An Engine stepped tick by tick until it holds a perp; returns (engine, funding ticks after)."""
    e = Engine(load_strategy(ROOT / "configs" / config), market.slice(start, end), out, bulk=False)
    while not any(e.book.qty(k) for k in e.sim.perp_keys):
        assert e.next_tick < e.view.n, "no perp held in the window"
        e.step(e.next_tick)
    first = e.next_tick
    return e, [t for t in range(first, e.view.n) if e.funding_due[t]]


def test_rows_are_the_per_tick_fills(market, tmp_path):
    e, ticks = _held_engine(market, FLAGSHIP, "2025-03-25", "2025-04-25", tmp_path)
    sim, px, view = e.sim, e.px, e.view
    before_sim, before_px, i = sim.snapshot(), px.snapshot(), view.i
    block = sim.funding_block(ticks, e.book)
    assert block is not None
    rows, missing = block
    sim.funding_settled(rows, missing)
    after_block = sim.funding_state()

    sim.restore(before_sim)
    want = []
    for t in ticks:  # funding() tick by tick, the book unchanged (it only reads it)
        view.i = t
        read = []
        for f in sim.funding(t, e.book, read):
            (leg,) = f.legs
            key = next(k for k in e.sim.perp_keys if e.px.info[k].venue == f.venue)
            want.append((t, key, f.venue, leg.key, leg.delta, f.price, f.price_field, f.note, key in read,
                         f.price_field.startswith("proxy")))
            assert leg.amount == leg.delta and f.category == f.operation == "funding"
    after_ticks = sim.funding_state()
    sim.restore(before_sim)
    px.restore(before_px)
    view.i = i

    assert rows == want
    assert after_block == after_ticks
    # the window has all three kinds of settlement, so the comparison is not vacuous
    assert sum(r[8] for r in rows) > 10  # marks read stale
    assert sum(r[9] for r in rows) > 10  # proxy rates
    assert sum(not r[8] and not r[9] for r in rows) > 50


def test_declines_where_the_margin_value_moves(market, tmp_path):
    # a BTC share class: a USDT margin's value moves with BTC, so funding() books each one
    e, ticks = _held_engine(market, "ml_btc_directional_usdt_margin.yaml", "2025-01-01", "2025-01-20", tmp_path)
    assert ticks and any(e.book.qty(k) for k in e.sim.perp_keys)
    assert e.sim.funding_block(ticks, e.book) is None
