"""Quiet stretches: what a book that does not change is worth, tick after tick, as numpy arrays.

Issue 14: "vectorise what positions make constant between events". Between two fills the
positions are constant, so most of the per-tick valuation the kernel asks for is a function of
the market data alone. This module computes it for the ticks ahead as float64 arrays, once per
set of positions: each position's value, delta, unrealised P&L, notional and maintenance margin,
the on-chain delta, the Aave health factor and LTV (:meth:`Stretches.monitor_row`, read by
:meth:`trimtab.engine.monitors.Monitors.run`), and attribution's market move
(:meth:`Stretches.attr_row`, read by :meth:`trimtab.accounting.attribution.Attribution.market_move`).
Per tick only a few dozen float operations remain: the equity sum, each perp account's margin
balance (the margin balances change at every funding settlement), margin ratios, liquidation
prices and whether a venue could liquidate, which lets the kernel skip the venues' liquidation
check. The machine, the planner, fills and the journal still run tick by tick, so a guard that
fires, a fill or a flow ends a stretch simply by changing the book (``Book.version``) and the
next tick values the book as it then is. While a plan moves the book every tick the monitors
compute per tick; a live run, which sees one hour at a time, does not use stretches. A backtest
also reads whole spans of ticks at once (:meth:`Stretches.monitor_block`, :meth:`Stretches.attr_block`),
for :mod:`trimtab.engine.quiet`, which processes the ticks at which only the market moves in bulk.

Exactness: every array is built with the same element-wise ``+ - * /`` in the same order as the
per-tick code (:class:`trimtab.venues.pricing.Pricing`, :func:`trimtab.venues.aave.health`,
:func:`trimtab.venues.perps.account_state`, ``Monitors.run``, ``Attribution.market_move``), which
IEEE 754 makes the same doubles element by element; ``min``/``max`` are written as
``where(b < a, b, a)`` / ``where(b > a, b, a)`` (Python's choice, NaN included); no reduction
(``np.sum`` is pairwise) and no transcendental function is used. Liquidation prices come from
the scalar :func:`trimtab.venues.margin.liquidation_price` itself, once per distinct input, and
maintenance margins from :func:`trimtab.venues.margin.maintenance_array`, which shares its
formula with the scalar one. ``tests/unit/test_stretch.py`` runs real backtests of six shipped
strategies with and without stretches and requires identical journals, table by table, float by
float, and identical summaries; ``bench/journal_digest.py`` compares a whole run with a saved one.

A stretch never covers a tick the per-tick code would treat differently: it ends before the
first tick where a series it reads has no value (the per-tick code raises there); a stale or
quarantined perp mark is the reference price, as in :meth:`Pricing.mark`, and the hour is
counted in ``Pricing.stale_marks`` when the tick is read, as there. Decisions stay causal: the
arrays hold tick ``t``'s figures from tick ``t``'s data (tick ``t - 1``'s for attribution's old
prices), and only tick ``t`` reads them.
"""
from __future__ import annotations

import math
from bisect import bisect_left

import numpy as np

from ..accounting.attribution import factor_part, perp_move
from ..accounting.book import Book
from ..venues import aave, margin, perps
from ..venues.pricing import Pricing, holding_value, perp_value
from ..venues.sim import SimVenues

#: The most ticks one stretch covers: a stretch cut short by a plan wastes what it computed past
#: it, and a longer one spreads a quiet span's fixed cost over more ticks (the flagship's
#: run_backtest, main thread CPU: 256 against 128, 192 and 384, once the stretches held arrays
#: rather than lists built per tick).
MAX_TICKS = 256
#: How far ahead one position's arrays are computed and kept (:meth:`Stretches.memo`): the next
#: stretch, after a plan that left the position alone or after MAX_TICKS, slices them (the
#: flagship's array computations, CPU: 1024 against 512 and 2048).
HORIZON = 1024
_ONCHAIN, _PERP = 1, 2  # Monitors' delta kinds (trimtab.engine.monitors._ONCHAIN / _PERP)


class _Ineligible(Exception):
    """The book holds something this module does not value as arrays: the per-tick path runs."""


class _Inputs:
    """What one stretch over ticks ``[lo, hi)`` reads: market arrays over that span (slices of
    the view's columns, or of arrays kept per position across stretches, :meth:`Stretches.memo`),
    and the fields whose first NaN (or stale hour of a mark) ends the stretch."""

    def __init__(self, st: "Stretches", lo: int, hi: int):
        self.st, self.lo, self.hi = st, lo, hi
        self.bad: list[list[int]] = []  # per field read: its bad ticks, ascending, then the view's n

    def need(self, field: str | None) -> None:
        """The stretch reads ``view.require(field, t)``: it ends before the field's first NaN."""
        nb = self.st.next_nan(field) if field else None
        if nb is None:
            raise _Ineligible(field)
        self.bad.append(nb)

    def need_asset(self, asset: str) -> None:
        """The fields :meth:`Pricing.asset_usd` reads for ``asset``."""
        spec = self.st.px.assets[asset]
        if spec.usd is not None:
            return
        if spec.usd_field:
            self.need(spec.usd_field)
        else:
            self.need(spec.eth_rate_field)
            self.need(self.st.px.eth_field)

    def need_share(self) -> None:
        if self.st.px.share_class != "USDT":
            self.need_asset(self.st.px.share_class)

    def need_mark(self, key: str) -> None:
        """The stretch reads perp ``key``'s mark (:meth:`Stretches.mark`): its own feed's, or the
        asset's reference price while that is stale or quarantined, which must then have a value."""
        inf = self.st.px.info[key]
        if not inf.mark_field or self.st.column(inf.mark_field) is None:
            raise _Ineligible(key)
        self.need_asset(inf.asset)

    def valid(self) -> int:
        """How many ticks from ``lo`` on pass every check (pure Python: one search per field)."""
        lo, n = self.lo, self.hi - self.lo
        for nb in self.bad:
            n = min(n, nb[bisect_left(nb, lo)] - lo)
        return n


def _where_less(a, b):
    """``min(a, b)`` element by element as Python computes it (a unless b < a)."""
    return np.where(b < a, b, a)


