"""Execution costs: the spread + slippage table interpolated in size, the cost multiplier, pool
fee tiers per pair, and the per-route cost breakdown of a run.

* **Spread + slippage** (``data/static.json`` ``execution_costs_bps``, from
  execution_costs/lookup_tables/execution_costs_lookup.json): one figure per pair at three trade
  sizes, 10k, 100k and 1m USD. :func:`interp_bps` reads the figure at a size ``n`` by
  interpolating log-linearly in size between the two neighbouring sizes,

      c(n) = c_lo + (c_hi - c_lo) x ln(n / s_lo) / ln(s_hi / s_lo),   s_lo <= n <= s_hi,

  and holds the end figures outside [10k, 1m] (no extrapolation: the table says nothing there).
  Before issue 13 a trade paid the figure of the next bucket up (a 10,001 USD trade paid the
  100k figure); slippage grows roughly with the log of size for constant-product and
  concentrated pools over this range, hence log-linear rather than linear.
* **Cost multiplier** (``costs: {multiplier: x}`` in a strategy config, ``trimtab run --costs
  low|base|high`` = 0.5 / 1 / 2, :data:`COST_LEVELS`): scales the spread + slippage of every
  trade (DEX swaps, CEX spot, perps). Not the pool fee tiers, exchange fees or gas: those are
  published schedules and a measured gas series, while the table is a constant per pair and size
  over 20 months (the data build checked it constant) -- a model whose real value moves by
  multiples with volatility and pool depth. 0.5x / 2x brackets that uncertainty.
* **Pool fee tiers** per DEX pair (``fee_bps`` on a pair in ``venues/<dex>.yaml``; the venue's
  ``swap.fee_bps`` when a pair names none), which must equal the live block's ``fee_tiers``
  (hundredths of a bip): a venue file where they differ is refused
  (:func:`trimtab.config.domains.fee_tier_mismatches`).
* **Costs by route** (:func:`costs_block`): the run summary's ``costs`` block, from the journal's
  fills.
"""
from __future__ import annotations

import json
import math
import re
from collections import defaultdict

#: ``--costs`` levels -> multiplier on spread + slippage (see the module doc for why).
COST_LEVELS = {"low": 0.5, "base": 1.0, "high": 2.0}

#: Trade sizes (USD) the execution-cost table's buckets were measured at, smallest first.
BUCKET_SIZES = (("10k", 10_000.0), ("100k", 100_000.0), ("1m", 1_000_000.0))


def interp_bps(row: dict[str, float], notional_usd: float) -> float:
    """Spread + slippage (bps) of a trade of ``notional_usd`` (sign ignored) from one row of the
    execution-cost table (``{"10k": bps, "100k": bps, "1m": bps}``): log-linear in size between
    the neighbouring sizes, the end figure outside [10k, 1m]. Raises KeyError on a row missing a
    size."""
    n = abs(notional_usd)
    pts = [(s, float(row[k])) for k, s in BUCKET_SIZES]
    if n <= pts[0][0]:
        return pts[0][1]
    for (s0, c0), (s1, c1) in zip(pts, pts[1:]):
        if n <= s1:
            return c0 + (c1 - c0) * math.log(n / s0) / math.log(s1 / s0)
    return pts[-1][1]


def pair_label(venue: str, pair: str, fee_bps: float) -> str:
    """The route name of a DEX pool: ``uniswap_v3 weETH/ETH 0.01%``."""
    return f"{venue} {pair} {fee_bps / 100:g}%"


def swap_note(sell: str, buy: str, route: str, fee_bps: float, slip_bps: float, notional: float | None = None) -> str:
    """A swap fill's note; :func:`costs_block` reads the route, the split and the notional (share
    class, at the valuation price) back from it."""
    on = f" on {notional:.6f}" if notional is not None else ""
    return f"{sell}->{buy} via {route}: pool fee {fee_bps:.4f} + spread/slippage {slip_bps:.4f} bps{on}"


_SWAP = re.compile(r"^\S+->\S+ via (.+?): pool fee ([0-9.]+) \+ spread/slippage ([0-9.]+) bps(?: on ([0-9.]+))?")
_TRADE = re.compile(r"slippage ([0-9.]+) bps, fee ([0-9.]+) USDT")


