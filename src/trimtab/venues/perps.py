"""CEX perp accounts as the exchanges margin them: margin balance with collateral haircuts,
tiered maintenance margin, liquidation prices, and the liquidations a venue would make.

Each venue is one cross-margin USDT-M account (trimtab's model): its margin balance is every
``Margin`` asset at its price x collateral value ratio (USDT at 1; non-USDT collateral only
where the venue YAML's ``perp.collateral`` lists it) plus the unrealised P&L of its perps; its
maintenance margin is the sum over positions of the tiered formula (:mod:`trimtab.venues.margin`).
The venue liquidates when margin balance < maintenance margin (Binance: "a liquidation is
triggered when Collateral ... < Maintenance Margin", https://www.binance.com/en/support/articles/360033525271),
checked at the close mark and, for each position, against the hour's adverse extreme (bar low
for a long, high for a short) through the position's liquidation price: the venue watches the
mark continuously, so a spike that reverts inside the hour still liquidates. The bar is the
perp's traded high/low (the data has no mark-price bars), a slightly stricter trigger.

The liquidated account closes its positions (at the liquidation price for the one whose price
was crossed, at the mark for the rest) and loses what margin balance remains, up to the
maintenance margin: the position is taken over at the bankruptcy price and the remaining
maintenance margin goes to the insurance fund (same Binance page: "for smaller users ... they
are already bankrupt when first entering liquidation").
"""
from __future__ import annotations

import math
from typing import Any

from ..accounting.book import Book, Fill, Leg
from ..data.feed import DataError
from . import margin

# The SimVenues calling these (venues.sim imports this module, so no import back): its
# venues, px, view, perp_venues, perp_keys and margin_keys.
SimVenues = Any


def upnl(size, mark, entry):
    """Unrealised P&L (USD) of a linear perp: size x (mark - entry); floats or numpy arrays
    (:mod:`trimtab.engine.stretch`), the same doubles element by element."""
    return size * (mark - entry)


def _keys(sim: SimVenues, venue: str) -> list[str]:
    """``venue``'s perp keys in ``sim.perp_keys`` order (precomputed by SimVenues)."""
    keys = sim.perp_keys_of.get(venue)
    return keys if keys is not None else [k for k in sim.perp_keys if k.startswith(venue + ":")]


def margin_balance(sim: SimVenues, book: Book, venue: str, marks: dict[str, float] | None = None) -> tuple[float, float]:
    """(margin balance USD, position notional USD) of ``venue``'s account at the current marks
    (``marks`` overrides some). Non-USDT margin assets count at their collateral value ratio."""
    perp = sim.venues[venue].perp
    px = sim.px
    eq = 0.0
    for key in sim.margin_keys.get(venue, ()):
        q = book.qty(key)
        if q:
            asset = px.info[key].asset
            price = px.asset_usd(asset)
            tiers = perp.collateral.get(asset) if asset != "USDT" else None
            eq += margin.collateral_value(tiers, q, price) if tiers else q * price
    notional = 0.0
    bal, entry = book.bal, book.entry
    for key in _keys(sim, venue):
        s = bal.get(key, 0.0)
        if s:
            m = (marks.get(key) if marks else None) or px.mark(key)
            eq += upnl(s, m, entry.get(key, 0.0))
            notional += abs(s) * m
    return eq, notional


def maintenance_usd(sim: SimVenues, book: Book, venue: str, marks: dict[str, float] | None = None) -> float:
    """Maintenance margin (USD) of ``venue``'s account: sum over its perps of the tiered
    maintenance of each position (:func:`trimtab.venues.margin.maintenance`)."""
    tables = sim.venues[venue].perp.risk_limits
    total = 0.0
    for key in _keys(sim, venue):
        s = book.qty(key)
        if s:
            total += margin.maintenance(tables[key], s, (marks or {}).get(key) or sim.px.mark(key))
    return total


def _static(sim: SimVenues, venue: str) -> tuple[list, list]:
    """What :func:`account_state` reads of ``venue`` that never changes in a run, resolved once
    per SimVenues: ``([(margin key, asset, collateral tiers or None, constant USD price or
    None)], [(perp key, risk-limit table)])`` in ``sim.margin_keys`` / :func:`_keys` order (venue
    YAML and catalog are static; a constant price is what Pricing.asset_usd returns for it)."""
    cache = sim.perps_static
    hit = cache.get(venue)
    if hit is None:
        perp = sim.venues[venue].perp
        collateral = []
        for key in sim.margin_keys.get(venue, ()):
            asset = sim.px.info[key].asset
            spec = sim.px.assets.get(asset)
            collateral.append((key, asset, perp.collateral.get(asset) if asset != "USDT" else None,
                               spec.usd if spec is not None else None))
        # a perp without a table gets None: account_state then raises as before, only once it is held
        hit = cache[venue] = (collateral, [(key, perp.risk_limits.get(key)) for key in _keys(sim, venue)])
    return hit


