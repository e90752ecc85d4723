"""Venue findings: operations plans emit, gas tables, and trade sizes against minimums.

* ``unsupported-operation``: a target's plans emit an operation (its template's
  ``operations``, :class:`trimtab.templates.base.Template`; the operations the executor looks
  up in the venue catalog) on a venue whose ``operations`` do not list it; the plan would fail at execution
  with "venue X does not support operation Y";
* ``unknown-gas-op``: an operation's ``gas_op`` missing from ``gas_units`` in data/static.json
  (gas could not be priced);
* ``trade-below-minimum``: at the configured capital, a full-size perp or spot position is
  smaller than the venue's ``trade``/``spot_trade`` ``min_notional``: it cannot be opened;
* ``rebalance-below-minimum`` (warning): the trade a drift threshold triggers (threshold x the
  leg's notional, for ``delta_drift`` and ``hedge_allocation_drift`` guards) is under the
  venue's minimum or the planner's ``MIN_TRADE_USD``: the planner skips it and the drift stays.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..data.feed import DEFAULT_DATA_DIR
from ..planner.compile import MIN_TRADE_USD
from ..templates.registry import template_for
from .findings import Context
from .intervals import fmt
from .rules import thresholds
from .thresholds import margin_target, value_of


def _static(ctx: Context) -> dict:
    p = Path(DEFAULT_DATA_DIR) / "static.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def check_venues(ctx: Context, capital_usd: float | None) -> None:
    """Append the venue findings of ``ctx``; size checks need ``capital_usd`` (skipped if None)."""
    _operations(ctx)
    _gas_ops(ctx)
    if capital_usd is not None:
        _sizes(ctx, capital_usd)


def _operations(ctx: Context) -> None:
    for i, t in enumerate(ctx.config.targets):
        for field, ops in template_for(t).operations:
            uses: list[tuple[str, tuple]] = []
            if field == "@legs":
                uses = [(leg.instrument.split(":")[0], ("targets", i, "legs", j, "instrument")) for j, leg in enumerate(t.legs)]
            elif field.startswith("@"):
                key = getattr(t, field[1:], None)
                if key:
                    path = ("targets", i, field[1:]) if ctx.cdoc.has(("targets", i, field[1:])) else ("targets", i)
                    uses = [(key.split(":")[0], path)]
            else:
                v = getattr(t, field, None)
                if v:
                    path = ("targets", i, field) if ctx.cdoc.has(("targets", i, field)) else ("targets", i)
                    uses = [(v, path)]
            for venue, path in uses:
                spec = ctx.s.venues.get(venue)
                if spec is None:
                    continue
                missing = [op for op in ops if op not in spec.operations]
                if missing:
                    ctx.add("unsupported-operation", ctx.cdoc, path,
                            f"venue {venue!r} does not support {', '.join(map(repr, missing))}, which {t.template} target {t.id!r} "
                            f"plans emit on it (venues/{venue}.yaml operations: {', '.join(spec.operations) or 'none'})")
    if any(template_for(t).cex for t in ctx.config.targets) and "wallet" in ctx.s.venues:
        if "transfer" not in ctx.s.venues["wallet"].operations:
            ctx.add("unsupported-operation", ctx.vdocs["wallet"], ("operations",),
                    "venue 'wallet' does not support 'transfer', which every CEX deposit of this strategy pays gas for", key=True)


def _gas_ops(ctx: Context) -> None:
    units = _static(ctx).get("gas_units")
    if not isinstance(units, dict):
        return
    for name, v in ctx.s.venues.items():
        for op, spec in v.operations.items():
            if spec.gas_op and spec.gas_op not in units:
                ctx.add("unknown-gas-op", ctx.vdocs[name], ("operations", op, "gas_op"),
                        f"gas_op {spec.gas_op!r} of {name}.{op} is not in the gas-units table (data/static.json gas_units: "
                        f"{', '.join(sorted(units))})")


def _legs(ctx: Context, capital_usd: float):
    """(target index, path, instrument, operation, full notional USD, drift base USD) per traded instrument."""
    def hedge_margin(h) -> float | None:
        mt = margin_target(ctx, h)
        return mt[0] if mt else None

    for i, t in enumerate(ctx.config.targets):
        for leg in template_for(t).trade_legs(t, i, lambda e: value_of(ctx, e), capital_usd, hedge_margin):
            yield leg.index, leg.path, leg.instrument, leg.operation, leg.notional_usd, leg.drift_base_usd


def _sizes(ctx: Context, capital_usd: float) -> None:
    drift = []
    for tr in ctx.transitions:
        for r in tr.when:
            for th in thresholds(ctx, r):
                if th.direction == ">" and th.metric in ("abs(delta_drift)", "delta_drift", "hedge_allocation_drift"):
                    drift.append((tr, th))
    for i, path, key, op, notional, base in _legs(ctx, capital_usd):
        venue = key.split(":")[0]
        spec = ctx.s.venues.get(venue)
        if spec is None or op not in spec.operations:
            continue
        minimum = spec.operations[op].min_notional
        if notional < minimum:
            ctx.add("trade-below-minimum", ctx.cdoc, path,
                    f"{key} would trade {notional:,.2f} USD at capital {capital_usd:,.2f} USD, under {venue}'s {op} minimum "
                    f"notional {fmt(minimum)} USD: the position cannot be opened")
            continue
        if base is None:
            continue
        floor = max(minimum, MIN_TRADE_USD)
        for tr, th in drift:
            size = th.value * base
            if size < floor:
                which = f"{venue}'s minimum notional {fmt(minimum)}" if minimum >= MIN_TRADE_USD else f"the planner's MIN_TRADE_USD {fmt(MIN_TRADE_USD)}"
                ctx.add("rebalance-below-minimum", ctx.cdoc, path,
                        f"at capital {capital_usd:,.2f} USD, {tr.trigger!r} fires at {th.text()} (rule {th.rule}), a trade of about "
                        f"{size:,.2f} USD on {key}, under {which} USD: the planner skips it and the drift stays")
                break
