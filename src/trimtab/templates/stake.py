"""``stake``: hold ``allocation`` of equity as LST units in the wallet (unleveraged); delta =
units x the LST/ETH rate. Bought by staking ETH; sold back to ETH by the cheapest route that fits
the plan's deadline (trimtab.planner.routes): a DEX pool, or the protocol's withdrawal queue
when the plan may wait that long (``route_deadline_h``)."""
# No `from __future__ import annotations`: pydantic reads these at import (templates/base.py).

from typing import Literal

from .base import BaseTemplate, Expr, TargetModel, spec


class StakeTarget(TargetModel):
    """Hold ``allocation`` of equity staked as an LST in the wallet (unleveraged). Bought by
    staking ETH; sold back to ETH on ``swap_venue`` (the unstake queue is slower)."""

    template: Literal["stake"] = spec("The template this target uses (its model and behaviour; docs/templates.md).", "-")
    allocation: Expr = spec("Fraction of the strategy's equity this target holds (a number or an expression over parameters).", "fraction")
    lst: str = spec("The liquid staking token held (weETH or wstETH); picks the staking venue minting it.", "-", "weETH")
    lst_venue: str | None = spec("Staking venue minting the LST (omitted: the configured venue whose lst.token is `lst`).", "-", None)
    swap_venue: str = spec("DEX venue the LST is sold back to ETH on (the withdrawal queue is the slower route).", "-")


class Stake(BaseTemplate):
    name = "stake"
    model = StakeTarget
    operations = [("lst_venue", ("stake",)), ("swap_venue", ("swap",))]

    def check(self, t, base, ctx):
        t = t.model_copy(update={"lst_venue": ctx.lst_venue_of(base + ("lst",), t.lst, t.lst_venue)})
        ctx.check_expr(base + ("allocation",), t.allocation)
        if t.lst_venue:
            ctx.check_venue(base + ("lst_venue",), t.lst_venue, ("lst",))
        ctx.check_venue(base + ("swap_venue",), t.swap_venue, ("dex",))
        return t

    def required_series(self, t, strategy, series_of):
        wallet_assets = strategy.venues["wallet"].assets or {}
        if wallet_assets[t.lst].eth_rate_field:
            return {series_of(wallet_assets[t.lst].eth_rate_field)}, set()
        return set(), set()

    def targets(self, t, ctx) -> None:
        e = 0.0 if ctx.unwind else ctx.value(t.allocation) * ctx.usd / ctx.eth
        ctx.out.positions[f"wallet:BaseToken:{t.lst}"] = e / ctx.px.eth_rate(t.lst)
        ctx.out.deltas[t.id] = e

    def moves(self, t, ctx) -> None:
        px, eth, sc = ctx.px, ctx.eth, ctx.sc
        key = f"wallet:BaseToken:{t.lst}"
        rate = px.eth_rate(t.lst)
        d = ctx.tg.positions[key] - ctx.book.qty(key)
        if abs(d) * rate * eth < ctx.min_trade_usd:
            return
        if d < 0:
            # A DEX pool now, or the protocol's withdrawal queue when the plan can wait for it.
            venue, routes = ctx.route(t.lst, "ETH", -d, kinds=("dex", "withdrawal_queue"))
            if venue == t.lst_venue:
                op = ctx.strategy.venues[venue].operations["unstake"]
                g = ctx.gas_of(venue, "unstake")
                st = ctx.step(ctx.next_id(), f"queue {-d:.4f} {t.lst} for withdrawal on {venue} ({op.latency_s / 86400:.1f} days)",
                              (ctx.instruction(venue, "unstake", key, -d, t.lst, {"buy": "ETH", "routes": routes},
                                               ctx.strategy.venues[venue].lst.rate_field, 0.0),),
                              latency_s=op.latency_s, expected_cost=g * eth / sc)
                ctx.release.append(st)
                ctx.wallet_release["ETH"].append(st.id)
                ctx.wallet_in["ETH"] += -d * rate
                ctx.gas_eth += g
                return
            cost = ctx.swap_cost(venue, t.lst, "ETH", -d)
            g = ctx.gas_of(venue, "swap")
            c = -d * rate * cost / 1e4 * eth / sc
            st = ctx.step(ctx.next_id(), f"sell {-d:.4f} {t.lst} for ETH on {venue}",
                          (ctx.instruction(venue, "swap", key, -d, t.lst, {"buy": "ETH", "routes": routes}, "oracle rate", c),),
                          expected_cost=c + g * eth / sc)
            ctx.release.append(st)
            ctx.wallet_release["ETH"].append(st.id)
            ctx.wallet_in["ETH"] += -d * rate * (1 - cost / 1e4)
            ctx.gas_eth += g
        else:
            g = ctx.gas_of(t.lst_venue, "stake")
            ctx.deploy.append(("buy", ctx.step(ctx.next_id(), f"stake {d * rate:.4f} ETH into {t.lst} on {t.lst_venue}",
                                               (ctx.instruction(t.lst_venue, "stake", "wallet:BaseToken:ETH", d * rate, "ETH",
                                                                {"mint": t.lst}, ctx.strategy.venues[t.lst_venue].lst.rate_field),),
                                               expected_cost=g * eth / sc)))
            ctx.wallet_out["ETH"] += d * rate
            ctx.gas_eth += g

    def emergency_source(self, t) -> str | None:
        return "lst"


TEMPLATE = Stake()
