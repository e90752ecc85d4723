"""The emergency protocol (seed 000, "Emergency Protocols"): targets and the reason for each choice.

Problems are handled in the protocol's ``order`` (default: CEX margin, then the Aave health
factor, then cross-venue imbalance: a CEX liquidation loses the whole margin, an Aave one
"only" the liquidation bonus). For a CEX account whose margin ratio is under
``margin_emergency_leave``, the shortfall to ``margin_restore`` is funded from the
``sources`` in order:

* ``wallet``: stablecoins idle in the wallet are deposited;
* ``lending_withdrawal``: LST collateral is withdrawn from Aave as far as the health factor
  stays at or above ``hf_floor``, sold to USDT and deposited;
* ``unstake``: the staked leg is unwound at constant LTV (an unleveraged LST is sold), the
  proceeds sold to USDT and deposited;
* ``reduce_position``: the short on the stressed venue is bought back until the ratio is met,
  and the same delta unwound on-chain.

Whatever leaves the on-chain leg, the same ETH comes off the stressed venue's short, so the
book stays delta neutral. Moving X USD from the on-chain leg to an account with equity q and
short notional n, at conversion cost c, meets ratio m when q + X(1 - c) >= m (n - X), so
X = (m n - q) / (1 - c + m).

For the health factor (``ltv_critical``): below ``hf_reduce`` each leveraged leg is
deleveraged to ``target_ltv`` (the emergency action overrides it with ``emergency_ltv``) at
constant equity, least efficient debt first (:func:`debt_repayment_order`).

For ``imbalance`` both legs go back to the target split (:func:`~.targets.compute_targets`);
any CEX account that split would leave under :func:`margin_floor` (maintenance margin plus
:data:`MARGIN_FLOOR_BUFFER`) is then funded from the same ``sources`` up to that floor.
"""
from __future__ import annotations

from ..accounting.book import Book
from ..config.load import Strategy
from ..config.models import EmergencyProtocolSpec
from ..templates.leveraged_stake import loop_risk
from ..templates.registry import template_for
from ..venues.margin import maintenance
from ..venues.pricing import Pricing
from ..venues.sim import SimVenues
from .targets import Targets, compute_targets
from .transfers import check_transfer, load_routes, route_for, transfer_cost


def px_venue_model(strategy: Strategy, px: Pricing, t) -> str:
    """The venue model (route kind) holding a leveraged leg's collateral (``t.collateral``)."""
    return strategy.venues[px.info[t.collateral].venue].model

MIN_USD = 25.0
# Margin-ratio headroom an emergency target keeps above a venue's maintenance margin rate
# (the exchange's tiered brackets, venue YAML ``perp.risk_limits``: 0.4-0.5% at trimtab's
# sizes). 0.05 is data/static.json ``cex_margin``'s gap between its margin-call threshold
# (0.15) and maintenance (0.10).
MARGIN_FLOOR_BUFFER = 0.05


def margin_floor(strategy: Strategy, px: Pricing, venue: str, positions: dict[str, float]) -> float:
    """Lowest margin ratio (equity / notional) an emergency target may leave on ``venue``: the
    maintenance margin rate of the target ``positions`` (perp key -> signed units) on it --
    tiered maintenance (trimtab.venues.margin.maintenance) / notional -- plus
    :data:`MARGIN_FLOOR_BUFFER`. Without positions there, the strictest first-bracket rate."""
    tables = strategy.venues[venue].perp.risk_limits
    mm = n = 0.0
    for k, size in positions.items():
        if k in tables and size:
            m = px.mark(k)
            mm += maintenance(tables[k], size, m)
            n += abs(size) * m
    rate = mm / n if n > 0 else max(t.tiers[0].mmr for t in tables.values())
    return rate + MARGIN_FLOOR_BUFFER


def debt_repayment_order(debts: dict[str, float], funded_apr: dict[str, float], borrow_apr: dict[str, float]) -> list[str]:
    """Debt keys in repayment order: least efficient first, efficiency = yield the debt funds
    / what it costs (both APR). A debt costing nothing is repaid last; ties keep key order."""
    def efficiency(k: str) -> float:
        cost = borrow_apr.get(k, 0.0)
        return float("inf") if cost <= 0 else funded_apr.get(k, 0.0) / cost
    return sorted((k for k, v in debts.items() if v > 0), key=lambda k: (efficiency(k), k))


