"""Leg risk: delta left unhedged between the legs of a plan, and what to do about it.

A sequential plan can leave the book unhedged for a while (one leg done, the other waiting
on a deposit) or for good (a leg failed). The limits are parameters:
``max_unhedged_h`` (hours a plan may leave |delta drift| above ``max_delta_drift``) and
``max_unhedged_notional_usd`` (the unhedged notional above which it must not wait at all).
When a leg fails, or a limit is passed, :meth:`LegRisk.compensate` builds a compensating plan
that re-sizes the perp hedges to the on-chain delta as it stands (nothing else moves), so delta
comes back inside its threshold; it is journaled like any plan (trigger ``compensate``).
"""
from __future__ import annotations

import math


class LegRisk:
    """Tracks how long the book has been unhedged while plans run."""

    def __init__(self, params: dict[str, float], px):
        self.px = px
        self.max_h = params.get("max_unhedged_h", 2.0)
        self.max_usd = params.get("max_unhedged_notional_usd", math.inf)
        self.max_drift = params.get("max_delta_drift", 0.02)
        self.since: int | None = None

    def snapshot(self) -> dict:
        """``{"since": first unhedged tick or None}``."""
        return {"since": self.since}

    def restore(self, snap: dict) -> None:
        """Load a :meth:`snapshot`."""
        self.since = snap["since"]

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
