"""Generic position templates: from equity and prices to target positions.

Each template of a config's ``targets`` turns its share of equity into target positions in
asset units (perps: signed size; CEX margin: account equity in USDT). No template knows a
strategy mode; a mode is a composition of templates in YAML.

* ``leveraged_stake`` (seed 004 "Position Calculation", corrected): with equity e in ETH and
  loan-to-value L, collateral = e / (1 - L) ETH of LST and debt = e x L / (1 - L) ETH, so
  collateral - debt = e and debt / collateral = L. (Seed 004's ``leverage = L / (1 - L)``
  gives collateral 9e and debt 8e at L = 0.9, i.e. LTV 0.889, not 0.9.) Net delta: e ETH.
* ``perp_hedge``: short ``hedge_ratio`` x the delta of the hedged targets, spread across
  legs by weight over venues whose data is fresh; a leg on a stale venue keeps its size and
  margin (it cannot be traded) and the others take up the rest. Margin: ``allocation`` of
  equity as USDT account equity, split like the sizes.
* ``wallet_reserve``: hold a fixed amount of a token in the wallet (gas money).
* ``stake``: hold ``allocation`` of equity as LST units in the wallet; delta = units x rate.
* ``lend``: supply ``allocation`` of equity (in the aToken's asset) to a lending venue.
* ``spot``: hold ``allocation`` of equity as a spot token on a CEX; delta = units.
* ``signal_perp``: size = side x ``max_position_size`` x equity / mark, side from the signal
  in force (0 below ``signal_threshold`` confidence), margined with the whole equity.
* ``token_weights``: units = weight x equity / price for each wallet token of the basket, at
  its ``price_source`` price (a token without a healthy price holds what it has); the trades
  toward it are matched by :mod:`trimtab.planner.drift`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..accounting.book import Book
from ..config.load import Strategy
from ..config.models import (
    LendTarget,
    LeveragedStakeTarget,
    PerpHedgeTarget,
    SignalPerpTarget,
    SpotTarget,
    StakeTarget,
    TokenWeightsTarget,
    WalletReserveTarget,
)
from ..venues.pricing import Pricing
from ..venues.sim import SimVenues


@dataclass
class Targets:
    """Target positions (asset units), CEX account equity targets (USDT), and deltas by target id."""

    positions: dict[str, float] = field(default_factory=dict)
    margin: dict[str, float] = field(default_factory=dict)
    deltas: dict[str, float] = field(default_factory=dict)
    hedge_weights: dict[str, float] = field(default_factory=dict)
    frozen: list[str] = field(default_factory=list)


def compute_targets(strategy: Strategy, params: dict[str, float], px: Pricing, sim: SimVenues, book: Book,
                    equity: float, unwind: bool = False, signals=None) -> Targets:
    """Target positions for ``equity`` (share class) under ``params``; ``signals`` (a
    :class:`trimtab.venues.signals.SignalBook`) gives the side in force for signal targets.

    With ``unwind`` every target is zero (perps on stale venues excepted: they cannot trade).
    """
    out = Targets()
    # Allocations share the equity left after fixed wallet reserves (gas money).
    reserve = 0.0 if unwind else sum(strategy.target_value(t.amount, params) * px.asset_usd(px.info[t.instrument].asset)
                                      for t in strategy.config.targets if isinstance(t, WalletReserveTarget))
    usd = max(equity * px.share_usd() - reserve, 0.0)
    eth = px.eth_usd()
    for t in strategy.config.targets:
        if isinstance(t, LeveragedStakeTarget):
            e = 0.0 if unwind else strategy.target_value(t.allocation, params) * usd / eth
            ltv = strategy.target_value(t.target_ltv, params)
            asset = px.info[t.collateral].asset
            out.positions[t.collateral] = e / (1 - ltv) / px.eth_rate(asset)
            out.positions[t.debt] = e * ltv / (1 - ltv)
            out.deltas[t.id] = e
        elif isinstance(t, WalletReserveTarget):
            out.positions[t.instrument] = 0.0 if unwind else strategy.target_value(t.amount, params)
        elif isinstance(t, StakeTarget):
            e = 0.0 if unwind else strategy.target_value(t.allocation, params) * usd / eth
            out.positions[f"wallet:BaseToken:{t.lst}"] = e / px.eth_rate(t.lst)
            out.deltas[t.id] = e
        elif isinstance(t, LendTarget):
            asset = px.info[t.supply].asset
            amount = 0.0 if unwind else strategy.target_value(t.allocation, params) * usd / px.asset_usd(asset)
            out.positions[t.supply] = amount
            out.deltas[t.id] = amount if px.delta_asset(asset) == strategy.config.asset else 0.0
        elif isinstance(t, SpotTarget):
            asset = px.info[t.instrument].asset
            if not px.view.fresh(t.price_field, 3.0):
                out.positions[t.instrument] = book.qty(t.instrument)  # stale price: hold
                out.deltas[t.id] = book.qty(t.instrument)
                continue
            price = px.view.require(t.price_field)
            units = 0.0 if unwind else strategy.target_value(t.allocation, params) * usd / price
            out.positions[t.instrument] = units
            out.deltas[t.id] = units
        elif isinstance(t, TokenWeightsTarget):
            from .drift import HEALTHY, Basket

            prices = Basket(strategy, t, px, sim).prices(params)
            for tw in t.tokens:
                key = f"wallet:BaseToken:{tw.token}"
                price, _, _, health, _ = prices[tw.token]
                if health != HEALTHY:
                    out.positions[key] = book.qty(key)
                    out.frozen.append(key)
                    continue
                w = (1.0 if tw.token == t.quote else 0.0) if unwind else strategy.target_value(tw.weight, params)
                out.positions[key] = w * usd / price
                if px.delta_asset(tw.token) == strategy.config.asset:
                    out.deltas[t.id] = out.deltas.get(t.id, 0.0) + out.positions[key]
        elif isinstance(t, SignalPerpTarget):
            side = 0.0 if unwind else signals.side(t, params) if signals else 0.0
            size = side * strategy.target_value(t.signal.max_position_size, params) * usd / px.mark(t.instrument)
            if not px.tradable(t.instrument):
                size = book.qty(t.instrument)
                out.frozen.append(t.instrument)
            out.positions[t.instrument] = size
            out.deltas[t.id] = size
    for t in strategy.config.targets:
        if not isinstance(t, PerpHedgeTarget):
            continue
        hedged = sum(out.deltas.get(h, 0.0) for h in t.hedges) * strategy.target_value(t.hedge_ratio, params)
        weights = {leg.instrument: strategy.target_value(leg.weight, params) for leg in t.legs}
        live = {k: w for k, w in weights.items() if px.tradable(k)}
        frozen = [k for k in weights if k not in live]
        out.frozen += frozen
        frozen_size = sum(book.qty(k) for k in frozen)
        total_w = sum(live.values())
        rest = -hedged - frozen_size
        margin_usd = 0.0 if unwind else strategy.target_value(t.allocation, params) * usd
        # A stale venue cannot trade, but its account can still take a deposit: top it up to the
        # hedge's overall margin ratio (never withdraw from it while we cannot see it).
        per_notional = margin_usd / (abs(hedged) * eth) if hedged else 0.0
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
    return out


def hedge_allocation_drift(strategy: Strategy, params: dict[str, float], px: Pricing, book: Book) -> float:
    """Largest |venue share of the short - its target share| over the perp_hedge legs.

    Target shares are the configured weights over the legs with fresh data, with legs on stale
    venues held at their current share. 0 when nothing is hedged.
    """
    worst = 0.0
    for t in strategy.config.targets:
        if not isinstance(t, PerpHedgeTarget):
            continue
        sizes = {leg.instrument: book.qty(leg.instrument) for leg in t.legs}
        total = sum(abs(s) for s in sizes.values())
        if total <= 0:
            continue
        weights = {leg.instrument: strategy.target_value(leg.weight, params) for leg in t.legs}
        live = {k: w for k, w in weights.items() if px.tradable(k)}
        frozen_share = sum(abs(sizes[k]) for k in weights if k not in live) / total
        wsum = sum(live.values())
        for k in weights:
            share = abs(sizes[k]) / total
            target = share if k not in live else (1 - frozen_share) * live[k] / wsum
            worst = max(worst, abs(share - target))
    return worst