def current_targets(strategy: Strategy, px: Pricing, sim: SimVenues, book: Book) -> Targets:
    """Targets equal to the book as it stands (positions in asset units, CEX account equity)."""
    tg = Targets()
    for k, q in book.bal.items():
        if q and px.info[k].ptype in ("aToken", "debtToken", "Perp", "BaseToken") and not k.startswith("wallet:BaseToken:USDT"):
            tg.positions[k] = px.amount(k, q)
    for t in strategy.config.targets:
        template_for(t).current(t, tg, px, sim, book)
    return tg


def emergency_targets(strategy: Strategy, params: dict[str, float], protocol: EmergencyProtocolSpec, px: Pricing,
                      sim: SimVenues, book: Book, equity: float) -> tuple[Targets, list[str]]:
    """Targets after the protocol, and one note per choice (journaled with the plan)."""
    v = lambda e: strategy.target_value(e, params)  # noqa: E731
    tg = current_targets(strategy, px, sim, book)
    notes: list[str] = []
    eth = px.eth_usd()
    m_restore, hf_floor = v(protocol.margin_restore), v(protocol.hf_floor)
    leave = params.get("margin_emergency_leave", m_restore)
    wallet_usdt = max(book.qty("wallet:BaseToken:USDT"), 0.0)
    # The protocol's sources by what each template lets it take (trimtab.templates.base).
    levs = [t for t in strategy.config.targets if template_for(t).emergency_source(t) == "lending"]
    stakes = [t for t in strategy.config.targets if template_for(t).emergency_source(t) == "lst"]
    hedges = [t for t in strategy.config.targets if template_for(t).hedge_legs(t)]
    acted = False
    routes = load_routes(strategy.root)

    def conv_cost(asset: str, usd: float) -> float:
        """Fraction lost turning ``usd`` of ``asset`` into USDT on the DEX."""
        swap = next((t.swap_venue for t in levs + stakes), None)
        if swap is None:
            return 0.0
        bps = 0.0
        if asset not in ("ETH", "WETH"):
            bps += sim.swap_cost_bps(swap, asset, "ETH", usd)  # the pair's pool tier + slippage
        bps += sim.swap_cost_bps(swap, "ETH", "USDT", usd)
        return bps / 1e4

    def account(venue: str) -> tuple[float, float]:
        q = tg.margin.get(venue, 0.0)
        n = sum(abs(tg.positions.get(leg.instrument, 0.0)) * px.mark(leg.instrument) for t in hedges for leg in t.legs
                if px.info[leg.instrument].venue == venue)
        return q, n

    def shrink_short(venue: str, eth_units: float) -> None:
        for t in hedges:
            for leg in t.legs:
                k = leg.instrument
                if px.info[k].venue == venue and tg.positions.get(k, 0.0) < 0 and k not in tg.frozen:
                    cut = min(eth_units, -tg.positions[k])
                    tg.positions[k] += cut
                    eth_units -= cut
        if eth_units > 1e-12:  # the stressed venue's short is gone: take the rest elsewhere
            for t in hedges:
                for leg in t.legs:
                    k = leg.instrument
                    if tg.positions.get(k, 0.0) < 0 and k not in tg.frozen and eth_units > 0:
                        cut = min(eth_units, -tg.positions[k])
                        tg.positions[k] += cut
                        eth_units -= cut

    def fund(venue: str, m_to: float) -> None:
        """Raise ``venue``'s margin ratio to ``m_to`` from the protocol's ``sources``, in order."""
        nonlocal wallet_usdt
        for src in protocol.sources:
            q, n = account(venue)
            need = m_to * n - q
            if need <= MIN_USD:
                break
            if src == "wallet":
                take = min(need, wallet_usdt)
                if take > MIN_USD:
                    tg.margin[venue] += take
                    wallet_usdt -= take
                    notes.append(f"  wallet: deposit {take:,.2f} USDT idle in the wallet to {venue}")
                else:
                    notes.append("  wallet: no idle USDT")
            elif src in ("lending_withdrawal", "unstake"):
                for t in levs + (stakes if src == "unstake" else []):
                    q, n = account(venue)
                    if m_to * n - q <= MIN_USD:
                        break
                    asset = t.lst
                    rate = px.eth_rate(asset)
                    c = conv_cost(asset, m_to * n - q)
                    x = (m_to * n - q) / (1 - c + m_to)
                    if template_for(t).emergency_source(t) == "lst":
                        key = f"wallet:BaseToken:{asset}"
                        room = tg.positions.get(key, 0.0) * rate * eth
                        x = min(x, room)
                        tg.positions[key] = tg.positions.get(key, 0.0) - x / (rate * eth)
                        how = f"sell {x / (rate * eth):.4f} {asset}"
                    else:
                        coll_usd = tg.positions[t.collateral] * rate * eth
                        debt_usd = tg.positions[t.debt] * eth
                        lt = _lt(strategy, px, t)
                        if src == "lending_withdrawal":
                            room = max(coll_usd - hf_floor * debt_usd / lt, 0.0) if debt_usd > 0 else coll_usd
                            x = min(x, room)
                            tg.positions[t.collateral] -= x / (rate * eth)
                            how = (f"withdraw {x / (rate * eth):.4f} {asset} collateral (health factor stays >= {hf_floor})"
                                   if x > MIN_USD else f"no collateral can leave with health factor >= {hf_floor}")
                        else:
                            ltv = debt_usd / coll_usd if coll_usd > 0 else 0.0
                            x = min(x, 0.95 * (coll_usd - debt_usd))
                            tg.positions[t.collateral] -= x / (1 - ltv) / (rate * eth)
                            tg.positions[t.debt] -= x * ltv / (1 - ltv) / eth
                            how = f"unwind {x / (1 - ltv) / (rate * eth):.4f} {asset} at LTV {ltv:.4f} (flash-loan bundle)"
                    if x > MIN_USD:
                        # Price the route and hold it to the transfer limits (seed 000 safety checks).
                        kind_from = "lst" if template_for(t).emergency_source(t) == "lst" else px_venue_model(strategy, px, t)
                        route = route_for(routes, kind_from, "cex_perp")
                        cost = transfer_cost(route, x, sim, source_yield_apr=0.0, cex=venue)
                        problems = check_transfer(cost, params)
                        hi = params.get("max_transfer_usd", float("inf"))
                        if x > hi:
                            x = hi
                            notes.append(f"  {src}: capped at max_transfer_usd {hi:,.0f}")
                        elif problems:
                            notes.append(f"  {src}: skipped: {'; '.join(problems)}")
                            continue
                        shrink_short(venue, x / eth)
                        tg.margin[venue] += x * (1 - c)
                        notes.append(f"  {src}: {how}; {x:,.2f} USD to {venue} as {route.asset} via "
                                     f"{' -> '.join(route.via)} (cost {cost.total_usd:,.2f} USD = {cost.cost_bps:.0f} bps, "
                                     f"{cost.latency_s / 60:.0f} min in transit); short cut by {x / eth:.4f} ETH to stay delta neutral")
                    else:
                        notes.append(f"  {src}: {how if src == 'lending_withdrawal' else 'nothing left to unwind'}")
            elif src == "reduce_position":
                q, n = account(venue)
                cut_usd = n - q / m_to
                if cut_usd > MIN_USD:
                    shrink_short(venue, cut_usd / eth)
                    for t in levs:
                        rate = px.eth_rate(t.lst)
                        coll_usd = tg.positions[t.collateral] * rate * eth
                        debt_usd = tg.positions[t.debt] * eth
                        ltv = debt_usd / coll_usd if coll_usd > 0 else 0.0
                        tg.positions[t.collateral] -= cut_usd / (1 - ltv) / (rate * eth)
                        tg.positions[t.debt] -= cut_usd * ltv / (1 - ltv) / eth
                        break
                    notes.append(f"  reduce_position: buy back {cut_usd / eth:.4f} ETH of short on {venue} and unwind "
                                 f"the same delta on-chain (last resort)")
        q, n = account(venue)
        if n > 0 and q / n < m_to * (1 - 1e-6):
            notes.append(f"  {venue}: sources exhausted at margin ratio {q / n:.4f}")

    for kind in protocol.order:
        if kind == "margin_critical":
            venues = sorted({px.info[leg.instrument].venue for t in hedges for leg in t.legs})
            stressed = []
            for venue in venues:
                q, n = account(venue)
                if n > 0 and q / n < leave:
                    stressed.append((q / n, venue))
            for ratio, venue in sorted(stressed):
                q, n = account(venue)
                need = m_restore * n - q
                notes.append(f"margin_critical: {venue} margin ratio {ratio:.4f} < {leave} (emergency leave); "
                             f"restoring {m_restore} needs {need:,.2f} USDT")
                acted = True
                fund(venue, m_restore)
        elif kind == "ltv_critical":
            hf_reduce = params.get("hf_reduce", hf_floor)
            order = _leveraged_by_efficiency(levs, px)
            for t in order:
                rate = px.eth_rate(t.lst)
                coll_usd = tg.positions[t.collateral] * rate * eth
                debt_usd = tg.positions[t.debt] * eth
                if debt_usd <= 0:
                    continue
                hf = coll_usd * _lt(strategy, px, t) / debt_usd
                if hf >= hf_reduce:
                    continue
                ltv_e = v(t.target_ltv)
                e = coll_usd - debt_usd
                new_c, new_d = e / (1 - ltv_e), e * ltv_e / (1 - ltv_e)
                if new_c < coll_usd:
                    tg.positions[t.collateral] = new_c / (rate * eth)
                    tg.positions[t.debt] = new_d / eth
                    notes.append(f"ltv_critical: {t.id} health factor {hf:.4f} < {hf_reduce}; deleverage to LTV {ltv_e} "
                                 f"(health factor {_lt(strategy, px, t) / ltv_e:.4f}) by a flash-loan unwind at constant equity")
                    acted = True
        elif kind == "imbalance" and not acted:
            imb = [t for t in hedges]
            if imb and abs(_imbalance(strategy, params, px, sim, book, equity, hedges)) > params.get("max_venue_imbalance", 1.0):
                tg = compute_targets(strategy, params, px, sim, book, equity)
                notes.append("imbalance: CEX share of equity is off target; rebalance both legs to the target split")
                acted = True
                # Why: the target split margins the hedge at allocation / hedged notional
                # ((1 - s) / s for stake s: 0.185 at s = 0.84375), and a leg on a stale venue
                # keeps its equity (nothing can be withdrawn from it) though that equity is
                # charged to the margin budget, so the live legs can end up thin (binance 0.0998
                # with a stale OKX holding 0.45). Hold every account at
                # maintenance + buffer, funded from the protocol's sources in order (delta kept).
                wallet_usdt = 0.0  # the rebalance already deploys idle wallet USDT
                for venue in sorted({px.info[leg.instrument].venue for t in hedges for leg in t.legs}):
                    q, n = account(venue)
                    floor = margin_floor(strategy, px, venue, tg.positions)
                    if n > 0 and q / n < floor:
                        notes.append(f"  {venue}: the target split leaves margin ratio {q / n:.4f} < {floor:.4f} "
                                     f"(maintenance + {MARGIN_FLOOR_BUFFER}); topping up")
                        fund(venue, floor)
    if not acted:
        notes.append("no problem the protocol handles is present; holding positions")
    return tg, notes


