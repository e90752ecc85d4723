"""Per-tick market view over the hourly feed, for the hot loop.

Columns are copied once from :class:`trimtab.data.feed.MarketData` into Python lists, so a
read in the loop is a list index rather than a pandas or numpy call (DESIGN.md: pandas
belongs to loading; the loop works on plain floats). ``view.i`` is the current tick; the view
only ever reads index ``i`` or earlier, which is what keeps decisions free of look-ahead.

Bad data (trimtab.data.quality): the columns hold only values that passed the data checks
(a faulty row reads as the last good one), and a series whose latest row is faulty is
*quarantined* at that tick: :meth:`MarketView.fresh` is False for it, so nothing trades on it
(exactly as for a stale feed), and :meth:`MarketView.quarantined_at` lists it for the journal.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..timeutil import UtcTime
from .feed import DataError, MarketData
from .quality import REASONS


def float_list(values: np.ndarray, distinct: bool = False) -> list[float]:
    """``values.tolist()``: the same Python floats, bit for bit (NaN payloads and -0.0 kept), but
    one float object shared by each run of equal values (``distinct``: by all equal values);
    without ``distinct``, a column of mostly single-tick runs (over 3/4) is the plain list.

    A run's view holds ~70 columns of the window's ticks as lists (a list read is the cheapest
    read in the hot loop); a float object is 24 bytes behind its 8-byte slot, and as-of fields
    repeat a value for hours (rates, indices between samples, NaN of event series), ages take a
    few dozen values. Sharing them keeps ~10 MB off the flagship's peak.

    Args:
        values: float64, shape (n,). distinct: share across the whole column (ages), not only
            consecutive runs (a sort: only worth it for few distinct values).
    """
    a = np.ascontiguousarray(values, dtype=np.float64)
    if a.size == 0:
        return []
    bits = a.view(np.int64)   # equal bits, not ==: 0.0 and -0.0 stay apart, NaN joins NaN
    new = np.empty(a.size, dtype=bool)
    new[0] = True
    np.not_equal(bits[1:], bits[:-1], out=new[1:])
    heads = np.flatnonzero(new)
    if distinct:
        # Sorting the runs' first values only: an age column repeats each value for a few ticks.
        uniq, which = _unique_inverse(bits[heads])
        per_run = _objects(uniq.view(np.float64).tolist())[which]
    elif heads.size * 4 > a.size * 3:
        # Mostly distinct (an hourly price): sharing would save under a quarter of the
        # objects, and repeating each run's object costs ~the plain list again.
        return a.tolist()
    else:
        per_run = _objects(a[heads].tolist())
    if heads.size == a.size:
        return per_run.tolist()
    return np.repeat(per_run, np.diff(heads, append=a.size)).tolist()


def _unique_inverse(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(x, return_inverse=True)`` of a non-empty int64 array of shape (n,): the same
    two arrays, by a stable argsort. An age column is runs of rising values, which the stable
    sort takes in a few passes (np.unique's quicksort took ~2-5x as long on the flagship's ages)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    new = np.empty(x.size, dtype=bool)
    new[0] = True
    np.not_equal(xs[1:], xs[:-1], out=new[1:])
    which = np.empty(x.size, dtype=np.intp)
    which[order] = np.cumsum(new) - 1
    return xs[new], which


def _objects(floats: list[float]) -> np.ndarray:
    """``floats`` as a numpy object array (shape (n,)) of those very float objects, which numpy
    repeats and indexes by reference (``np.array`` of a float list would make float64)."""
    out = np.empty(len(floats), dtype=object)
    out[:] = floats
    return out


class Columns(dict):
    """name -> list of floats per tick, each list built when first read (``cols[name]``,
    ``cols.get(name)``) by ``build(name)`` and then kept: the same list object for the view's
    life. ``name in cols`` is True for every added name, built or not; iterating, ``len`` and
    ``items()`` see only the built ones (:meth:`build_all` builds the rest).

    Args:
        build: ``name -> list[float]`` (the view's column or age of that name).
    """

    def __init__(self, build):
        super().__init__()
        self._build = build
        self._pending: set[str] = set()

    def add(self, name: str) -> None:
        """Register ``name``, built on its first read."""
        if not dict.__contains__(self, name):
            self._pending.add(name)

    def names(self) -> set[str]:
        """Every added name, built or not."""
        return set(dict.keys(self)) | self._pending

    def build_all(self) -> None:
        """Build every name not read yet."""
        for name in sorted(self._pending):
            self[name]

    def __missing__(self, name: str) -> list[float]:
        if name not in self._pending:
            raise KeyError(name)
        col = self._build(name)
        dict.__setitem__(self, name, col)
        self._pending.discard(name)
        return col

    def __contains__(self, name) -> bool:
        return dict.__contains__(self, name) or name in self._pending

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default


class TickTimes(Sequence):
    """A view's tick times, ``times[i]`` the :class:`trimtab.timeutil.UtcTime` of ``epoch[i]``
    (a slice: a list of them), made when read from the view's ``epoch`` list, so they grow with
    it (:meth:`MarketView.extend`). A list of every tick's datetime held ~1 MB for a run that
    reads a few of them (a plan's time, a quarantine note)."""

    def __init__(self, epoch: list[int]):
        self._epoch = epoch

    def __len__(self) -> int:
        return len(self._epoch)

    def __getitem__(self, i):
        if isinstance(i, slice):
            of = UtcTime.of_epoch
            return [of(e) for e in self._epoch[i]]
        return UtcTime.of_epoch(self._epoch[i])


def series_of(field: str) -> str:
    """``perp.binance.ETHUSDT.close`` -> ``perp.binance.ETHUSDT``."""
    return field.rsplit(".", 1)[0]


class MarketView:
    """Reads fields at the current tick ``i``.

    Args:
        data: the aligned market data (hourly clock).
        fields: every field the strategy may read; loaded eagerly.

    Raises:
        DataError: a field or series the data does not have.
    """

    def __init__(self, data: MarketData, fields: set[str]):
        self.data = data
        # Each tick's time as a datetime (trimtab.timeutil.UtcTime), not a Timestamp: pandas
        # stays out of a run; made when read, from ``epoch`` (TickTimes).
        self.epoch = data.epoch.tolist()
        self.times = TickTimes(self.epoch)
        self.n = len(self.epoch)
        # Built on first read (Columns): a strategy's venues list fields a run may never read
        # (half the flagship's), ~5 MB of its peak as lists.
        self.cols = Columns(lambda f: float_list(self.data.field(f)))
        self.ages = Columns(lambda s: float_list(self.data.age_hours(s), distinct=True))
        self.absent: set[str] = set()
        self._fresh: dict[tuple[str, float], list[bool]] = {}
        self._age_ok: dict[tuple[str, float], list[bool]] = {}   # (series, max age) -> age_flags
        self.quar: dict[str, list[int]] = {}        # series -> reason code per tick (only series with faults)
        self._qrows: dict[int, list[tuple[str, MarketData, int]]] = {}   # tick -> (series, its data, faulty row)
        self.i = 0
        self.add_fields(fields)

    def add_fields(self, fields: set[str]) -> None:
        """Load more fields (idempotent). A field whose series the bundle lacks (a venue
        catalog lists an instrument with no data, e.g. an OKX BTC perp) is remembered as
        absent: reading it raises DataError, it never reads as a value."""
        have = set(self.data.series_names())
        for f in sorted(set(fields) - self.cols.names() - self.absent):
            s = series_of(f)
            if s not in have:
                self.absent.add(f)
                continue
            if f.rpartition(".")[2] not in self.data.fields(s):
                self.data.field(f)   # raises the DataError (close matches) here, not at a first read
            self.cols.add(f)
            if s not in self.ages:
                self.ages.add(s)
                self._add_quarantine(s, self.data, 0)

    def _add_quarantine(self, s: str, data: MarketData, first: int) -> None:
        codes, rows = data.quarantine(s)
        if s in self.quar:
            self.quar[s].extend(codes.tolist())
        elif codes.any():
            self.quar[s] = [0] * first + codes.tolist()
        for k in np.nonzero(codes)[0].tolist():
            self._qrows.setdefault(first + k, []).append((s, data, int(rows[k])))

    def quarantined(self, field_or_series: str, i: int | None = None) -> bool:
        """True when the series' latest row at tick ``i`` failed the data checks."""
        s = field_or_series if field_or_series in self.ages else series_of(field_or_series)
        q = self.quar.get(s)
        return bool(q and q[self.i if i is None else i])

    def quarantined_ticks(self) -> list[int]:
        """The ticks of the view at which :meth:`quarantined_at` is not empty, ascending."""
        return sorted(t for t, rows in self._qrows.items() if rows and 0 <= t < self.n)

    def quarantined_at(self, i: int) -> list[tuple[str, str, float, str]]:
        """``(series, field, faulty value, reason)`` of every loaded series quarantined at tick ``i``."""
        rows = self._qrows.get(i)
        if not rows:  # the usual tick: nothing quarantined, nothing to sort
            return []
        out = []
        for s, data, row in sorted(rows, key=lambda x: x[0]):
            col, value, reason = data.fault(s, row)
            out.append((s, f"{s}.{col}", value, reason))
        return out

    def extend(self, ticks: MarketData) -> int:
        """Append the hourly ticks of ``ticks`` (a live feed's newest hour(s)) to the view.

        ``ticks`` must hold the same series as the view's data and start one hour after the
        view's last tick. Every loaded column and age, the clock (``times``, and ``epoch``,
        which stays the same list object: RewardAccrual and the executor hold it) and the
        cached freshness and age flags grow by ``len(ticks.index)``; nothing already read changes.
        The values come from :meth:`MarketData.field` / :meth:`MarketData.age_hours`, so a
        live tick is put on the clock by exactly the loader's rules (as-of, event, ages).

        Returns:
            the index of the first appended tick.

        Raises:
            DataError: the ticks do not continue the clock hour by hour.
        """
        first = self.n
        # Every column grows from here on: the ones not read yet are built first, on the old clock.
        self.cols.build_all()
        self.ages.build_all()
        ticks = ticks.with_checks(self.data.bands)
        new = [int(x) for x in ticks.epoch]
        if new and self.epoch and new[0] != self.epoch[-1] + 3600:
            raise DataError(f"ticks starting {UtcTime.of_epoch(new[0])} do not continue the clock after {self.times[-1]}")
        self.epoch.extend(new)
        self.n += len(new)
        for f, col in self.cols.items():
            col.extend(ticks.field(f).tolist())
        for s, col in self.ages.items():
            col.extend(ticks.age_hours(s).tolist())
            self._add_quarantine(s, ticks, first)
        for (f, max_age), flags in self._fresh.items():
            if f in self.cols:
                ages = self.ages[series_of(f)]
                q = self.quar.get(series_of(f))
                flags.extend(not math.isnan(v) and a <= max_age and not (q and q[first + k])
                             for k, (v, a) in enumerate(zip(self.cols[f][first:], ages[first:])))
            else:
                flags.extend([False] * len(new))
        for (s, max_age), flags in self._age_ok.items():
            flags.extend([a <= max_age for a in self.ages[s][first:]])
        return first

    @property
    def time(self):
        return self.times[self.i]

    def get(self, field: str, i: int | None = None) -> float:
        """Value of ``field`` at tick ``i`` (default: the current tick); NaN if no data yet.

        Raises:
            DataError: the bundle has no such series.
        """
        try:
            return self.cols[field][self.i if i is None else i]
        except KeyError:
            raise DataError(f"{field}: no such series in the bundled data") from None

    def age(self, field_or_series: str, i: int | None = None) -> float:
        """Hours since the series behind ``field_or_series`` last had an observation (inf if absent)."""
        s = field_or_series if field_or_series in self.ages else series_of(field_or_series)
        if s not in self.ages:
            return math.inf
        return self.ages[s][self.i if i is None else i]

    def fresh(self, field: str, max_age_h: float, i: int | None = None) -> bool:
        """True when the field has a value no older than ``max_age_h`` hours and its series
        is not quarantined (:meth:`quarantined`): the test for trading on it."""
        try:
            return self._fresh[(field, max_age_h)][self.i if i is None else i]
        except KeyError:  # first ask for this (field, max age): computed once for the window
            flags = self._fresh[(field, max_age_h)] = self._fresh_flags(field, max_age_h)
        return flags[self.i if i is None else i]

    def fresh_flags(self, field: str, max_age_h: float) -> list[bool]:
        """The list behind :meth:`fresh`: ``flags[i]`` is ``fresh(field, max_age_h, i)`` for every
        tick. The same list object for the view's life (:meth:`extend` grows it in place), so
        a hot caller may keep it and index it."""
        flags = self._fresh.get((field, max_age_h))
        if flags is None:
            flags = self._fresh[(field, max_age_h)] = self._fresh_flags(field, max_age_h)
        return flags

    def ages_of(self, field_or_series: str) -> list[float] | None:
        """The list behind :meth:`age` (hours since the series' last observation per tick; the
        same object for the view's life, grown in place by :meth:`extend`), or None when the
        series is not loaded (:meth:`age` is then inf)."""
        s = field_or_series if field_or_series in self.ages else series_of(field_or_series)
        return self.ages.get(s)

    def age_flags(self, field_or_series: str, max_age_h: float) -> list[bool] | None:
        """``flags[i]`` is ``age(field_or_series, i) <= max_age_h`` for every tick: the same list
        object for the view's life (grown in place by :meth:`extend`), compared as arrays
        (:meth:`ages_array`: no list of the ages is built). None when the series is not loaded
        (:meth:`age` is then inf) or ``max_age_h`` is not a number (compare :meth:`ages_of`)."""
        s = field_or_series if field_or_series in self.ages else series_of(field_or_series)
        if s not in self.ages or not isinstance(max_age_h, (int, float)):
            return None
        flags = self._age_ok.get((s, max_age_h))
        if flags is None:
            flags = self._age_ok[(s, max_age_h)] = (self.ages_array(s) <= max_age_h).tolist()
        return flags

    def column_array(self, field: str) -> np.ndarray | None:
        """The column ``field`` as a float64 array of shape ``(n,)`` (the data's own, read-only,
        while :meth:`_as_loaded`: no list built), or None when the view does not hold it."""
        if field not in self.cols:
            return None
        if self._as_loaded():
            return np.asarray(self.data.field(field), dtype=np.float64)
        return np.asarray(self.cols[field], dtype=np.float64)

    def ages_array(self, field_or_series: str) -> np.ndarray | None:
        """:meth:`ages_of` as a float64 array of shape ``(n,)`` (the data's own, read-only, while
        nothing was appended: no list built), or None when the series is not loaded."""
        s = field_or_series if field_or_series in self.ages else series_of(field_or_series)
        if s not in self.ages:
            return None
        if self._as_loaded():
            return np.asarray(self.data.age_hours(s), dtype=np.float64)
        return np.asarray(self.ages[s][:self.n], dtype=np.float64)

    def quarantine_summary(self, upto: int) -> dict[str, dict]:
        """Per quarantined series, over ticks ``[0, upto)``: ``ticks`` (count), ``first`` and
        ``last`` (ISO times) and ``reasons`` (reason -> ticks), for the run summary."""
        out: dict[str, dict] = {}
        for s in sorted(self.quar):
            ticks = [k for k, c in enumerate(self.quar[s][:upto]) if c]
            if not ticks:
                continue
            reasons: dict[str, int] = {}
            for k in ticks:
                r = REASONS[self.quar[s][k]]
                reasons[r] = reasons.get(r, 0) + 1
            out[s] = {"ticks": len(ticks), "first": f"{self.times[ticks[0]]:%Y-%m-%dT%H:%MZ}",
                      "last": f"{self.times[ticks[-1]]:%Y-%m-%dT%H:%MZ}", "reasons": reasons}
        return out

    def _as_loaded(self) -> bool:
        """True while nothing was appended (:meth:`extend`): every column, age and quarantine list
        then holds exactly its ``data`` array's values, so whole-window work may read the arrays
        (no list to build or convert back)."""
        return self.n == self.data.epoch.size

    def fresh_array(self, field: str, max_age_h: float) -> np.ndarray:
        """:meth:`fresh_flags` as a bool array of shape ``(n,)`` (a new array, not kept)."""
        ok = self._fresh_array(field, max_age_h)
        return ok if ok is not None else np.asarray(self.fresh_flags(field, max_age_h)[:self.n], dtype=bool)

    def _fresh_array(self, field: str, max_age_h: float) -> np.ndarray | None:
        """The flags of a loaded ``field`` for a numeric ``max_age_h`` as a bool array: a value,
        fresh enough, not quarantined. From the data's own arrays while :meth:`_as_loaded` (the
        values the lists hold), else from the view's lists (zip's length: the shortest). None
        otherwise: the caller compares tick by tick."""
        if not (isinstance(max_age_h, (int, float)) and field in self.cols):
            return None
        s = series_of(field)
        q = self.quar.get(s)  # its codes (_add_quarantine): a series with faults only
        if self._as_loaded():
            vals, ages, codes = self.data.field(field), self.data.age_hours(s), self.data.quarantine(s)[0] if q else None
        else:
            vals, ages = self.cols[field], self.ages[s]
            n = min(len(vals), len(ages), len(q)) if q else min(len(vals), len(ages))
            vals, ages, codes = vals[:n], ages[:n], q[:n] if q else None
        ok = ~np.isnan(np.asarray(vals, dtype=np.float64)) & (np.asarray(ages, dtype=np.float64) <= max_age_h)
        if codes is not None:
            ok &= np.asarray(codes) == 0
        return ok

    def _fresh_flags(self, field: str, max_age_h: float) -> list[bool]:
        # Computed once per (field, max age) for the whole window: the loop asks every tick.
        if field not in self.cols:
            return [False] * self.n
        ok = self._fresh_array(field, max_age_h)
        if ok is not None:
            return ok.tolist()
        # max_age_h is not a number: compared per tick as before (and raising there)
        ages = self.ages[series_of(field)]
        q = self.quar.get(series_of(field))
        vals = self.cols[field]
        if q:
            return [not math.isnan(v) and a <= max_age_h and not c for v, a, c in zip(vals, ages, q)]
        return [not math.isnan(v) and a <= max_age_h for v, a in zip(vals, ages)]

    def require(self, field: str, i: int | None = None) -> float:
        """Value of ``field``; raises DataError rather than returning NaN."""
        try:
            v = self.cols[field][self.i if i is None else i]
        except KeyError:
            raise DataError(f"{field}: no such series in the bundled data") from None
        if v != v:  # NaN (columns hold floats only: float_list(MarketData.field(...)))
            j = self.i if i is None else i
            t = self.times[j]
            if self.quarantined(field, j):
                bad = [d for d in self.quarantined_at(j) if d[0] == series_of(field)]
                what = f"{bad[0][1]} = {bad[0][2]!r} ({bad[0][3]})" if bad else "a faulty value"
                raise DataError(f"{series_of(field)} is quarantined at {t:%Y-%m-%d %H:%M}Z: {what}, and it has no "
                                f"earlier good value to fall back on; cannot value or trade on it")
            raise DataError(f"{field} has no data at {t:%Y-%m-%d %H:%M}Z; cannot value or trade on it")
        return v
