"""Yield-impact analysis before a routine rebalance (seed 000, "Transfer Cost-Benefit Analysis").

Yield by source is annualised from what is observable at the tick (no look-ahead):

* supply yield: aToken amount x price x the reserve's current liquidity rate (Aave, as-of);
* borrow cost: debt amount x price x the reserve's current variable borrow rate;
* staking: LST value x the LST/ETH rate's growth over the last 7 days, annualised;
* funding: short notional x the mean of the venue's last 21 funding rates (7 days) x 3 x 365
  (positive rate: shorts earn).

Recommendation (seed 000): with net impact = (projected - current annual yield) x
``horizon_days`` / 365 and cost = the plan's expected cost,
EXECUTE if net impact > cost; NEUTRAL if |net impact| < 0.5 x cost; DEFER otherwise.
"""
from __future__ import annotations

import math

from ..accounting.book import Book


def recommend(net_impact: float, cost: float) -> str:
    """The seed's rule: EXECUTE, NEUTRAL or DEFER (amounts in the same unit)."""
    if net_impact > cost:
        return "EXECUTE"
    if abs(net_impact) < cost * 0.5:
        return "NEUTRAL"
    return "DEFER"


def _trailing(view, field: str, hours: int) -> tuple[float, float]:
    i = view.i
    j = max(i - hours, 0)
    return view.get(field, j), view.get(field, i)


def yield_by_source(positions: dict[str, float], px, view, hours: int = 168) -> dict[str, float]:
    """Annual yield (share class) by source for ``positions`` (key -> asset units; perps: size)."""
    out = {"supply_yield": 0.0, "borrow_cost": 0.0, "staking_yield": 0.0, "funding": 0.0}
    sc = px.share_usd()
    for key, amount in positions.items():
        if not amount or key not in px.info:
            continue
        inf = px.info[key]
        if inf.ptype == "aToken" and inf.index_field:
            rate = view.get(inf.index_field.rsplit(".", 1)[0] + ".liquidity_rate")
            out["supply_yield"] += amount * px.asset_usd(inf.asset) * _num(rate) / sc
        if inf.ptype == "debtToken" and inf.index_field:
            rate = view.get(inf.index_field.rsplit(".", 1)[0] + ".variable_borrow_rate")
            out["borrow_cost"] -= amount * px.asset_usd(inf.asset) * _num(rate) / sc
        spec = px.assets.get(inf.asset)
        if inf.ptype in ("aToken", "BaseToken") and spec is not None and spec.eth_rate_field and spec.delta_asset == "ETH":
            r0, r1 = _trailing(view, spec.eth_rate_field, hours)
            if r0 == r0 and r1 == r1 and r0 > 0:
                apr = (r1 / r0 - 1) * 365 * 24 / hours
                out["staking_yield"] += amount * px.asset_usd(inf.asset) * apr / sc
        if inf.ptype == "Perp" and inf.funding_field:
            col = view.cols.get(inf.funding_field)
            if col:
                recent = [x for x in col[max(view.i - hours, 0): view.i + 1] if x == x]
                if recent:
                    out["funding"] += -amount * px.mark(key) * (sum(recent) / len(recent)) * 3 * 365 / sc
    return out


def analyse(current: dict[str, float], target: dict[str, float], cost: float, px, view, horizon_days: float = 365.0) -> dict:
    """Current and projected yield by source, net impact over the horizon, cost, recommendation."""
    now = yield_by_source(current, px, view)
    then = yield_by_source(target, px, view)
    annual = sum(then.values()) - sum(now.values())
    impact = annual * horizon_days / 365
    rec = recommend(impact, cost)
    return {
        "current_yield": now, "projected_yield": then, "net_yield_impact_annual": annual,
        "horizon_days": horizon_days, "net_yield_impact": impact, "transfer_cost": cost,
        "net_benefit": impact - cost, "recommendation": rec,
        "rationale": {"EXECUTE": "yield gained over the horizon exceeds the cost",
                      "NEUTRAL": "impact is under half the cost either way",
                      "DEFER": "the cost exceeds what the move would gain"}[rec],
    }


def positions_of(book: Book, px) -> dict[str, float]:
    """The book in asset units (Aave scaled balances times their index)."""
    return {k: px.amount(k, q) for k, q in book.bal.items() if q}


def _num(x: float) -> float:
    return 0.0 if x is None or (isinstance(x, float) and math.isnan(x)) else x
