"""``spot``: hold ``allocation`` of equity as a spot token on a CEX, bought with that venue's
USDT at ``price_field``; delta = units. A stale price holds what is there."""
# No `from __future__ import annotations`: pydantic reads these at import (templates/base.py).

from typing import Literal

from .base import BaseTemplate, Expr, TargetModel, TradeLeg, held_series, spec

#: Hours after which a spot price is stale (not traded on).
STALE_H = 3.0


class SpotTarget(TargetModel):
    """Hold ``allocation`` of equity as a spot token on a CEX (``instrument``:
    ``venue:BaseToken:SYMBOL``), bought with that venue's USDT at ``price_field``."""

    template: Literal["spot"] = spec("The template this target uses (its model and behaviour; docs/templates.md).", "-")
    allocation: Expr = spec("Fraction of the strategy's equity this target holds (a number or an expression over parameters).", "fraction")
    instrument: str = spec("The spot token held, `venue:BaseToken:SYMBOL` on a cex_perp venue (bought with its USDT margin).", "-")
    price_field: str = spec("Data field `<series>.<column>` pricing the token in USDT (e.g. spot.binance.BTCUSDT.close).", "-")
    fee_bps: Expr = spec("Taker fee of a spot trade, on its notional (Binance spot taker: 10).", "bps", 10.0)
    cost_pair: str = spec("Row of data/static.json execution_costs_bps giving the trade's spread + slippage by size.", "-")


class Spot(BaseTemplate):
    name = "spot"
    model = SpotTarget
    operations = [("@instrument", ("deposit", "withdraw"))]  # spot_trade is priced by the target (fee_bps), not the venue
    cex = True

    def check(self, t, base, ctx):
        ctx.check_expr(base + ("allocation",), t.allocation)
        ctx.check_expr(base + ("fee_bps",), t.fee_bps)
        ctx.check_inst(base + ("instrument",), t.instrument, ("BaseToken",))
        v = t.instrument.split(":")[0]
        if v in ctx.venues and ctx.venues[v].model != "cex_perp":
            ctx.add(base + ("instrument",), f"spot is held on a CEX; {v!r} is a {ctx.venues[v].model} venue")
        return t

    def check_values(self, t, ctx) -> None:
        where = f"target {t.id!r}"
        v = ctx.value(("fee_bps",), t.fee_bps, f"{where} fee_bps")
        if v is not None and v < 0:
            ctx.add_value(t.fee_bps, ("fee_bps",), f"{where} fee_bps {ctx.named(t.fee_bps, v)} is negative")
        err = ctx.field_error(t.price_field)
        if err:
            ctx.add(("price_field",), err)
        costs = ctx.cost_pairs()
        if costs is not None and t.cost_pair not in costs:
            ctx.add(("cost_pair",), f"unknown cost pair {t.cost_pair!r}{ctx.suggest(t.cost_pair, sorted(costs))}")

    def required_series(self, t, strategy, series_of):
        return {series_of(t.price_field)} | held_series(strategy, t.instrument, series_of), set()

    def targets(self, t, ctx) -> None:
        px, out, book = ctx.px, ctx.out, ctx.book
        if not px.view.fresh(t.price_field, STALE_H):
            out.positions[t.instrument] = book.qty(t.instrument)  # stale price: hold
            out.deltas[t.id] = book.qty(t.instrument)
            return
        price = px.view.require(t.price_field)
        units = 0.0 if ctx.unwind else ctx.value(t.allocation) * ctx.usd / price
        out.positions[t.instrument] = units
        out.deltas[t.id] = units

    def moves(self, t, ctx) -> None:
        px, sc = ctx.px, ctx.sc
        venue = px.info[t.instrument].venue
        asset = px.info[t.instrument].asset
        if not px.view.fresh(t.price_field, STALE_H):
            ctx.tg.frozen.append(t.instrument)  # no price, no trade: hold what is there
            return
        price = px.view.require(t.price_field)
        d = ctx.tg.positions[t.instrument] - ctx.book.qty(t.instrument)
        if abs(d) * price < ctx.min_trade_usd:
            return
        fee_bps = ctx.strategy.target_value(t.fee_bps, ctx.params)
        fee = fee_bps + ctx.sim.exec_cost_bps(t.cost_pair, abs(d) * price)
        c = abs(d) * price * fee / 1e4 / sc
        # The funds (USDT margin to buy, the token to sell) sit on the venue: its spot market is the
        # executable route; the wallet's DEX routes are journaled beside it (planner.routes.cex_spot).
        sell, buy, amt = ("USDT", asset, d * price) if d > 0 else (asset, "USDT", -d)
        _, routes = ctx.route(sell, buy, amt, kinds=("cex_spot",), funds_on=venue)
        ins = ctx.instruction(venue, "spot_trade", t.instrument, d, asset,
                              {"fee_bps": fee_bps, "cost_pair": t.cost_pair, "routes": routes}, t.price_field, c)
        if d < 0:
            st = ctx.step(ctx.next_id(), f"sell {-d:.6f} {asset} spot on {venue}", (ins,), expected_cost=c)
            ctx.release.append(st)
            ctx.venue_release[venue].append(st.id)
            ctx.venue_in[venue] += -d * price * (1 - fee / 1e4)
        else:
            ctx.deploy.append((f"deposit:{venue}", ctx.step(ctx.next_id(), f"buy {d:.6f} {asset} spot on {venue}", (ins,), expected_cost=c)))
            ctx.venue_out[venue] += d * price * (1 + fee / 1e4)

    def trade_legs(self, t, index, value, capital_usd, hedge_margin):
        a = value(t.allocation) or 0.0
        yield TradeLeg(index, ("targets", index, "instrument"), t.instrument, "spot_trade", capital_usd * a, None)

    def live_gaps(self, t, has_spot, has_stops) -> set[str]:
        venue = t.instrument.split(":")[0]
        return set() if has_spot(venue) else {f"{venue}.spot_trade"}


TEMPLATE = Spot()
