"""Issue 13 leftovers (lane K): the CEX-spot route and the liquidation prices in the journal.
Real bundled data, real venue files, a real backtest journal (SQLite) and ``trimtab explain``."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from trimtab.accounting.book import Book, Fill, Leg
from trimtab.config.load import load_strategy
from trimtab.explain import explain_at
from trimtab.planner.routes import candidates, choose, deadline_s
from trimtab.venues import margin
from trimtab.venues.costs import interp_bps

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def basis(stages):
    """eth_basis (ETH spot on Bybit, hedged on three perps) over a few real days."""
    st_ = stages("2024-08-05", "2024-08-07", load_strategy(ROOT / "configs" / "eth_basis.yaml"))
    st_.view.i = 5
    return st_


# ------------------------------------------------------------------ the route's cost, closed form
def test_cex_spot_costs_the_spot_taker_fee_plus_interpolated_slippage_as_its_fill_states(basis):
    sim, view = basis.sim, basis.view
    usdt = 40_000.0
    (q,) = [q for q in candidates(sim, "USDT", "ETH", usdt, funds_on="bybit") if q.kind == "cex_spot"]
    # venues/bybit.yaml: spot_trade fee 10 bps (Bybit non-VIP spot taker 0.10%), ETH market priced by
    # spot.bybit.ETHUSDT.close with the ETHUSDT-PERP row of the execution-cost table
    slip = interp_bps(sim.exec_costs["ETHUSDT-PERP"], usdt)
    assert (q.venue, q.operation, q.label, q.fee_bps, q.executable) == ("bybit", "spot_trade", "bybit ETHUSDT spot", 10.0, True)
    assert q.slippage_bps == pytest.approx(slip, rel=1e-12)
    assert q.gas_usd == q.transfer_usd == q.lost_yield_usd == q.delay_s == 0.0
    assert q.cost_usd == pytest.approx(usdt * (10.0 + slip) / 1e4, rel=1e-12)
    # the sim's fill of that trade: units bought at ref x (1 + slip), fee on the filled cash
    ref = view.get("spot.bybit.ETHUSDT.close")
    units = usdt / ref
    fill = sim.spot_trade(5, "bybit:BaseToken:ETH", units, "spot.bybit.ETHUSDT.close", q.fee_bps, "ETHUSDT-PERP")
    cash = -fill.legs[1].delta                    # USDT paid, fee included
    paid_over_ref = cash - units * ref            # what the trade cost against the reference price
    assert fill.note == f"ref {ref:.2f}, slippage {slip:.1f} bps, fee {units * fill.price * 10.0 / 1e4:.2f} USDT"
    # slippage is charged on the filled notional's reference (units x ref) and the fee on the fill price,
    # so the fill's cost = quote cost x (1 + slip/1e4) on the fee part only: closed form of both
    assert paid_over_ref == pytest.approx(usdt * slip / 1e4 + usdt * (1 + slip / 1e4) * 10.0 / 1e4, rel=1e-12)
    assert paid_over_ref == pytest.approx(q.cost_usd + usdt * slip / 1e4 * 10.0 / 1e4, rel=1e-12)


def test_cex_spot_is_picked_when_cheapest_and_funds_sit_on_the_exchange(basis):
    quotes = candidates(basis.sim, "USDT", "ETH", 40_000.0, funds_on="bybit")
    kinds = {(q.kind, q.venue, q.executable) for q in quotes}
    # the wallet's pool is priced beside it but cannot spend USDT held on Bybit
    assert ("dex", "uniswap_v3", False) in kinds and ("cex_spot", "bybit", True) in kinds
    best, considered = choose(quotes, deadline_s("emergency", {}))
    assert (best.kind, best.venue) == ("cex_spot", "bybit")
    dex = next(c for c in considered if c["kind"] == "dex")
    assert dex["chosen"] is False and dex["why"] == "not executable here: funds on bybit"


def test_cex_spot_is_not_picked_when_the_funds_are_in_the_wallet_even_if_cheaper(basis):
    usdt = 40_000.0
    quotes = candidates(basis.sim, "USDT", "ETH", usdt)          # funds in the wallet
    spot = next(q for q in quotes if q.kind == "cex_spot")
    dex = next(q for q in quotes if q.kind == "dex")
    # priced with its transfer legs: ERC-20 deposit gas, the withdrawal fee, both latencies
    wallet_gas = basis.sim.gas_eth("VENUE_TRANSFER") * basis.px.eth_usd()
    assert (spot.executable, spot.transfer_usd, spot.delay_s) == (False, 1.0, 900 + 1800)
    assert spot.gas_usd == pytest.approx(wallet_gas, rel=1e-12)
    assert spot.cost_usd == pytest.approx(usdt * (spot.fee_bps + spot.slippage_bps) / 1e4 + wallet_gas + 1.0, rel=1e-12)
    # even with a cost that beats the pool and a deadline it fits, it is never chosen
    cheap = spot.__class__(**{**spot.__dict__, "fee_bps": 0.0, "slippage_bps": 0.0, "gas_usd": 0.0, "transfer_usd": 0.0})
    assert cheap.cost_usd < dex.cost_usd
    best, considered = choose([dex, cheap], deadline_s("target", {}))
    assert best is dex
    assert next(c for c in considered if c["kind"] == "cex_spot")["why"] == "not executable here: funds in the wallet, not on bybit"


def test_the_spot_targets_plan_journals_the_route_it_takes(basis, stages):
    st_ = stages("2024-08-05", "2024-08-07", basis.strategy)
    st_.fund(100_000.0)
    st_.view.i = 2
    plan = st_.planner.plan(st_.book, st_.equity(), "operational", "target", dict(st_.strategy.params), "test")
    (ins,) = [i for s in plan.steps for i in s.instructions if i.operation == "spot_trade"]
    chosen = [r for r in ins.params["routes"] if r["chosen"]]
    assert [(r["kind"], r["venue"]) for r in chosen] == [("cex_spot", "bybit")]
    assert json.loads(json.dumps(ins.params["routes"])) == ins.params["routes"]  # journal-ready


# ------------------------------------------------------------------ liquidation prices in the journal
def test_journaled_liquidation_price_is_the_margin_formula_for_that_ticks_position(market, tmp_path):
    from trimtab.engine.backtest import run_backtest
    from trimtab.engine.journal import read_metrics

    s = load_strategy(ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml")
    run = run_backtest(s, start="2024-08-01", end="2024-08-06", out=tmp_path, run_id="k", data=market)
    db = sqlite3.connect(run.run_dir / "journal.sqlite")
    fills = db.execute("SELECT tick, venue, operation, category, price, legs FROM fills ORDER BY fill_id").fetchall()
    busy = {f[0] for f in fills}
    rows = [(r.tick, r.time, r.metrics) for r in read_metrics(db)]
    key, name = "binance:Perp:ETHUSDT", "liquidation_price.binance.ETHUSDT"
    # the last tick without any fill, with the hedge open: the position is the sum of earlier fills
    tick, time, data = next(r for r in reversed(rows) if r[0] not in busy and r[2].get(name, 0) > 0)
    book = Book()
    for t, venue, op, cat, price, legs in fills:
        if t < tick:
            book.apply(Fill(t, venue, op, cat, [Leg(*l) for l in json.loads(legs)], price=price), price)
    size = book.qty(key)
    assert size < 0  # the hedge is short
    table = s.venues["binance"].perp.risk_limits[key]
    wallet = book.qty("binance:Margin:USDT")  # USDT margin only: no other collateral, no other position
    want = margin.liquidation_price(wallet, 0.0, 0.0, size, book.entry[key], table)
    # closed form in the position's own bracket (Binance FAQ): (WB + cum - side x q x EP) / (q x MMR - side x q)
    t = margin.bracket(table, size, want)
    q = abs(size)
    assert want == pytest.approx((wallet + t.cum + q * book.entry[key]) / (q * t.mmr + q), rel=1e-12)
    got = data[name]
    assert got == pytest.approx(want, rel=1e-9)
    # every configured perp gets a value each tick (0 without a position), and explain --at shows it
    assert {k for k in data if k.startswith("liquidation_price.")} == {
        f"liquidation_price.{v}.{sym}" for v in ("binance", "bybit", "okx") for sym in ("ETHUSDT", "BTCUSDT")}
    assert data["liquidation_price.binance.BTCUSDT"] == 0.0
    e = explain_at(run.run_dir / "journal.sqlite", time)
    assert e["metrics"][name] == pytest.approx(want, rel=1e-9)
