"""Leg risk: delta left unhedged between the legs of a plan, and what to do about it.

A sequential plan can leave the book unhedged for a while (one leg done, the other waiting
on a deposit) or for good (a leg failed). The limits are parameters:
``max_unhedged_h`` (hours a plan may leave |delta drift| above ``max_delta_drift``) and
``max_unhedged_notional_usd`` (the unhedged notional above which it must not wait at all).
When a leg fails, or a limit is passed, :meth:`LegRisk.compensate` builds a compensating plan
that re-sizes the perp hedges to the on-chain delta as it stands (nothing else moves), so delta
comes back inside its threshold; it is journaled like any plan (trigger ``compensate``).

It also keeps each plan's hedge-gap record (:class:`PlanGap`, journal table ``plan_hedge``):
over the ticks that END with the plan still in flight (the metrics row of that tick has
``plan_in_flight`` = 1; the plan in flight is the last one submitted), the largest unhedged
notional ``|net_delta| x`` the asset's USD price (USD), the tick it was reached at, the largest
``|delta_drift|`` and the hours with ``|delta_drift| > max_delta_drift``. A plan done within
the tick it was submitted has a zero record: no time passed with its legs apart.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class PlanGap:
    """One plan's hedge gap: ``plan_id``, submitted at ``tick``; ``max_unhedged_usd`` (USD) at
    ``max_unhedged_tick`` (None while zero), ``max_drift`` (largest |delta_drift|, a fraction),
    ``unhedged_hours`` (hourly ticks with |delta_drift| above ``max_delta_drift``) and
    ``hours_in_flight`` (ticks it ended still in flight)."""

    plan_id: str
    tick: int
    max_unhedged_usd: float = 0.0
    max_unhedged_tick: int | None = None
    max_drift: float = 0.0
    unhedged_hours: int = 0
    hours_in_flight: int = 0


class LegRisk:
    """Tracks how long the book has been unhedged while plans run."""

    def __init__(self, params: dict[str, float], px):
        self.px = px
        self.max_h = params.get("max_unhedged_h", 2.0)
        self.max_usd = params.get("max_unhedged_notional_usd", math.inf)
        self.max_drift = params.get("max_delta_drift", 0.02)
        self.since: int | None = None
        self.gap: PlanGap | None = None  # the hedge gap of the last plan submitted

    def snapshot(self) -> dict:
        """``{"since": first unhedged tick or None, "gap": the last plan's PlanGap fields or None}``."""
        return {"since": self.since, "gap": asdict(self.gap) if self.gap is not None else None}

    def restore(self, snap: dict) -> None:
        """Load a :meth:`snapshot`."""
        self.since = snap["since"]
        self.gap = PlanGap(**snap["gap"]) if snap.get("gap") is not None else None

    def submitted(self, plan_id: str, tick: int) -> PlanGap:
        """Start the hedge-gap record of a plan submitted at ``tick``."""
        self.gap = PlanGap(plan_id, tick)
        return self.gap

    def track(self, tick: int, metrics: dict, in_flight: bool, asset_usd: float, hedged: bool) -> PlanGap | None:
        """Fold the tick's final ``metrics`` into the record of the plan in flight (``asset_usd``:
        the strategy asset's USD price at ``tick``; ``hedged``: the strategy holds hedge legs,
        else nothing is ever unhedged). Returns the record changed, or None."""
        g = self.gap
        if g is None or not in_flight or not hedged:
            return None
        g.hours_in_flight += 1
        usd = abs(metrics.get("net_delta", 0.0)) * asset_usd
        drift = abs(metrics.get("delta_drift", 0.0))
        if usd > g.max_unhedged_usd:
            g.max_unhedged_usd, g.max_unhedged_tick = usd, tick
        g.max_drift = max(g.max_drift, drift)
        g.unhedged_hours += drift > self.max_drift
        return g

    def _unhedged(self, metrics: dict) -> bool:
        return abs(metrics.get("delta_drift", 0.0)) > self.max_drift

    def overdue(self, tick: int, metrics: dict, in_flight: bool) -> bool:
        """True when a plan in flight has left delta outside its threshold for longer than
        ``max_unhedged_h`` or by more than ``max_unhedged_notional_usd``."""
        if not in_flight or not self._unhedged(metrics):
            self.since = None
            return False
        if self.since is None:
            self.since = tick
        notional = abs(metrics.get("net_delta", 0.0)) * self.px.eth_usd()
        return tick - self.since >= self.max_h or notional > self.max_usd

    def compensate(self, tick: int, metrics: dict, planner, book, params: dict[str, float]):
        """A hedge-only plan when delta is outside its threshold, else None."""
        if not self._unhedged(metrics):
            return None
        self.since = None
        plan = planner.plan(book, metrics["equity"], "compensate", "hedge", params, "compensate")
        return plan if plan.steps else None
