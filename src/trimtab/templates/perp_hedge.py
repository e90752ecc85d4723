"""``perp_hedge``: short perps against the delta of the ``hedges`` targets.

Size: ``hedge_ratio`` x the delta of the hedged targets, spread across legs by weight over
venues whose data is fresh; a leg on a stale venue keeps its size and margin (it cannot be
traded) and the others take up the rest. Margin: ``allocation`` of equity as USDT account
equity, split like the sizes; a stale venue's account is topped up to the hedge's overall
margin ratio, never withdrawn from.
"""
# No `from __future__ import annotations`: pydantic reads these at import (templates/base.py).

from typing import Literal

from .base import BaseTemplate, Expr, Strict, TargetModel, TradeLeg, spec


class HedgeLeg(Strict):
    """One venue of a ``perp_hedge``: a perp ``instrument`` taking ``weight`` of the hedge."""

    instrument: str = spec("The perp shorted on this leg, `venue:Perp:SYMBOL` (e.g. binance:Perp:ETHUSDT).", "-")
    weight: Expr = spec("Share of the hedge's size and margin on this leg; the legs' weights sum to 1.", "fraction")


class PerpHedgeTarget(TargetModel):
    """Short perps against the delta of the ``hedges`` targets, spread over ``legs`` by weight,
    margined with ``allocation`` of equity in the share class."""

    template: Literal["perp_hedge"] = spec("The template this target uses (its model and behaviour; docs/templates.md).", "-")
    allocation: Expr = spec("Fraction of the strategy's equity held as USDT margin on the hedge's venues.", "fraction")
    hedges: list[str] = spec("Ids of the targets whose delta this hedge shorts.", "-", min_length=1)
    hedge_ratio: Expr = spec("Short size as a multiple of the hedged targets' delta (1: fully hedged).", "multiple", 1.0)
    legs: list[HedgeLeg] = spec("The perps the hedge is spread over, each with its weight.", "-", min_length=1)


class PerpHedge(BaseTemplate):
    name = "perp_hedge"
    model = PerpHedgeTarget
    phase = 1
    operations = [("@legs", ("trade", "deposit", "withdraw"))]
    cex = True

    def check(self, t, base, ctx):
        ctx.check_expr(base + ("allocation",), t.allocation)
        ctx.check_expr(base + ("hedge_ratio",), t.hedge_ratio)
        for j, h in enumerate(t.hedges):
            if not ctx.is_target(h) or h == t.id:
                ctx.add(base + ("hedges", j), f"unknown target {h!r}{ctx.suggest(h, [x for x in ctx.target_ids if x != t.id])}")
        for j, leg in enumerate(t.legs):
            ctx.check_inst(base + ("legs", j, "instrument"), leg.instrument, ("Perp",))
            ctx.check_expr(base + ("legs", j, "weight"), leg.weight)
        return t

    def metric_keys(self, t) -> dict[str, list[str]]:
        return {"hedge_target": [t.id]}  # venue_imbalance.<id> (trimtab.metrics)

    def check_values(self, t, ctx) -> None:
        where = f"target {t.id!r}"
        v = ctx.value(("hedge_ratio",), t.hedge_ratio, f"{where} hedge ratio")
        if v is not None and v < 0:
            ctx.add_value(t.hedge_ratio, ("hedge_ratio",), f"{where} hedge ratio {ctx.named(t.hedge_ratio, v)} is negative")
        weights: list[float] = []
        for j, leg in enumerate(t.legs):
            w = ctx.value(("legs", j, "weight"), leg.weight, f"{where} leg {j} weight")
            if w is None:
                weights = []
                break
            if w < 0:
                ctx.add_value(leg.weight, ("legs", j, "weight"), f"{where} leg weight {ctx.named(leg.weight, w)} ({leg.instrument}) is negative")
                weights = []
                break
            weights.append(w)
        if weights and abs(sum(weights) - 1.0) > 1e-9:
            listing = ", ".join(f"{leg.instrument.split(':')[0]} {w:g}" for leg, w in zip(t.legs, weights))
            ctx.add(("legs",), f"{where} leg weights sum to {sum(weights):.6g}, not 1 ({listing}); make them sum to 1")

    def required_series(self, t, strategy, series_of):
        optional: set[str] = set()
        for leg in t.legs:
            spec = strategy.instruments[leg.instrument][1]
            optional |= {series_of(spec.mark_field), series_of(spec.funding_field)}
        return set(), optional

    def targets(self, t, ctx) -> None:
        px, sim, book, out, unwind = ctx.px, ctx.sim, ctx.book, ctx.out, ctx.unwind
        hedged = sum(out.deltas.get(h, 0.0) for h in t.hedges) * ctx.value(t.hedge_ratio)
        weights = {leg.instrument: ctx.value(leg.weight) for leg in t.legs}
        live = {k: w for k, w in weights.items() if px.tradable(k)}
        frozen = [k for k in weights if k not in live]
        out.frozen += frozen
        frozen_size = sum(book.qty(k) for k in frozen)
        total_w = sum(live.values())
        rest = -hedged - frozen_size
        margin_usd = 0.0 if unwind else ctx.value(t.allocation) * ctx.usd
        # A stale venue cannot trade, but its account can still take a deposit: top it up to the
        # hedge's overall margin ratio (never withdraw from it while we cannot see it).
        per_notional = margin_usd / (abs(hedged) * ctx.eth) if hedged else 0.0
        frozen_eq = 0.0
        for k in frozen:
            out.positions[k] = book.qty(k)
            if book.qty(k):
                v = px.info[k].venue
                eq = sim.perp_account(book, v)[0]
                want = max(eq, per_notional * abs(book.qty(k)) * px.mark(k)) if not unwind else eq
                out.margin[v] = out.margin.get(v, 0.0) + want
                frozen_eq += want
        rest_margin = max(margin_usd - frozen_eq, 0.0)
        for k, w in live.items():
            share = w / total_w if total_w > 0 else 0.0
            out.positions[k] = rest * share
            out.hedge_weights[k] = share
            v = px.info[k].venue
            out.margin[v] = out.margin.get(v, 0.0) + rest_margin * share
        out.deltas[t.id] = -hedged

    def current(self, t, out, px, sim, book) -> None:
        for leg in t.legs:
            out.positions.setdefault(leg.instrument, book.qty(leg.instrument))
            v = px.info[leg.instrument].venue
            out.margin[v] = sim.perp_account(book, v)[0]
            if not px.tradable(leg.instrument):
                out.frozen.append(leg.instrument)

    def hedge_legs(self, t) -> list:
        return list(t.legs)

    def trade_legs(self, t, index, value, capital_usd, hedge_margin):
        mt = hedge_margin(t)
        alloc = value(t.allocation)
        if not mt or not alloc:
            return
        notional = capital_usd * alloc / mt
        weights = [value(leg.weight) or 0.0 for leg in t.legs]
        wsum = sum(weights) or 1.0
        for j, (leg, w) in enumerate(zip(t.legs, weights)):
            yield TradeLeg(index, ("targets", index, "legs", j), leg.instrument, "trade", notional * w / wsum, notional * w / wsum)


TEMPLATE = PerpHedge()