def account_state(sim: SimVenues, book: Book, venue: str) -> tuple[float, float, float, dict[str, float | None]]:
    """(margin balance USD, notional USD, maintenance margin USD, liquidation prices ``{perp key:
    USD or None}``) of ``venue``'s account at the current marks: :func:`margin_balance`,
    :func:`maintenance_usd` and :func:`liquidation_prices` in one pass over its positions, with
    the same operations in the same order (so the same floats), each mark read once."""
    collateral, positions = _static(sim, venue)
    px = sim.px
    bal, entry = book.bal, book.entry
    eq = 0.0
    for key, asset, tiers, usd in collateral:
        q = bal.get(key, 0.0)
        if q:
            price = usd if usd is not None else px.asset_usd(asset)
            eq += margin.collateral_value(tiers, q, price) if tiers else q * price
    notional = total = 0.0
    held = []   # (key, size, entry, upnl, maintenance, table) per open position
    for key, table in positions:
        s = bal.get(key, 0.0)
        if s:
            m = px.mark(key)
            e = entry.get(key, 0.0)
            u = upnl(s, m, e)
            eq += u
            notional += abs(s) * m
            if table is None:
                table = sim.venues[venue].perp.risk_limits[key]  # KeyError, as before
            mm = margin.maintenance(table, s, m)
            total += mm
            held.append((key, s, e, u, mm, table))
    if not held:
        return eq, notional, total, {}
    if len(held) == 1:
        # One position (the usual hedge leg): the others' sums are empty (int 0) and the
        # wallet's P&L sum is sum([u]) = 0.0 + u, written out.
        key, s, e, u, _, table = held[0]
        return eq, notional, total, {key: margin.liquidation_price(eq - (0.0 + u), 0, 0, s, e, table)}
    tables = sim.venues[venue].perp.risk_limits
    wallet = eq - sum(h[3] for h in held)
    out = {}
    for key, s, e, _, _, _ in held:
        others_mm = sum(h[4] for h in held if h[0] != key)
        others_upnl = sum(h[3] for h in held if h[0] != key)
        out[key] = margin.liquidation_price(wallet, others_mm, others_upnl, s, e, tables[key])
    return eq, notional, total, out


def liquidation_prices(sim: SimVenues, book: Book, venue: str) -> dict[str, float | None]:
    """Liquidation price of each open perp of ``venue`` (cross margin: the other positions at
    their current marks), by Binance's formula (:func:`trimtab.venues.margin.liquidation_price`)."""
    return account_state(sim, book, venue)[3]


def _crossed(sim: SimVenues, book: Book, venue: str, lps: dict[str, float | None] | None = None) -> tuple[str, float] | None:
    """(perp key, liquidation price) of the first position whose liquidation price the hour's
    adverse extreme reached, or None; ``lps``: the account's liquidation prices at the marks
    when the caller has them."""
    get = sim.view.get
    if lps is None:
        lps = sim.perp_liquidation_prices(book, venue)
    for key, lp in lps.items():
        if lp is None or not sim.px.mark_is_fresh(key):
            continue
        long = book.qty(key) > 0
        try:
            extreme = get(sim.extreme_fields[key][0 if long else 1])
        except DataError:
            continue
        if not math.isnan(extreme) and (extreme <= lp if long else extreme >= lp):
            return key, lp
    return None


def liquidations(sim: SimVenues, tick: int, book: Book) -> list[tuple[Fill, float | None]]:
    """Fills of every perp account the venue would liquidate at this tick (see the module)."""
    out: list[tuple[Fill, float | None]] = []
    for venue, (eq, notional, _, mm, lps) in zip(sim.perp_venues, sim.perp_risks(book)):
        # At the marks: the figures the monitors computed this tick for this book state (memoised,
        # SimVenues._risk_memo); only a liquidation recomputes, at the crossing price.
        if notional <= 0:
            continue
        marks: dict[str, float] = {}
        if eq < mm:
            why = f"margin balance {eq:.2f} < maintenance margin {mm:.2f} at the mark"
        else:
            hit = _crossed(sim, book, venue, lps)
            if hit is None:
                continue
            marks[hit[0]] = hit[1]
            eq, _ = margin_balance(sim, book, venue, marks)
            mm = maintenance_usd(sim, book, venue, marks)
            why = f"{hit[0]} reached its liquidation price {hit[1]:.2f} inside the hour"
        for key in _keys(sim, venue):
            s = book.qty(key)
            if s:
                price = marks.get(key) or sim.px.mark(key)
                field = sim.px.info[key].mark_field
                if key in marks:
                    field = field.rsplit(".", 1)[0] + (".low" if s > 0 else ".high")
                out.append((Fill(tick, venue, "liquidation", "liquidation", [Leg(key, -s, -s)], price=price,
                                 price_field=field, note=why), price))
        penalty = max(0.0, min(eq, mm))
        out.append((Fill(tick, venue, "liquidation", "liquidation", [Leg(f"{venue}:Margin:USDT", -penalty, -penalty)],
                         note=f"remaining margin up to the maintenance margin {mm:.2f} goes to the insurance fund"), None))
    return out
