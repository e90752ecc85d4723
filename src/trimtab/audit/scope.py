"""The metric ranges one config can produce, narrower than the registry's declared domains.

The registry (:mod:`trimtab.metrics`) declares the range a metric takes in *any* strategy: a
health factor is in ``[0, inf]``. A given config publishes every strategy metric too, but a
stage with nothing to measure publishes its inactive value: without Aave debt the health
factor is ``inf`` and the LTV 0; without a perp position every margin ratio is ``inf``
(:meth:`trimtab.engine.monitors.Monitors.run`). Whether a config can hold debt, a perp, a
hedge, a signal position or a basket follows from what its targets' templates declare
(:class:`trimtab.templates.base.Template`: ``loop``, ``hedge_legs``, ``signal_file``) -- the
same declarations the monitors read -- so no template is named here.

:func:`config_domains` gives, per metric name (or family prefix ending in ``.``), the interval a
config can produce where it is narrower than the declared domain, each with the reason the
audit quotes. The audit uses it where a finding is about *this config's* ticks (two guards
holding at the same tick, a liquidation nearing), never to call a shared machine's guard broken.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..metrics import Scope, Stage, defaults
from ..templates.registry import template_for
from .intervals import Interval

INF = math.inf


@dataclass(frozen=True)
class Produced:
    """What one config can produce. ``domains``: metric name, or family prefix such as
    ``margin_ratio.``, -> the only interval it takes in this config; ``reasons``: the same keys
    -> why (``no target borrows``)."""

    domains: dict[str, Interval]
    reasons: dict[str, str]

    @property
    def can_be_liquidated(self) -> bool:
        """Whether any liquidation can near: Aave debt (a health factor below inf) or a perp
        position (a margin ratio below inf) is possible."""
        return "health_factor" not in self.domains or "margin_ratio_min" not in self.domains


def config_domains(targets) -> Produced:
    """The narrowed metric domains of a strategy whose config has ``targets`` (its target
    models, as :class:`trimtab.config.models.StrategyConfig.targets`).

    * no target holds a lending loop (``Template.loop``): ``health_factor`` = inf, ``ltv`` = 0;
    * no hedge legs and no signal position (``hedge_legs``, ``signal_file``): no perp is ever
      held, so ``margin_ratio_min`` and every ``margin_ratio.<venue>`` = inf and every
      ``liquidation_price.<venue>.<symbol>`` = 0;
    * no hedge legs: ``delta_drift``, ``hedge_allocation_drift`` and ``venue_imbalance`` = 0;
    * no signal position: ``signal_side`` = ``position_side`` = 0;
    * no ``token_weights`` basket (``metric_keys`` with tokens): the basket stage's inactive
      values (:func:`trimtab.metrics.defaults`).
    """
    loops = hedges = signals = basket = False
    for t in targets:
        tpl = template_for(t)
        loops = loops or tpl.loop(t) is not None
        hedges = hedges or bool(tpl.hedge_legs(t))
        signals = signals or tpl.signal_file(t) is not None
        basket = basket or bool(tpl.metric_keys(t).get("token"))
    d: dict[str, Interval] = {}
    why: dict[str, str] = {}

    def fix(names, value: float, reason: str) -> None:
        for n in names:
            d[n] = Interval.point(value)
            why[n] = reason

    if not loops:
        fix(["health_factor"], INF, "no target borrows (no lending loop): no debt, health factor inf")
        fix(["ltv"], 0.0, "no target borrows (no lending loop): LTV 0")
    if not (hedges or signals):
        fix(["margin_ratio_min", "margin_ratio."], INF, "no target holds a perp: margin ratio inf")
        fix(["liquidation_price."], 0.0, "no target holds a perp: no liquidation price")
    if not hedges:
        fix(["delta_drift", "hedge_allocation_drift", "venue_imbalance", "venue_imbalance."], 0.0, "no target hedges: 0")
    if not signals:
        fix(["signal_side", "position_side"], 0.0, "no target trades a signal: side 0")
    if not basket:
        for n, v in defaults(Scope.STRATEGY, Stage.BASKET).items():
            fix([n], v, "no token_weights basket: its inactive value")
    return Produced(d, why)
