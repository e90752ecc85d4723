"""Exchange margin as the exchanges compute it: tiered maintenance margin, liquidation price,
collateral haircuts. Pure functions over the venue YAML's ``perp.risk_limits`` and
``perp.collateral`` (:class:`~trimtab.config.models.RiskLimitTable`,
:class:`~trimtab.config.models.CollateralTier`); :class:`~trimtab.venues.sim.SimVenues` calls them.

Sources (read 2026-11-23, stored copies; the bracket tables themselves and their sources are in
the venue YAML):

* maintenance margin = position notional x MMR of the bracket - maintenance amount (``cum``),
  the bracket chosen by the position's notional; maintenance amount of bracket n = floor of
  bracket n x (MMR_n - MMR_{n-1}) + maintenance amount of bracket n-1. Binance FAQ "How to
  Calculate Liquidation Price of USDⓈ-M Futures Contracts"
  (https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93) and "Leverage and
  Margin of USDⓈ-M Futures" (https://www.binance.com/en/support/faq/360033162192). Bybit uses
  the same form with a "maintenance margin deduction"
  (https://bybitglobal.com/en/announcement-info/margin-parameters). OKX position tiers carry
  no deduction: the whole position pays its tier's MMR (OKX tier announcements, e.g.
  https://support.okexcn.com/hc/en-us/articles/4402607424781); their YAML sets ``cum: 0``.
* liquidation price, USDⓈ-M one-way mode, the Binance FAQ above:
  LP = (WB - TMM1 + UPNL1 + cum - side x size x EP) / (size x MMR - side x size),
  WB the wallet balance, TMM1/UPNL1 the maintenance margin and unrealised P&L of the account's
  other positions (0 in isolated mode), side +1 long / -1 short; if the notional at LP falls in
  another bracket, that bracket's MMR and cum are substituted and LP recomputed (same FAQ).
* collateral valuation of multi-asset margin: quantity x price x collateral value ratio; a
  tiered ratio applies each tier's ratio to the quantity inside that tier (Bybit "Understanding
  Collateral Value Ratios in Unified Trading Account",
  https://testnet.bytick.com/en/help-center/article/Assets-Collateral-Value-Ratio-List-UTA; Binance
  Multi-Assets Mode: BTC and ETH at a 5% haircut, https://www.binance.com/en/support/faq/29b45c485d664028b9ca1cdf90b24f6f).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def bracket(table, size: float, mark: float):
    """The tier of ``table`` (a RiskLimitTable) that holds a position of ``size`` units at
    ``mark`` (USD per unit): the first whose ``cap`` is at or above the position measured in
    the table's ``basis`` (``notional`` USD or ``quantity`` units). Past the last cap: the last
    tier (the exchange would refuse the order; the sim keeps the strictest rate)."""
    x = abs(size) * mark if table.basis == "notional" else abs(size)
    for t in table.tiers:
        if x <= t.cap:
            return t
    return table.tiers[-1]


def maintenance(table, size: float, mark: float) -> float:
    """Maintenance margin in USD of one position: |size| x mark x MMR - cum of its bracket
    (never below 0). Raises nothing; ``size`` 0 gives 0."""
    if not size:
        return 0.0
    t = bracket(table, size, mark)
    return max(0.0, _maintenance(size, mark, t.mmr, t.cum))


def _maintenance(size, mark, mmr, cum):
    """|size| x mark x MMR - cum, before the floor at 0: the one formula :func:`maintenance`
    (floats) and :func:`maintenance_array` (numpy arrays, the same operations in the same
    order, so the same IEEE doubles element by element) share."""
    return abs(size) * mark * mmr - cum


def maintenance_array(table, size: float, marks):
    """:func:`maintenance` of one position of ``size`` (non-zero) at each mark of ``marks`` (a
    float64 numpy array): the bracket of each notional found by binary search over the caps
    (the first cap at or above it, past the last: the last tier, as :func:`bracket`), then the
    same arithmetic; ``max(0.0, x)`` written as ``where(x > 0, x, 0)``, which keeps max's
    result for a NaN (0.0) too. Returns None when the caps are not ascending (then only the
    linear search of :func:`bracket` is right). Used by :mod:`trimtab.engine.stretch`."""
    caps, mmrs, cums = _table_arrays(table)
    if caps is None:
        return None
    x = abs(size) * marks if table.basis == "notional" else np.full(marks.shape, abs(size))
    idx = np.minimum(np.searchsorted(caps, x, side="left"), caps.size - 1)
    mmr = mmrs[idx]
    cum = cums[idx]
    v = _maintenance(size, marks, mmr, cum)
    return np.where(v > 0.0, v, 0.0)


def _ascending_caps(table) -> np.ndarray | None:
    """The caps of ``table``'s tiers as a float64 array, or None when they are not ascending
    (or there are none): only then does a binary search find :func:`bracket`'s tier."""
    caps = np.array([t.cap for t in table.tiers], dtype=np.float64)
    if caps.size == 0 or (caps.size > 1 and not bool(np.all(caps[1:] >= caps[:-1]))):
        return None
    return caps


_TABLES: dict[int, tuple] = {}  # id(table) -> (table, caps, mmrs, cums): _table_arrays


