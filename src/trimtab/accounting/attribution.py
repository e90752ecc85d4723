"""P&L attribution that reconciles with the change in equity at every tick.

A tick's equity change has two parts, each attributed exactly:

1. *market move* of the book as it stood: every non-perp value is ``sign x qty x product of
   factors`` (index, LST rate, asset price, 1/share-class price; see
   :meth:`trimtab.venues.pricing.Pricing.factors`); the change is telescoped one factor at a
   time (factor k moves, factors before it at their new values, after it at their old), so the
   parts sum to the change exactly. A perp's ``size x (mark - entry)`` moves with the asset's
   reference price (price_delta) and with mark minus reference (basis);
2. *events* (fills): each fill's impact is the value of the keys it touched after minus before,
   at this tick's prices, booked to the fill's category.

``reconciliation_error`` is the largest |sum of attribution - (equity_t - equity_0)| seen.
"""
from __future__ import annotations

from collections.abc import Mapping
from itertools import accumulate
from operator import sub
from typing import Protocol

import numpy as np

from .book import Book, Fill


class _Instrument(Protocol):
    ptype: str  # "Perp" or another product type


class PriceSource(Protocol):
    """What attribution reads of the prices; :class:`trimtab.venues.pricing.Pricing` provides it.

    A Protocol here, not an import, because venues sit above accounting in the layering
    (tests/unit/test_layering.py): the simulated venues book into :class:`Book`.
    """

    info: Mapping[str, _Instrument]
    fixed_keys: frozenset[str]  # non-perp keys whose factors never change (nothing to attribute)

    def factors(self, key: str, i: int) -> tuple[float, list[tuple[str, float]]]:
        """``(sign, [(factor name, value), ...])`` whose product times qty is the value."""

    def perp_parts(self, key: str, i: int) -> tuple[float, float, float]:
        """``(mark, reference price of the asset, 1 / share-class price)`` of perp ``key`` at tick ``i``."""

CATEGORIES = (
    "supply_yield",
    "borrow_cost",
    "staking_yield",
    "rewards",
    "funding",
    "price_delta",
    "basis",
    "trading_fees",
    "gas",
    "liquidation",
)


def perp_move(qty, entry, m0, r0, n0, m1, r1, n1):
    """``(price_delta, basis)`` of a perp of size ``qty`` and entry price ``entry`` from old to
    new ``(mark, reference price of the asset, 1 / share class price)``: the reference price's
    move (and the share class's on the old P&L), then mark minus reference. Floats or numpy
    float64 arrays (:mod:`trimtab.engine.stretch`): the same doubles element by element."""
    return (qty * (r1 - r0) * n1 + qty * (m0 - entry) * (n1 - n0),
            qty * ((m1 - m0) - (r1 - r0)) * n1)


def factor_part(sign, qty, old, new, k: int):
    """Part ``k`` of the telescoped change of ``sign x qty x product(factors)``: factor k moves
    from ``old[k]`` to ``new[k]``, the factors before it at their new values, after it at their
    old ones (so the parts sum to the change). ``old``/``new``: the factor values in order,
    floats or numpy float64 arrays (the same doubles element by element)."""
    part = sign * qty * (new[k] - old[k])
    for j in range(k):
        part = part * new[j]
    for j in range(k + 1, len(old)):
        part = part * old[j]
    return part


_LAYOUTS: dict[tuple[str, ...], tuple] = {}  # _layout's, by the columns' categories


def _layout(cats: tuple[str, ...]) -> tuple[list[str], list[int], list[int], list[int]]:
    """``(categories, order, starts, ends)`` of columns of categories ``cats``: the categories
    in order of first appearance; the columns grouped by category (each category's in order);
    where each category's columns start and end in that grouping. Kept per ``cats`` (a run
    has few)."""
    got = _LAYOUTS.get(cats)
    if got is None:
        groups: dict[str, list[int]] = {}
        for j, cat in enumerate(cats):
            groups.setdefault(cat, []).append(j)
        order = [j for cols in groups.values() for j in cols]
        ends = list(accumulate(map(len, groups.values())))
        starts = [end - len(cols) for end, cols in zip(ends, groups.values())]
        got = _LAYOUTS[cats] = (list(groups), order, starts, ends)
    return got


