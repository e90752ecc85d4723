"""The data checks of a growing live store, re-judging only what new rows can change.

A live run checks its market data every hour (:mod:`trimtab.data.quality`). Checking every
stored row again each hour makes a run's cost quadratic in its length; :class:`RollingChecks`
keeps the verdicts of the rows already judged and, when rows arrive, re-judges only the tail
they can change, with :func:`trimtab.data.quality.assess` itself (``judge_from``), so the
verdicts are the ones a full re-check of every row gives -- not an approximation of them.

Why a tail is enough (the checks never look ahead, see the quality module): a row ``r`` first
used at tick ``tick(r)`` (its availability rounded up to the hour) is judged by

* its own values (per-value checks);
* the per-value result of the other venues' rows available at or before ``tick(r)`` and no
  older than :data:`~trimtab.data.quality.PEER_MAX_AGE_H` (cross-venue medians) or an hour
  (funding medians);
* the last *good* row of its own series before it (jump, index and funding last-good checks).

So a new row available at ``a`` can change only the rows of its own price group (its own
series and the other venues of the asset) with ``tick(r) >= a`` (and, through the last-good
chain, the rows after them in their own series). Each such series is re-judged from its
last good row before those (its *anchor*: good in the full check, so it is the reference of
every row after it, and judged good again from the same inputs), with every other venue's rows
from two hours before the earliest anchor of its group as context. Rows between the anchor and
the first row that can change are judged again and must come out as before; they are checked,
and any difference falls back to a full check (``fallbacks`` counts them; tests require 0).

Duplicate timestamps are never in a live store (it ignores a row not newer than the last), and
the checker is only used there: a series given with observation times is checked whole.
"""
from __future__ import annotations

import numpy as np

from ..data.feed import Series
from ..data.quality import PEER_MAX_AGE_H, Bands, SeriesQuality, assess, price_group

__all__ = ["Rows", "RollingChecks"]

HOUR = 3600


class Rows:
    """One series' rows in arrival order as growing numpy columns (amortised O(1) append).

    Attributes:
        n: rows held. ``avail`` and :meth:`values` are views of the first ``n`` rows.
    """

    def __init__(self, columns):
        self.n = 0
        self._avail = np.empty(16, dtype=np.int64)
        self._vals = {c: np.empty(16, dtype=np.float64) for c in columns}

    def append(self, avail: int, values: dict[str, float]) -> None:
        """Add one row (``values``: column -> float, every column)."""
        if self.n == self._avail.size:     # doubling: the copies cost O(1) per row on average
            self._avail = np.resize(self._avail, 2 * self.n)
            self._vals = {c: np.resize(v, 2 * self.n) for c, v in self._vals.items()}
        self._avail[self.n] = avail
        for c, v in self._vals.items():
            v[self.n] = values[c]
        self.n += 1

    @property
    def avail(self) -> np.ndarray:
        return self._avail[:self.n]

    def values(self, lo: int = 0) -> dict[str, np.ndarray]:
        """Column -> view of rows ``lo .. n-1``."""
        return {c: v[lo:self.n] for c, v in self._vals.items()}


def _series(name: str, rows: Rows, spec, lo: int = 0, copy: bool = False) -> Series:
    """Rows ``lo ..`` of one store series as a :class:`Series` (copies with ``copy``)."""
    a, vals = rows.avail[lo:], rows.values(lo)
    if copy:
        a, vals = a.copy(), {c: v.copy() for c, v in vals.items()}
    return Series(name, a, vals, spec.interval_h, spec.fill, spec.geometric, {"live": True})