def _table_arrays(table) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(:func:`_ascending_caps`, each tier's ``mmr``, each tier's ``cum``) of ``table`` as float64
    arrays (read-only: shared), made once per table object: a stretch asks for them per
    position and per span, and the tables are immutable config models (``Strict``)."""
    hit = _TABLES.get(id(table))
    if hit is None or hit[0] is not table:
        if len(_TABLES) > 256:  # tables of configs long gone
            _TABLES.clear()
        arrays = [_ascending_caps(table), np.array([t.mmr for t in table.tiers], dtype=np.float64),
                  np.array([t.cum for t in table.tiers], dtype=np.float64)]
        for a in arrays:
            if a is not None:
                a.flags.writeable = False
        hit = _TABLES[id(table)] = (table, *arrays)
    return hit[1:]


def derived_cum(tiers: Sequence[tuple[float, float]]) -> list[float]:
    """Maintenance amounts implied by ``(cap, mmr)`` tiers in notional (Binance's formula:
    cum_n = cap_{n-1} x (mmr_n - mmr_{n-1}) + cum_{n-1}, cum_1 = 0), which keeps the
    maintenance margin continuous across brackets."""
    out = [0.0]
    for (prev_cap, prev_mmr), (_, mmr) in zip(tiers, tiers[1:]):
        out.append(prev_cap * (mmr - prev_mmr) + out[-1])
    return out


def liquidation_price(wallet: float, other_mm: float, other_upnl: float, size: float, entry: float, table) -> float | None:
    """Binance's USDⓈ-M liquidation price of one position (cross margin; isolated: pass the
    position's isolated wallet balance and ``other_mm = other_upnl = 0``).

    Args:
        wallet: wallet balance (USD) backing the position (margin balance less unrealised P&L).
        other_mm / other_upnl: maintenance margin and unrealised P&L of the account's other positions (USD).
        size: signed position in base units (+ long, - short).
        entry: entry price of the position (USD per unit).
        table: the instrument's RiskLimitTable.

    Returns the mark price at which margin balance = maintenance margin, ``None`` without a
    position or when no positive price liquidates it (a long backed by more than its notional).
    Tries the bracket at each candidate LP until one is self-consistent (the FAQ's
    "substitute the bracket at the liquidation price" rule).
    """
    if not size:
        return None
    side = 1.0 if size > 0 else -1.0
    q = abs(size)
    found = None
    for t in table.tiers:
        denom = q * t.mmr - side * q
        if denom == 0:
            continue
        lp = _candidate(wallet, other_mm, other_upnl, t.cum, side * q * entry, denom)
        if lp <= 0 or not math.isfinite(lp):
            continue
        if bracket(table, size, lp) is t:
            return lp
        found = found if found is not None else lp
    return found


def _candidate(wallet, other_mm, other_upnl, cum, side_notional, denom):
    """The FAQ's LP with one bracket's MMR (in ``denom``) and maintenance amount ``cum``: the one
    formula :func:`liquidation_price` (floats) and :func:`liquidation_price_array` (an array of
    wallets: the same operations, so the same doubles element by element) share."""
    return (wallet - other_mm + other_upnl + cum - side_notional) / denom


def liquidation_price_array(wallet: np.ndarray, size: float, entry: float, table) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`liquidation_price` ``(w, 0, 0, size, entry, table)`` of a position alone in its
    account for each wallet balance ``w`` of ``wallet`` (a float64 array, USD), as ``(prices,
    none)``: the price, 0.0 where liquidation_price gives None (``none`` True there). The
    brackets are tried in the same order with the same arithmetic, each element stopping at
    its first self-consistent one, so each price is the double the scalar returns. None when
    ``size`` is 0 or the caps are not ascending (:func:`maintenance_array`'s condition)."""
    caps = _table_arrays(table)[0]
    if caps is None or not size:
        return None
    side = 1.0 if size > 0 else -1.0
    q = abs(size)
    n = wallet.shape[0]
    price = left = None  # left: no bracket has answered yet (None: every element, no bracket tried)
    tried = []  # (valid, candidate) per bracket tried, for the scalar's fallback
    last = caps.size - 1
    for k, t in enumerate(table.tiers):
        denom = q * t.mmr - side * q
        if denom == 0:
            continue
        lp = _candidate(wallet, 0, 0, t.cum, side * q * entry, denom)
        ok = (lp > 0) & (lp < math.inf)  # not (lp <= 0 or not isfinite(lp)), NaN included
        # bracket(table, size, lp) is t: the measure above the previous cap, at or below this one
        x = q * lp if table.basis == "notional" else np.full(n, q)
        hit = ok if left is None else ok & left
        if k:
            hit = hit & (caps[k - 1] < x)
        if k < last:
            hit = hit & (x <= caps[k])
        if left is None:
            if hit.all():  # the usual case: every element answered by the first bracket tried
                return lp, ~hit
            price, left = np.where(hit, lp, 0.0), ~hit
        else:
            price[hit] = lp[hit]
            left &= ~hit
            if not left.any():
                return price, left
        tried.append((ok, lp))
    if left is None:  # no bracket to try: None everywhere
        return np.zeros(n), np.ones(n, dtype=bool)
    for ok, lp in tried:  # no bracket self-consistent: the first valid candidate
        first = ok & left
        price[first] = lp[first]
        left &= ~ok
    return price, left


def collateral_value(tiers, qty: float, price: float) -> float:
    """USD value of ``qty`` units of a margin asset at ``price`` under tiered collateral value
    ratios (``tiers``: CollateralTier list with ``up_to`` quantity caps, ascending; the last may
    have ``up_to`` None = unbounded). A negative balance (a debt) counts at 100% (Bybit UTA rule)."""
    if qty <= 0:
        return qty * price
    value, lower = 0.0, 0.0
    for t in tiers:
        upper = math.inf if t.up_to is None else t.up_to
        part = min(qty, upper) - lower
        if part > 0:
            value += part * price * t.ratio
        lower = upper
        if qty <= upper:
            break
    return value