def _where_greater(a, b):
    """``max(a, b)`` element by element as Python computes it (a unless b > a)."""
    return np.where(b > a, b, a)


def _ratio(num, den, zero):
    """``num / den if den > 0 else zero`` element by element (den may be a float). Callers
    run it inside ``np.errstate(all="ignore")`` (an inf or NaN operand warns nothing)."""
    positive = np.asarray(den) > 0
    if den.__class__ is np.ndarray and positive.all():  # the usual case: the same quotients, two where fewer
        return num / den
    return np.where(positive, num / np.where(positive, den, 1.0), zero)


def _ticks(x, n: int) -> np.ndarray:
    """``x`` (an array of at least n, or one float or bool for every tick) as an array of n.
    Read per tick with ``.item(j)``: the Python float (or bool) ``tolist`` would give."""
    if isinstance(x, np.ndarray) and x.ndim == 1:
        return x[:n]
    return np.full(n, x)


class MonitorStretch:
    """The monitors' arrays of one set of positions over ticks ``[a, b)`` (element ``t - a``
    for tick t), built by :meth:`Stretches._build_monitor`.

    ``sig`` is the positions it was built for (:meth:`Stretches._signature`): every held key
    with its quantity and entry price, except the perp venues' margin balances whose value is
    constant (a funding settlement changes those and nothing else), which :meth:`Stretches._bind`
    reads from the book. ``terms``: per held position in the book's order, its value array, or
    None for a position whose value never moves (read from ``Monitors._pos``); ``onchain``,
    ``hf``, ``ltv``, ``aave_free`` (bool: no Aave account can be liquidated); ``perp_delta`` (a
    float); ``venues``: per perp venue, ``([(key, size, entry, upnl, maintenance, table, bar
    extreme (NaN where the mark is stale: perps._crossed skips it) or None)], notional,
    maintenance)``; ``stale``: ``(perp key, [stale at t])`` per held perp whose mark is stale
    somewhere in the stretch, in the book's order. Arrays, not lists: a quiet span slices them,
    and :meth:`Stretches.monitor_row` reads the one element of its tick."""

    __slots__ = ("sig", "a", "b", "terms", "onchain", "perp_delta", "hf", "ltv", "aave_free", "venues",
                 "version", "stale", "prefix", "terms_b", "venues_b")

    def __init__(self, sig: tuple, a: int, b: int, terms, onchain, perp_delta, hf, ltv, aave_free, venues, stale):
        self.sig, self.a, self.b, self.stale = sig, a, b, stale
        self.terms, self.onchain, self.perp_delta = terms, onchain, perp_delta
        self.hf, self.ltv, self.aave_free, self.venues = hf, ltv, aave_free, venues
        self.version = -1  # the book version the bound fields were made for (Stretches._bind):
        self.prefix = 0.0  # the equity of the leading positions whose value never moves
        self.terms_b: list = []  # the other equity terms: a float or an array per position
        self.venues_b: list = []  # per perp venue: (held, notional, maintenance, collateral float or array)


class AttrStretch:
    """Attribution's market move of one set of moving positions for ticks ``[a, b)`` (each from
    tick t - 1 to t): ``cats`` names the parts in the per-tick code's order, ``parts[t - a]`` are
    tick t's amounts (a float64 array of shape (b - a, len(cats)), zero where the per-tick code
    adds nothing); ``stale``: ``(perp key, [stale at tick t - 1 for t in a..b, then at b - 1])``
    per perp whose mark is stale somewhere in it (Pricing.perp_parts reads the marks at t - 1
    and t and counts a stale one)."""

    __slots__ = ("moving", "a", "b", "cats", "parts", "stale")

    def __init__(self, moving: list, a: int, b: int, cats: tuple[str, ...], parts: np.ndarray, stale: list):
        self.moving, self.a, self.b, self.cats, self.parts, self.stale = moving, a, b, cats, parts, stale