class Attribution:
    """Accumulates attribution by category, per tick and in total (share class units)."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {c: 0.0 for c in CATEGORIES}
        self.tick: dict[str, float] = {}
        self.max_error = 0.0

    def start_tick(self) -> None:
        self.tick = {}

    def snapshot(self) -> dict:
        """``{"total": {category: share class}, "max_error": share class}`` (the per-tick part
        is rebuilt every tick)."""
        return {"total": dict(self.total), "max_error": self.max_error}

    def restore(self, snap: dict) -> None:
        """Load a :meth:`snapshot`."""
        self.total, self.max_error = dict(snap["total"]), snap["max_error"]

    def add(self, category: str, amount: float) -> None:
        if amount:
            self.tick[category] = self.tick.get(category, 0.0) + amount
            self.total[category] = self.total.get(category, 0.0) + amount

    def market_move(self, book: Book, pricing: PriceSource, i0: int, i1: int) -> None:
        """Attribute the change in value of ``book`` from tick ``i0`` to ``i1`` prices.

        Runs every tick for every position: the sums are :meth:`add`'s, inlined (same order).
        The prices at ``i0`` are last tick's, which the price source caches
        (:meth:`trimtab.venues.pricing.Pricing.factors`)."""
        tick, total = self.tick, self.total
        perp_parts, factors = pricing.perp_parts, pricing.factors
        moving = self.moving(book, pricing)
        mover = self.mover
        if mover is not None:
            got = mover(moving, i0, i1)
            if got is not None:  # the same parts, computed for a quiet stretch as arrays
                self.add_move(*got)
                return
        for key, qty, perp, e in moving:
            if perp:
                price, basis = perp_move(qty, e, *perp_parts(key, i0), *perp_parts(key, i1))
                if price:
                    tick["price_delta"] = tick.get("price_delta", 0.0) + price
                    total["price_delta"] = total.get("price_delta", 0.0) + price
                if basis:
                    tick["basis"] = tick.get("basis", 0.0) + basis
                    total["basis"] = total.get("basis", 0.0) + basis
                continue
            sign, f0 = factors(key, i0)
            _, f1 = factors(key, i1)
            old, new = [v for _, v in f0], [v for _, v in f1]
            for k in range(len(old)):
                if new[k] == old[k]:
                    continue
                part = factor_part(sign, qty, old, new, k)
                if part:
                    cat = f0[k][0]
                    tick[cat] = tick.get(cat, 0.0) + part
                    total[cat] = total.get(cat, 0.0) + part

    def moving(self, book: Book, pricing: PriceSource) -> list[tuple[str, float, bool, float]]:
        """:meth:`_moving` of ``book``, kept while ``book.version`` is unchanged (the same list
        object, which the quiet stretches compare by identity first)."""
        held = self._held
        if held is None or held[0] is not book or held[1] != book.version or held[2] is not pricing:
            held = self._held = (book, book.version, pricing, self._moving(book, pricing))
        return held[3]

    def add_move(self, cats: tuple[str, ...], amounts: tuple) -> None:
        """Add one tick's market move given as its parts (``amounts`` in the order of ``cats``,
        zero where nothing moved, as ``mover`` or a quiet span gives them), in that order, as
        :meth:`market_move` adds them."""
        tick, total = self.tick, self.total
        for cat, part in zip(cats, amounts):
            if part:
                tick[cat] = tick.get(cat, 0.0) + part
                total[cat] = total.get(cat, 0.0) + part

    _held = None  # (book, its version, price source, _moving(...)) for market_move
    #: ``mover(moving, i0, i1) -> (categories, amounts) or None``: the market move's parts in
    #: the order this method adds them (zero where it adds nothing), precomputed over a quiet stretch
    #: (:meth:`trimtab.engine.stretch.Stretches.attr_row`, set by the kernel); None computes per tick.
    mover = None

    @staticmethod
    def _moving(book: Book, pricing: PriceSource) -> list[tuple[str, float, bool, float]]:
        """``(key, qty, is perp, entry price)`` of every position whose value can move with
        prices, in the book's order: the non-zero, non-fixed keys (a fixed key's factors are
        equal at every tick: nothing to attribute). A function of the book alone, so
        market_move keeps it while ``book.version`` is unchanged (only fills change the book)."""
        info, fixed, entry = pricing.info, pricing.fixed_keys, book.entry
        return [(key, qty, info[key].ptype == "Perp", entry.get(key, 0.0))
                for key, qty in book.bal.items() if not (qty == 0.0 or key in fixed)]

    def add_span(self, cats: tuple[str, ...], parts, events: dict[int, list[tuple[str, float]]],
                 changes: list[float]) -> dict[str, list] | None:
        """Several ticks at once, each as :meth:`start_tick`, :meth:`add_move` of its row of
        ``parts``, :meth:`add` of its ``events`` and :meth:`check` of its entry of ``changes``
        would do them, in that order (a quiet span, :mod:`trimtab.engine.quiet`).

        Args:
            cats: the categories of the columns of ``parts`` (a category may name several).
            parts: float64 array of shape (k, len(cats)), row j the market move of tick j.
            events: tick offset j -> ``[(category, amount)]`` added after tick j's market move
                (the funding fills' impacts), in order.
            changes: per tick, the change in equity the reconciliation checks (k floats).

        Returns ``{category: k amounts (None where the tick has none)}`` for every category
        the ticks touch (the ledger rows :meth:`Journal.ledger` would write), leaving
        :attr:`tick` as the last tick's; None, with nothing changed, when an event's category
        is also a market move's or a category is not in :attr:`total` yet (the caller then
        goes tick by tick).

        Exactness: ``np.add.accumulate`` adds sequentially (no pairwise sum), so each running
        total is the double the per-tick additions give; adding a zero part is a no-op there
        (a total is never -0.0: it starts at +0.0 and x + (-x) is +0.0), and a tick's sum of
        several parts of one category is built left to right like :meth:`add_move`. The
        reconciliation sums go through Python's ``sum`` as :meth:`check`'s do.
        """
        total = self.total
        k = len(changes)
        names, order, starts, ends = _layout(cats)
        ev_cats = {c for evs in events.values() for c, _ in evs}
        if not ev_cats.isdisjoint(names) or not (ev_cats.union(names)) <= total.keys():
            return None
        out: dict[str, list] = {}
        after: dict[str, list[float]] = {}  # each category's running total after each tick
        if names:
            grouped = parts[:, order]  # each category's columns side by side, in cats' order
            # (k, categories): whether the tick has a part of it (NaN != 0: a NaN part is added, as `if part` does)
            present = np.logical_or.reduceat(grouped != 0.0, starts, axis=1)
            some, every = present.any(axis=0).tolist(), present.all(axis=0).tolist()
            for n, cat in enumerate(names):
                if not some[n]:
                    continue
                block = grouped[:, starts[n]:ends[n]]
                amount = block[:, 0]
                for j in range(1, block.shape[1]):
                    amount = amount + block[:, j]
                vals = amount.tolist()
                if not every[n]:
                    for j in np.flatnonzero(~present[:, n]).tolist():
                        vals[j] = None
                out[cat] = vals
                flat = block.flatten()  # (a copy: block is a view of grouped)
                flat[0] = total[cat] + flat[0]  # the running total starts from the total so far
                after[cat] = np.add.accumulate(flat)[block.shape[1] - 1::block.shape[1]].tolist()
        ticks = sorted(events)
        for cat in sorted(ev_cats, key=list(total).index):
            run, vals, now, j0 = [], [None] * k, total[cat], 0
            for j in ticks:
                for c, a in events[j]:
                    if c == cat and a:
                        vals[j] = (0.0 if vals[j] is None else vals[j]) + a
                        run += [now] * (j - j0)  # the ticks since the last event: total unchanged
                        j0 = j
                        now = now + a
            run += [now] * (k - j0)
            after[cat] = run
            out[cat] = vals
        # Reconciliation, per tick: the totals in the dict's order, summed by Python's sum;
        # the largest error as check() keeps it (a NaN error never replaces it)
        cols = [after[c] if c in after else [v] * k for c, v in total.items()]
        errs = [x for x in map(abs, map(sub, map(sum, zip(*cols)), changes)) if x == x]
        if errs:
            top = max(errs)
            if top > self.max_error:
                self.max_error = top
        for cat, run in after.items():
            total[cat] = run[-1]
        self.tick = {c: v[-1] for c, v in out.items() if v[-1] is not None}
        return out

    def book_fill(self, fill: Fill) -> None:
        self.add(fill.category, fill.impact)

    def check(self, equity_change: float) -> float:
        """Record |sum(total) - equity_change| and return it."""
        err = abs(sum(self.total.values()) - equity_change)
        if err > self.max_error:
            self.max_error = err
        return err
