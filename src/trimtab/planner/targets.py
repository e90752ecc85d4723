"""Target positions: from equity and prices to what each target should hold.

Each template of a config's ``targets`` (:mod:`trimtab.templates`) turns its share of equity
into target positions in asset units (perps: signed size; CEX margin: account equity in USDT);
the formulas are in each template's module. No template knows a strategy mode; a mode is a
composition of templates in YAML. Fixed wallet reserves are set aside first; then phase-0
templates size from equity and phase-1 templates (hedges) from the deltas those leave.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..accounting.book import Book
from ..config.load import Strategy
from ..templates.registry import template_for
from ..venues.pricing import Pricing
from ..venues.sim import SimVenues
from .drift import Basket


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
    reserve = 0.0 if unwind else sum(template_for(t).reserved_usd(t, strategy, params, px) for t in strategy.config.targets)
    ctx = _Sizing(strategy, params, px, sim, book, out, max(equity * px.share_usd() - reserve, 0.0), px.eth_usd(), unwind, signals)
    for phase in (0, 1):
        for t in strategy.config.targets:
            tpl = template_for(t)
            if tpl.phase == phase:
                tpl.targets(t, ctx)
    return out


@dataclass
class _Sizing:
    """What a template's ``targets`` reads (:class:`trimtab.templates.base.TargetContext`)."""

    strategy: Strategy
    params: dict[str, float]
    px: Pricing
    sim: SimVenues
    book: Book
    out: Targets
    usd: float
    eth: float
    unwind: bool
    signals: object

    def value(self, expr) -> float:
        return self.strategy.target_value(expr, self.params)

    def basket(self, target) -> Basket:
        return Basket(self.strategy, target, self.px, self.sim)


def hedge_weights(strategy: Strategy, params: dict[str, float], legs) -> dict[str, float]:
    """``{leg instrument: target weight}`` of hedge ``legs`` under ``params`` (a function of the
    parameters alone, so a per-tick caller may keep it while ``params`` are unchanged)."""
    return {leg.instrument: strategy.target_value(leg.weight, params) for leg in legs}


def hedge_allocation_drift(strategy: Strategy, params: dict[str, float], px: Pricing, book: Book,
                           hedges: list | None = None, tradable: dict[str, bool] | None = None,
                           weights: list[dict[str, float]] | None = None) -> float:
    """Largest |venue share of the short - its target share| over the perp_hedge legs.

    Target shares are the configured weights over the legs with fresh data, with legs on stale
    venues held at their current share. 0 when nothing is hedged.

    ``hedges`` (optional, for the per-tick caller): ``[(target, its hedge legs)]`` precomputed,
    the targets with hedge legs in config order (the others add nothing); ``tradable``
    (optional): ``{perp key: px.tradable(key)}`` at the current tick for every leg; ``weights``
    (optional, with ``hedges``): per entry of ``hedges``, ``{leg instrument: target weight}`` as
    :func:`hedge_weights` gives it for these ``params``.
    """
    if hedges is None:
        hedges = [(t, template_for(t).hedge_legs(t)) for t in strategy.config.targets]
        weights = None
    hedge_w = weights
    worst = 0.0
    bal = book.bal
    for n, (t, legs) in enumerate(hedges):
        sizes = {leg.instrument: bal.get(leg.instrument, 0.0) for leg in legs}
        # The sums below run in leg order from the int 0, exactly as sum() would.
        total = 0
        for s in sizes.values():
            total += abs(s)
        if total <= 0:
            continue
        weights = hedge_weights(strategy, params, legs) if hedge_w is None else hedge_w[n]
        live = tradable if tradable is not None else {k: px.tradable(k) for k in weights}
        frozen = wsum = 0
        for k, w in weights.items():
            if live[k]:
                wsum += w
            else:
                frozen += abs(sizes[k])
        frozen_share = frozen / total
        for k, w in weights.items():
            share = abs(sizes[k]) / total
            target = (1 - frozen_share) * w / wsum if live[k] else share
            worst = max(worst, abs(share - target))
    return worst
