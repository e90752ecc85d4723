"""``lend``: supply ``allocation`` of equity (in the aToken's asset) to a lending venue; its
delta counts when the aToken's asset is priced as the strategy's asset."""
# No `from __future__ import annotations`: pydantic reads these at import (templates/base.py).

from typing import Literal

from .base import BaseTemplate, Expr, TargetModel, held_series, spec


class LendTarget(TargetModel):
    """Supply ``allocation`` of equity to a lending venue as ``supply`` (an aToken)."""

    template: Literal["lend"] = spec("The template this target uses (its model and behaviour; docs/templates.md).", "-")
    allocation: Expr = spec("Fraction of the strategy's equity this target holds (a number or an expression over parameters).", "fraction")
    supply: str = spec("The supply position, an aToken key `venue:aToken:aSYMBOL` (e.g. aave_v3:aToken:aUSDT).", "-")


class Lend(BaseTemplate):
    name = "lend"
    model = LendTarget
    operations = [("@supply", ("supply", "withdraw"))]

    def check(self, t, base, ctx):
        ctx.check_expr(base + ("allocation",), t.allocation)
        ctx.check_inst(base + ("supply",), t.supply, ("aToken",))
        return t

    def required_series(self, t, strategy, series_of):
        return held_series(strategy, t.supply, series_of), set()

    def targets(self, t, ctx) -> None:
        px = ctx.px
        asset = px.info[t.supply].asset
        amount = 0.0 if ctx.unwind else ctx.value(t.allocation) * ctx.usd / px.asset_usd(asset)
        ctx.out.positions[t.supply] = amount
        ctx.out.deltas[t.id] = amount if px.delta_asset(asset) == ctx.strategy.config.asset else 0.0

    def moves(self, t, ctx) -> None:
        px = ctx.px
        venue = px.info[t.supply].venue
        asset = px.info[t.supply].asset
        d = ctx.tg.positions[t.supply] - px.amount(t.supply, ctx.book.qty(t.supply))
        if abs(d) * px.asset_usd(asset) < ctx.min_trade_usd:
            return
        op = "withdraw" if d < 0 else "supply"
        g = ctx.gas_of(venue, op)
        st = ctx.step(ctx.next_id(), f"{op} {abs(d):.2f} {asset} {'from' if d < 0 else 'to'} {venue}",
                      (ctx.instruction(venue, op, t.supply, abs(d), asset),), expected_cost=g * ctx.eth / ctx.sc)
        ctx.gas_eth += g
        if d < 0:
            ctx.release.append(st)
            ctx.wallet_release[asset].append(st.id)
            ctx.wallet_in[asset] += -d
        else:
            ctx.deploy.append(("sell", st))
            ctx.wallet_out[asset] += d

    def hedged_fraction(self, t, value, delta_asset, asset) -> float:
        # Only a supply priced as the strategy's asset carries delta to hedge.
        return (value(t.allocation) or 0.0) if delta_asset(t.supply) == asset else 0.0


TEMPLATE = Lend()