class RollingChecks:
    """Verdicts (reason code, failing column, reference) of every row of a growing store,
    for one :class:`~trimtab.data.quality.Bands`.

    :meth:`update` brings them up to the rows now held; :meth:`quality` gives a tail of them as
    a :class:`~trimtab.data.quality.SeriesQuality`. Cost per update: the rows from each touched
    series' last good row on (a few, while the data is sound), not every row.
    """

    def __init__(self, bands: Bands, specs: dict):
        self.bands = bands
        self.specs = specs                  # series name -> catalog spec (interval, fill, geometric)
        self.n: dict[str, int] = {}         # rows judged, per series
        self.code: dict[str, np.ndarray] = {}
        self.column: dict[str, np.ndarray] = {}
        self.ref: dict[str, np.ndarray] = {}
        self.columns: dict[str, tuple[str, ...]] = {}
        self.fallbacks = 0                  # re-checks that disagreed with kept verdicts (a bug)
        self.full_checks = 0

    def update(self, rows: dict[str, Rows]) -> None:
        """Judge the rows added since the last update, and re-judge what they can change.

        ``rows``: every series of the store (the same names at every call), rows appended in
        availability order; rows already judged are never modified."""
        new = [name for name, r in rows.items() if r.n > self.n.get(name, 0)]
        if not new:
            return
        if not self.n or any(r.n and self.n.get(name, 0) and r.avail[self.n[name]] < r.avail[self.n[name] - 1]
                             for name, r in rows.items() if name in new):
            self._full(rows)
            return
        # A row's verdict reads only its own series and the other series of its price group, so
        # per group (a series without one is its own): the earliest availability among the new
        # rows; the group's rows first used at or after it may change, no others.
        key = {name: price_group(name) or "\0" + name for name in rows}
        low: dict[str, int] = {}
        for name in new:
            a = int(rows[name].avail[self.n.get(name, 0)])
            low[key[name]] = min(low.get(key[name], a), a)
        anchor: dict[str, int] = {}
        first_change: dict[str, int] = {}
        for name, r in rows.items():
            if key[name] not in low:
                continue
            cut = -(-low[key[name]] // HOUR) * HOUR - HOUR     # tick(r) >= low  <=>  avail(r) > cut
            j = int(np.searchsorted(r.avail, cut, side="right"))
            if j >= r.n:
                continue
            first_change[name] = j
            anchor[name] = self._last_good(name, j)
        groups: dict[str, list[str]] = {}
        for name in rows:
            g = price_group(name)
            if g is not None:
                groups.setdefault(g, []).append(name)
        start: dict[str, int] = {}                    # window start per series
        for g, members in groups.items():
            judged = [anchor[m] for m in members if m in anchor]
            if not judged:
                continue
            # Peers' rows from 2 h before the earliest anchor's tick: every row an as-of
            # search at a judged row's tick can hit (older ones are too old to count).
            m = min(-(-int(rows[p].avail[anchor[p]]) // HOUR) * HOUR for p in members if p in anchor)
            for p in members:
                c = int(np.searchsorted(rows[p].avail, m - PEER_MAX_AGE_H * HOUR, side="left"))
                start[p] = min(c, anchor.get(p, c))
        for name, a in anchor.items():
            start.setdefault(name, a)
        sub, judge_from = {}, {}
        for name, r in rows.items():                  # the store's order, as a full check sees it
            if name not in start:
                continue
            sub[name] = _series(name, r, self.specs[name], start[name])
            judge_from[name] = (anchor[name] if name in anchor else r.n) - start[name]
        got = assess(sub, self.bands, judge_from)
        for name, a in anchor.items():
            q, jf, j, old = got[name], judge_from[name], first_change[name], self.n.get(name, 0)
            keep = min(j, old) - a                     # rows judged before whose verdicts are final
            if keep > 0 and not (np.array_equal(q.code[jf:jf + keep], self.code[name][a:a + keep])
                                 and np.array_equal(q.column[jf:jf + keep], self.column[name][a:a + keep])):
                self.fallbacks += 1
                self._full(rows)
                return
        for name, a in anchor.items():
            q, jf, n = got[name], judge_from[name], rows[name].n
            self._grow(name, n)
            self.code[name][a:n] = q.code[jf:]
            self.column[name][a:n] = q.column[jf:]
            self.ref[name][a:n] = q.ref[jf:]
            self.columns[name] = q.columns
            self.n[name] = n

    def quality(self, name: str, lo: int, n: int) -> SeriesQuality:
        """The verdicts of rows ``lo .. n-1`` of ``name`` (copies: later updates do not change them)."""
        code = self.code[name][lo:n].copy()
        return SeriesQuality(code, self.column[name][lo:n].copy(), self.ref[name][lo:n].copy(), code == 0,
                             self.columns[name], [])

    def last_good(self, name: str, end: int) -> int:
        """The last row before ``end`` judged good, or -1."""
        return self._last_good(name, end, none=-1)

    # ------------------------------------------------------------------ internals
    def _last_good(self, name: str, end: int, none: int = 0) -> int:
        code = self.code.get(name)
        if code is None:
            return none
        k = min(end, self.n.get(name, 0)) - 1
        stop = max(k - 64, -1)
        while k > stop:                              # the usual case: a good row just before
            if code[k] == 0:
                return k
            k -= 1
        if k < 0:
            return none
        good = np.flatnonzero(code[:k + 1] == 0)    # a long faulty stretch
        return int(good[-1]) if good.size else none

    def _grow(self, name: str, n: int) -> None:
        code = self.code.get(name)
        if code is None:
            self.code[name] = np.zeros(max(16, n), dtype=np.int8)
            self.column[name] = np.full(max(16, n), -1, dtype=np.int8)
            self.ref[name] = np.full(max(16, n), np.nan)
        elif code.size < n:
            size = max(n, 2 * code.size)
            self.code[name] = np.resize(code, size)
            self.column[name] = np.resize(self.column[name], size)
            self.ref[name] = np.resize(self.ref[name], size)

    def _full(self, rows: dict[str, Rows]) -> None:
        """Judge every row (the first update, or a fallback)."""
        self.full_checks += 1
        got = assess({name: _series(name, r, self.specs[name]) for name, r in rows.items()}, self.bands)
        for name, r in rows.items():
            q = got[name]
            self.code.pop(name, None)
            self._grow(name, r.n)
            self.code[name][:r.n] = q.code
            self.column[name][:r.n] = q.column
            self.ref[name][:r.n] = q.ref
            self.columns[name] = q.columns
            self.n[name] = r.n