def _lt(strategy: Strategy, px: Pricing, t) -> float:
    """Liquidation threshold of the loop's collateral, per asset for its eMode category."""
    return loop_risk(t, strategy.venues, strategy.instruments)[1].liquidation_threshold


def _leveraged_by_efficiency(levs: list, px: Pricing) -> list:
    """Leveraged legs, least efficient debt first (staking yield of the collateral / borrow rate)."""
    view = px.view
    funded, cost = {}, {}
    for t in levs:
        spec = px.assets[t.lst]
        r0, r1 = view.get(spec.eth_rate_field, max(view.i - 168, 0)), view.get(spec.eth_rate_field)
        funded[t.id] = (r1 / r0 - 1) * 365 * 24 / 168 if r0 == r0 and r0 > 0 else 0.0
        base = px.info[t.debt].index_field.rsplit(".", 1)[0] if px.info[t.debt].index_field else None
        cost[t.id] = view.get(f"{base}.variable_borrow_rate") if base else 0.0
    order = debt_repayment_order({t.id: 1.0 for t in levs}, funded, cost)
    return [next(t for t in levs if t.id == k) for k in order]


def _imbalance(strategy, params, px, sim, book, equity, hedges) -> float:
    out = 0.0
    for t in hedges:
        venues = {px.info[leg.instrument].venue for leg in t.legs}
        cex = sum(sim.perp_account(book, v)[0] for v in venues) / px.share_usd()
        out = cex / equity - strategy.target_value(t.allocation, params) if equity > 0 else 0.0
    return out