class Stretches:
    """Builds and keeps the current :class:`MonitorStretch` and :class:`AttrStretch` of one engine.

    Args:
        px, sim, book: the engine's pricing, simulated venues and book.

    A funding settlement changes only margin balances, so a monitor stretch outlives it: its
    arrays hold no margin balance whose value is constant (a USDT balance in a USDT share
    class), and :meth:`_bind` reads those from the book after every change of the book. Each
    position's arrays (value, delta, unrealised P&L, notional, maintenance margin, attribution
    parts) are also kept over :data:`HORIZON` ticks per (key, quantity, entry) in :meth:`memo`,
    so a stretch rebuilt after a plan slices the positions the plan did not touch.

    ``counts``: ``{"vector": ticks whose monitors read a stretch, "per_tick": ticks computed one
    by one}``, for the bench (``bench/backtest.py``); ``builds``: how many monitor and attribution
    stretches were built.
    """

    def __init__(self, px: Pricing, sim: SimVenues, book: Book):
        self.px, self.sim, self.book, self.view = px, sim, book, px.view
        self._cols: dict[str, np.ndarray] = {}
        self._nan: dict[str, list[int]] = {}
        self._flags: dict[str, np.ndarray] = {}
        self._memo: dict[tuple, tuple[int, object]] = {}
        self._n = -1
        self.mon: MonitorStretch | None = None
        self.attr: AttrStretch | None = None
        self._mon_skip = (-1, -1)  # (book version, tick): no monitor stretch for that version before that tick
        self._last_moving: list | None = None
        self._attr_skip = -1  # no attribution stretch before this tick (the last build found nothing)
        self._lp_memo: dict[tuple, float | None] = {}  # _lp
        self._cats: dict[str, tuple[str, ...]] = {}  # _part_cats
        self._collateral: list | None = None  # _bound
        self.counts = {"vector": 0, "per_tick": 0}
        self.builds = {"monitor": 0, "attribution": 0}  # stretches built (bench/quiet_stretches.py)

    # ------------------------------------------------------------------ market arrays
    def _fresh_view(self) -> None:
        if self.view.n != self._n:  # a live run grew the view: every array is rebuilt on demand
            self._cols.clear()
            self._nan.clear()
            self._flags.clear()
            self._memo.clear()
            self._n = self.view.n

    def column(self, field: str) -> np.ndarray | None:
        """The view's column ``field`` as a float64 array (None when the view does not hold it)."""
        self._fresh_view()
        col = self._cols.get(field)
        if col is None:
            col = self.view.column_array(field)  # (the data's own array while nothing was appended)
            if col is None:
                return None
            self._cols[field] = col
        return col

    @staticmethod
    def first_at_or_after(bad: np.ndarray) -> list[int]:
        """For each tick, the first tick at or after it where ``bad`` holds (len(bad) if none)."""
        n = bad.shape[0]
        idx = np.where(bad, np.arange(n), n)
        return np.minimum.accumulate(idx[::-1])[::-1].tolist() + [n]

    def next_nan(self, field: str) -> list[int] | None:
        """The ticks where ``field`` is NaN, ascending, then the view's length (None: not in the
        view): the first tick at or after ``t`` where it is NaN is the first element >= ``t``
        (a few NaN ticks, not a list over every tick as :meth:`first_at_or_after`'s)."""
        got = self._nan.get(field)
        if got is None:
            col = self.column(field)
            if col is None:
                return None
            got = self._nan[field] = np.flatnonzero(np.isnan(col)).tolist() + [col.shape[0]]
        return got

    def memo(self, key: tuple, a: int, b: int, compute):
        """``compute(lo, hi)`` (an array over ticks ``[lo, hi)``, or one float for all) sliced to
        ``[a, b)``, kept per ``key`` over :data:`HORIZON` ticks from the first ``a`` asked."""
        self._fresh_view()
        hit = self._memo.get(key)
        if hit is not None:
            a0, arr = hit
            if not isinstance(arr, np.ndarray):
                return arr
            if a0 <= a and b <= a0 + arr.shape[-1]:
                return arr[..., a - a0:b - a0]
        if len(self._memo) > 128:  # mostly positions long gone (a few MB each 100): start again
            self._memo.clear()
        hi = max(b, min(self.view.n, a + HORIZON))
        with np.errstate(all="ignore"):  # a NaN past the stretch's end is never read
            arr = compute(a, hi)
        self._memo[key] = (a, arr)
        return arr[..., :b - a] if isinstance(arr, np.ndarray) else arr

    def asset_usd(self, asset: str, lo: int, hi: int):
        """:meth:`Pricing.asset_usd` over ``[lo, hi)`` (a float for a constant price)."""
        spec = self.px.assets[asset]
        if spec.usd is not None:
            return spec.usd
        if spec.usd_field:
            return self.column(spec.usd_field)[lo:hi]
        return self.column(spec.eth_rate_field)[lo:hi] * self.column(self.px.eth_field)[lo:hi]

    def share_usd(self, lo: int, hi: int):
        """:meth:`Pricing.share_usd` over ``[lo, hi)``."""
        return 1.0 if self.px.share_class == "USDT" else self.asset_usd(self.px.share_class, lo, hi)

    # ------------------------------------------------------------------ per-position arrays
    def _value_delta(self, k: str, q: float, lo: int, hi: int):
        """(:meth:`Pricing.value`, :meth:`Pricing.delta` units) of non-perp ``k`` over ``[lo, hi)``,
        by :meth:`Pricing.value_and_delta`'s operations."""
        px = self.px
        inf = px.info[k]
        sign = -1.0 if inf.ptype == "debtToken" else 1.0
        amount = q * self.column(inf.index_field)[lo:hi] if inf.index_field else q
        value = holding_value(sign, amount, self.asset_usd(inf.asset, lo, hi), self.share_usd(lo, hi))
        const = px._delta_const.get(k)
        if const is not None:
            units = q
            if const[2] is not None:
                units *= const[2]
            return value, const[0] * units
        spec = px.assets[inf.asset]
        if spec.delta_asset == "ETH":
            amount = amount * (self.column(spec.eth_rate_field)[lo:hi] if spec.eth_rate_field else 1.0)
        return value, sign * amount

    def _need_value(self, inp: _Inputs, k: str) -> None:
        inf = self.px.info[k]
        if inf.index_field:
            inp.need(inf.index_field)
        inp.need_asset(inf.asset)
        inp.need_share()
        spec = self.px.assets[inf.asset]
        if spec.delta_asset == "ETH" and spec.eth_rate_field:
            inp.need(spec.eth_rate_field)

    def mark(self, key: str, lo: int, hi: int) -> np.ndarray:
        """:meth:`Pricing.mark` over ``[lo, hi)``: the venue's own mark where it is fresh, the
        asset's reference price where it is stale or quarantined (the hours :meth:`stale` lists,
        which the reader counts in ``Pricing.stale_marks`` as ``Pricing.mark`` does)."""
        inf = self.px.info[key]
        fresh = self.fresh(key)[lo:hi]
        own = self.column(inf.mark_field)[lo:hi]
        if bool(fresh.all()):
            return own
        return np.where(fresh, own, self.asset_usd(inf.asset, lo, hi))

    def fresh(self, key: str) -> np.ndarray:
        """``Pricing.mark_is_fresh(key, t)`` for every tick, as a bool array."""
        self._fresh_view()
        inf = self.px.info[key]
        got = self._flags.get(key)
        if got is None:
            got = self._flags[key] = np.asarray(self.view.fresh_flags(inf.mark_field, inf.stale_after_h), dtype=bool)
        return got

    def tradable(self, key: str) -> np.ndarray:
        """``Pricing.tradable(key, t)`` for every tick, as a bool array (from Pricing itself,
        once per key: the flags are a function of the data alone)."""
        self._fresh_view()
        got = self._flags.get(("tradable", key))
        if got is None:
            got = self._flags[("tradable", key)] = np.array(self.px.tradable_all(key), dtype=bool)
        return got

    def _extreme(self, key: str, long: bool, a: int, b: int) -> np.ndarray | None:
        """The hour's adverse extreme of perp ``key`` over ``[a, b)`` (its low for a long, its high
        for a short), NaN where the mark is stale (perps._crossed skips those hours); None when
        the view has no such series. Kept per position side (:meth:`memo`)."""

        def compute(lo, hi):
            col = self.column(self.sim.extreme_fields[key][0 if long else 1])
            return None if col is None else np.where(self.fresh(key)[lo:hi], col[lo:hi], np.nan)

        return self.memo(("extreme", key, long), a, b, compute)

    def _perp(self, key: str, s: float, e: float, table, a: int, b: int):
        """(mark, unrealised P&L, notional, maintenance margin) arrays of a perp position over
        ``[a, b)``, by :func:`perps.account_state`'s operations. Raises _Ineligible for a risk
        table whose caps are not ascending (:func:`margin.maintenance_array`)."""

        def compute(lo, hi):
            m = self.mark(key, lo, hi)
            mm = margin.maintenance_array(table, s, m)
            if mm is None:
                return 0.0  # marks the position ineligible (a float, not four arrays)
            return np.stack([m, perps.upnl(s, m, e), abs(s) * m, mm])

        got = self.memo(("perp", key, s, e), a, b, compute)
        if not isinstance(got, np.ndarray):
            raise _Ineligible(key)
        return got[0], got[1], got[2], got[3]

    # ------------------------------------------------------------------ monitors
    def _signature(self, mon) -> tuple:
        """The positions a :class:`MonitorStretch` depends on: ``Monitors._pos`` less the perp
        venues' margin balances whose value never moves (a USDT balance in a USDT share class:
        ``_bind`` reads those from the book); a margin balance whose value moves (another share
        class, a BTC collateral) is in its arrays, so its quantity is part of the signature."""
        return self._signature_of(mon._pos)

    def _signature_of(self, pos: list) -> tuple:
        """:meth:`_signature` of the positions ``pos`` (``Monitors.positions_of``)."""
        margins = self._margin_keys
        if margins is None:
            margins = self._margin_keys = frozenset(k for keys in self.sim.margin_keys.values() for k in keys)
        return tuple((k, None if k in margins and v is not None else q, e) for k, q, e, v, _, _ in pos)

    _margin_keys: frozenset | None = None

    def _same_signature(self, before: list, after: list) -> bool:
        """Whether the positions ``after`` have the :meth:`_signature_of` of ``before`` (computed
        before, so the margin keys are known), told from their entries alone: each the same
        object, or the same margin balance of constant value at another quantity (what a
        funding settlement changes, :meth:`Monitors.positions_after`). False when unsure."""
        if len(before) != len(after):
            return False
        margins = self._margin_keys
        for x, y in zip(before, after):
            if x is not y and not (x[0] == y[0] and x[0] in margins and x[3] is not None and y[3] is not None
                                   and (x[2] is y[2] or x[2] == y[2])):
                return False
        return True

    def monitor_row(self, mon, tick: int) -> tuple | None:
        """Tick ``tick``'s core figures for the book as it stands, or None when no stretch
        applies (the caller then computes them per tick): ``(equity, on-chain delta, perp delta,
        health factor, LTV, margin_ratio_min, [(margin balance, margin ratio, {perp key:
        liquidation price or None}) per perp venue in ``sim.perp_venues`` order],
        liquidation-free)``, the last True when no venue could liquidate at ``tick`` (every Aave
        account at health factor >= 1 or without debt; every perp account with margin balance
        >= maintenance margin and no liquidation price inside the hour's bar).

        The arrays come from the :class:`MonitorStretch`; the margin balances from the book
        (:meth:`_bind`); they are combined here in plain floats with the per-tick code's own
        operations in its order (``Monitors.run``, :func:`trimtab.venues.perps.account_state`,
        :func:`trimtab.venues.perps.liquidations`): a few dozen float operations, cheaper per
        tick than numpy's call overhead over the few ticks between two funding settlements."""
        s = self._current(mon, tick)
        if s is None:
            return None
        j = tick - s.a
        for key, stale in s.stale:
            if stale[j]:
                self.count_stale(key, tick)
        equity = s.prefix
        for x in s.terms_b:
            equity += x.item(j) if x.__class__ is np.ndarray else x
        free = s.aave_free.item(j)
        mr_min = math.inf
        accounts = []
        memo = self._lp_memo
        for held, notional_a, total_a, coll in s.venues_b:
            eq = coll.item(j) if coll.__class__ is np.ndarray else coll
            if not held:
                accounts.append((eq, math.inf, _EMPTY))  # no position: notional 0, ratio inf
                continue
            for h in held:
                eq += h[3].item(j)
            notional = notional_a.item(j)
            mr = eq / notional if notional > 0 else math.inf
            if mr < mr_min:  # min(mr_min, mr)
                mr_min = mr
            if len(held) == 1:
                key, size, e, u, _, table, ext = held[0]
                lps = {key: self._lp_single(key, eq - (0.0 + u.item(j)), size, e, table)}
            else:
                lps = _liquidation_prices_at(eq, held, j, memo)
            if free and notional > 0:
                if eq < total_a.item(j):
                    free = False
                else:
                    for key, size, _, _, _, _, ext in held:
                        lp = lps[key]
                        if lp is None or ext is None:
                            continue
                        x = ext.item(j)
                        if x <= lp if size > 0 else x >= lp:  # NaN never crosses (perps._crossed)
                            free = False
                            break
            accounts.append((eq, mr, lps))
        return (equity, s.onchain.item(j), s.perp_delta, s.hf.item(j), s.ltv.item(j), mr_min, accounts, free)

    def _stretch_for(self, mon, tick: int) -> MonitorStretch | None:
        """The stretch for the book as it stands at ``tick`` (the current one when only margin
        balances changed, else a new one), bound to the book's margin balances; None if none."""
        book = self.book
        skip_version, skip_until = self._mon_skip
        if skip_version == book.version and tick < skip_until:
            return None
        sig = self._signature(mon)
        s = self.mon
        if s is None or s.sig != sig or not s.a <= tick < s.b:
            try:
                with np.errstate(all="ignore"):
                    s = self._build_monitor(mon, sig, tick)
            except _Ineligible:
                s = None
            if s is None:
                self._mon_skip = (book.version, tick + 8)  # not again for this book state for a few ticks
                return None
            self.mon = s
            self.builds["monitor"] += 1
        try:
            self._bind(mon, s)
        except _Ineligible:
            self.mon = None
            self._mon_skip = (book.version, tick + 8)
            return None
        return s

    def _bind(self, mon, s: MonitorStretch) -> None:
        """Bind ``s`` to the book's current margin balances: the equity terms (a position whose
        value never moves: its float from ``Monitors._pos``; the leading run of those summed
        from 0.0 here, in order, into ``prefix``) and each perp venue's collateral
        (:func:`perps.account_state`'s first sum; an array over the stretch when a price moves)."""
        s.prefix, s.terms_b, s.venues_b = self._bound(s, mon._pos, self.book.bal)
        s.version = self.book.version

    def _bound(self, s: MonitorStretch, pos: list, bal: dict[str, float]) -> tuple[float, list, list]:
        """(prefix, equity terms, venues) of :meth:`_bind` for the positions ``pos``
        (``Monitors.positions_of``) and balances ``bal``, without binding ``s``."""
        terms = [p[3] if lst is None else lst for lst, p in zip(s.terms, pos)]  # p[3]: its value
        prefix, k = 0.0, 0
        while k < len(terms) and terms[k].__class__ is not np.ndarray:
            prefix += terms[k]
            k += 1
        venues = []
        statics = self._collateral
        if statics is None:  # per perp venue, its margin keys (perps._static: the same for the run)
            sim = self.sim
            statics = self._collateral = [perps._static(sim, venue)[0] for venue in sim.perp_venues]
        for (held, notional, total), collateral in zip(s.venues, statics):
            eq = 0.0
            for key, asset, tiers, usd in collateral:
                q = bal.get(key, 0.0)
                if q:
                    if usd is None:
                        price = self.asset_usd(asset, s.a, s.b)
                        if isinstance(price, np.ndarray) and bool(np.isnan(price).any()):
                            raise _Ineligible(asset)
                    else:
                        price = usd
                    eq = eq + (margin.collateral_value(tiers, q, price) if tiers else q * price)
            venues.append((held, notional, total, eq))
        return prefix, terms[k:], venues

    def _build_monitor(self, mon, sig: tuple, a: int) -> MonitorStretch | None:
        px, sim, book = self.px, self.sim, self.book
        b = min(self.view.n, a + MAX_TICKS)
        if b <= a:
            return None
        inp = _Inputs(self, a, b)
        inp.need_share()
        bal, entry = book.bal, book.entry
        margins = self._margin_keys
        # position + exposure (Monitors.run): each moving position's value, summed per tick in
        # the book's order by monitor_row; the delta sums need no margin balance: summed here
        terms = []
        onchain = perp_delta = 0.0
        share = self.share_usd(a, b)
        for k, q, e, v, kind, d in mon._pos:
            inf = px.info[k]
            valued = False  # _need_value(inp, k) done
            if v is not None:
                terms.append(None)
            elif inf.ptype == "Perp":
                inp.need_mark(k)
                m = self.memo(("mark", k), a, b, lambda lo, hi, k=k: self.mark(k, lo, hi))
                terms.append(perp_value(q, m, e, share))
            else:
                self._need_value(inp, k)
                valued = True
                terms.append(self.memo(("value", k, q), a, b, lambda lo, hi, k=k, q=q: self._value_delta(k, q, lo, hi)[0]))
            if kind == _ONCHAIN:
                if d is None:
                    if not valued:  # the same fields again would change nothing
                        self._need_value(inp, k)
                    d = self.memo(("delta", k, q), a, b, lambda lo, hi, k=k, q=q: self._value_delta(k, q, lo, hi)[1])
                onchain = onchain + d
            elif kind == _PERP:
                perp_delta = perp_delta + q
        # risk (Stage.RISK): Aave accounts, venues.aave.health
        hf, ltv = math.inf, 0.0
        aave_free = np.ones(b - a, dtype=bool)
        for venue in sim.lending:
            coll = debt = weighted = 0.0
            for key, q, asset, kind, lt in aave._held(sim, book, venue):
                if key in margins:
                    raise _Ineligible(key)  # a margin balance inside an Aave account: not kept apart
                idx = px.info[key].index_field
                if idx:
                    inp.need(idx)
                inp.need_asset(asset)
                usd = self.memo(("usd", key, q), a, b, lambda lo, hi, idx=idx, q=q, asset=asset:
                                (q * self.column(idx)[lo:hi] if idx else q) * self.asset_usd(asset, lo, hi))
                if kind == aave._COLL:
                    coll = coll + usd
                    weighted = weighted + usd * lt
                elif kind == aave._DEBT:
                    debt = debt + usd
            h, l = _ratio(weighted, debt, math.inf), _ratio(debt, coll, 0.0)
            hf, ltv = _where_less(hf, h), _where_greater(ltv, l)
            aave_free &= (h >= 1.0) | (np.asarray(debt) <= 0)  # venues.aave.liquidations skips these
        # perp accounts (venues.perps.account_state): each position's arrays; the margin
        # balance is added per tick by monitor_row
        venues = []
        for venue in sim.perp_venues:
            _, positions = perps._static(sim, venue)
            notional = total = 0.0
            held = []
            for key, table in positions:
                s = bal.get(key, 0.0)
                if s:
                    if table is None:
                        raise _Ineligible(key)  # account_state raises KeyError there, per tick
                    inp.need_mark(key)
                    e = entry.get(key, 0.0)
                    _, u, notional_k, mm = self._perp(key, s, e, table, a, b)
                    notional = notional + notional_k
                    total = total + mm
                    ext = self._extreme(key, s > 0, a, b) if key in sim.extreme_fields else None
                    held.append((key, s, e, u, mm, table, ext))
            venues.append((held, notional, total))
        n = inp.valid()
        if n <= 0:
            return None
        b = a + n
        stale = []
        for k, _, _, _, _, _ in mon._pos:
            if px.info[k].ptype == "Perp":
                fresh = self.fresh(k)[a:b]
                if not bool(fresh.all()):
                    stale.append((k, (~fresh).tolist()))
        self._lp_memo.clear()  # its keys hold no size or entry: valid for one set of positions
        return MonitorStretch(
            sig, a, b, [None if t is None else _ticks(t, n) for t in terms], _ticks(onchain, n), perp_delta,
            _ticks(hf, n), _ticks(ltv, n), _ticks(aave_free, n),
            [([(key, s_, e, _ticks(u, n), _ticks(mm, n), table, None if ext is None else _ticks(ext, n))
               for key, s_, e, u, mm, table, ext in held],
              _ticks(notional, n) if held else None, _ticks(total, n) if held else None)
             for held, notional, total in venues], stale)

    def count_stale(self, key: str, t: int) -> None:
        """Count tick ``t`` in ``Pricing.stale_marks`` for ``key``, as :meth:`Pricing.mark` does
        when it reads a stale mark (once per tick)."""
        seen = self.px.stale_marks.setdefault(key, [0, -1])
        if seen[1] != t:
            seen[0] += 1
            seen[1] = t

    # ------------------------------------------------------------------ attribution
    def attr_row(self, moving: list, i0: int, i1: int) -> tuple[tuple[str, ...], tuple] | None:
        """``(categories, amounts)`` of the market move from ``i0`` to ``i1`` of ``moving``
        (:meth:`Attribution._moving`), in the order it adds them, or None (the caller then
        computes it per tick)."""
        if i0 != i1 - 1:
            return None
        s = self.attr
        if s is not None and s.a <= i1 < s.b and (s.moving is moving or s.moving == moving):
            s.moving = moving
            return self._attr_at(s, i1)
        stable = self._last_moving is moving or self._last_moving == moving
        self._last_moving = moving
        if not stable or i1 < self._attr_skip:
            return None  # the positions just changed (a plan may still be moving them): per tick
        try:
            with np.errstate(all="ignore"):
                s = self._build_attr(moving, i1)
        except _Ineligible:
            s = None
        if s is None:
            self._attr_skip = i1 + 8
            return None
        self.attr = s
        self.builds["attribution"] += 1
        return self._attr_at(s, i1)

    def _attr_at(self, s: AttrStretch, i1: int) -> tuple[tuple[str, ...], tuple]:
        j = i1 - s.a
        for key, stale in s.stale:  # in moving order, each key's old mark then its new one
            if stale[j]:
                self.count_stale(key, i1 - 1)
            if stale[j + 1]:
                self.count_stale(key, i1)
        return s.cats, tuple(s.parts[j].tolist())

    def _build_attr(self, moving: list, a: int) -> AttrStretch | None:
        """Attribution.market_move's parts for ticks ``[a, b)``: tick t's part from the prices at
        t - 1 (old) and t (new), arrays over ``[a - 1, b)``."""
        px = self.px
        b = min(self.view.n, a + MAX_TICKS)
        if a < 1 or b <= a:
            return None
        inp = _Inputs(self, a - 1, b)
        cats: list[str] = []
        parts: list = []
        for key, qty, perp, e in moving:
            inf = px.info[key]
            if perp:
                inp.need_mark(key)
                inp.need_asset(inf.asset)
                inp.need_share()
                got = self.memo(("attr", key, qty, e), a - 1, b, lambda lo, hi, key=key, qty=qty, e=e: self._perp_parts(key, qty, e, lo, hi))
                cats += ("price_delta", "basis")
                parts += (got[0], got[1])
                continue
            self._need_factors(inp, key)
            got = self.memo(("attr", key, qty), a - 1, b, lambda lo, hi, key=key, qty=qty: self._parts(key, qty, lo, hi))
            cats += self._part_cats(key)
            parts += list(got)
        n = inp.valid() - 1  # tick t needs elements t - 1 and t
        if n <= 0:
            return None
        table = np.stack([p[:n] for p in parts], axis=1) if parts else np.empty((n, 0))
        stale = []
        for key, _, perp, _ in moving:
            if perp:
                fresh = self.fresh(key)[a - 1:a + n]
                if not bool(fresh.all()):
                    stale.append((key, (~fresh).tolist()))
        return AttrStretch(moving, a, a + n, tuple(cats), table, stale)

    def _perp_parts(self, key: str, qty: float, e: float, lo: int, hi: int) -> np.ndarray:
        """Attribution of perp ``key`` (price_delta, basis) for ticks ``[lo + 1, hi)`` as two rows,
        padded to ``hi - lo`` (the memo slices from its first tick)."""
        inf = self.px.info[key]
        m = self.mark(key, lo, hi)
        r = self.asset_usd(inf.asset, lo, hi)
        nn = 1.0 / self.share_usd(lo, hi)
        r0, r1 = _pair(r)
        n0, n1 = _pair(nn)
        out = np.empty((2, hi - lo))
        out[:, -1] = np.nan
        out[0, :-1], out[1, :-1] = perp_move(qty, e, m[:-1], r0, n0, m[1:], r1, n1)
        return out

    def _part_cats(self, key: str) -> tuple[str, ...]:
        """The categories of :meth:`_parts`' rows: those of ``key``'s factors that move (kept per
        key: which factors are arrays depends on the key's fields, not on the ticks)."""
        got = self._cats.get(key)
        if got is None:
            got = self._cats[key] = tuple(cat for cat, f in self._factors(key, 0, 2)[1] if isinstance(f, np.ndarray))
        return got

    def _parts(self, key: str, qty: float, lo: int, hi: int) -> np.ndarray:
        """Non-perp ``key``'s telescoped factor parts for ticks ``[lo + 1, hi)``, one row per
        moving factor (:meth:`_part_cats`), padded to ``hi - lo`` (the memo slices from its first
        tick): Attribution.market_move's products in its order (factor k moves; the factors
        before it at their new values, after it at their old), 0.0 where the factor did not move."""
        sign, factors = self._factors(key, lo, hi)
        f0 = [_pair(f)[0] for _, f in factors]
        f1 = [_pair(f)[1] for _, f in factors]
        # a constant factor never moves: the per-tick code adds nothing for it (no row)
        moving = [k for k, (_, f) in enumerate(factors) if isinstance(f, np.ndarray)]
        out = np.empty((len(moving), hi - lo))
        out[:, -1] = np.nan
        for i, k in enumerate(moving):
            out[i, :-1] = np.where(f1[k] != f0[k], factor_part(sign, qty, f0, f1, k), 0.0)
        return out

    def _need_factors(self, inp: _Inputs, key: str) -> None:
        inf = self.px.info[key]
        if inf.index_field:
            inp.need(inf.index_field)
        inp.need_asset(inf.asset)
        inp.need_share()

    def _factors(self, key: str, lo: int, hi: int) -> tuple[float, list[tuple[str, object]]]:
        """:meth:`Pricing.factors` of non-perp ``key`` over ``[lo, hi)`` (a float where constant)."""
        px = self.px
        inf = px.info[key]
        out: list[tuple[str, object]] = []
        sign = 1.0
        if inf.ptype == "aToken":
            out.append(("supply_yield", self.column(inf.index_field)[lo:hi]))
        elif inf.ptype == "debtToken":
            sign = -1.0
            if inf.index_field:
                out.append(("borrow_cost", self.column(inf.index_field)[lo:hi]))
        spec = px.assets[inf.asset]
        if spec.usd is not None:
            out.append(("price_delta", spec.usd))
        elif spec.usd_field:
            out.append(("price_delta", self.column(spec.usd_field)[lo:hi]))
        else:
            cat = "staking_yield" if spec.delta_asset == "ETH" else "price_delta"
            out.append((cat, self.column(spec.eth_rate_field)[lo:hi]))
            out.append(("price_delta", self.column(px.eth_field)[lo:hi]))
        if px.share_class != "USDT":
            out.append(("price_delta", 1.0 / self.share_usd(lo, hi)))
        return sign, out


    # ------------------------------------------------------------------ whole spans (engine.quiet)
    def monitor_block(self, mon, lo: int, hi: int, segments: list | None = None) -> tuple | None:
        """:meth:`monitor_row` for every tick of ``[lo, hi')`` at once, ``hi'`` <= ``hi`` the end of
        the stretch covering ``lo``; None when no stretch applies. Returns ``(hi', core, stale)``:
        ``core`` = ``{"equity", "onchain", "hf", "ltv", "mr_min": float64 arrays of hi' - lo,
        "perp_delta": float, "free": bool array, "accounts": [(margin balance array, margin ratio
        array or inf, {perp key: (liquidation prices, 0.0 where None; where None)}) per perp
        venue]}``, by
        monitor_row's operations in its order element by element (``min`` as ``where(b < a, b,
        a)``); ``stale``: ``(perp key, [ticks])`` monitor_row would count in ``Pricing.stale_marks``
        (left to the caller, who may keep only a prefix of the span). Nothing is counted here.

        ``segments``: ``[(first tick, positions, balances)]`` in tick order, the first at ``lo``:
        the book from each first tick on (``Monitors.positions_of`` and its ``bal``), when
        funding settlements change margin balances inside the span (default: the book as it
        stands). A segment whose positions differ from the stretch's other than in such a
        balance ends the span before it."""
        book = self.book
        s = self._block_stretch(mon, lo, hi)
        if s is None:
            return None
        hi = min(hi, s.b)
        bounds = []  # (first tick, prefix, equity terms, venues) per segment
        before = None  # the previous segment's positions (their signature is the stretch's)
        for t, pos, bal in segments or [(lo, mon._pos, book.bal)]:
            if t >= hi:
                break
            try:
                if not (before is not None and self._same_signature(before, pos)) and self._signature_of(pos) != s.sig:
                    raise _Ineligible(t)
                bounds.append((t, *self._bound(s, pos, bal)))
            except _Ineligible:
                hi = t
                break
            before = pos
        if not bounds or hi <= lo:
            return None
        j0, j1 = lo - s.a, hi - s.a
        n = j1 - j0
        cuts = [j0] + [t - s.a for t, _, _, _ in bounds[1:]] + [j1]

        def piece(values) -> np.ndarray:
            """Per tick of the span: ``values[i]`` (a float, or an array over the stretch; a sequence
            over the segments) for segment i's ticks."""
            first = values[0]
            if first.__class__ is float and first and all(v.__class__ is float for v in values):
                # floats (a balance), the first not 0.0 (so == tells the sign too): the test below, in C
                if values.count(first) == len(values):
                    return np.full(n, first, dtype=np.float64)
                return np.repeat(np.array(values, dtype=np.float64), lengths)
            if all(v is first or (v.__class__ is float and v == first and math.copysign(1.0, v) == math.copysign(1.0, first))
                   for v in values):  # the same in every segment (a moving term's array, an untouched balance)
                return first[j0:j1] if first.__class__ is np.ndarray else np.full(n, first, dtype=np.float64)
            if all(v.__class__ is float for v in values):  # a balance per segment: each repeated over its ticks
                return np.repeat(np.array(values, dtype=np.float64), lengths)
            parts = [v[js:je] if v.__class__ is np.ndarray else np.full(je - js, v, dtype=np.float64)
                     for js, je, v in zip(cuts, cuts[1:], values)]
            return np.concatenate(parts)

        lengths = np.diff(cuts)
        stale = [(key, [s.a + j for j in range(j0, j1) if flags[j]]) for key, flags in s.stale]
        _, prefixes, terms, venues = zip(*bounds)  # each field of the segments' bounds, segment by segment
        equity = piece(prefixes)
        for m, term in enumerate(terms[0]):
            # a moving position's term is the stretch's array in every segment (_bound)
            equity = equity + (term[j0:j1] if term.__class__ is np.ndarray else piece([seg[m] for seg in terms]))
        free = s.aave_free[j0:j1].copy()
        mr_min = _span(math.inf, n)
        accounts = []
        memo = self._lp_memo
        for v, (held, notional_a, total_a, _) in enumerate(bounds[0][3]):
            eq = piece([seg[v][3] for seg in venues])
            if not held:
                accounts.append((eq, math.inf, _EMPTY))  # no position: notional 0, ratio inf
                continue
            for h in held:
                eq = eq + h[3][j0:j1]
            notional = notional_a[j0:j1]
            with np.errstate(all="ignore"):
                mr = _ratio(eq, notional, math.inf)
            mr_min = np.where(mr < mr_min, mr, mr_min)
            if len(held) == 1:
                key, size, e, u, _, table, _ = held[0]
                w = eq - (0.0 + u[j0:j1])  # the margin balance less unrealised P&L
                # (never None: _perp let in only tables with ascending caps, and size is not 0)
                lps = {key: margin.liquidation_price_array(w, size, e, table)}
            else:
                rows = [_liquidation_prices_at(x, held, j, memo) for x, j in zip(eq.tolist(), range(j0, j1))]
                lps = {h[0]: _prices([r[h[0]] for r in rows], np.arange(n)) for h in held}
            # monitor_row: with a position open, an account below its maintenance margin or with
            # a liquidation price inside the hour's bar can be liquidated (NaN never crosses)
            bad = eq < total_a[j0:j1]
            for key, size, _, _, _, _, ext in held:
                if ext is not None:
                    value, none = lps[key]
                    lp = np.where(none, math.nan, value)
                    x = ext[j0:j1]
                    bad |= (x <= lp) if size > 0 else (x >= lp)
            free &= ~((notional > 0) & bad)
            accounts.append((eq, mr, lps))
        core = {"equity": equity, "onchain": s.onchain[j0:j1], "perp_delta": s.perp_delta,
                "hf": s.hf[j0:j1], "ltv": s.ltv[j0:j1], "mr_min": mr_min, "free": free,
                "accounts": accounts}
        return hi, core, stale

    def monitor_reach(self, mon, lo: int, hi: int) -> int:
        """How far (at most ``hi``) the monitor stretch :meth:`monitor_block` would use from
        ``lo`` reaches (``lo`` when none applies): a quiet span works out nothing past it."""
        s = self._block_stretch(mon, lo, hi)
        return lo if s is None else min(hi, s.b)

    def _current(self, mon, tick: int) -> MonitorStretch | None:
        """The monitor stretch covering ``tick`` for the book as it stands: the current one, or
        one built from ``tick`` (the monitors' positions compiled first if the book moved);
        None when no stretch applies."""
        book = self.book
        s = self.mon
        if s is None or s.version != book.version or not s.a <= tick < s.b:
            if mon._pos_version != book.version:
                mon._positions(book)
            s = self._stretch_for(mon, tick)
        return s

    def _block_stretch(self, mon, lo: int, hi: int) -> MonitorStretch | None:
        """The monitor stretch for the book as it stands from ``lo`` (built, or built again when
        little of the current one is left before ``hi``), or None."""
        s = self._current(mon, lo)
        if s is None:
            return None
        if s.b < hi and s.b - lo < MAX_TICKS // 2:  # little of it left: a new one from lo
            self.mon = None
            s = self._stretch_for(mon, lo)
        return s

    def _lp_single(self, key: str, w: float, size: float, e: float, table) -> float | None:
        """monitor_row's liquidation price of an account holding one position (margin balance
        less its unrealised P&L ``w``), through the same memo."""
        memo = self._lp_memo
        k = (key, w)
        lp = memo.get(k, memo) if w else memo
        if lp is memo:
            lp = margin.liquidation_price(w, 0, 0, size, e, table)
            if w:
                memo[k] = lp
        return lp

    def attr_block(self, moving: list, lo: int, hi: int) -> tuple | None:
        """:meth:`attr_row` for the ticks ``[lo, hi')`` at once (each from tick t - 1 to t),
        ``hi'`` <= ``hi`` the end of the attribution stretch covering ``lo`` (built here if
        needed); None when none applies. Returns ``(hi', categories, amounts, stale)``, ``amounts``
        a float64 array of shape (hi' - lo, len(categories)), row j tick lo + j's, ``stale`` as
        in :meth:`monitor_block` (the ticks attr_row would count, in its order)."""
        if lo < 1:
            return None
        s = self.attr
        if (s is None or not s.a <= lo < s.b or not (s.moving is moving or s.moving == moving)
                or (s.b < hi and s.b - lo < MAX_TICKS // 2)):  # none, or little of it left: a new one from lo
            try:
                with np.errstate(all="ignore"):
                    s = self._build_attr(moving, lo)
            except _Ineligible:
                s = None
            if s is None:
                return None
            self.attr = s
            self.builds["attribution"] += 1
        s.moving = moving
        hi = min(hi, s.b)
        stale = []
        for key, flags in s.stale:
            ticks = []
            for t in range(lo, hi):
                j = t - s.a
                if flags[j]:
                    ticks.append(t - 1)
                if flags[j + 1]:
                    ticks.append(t)
            stale.append((key, ticks))
        return hi, s.cats, s.parts[lo - s.a:hi - s.a], stale


def _prices(got: list, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Liquidation prices ``got[where[t]]`` per tick as (values, 0.0 where None; None mask)."""
    none = np.array([p is None for p in got], dtype=bool)
    value = np.array([0.0 if p is None else p for p in got], dtype=np.float64)
    return value[where], none[where]


def _span(x, n: int) -> np.ndarray:
    """``x`` (a list or array of n floats, or one float for every tick) as a float64 array of n."""
    if isinstance(x, (list, np.ndarray)):
        return np.array(x, dtype=np.float64)
    return np.full(n, x, dtype=np.float64)


_EMPTY: dict = {}  # the liquidation prices of an account without positions (shared: read-only)


def _liquidation_prices_at(eq: float, held: list, j: int, memo: dict) -> dict[str, float | None]:
    """``{perp key: liquidation price or None}`` of an account holding several positions at
    element ``j`` of its stretch, with :func:`perps.account_state`'s operations (margin balance
    ``eq``; ``held``: the :class:`MonitorStretch` venue's positions)."""
    wallet = eq - sum(h[3].item(j) for h in held)
    out = {}
    for key, s, e, _, _, table, _ in held:
        others_mm = sum(h[4].item(j) for h in held if h[0] != key)
        others_upnl = sum(h[3].item(j) for h in held if h[0] != key)
        k = (key, wallet, others_mm, others_upnl)
        lp = memo.get(k, memo) if wallet else memo
        if lp is memo:
            lp = margin.liquidation_price(wallet, others_mm, others_upnl, s, e, table)
            if wallet:
                memo[k] = lp
        out[key] = lp
    return out


def _pair(x):
    """(old, new) of an array over ``[a - 1, b)`` (elements t - 1 and t), or of a constant."""
    if isinstance(x, np.ndarray):
        return x[:-1], x[1:]
    return x, x