def costs_block(rows, multiplier: float = 1.0) -> dict:
    """The run summary's ``costs``: what trading cost, by route, in the share class (positive =
    paid).

    ``rows``: the journal's fills as ``(plan_id, step_id, venue, operation, category, impact,
    price, legs_json, note)`` for categories ``trading_fees`` and ``gas``, in fill order. A route is a DEX
    pool (``uniswap_v3 ETH/USDT 0.05%``, from the swap's note), a perp or spot market
    (``binance ETHUSDT``) or ``venue operation`` (bundles, transfers). A fill's cost (minus its
    impact) is split between ``fee`` and ``slippage`` in proportion to its fee and spread/slippage
    bps; a swap whose note gives its notional pays exactly notional x bps of each, and the rest of
    its impact -- the pool price against the price the wallet values the tokens at -- is
    ``price`` (negative: the pool paid better than the valuation price). Gas goes to the route of
    the step it paid for. Returns ``{"multiplier", "routes": {route: {"fee", "slippage", "price",
    "gas", "fills"}}, "total": {"fee", "slippage", "price", "gas"}}``; the totals equal minus the
    attribution's trading_fees + gas.
    """
    routes: dict[str, dict[str, float]] = defaultdict(lambda: {"fee": 0.0, "slippage": 0.0, "price": 0.0, "gas": 0.0, "fills": 0})
    step_routes: dict[tuple, list[tuple[str, str]]] = defaultdict(list)  # (plan, step) -> [(venue, route)]
    pending_gas: list[tuple[tuple, str, float]] = []
    for plan_id, step_id, venue, op, cat, impact, price, legs, note in rows:
        cost = -(impact or 0.0)
        key = (plan_id, step_id)
        if cat == "gas":
            pending_gas.append((key, f"{venue} {op}", cost))
            continue
        route, fee_share = f"{venue} {op}", 1.0
        m = _SWAP.match(note or "")
        if m and m.group(4) is not None:
            r = routes[m.group(1)]
            n = float(m.group(4))
            fee, slip = n * float(m.group(2)) / 1e4, n * float(m.group(3)) / 1e4
            r["fee"] += fee
            r["slippage"] += slip
            r["price"] += cost - fee - slip
            r["fills"] += 1
            step_routes[key].append((venue, m.group(1)))
            continue
        if m:
            route = m.group(1)
            fee, slip = float(m.group(2)), float(m.group(3))
            fee_share = fee / (fee + slip) if fee + slip > 0 else 1.0
        else:
            t = _TRADE.search(note or "")
            if t and op in ("trade", "spot_trade", "stop_loss", "take_profit"):
                leg = next((x for x in json.loads(legs or "[]") if ":Perp:" in x[0] or ":BaseToken:" in x[0]), None)
                route = f"{venue} {leg[0].split(':')[-1]}" if leg else route
                slip_bps, fee_usdt = float(t.group(1)), float(t.group(2))
                notional = abs(leg[2]) * (price or 0.0) if leg else 0.0  # USDT, as the fee is
                fee_bps = fee_usdt / notional * 1e4 if notional > 0 else 0.0
                fee_share = fee_bps / (fee_bps + slip_bps) if fee_bps + slip_bps > 0 else 1.0
        r = routes[route]
        r["fee"] += cost * fee_share
        r["slippage"] += cost * (1 - fee_share)
        r["fills"] += 1
        if op != "arrival":  # a transfer's credit, not an operation its step's gas paid for
            step_routes[key].append((venue, route))
    for key, own, cost in pending_gas:
        routes[_gas_route(step_routes.get(key, []) if key[0] is not None else [], own)]["gas"] += cost
    out = {r: {k: (round(v, 10) if k != "fills" else v) for k, v in d.items()} for r, d in sorted(routes.items())}
    total = {k: sum(d[k] for d in routes.values()) for k in ("fee", "slippage", "price", "gas")}
    return {"multiplier": multiplier, "routes": out, "total": total}


def _gas_route(fills: list[tuple[str, str]], own: str) -> str:
    """The route a step's gas belongs to: the step's only route (a swap, a deposit), or the one on
    the gas fill's venue; otherwise (a bundle of several operations) the gas fill's own
    ``venue operation``."""
    names = {r for _, r in fills}
    if len(names) == 1:
        return names.pop()
    venue = own.split(" ", 1)[0]
    same = {r for v, r in fills if v == venue}
    return same.pop() if len(same) == 1 else own
