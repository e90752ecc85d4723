"""Market-data checks: every row a strategy can read is checked before it is used.

A row that fails a check is *quarantined*: :class:`trimtab.data.feed.MarketData` builds its
fields from the good rows only (as-of the last good row; Aave indices interpolated between good
samples; a faulty funding event reads as missing, so the venue model settles it at the other
venues' rate), and reports per tick that the series is quarantined
(:meth:`~trimtab.data.feed.MarketData.quarantine`) so the engine neither trades it nor uses it
for a liquidation. Everything here runs once per series at load, vectorised with numpy; the
per-tick loop only reads the results.

Checks, by series (the series name says its kind, ``data/README.md``):

* every checked column: not NaN, not +-inf (``nan``, ``inf``);
* prices (``perp``/``spot``/``dex`` bars: open, high, low, close; ``oracle`` price), gas
  prices and Aave indices: strictly positive (``zero``, ``negative``);
* Aave rates: not negative;
* **cross-venue deviation** (``cross_venue``), for prices of one asset quoted by several
  series (the ETH group is the ETH perps on Binance, Bybit and OKX, Bybit spot, the Uniswap
  WETH/USDT pool and Aave's WETH/USD oracle). For a row available at ``a``, on the tick
  ``t = a`` rounded up to the hour where it is first used, each price column ``x`` (a bar's
  open, high, low, close; an oracle's price) is compared with the median of itself and the
  same column of every *other* series of the group that has a good row no older than
  :data:`PEER_MAX_AGE_H` at ``t`` (an oracle price stands for any column; its close for an
  oracle's price). No look-ahead: nothing after ``t`` is read. With at least three values in
  that median, the row is faulty when ``|x / median - 1| > max_cross_venue_deviation``. A x100 spike
  on one venue moves the median not at all, so it is caught; a crash that every venue shares
  is not a fault.
* **jump** (``jump``), for prices without three such values (a token quoted by one pool, an
  LST/ETH exchange rate, or a group whose other venues are all down): the row is faulty when
  ``|x / last good x - 1| > max_jump``. The *last good* value is the reference, so a value
  that stays off stays quarantined until the series comes back within the band.
* **funding** (``funding_deviation``): a settlement whose rate differs from the median of
  the rates other venues settled for the same asset in the same hour by more than
  ``max_funding_deviation`` (absolute, per interval) when at least two others settled, or
  else from this venue's last good rate by more than that; zero and negative rates are
  ordinary funding rates.
* **Aave indices** (``index_decrease``, ``index_jump``): a liquidity / variable-borrow index
  never falls below its last good value, nor grows faster than ``max_index_growth_per_day``.
* **duplicate timestamps**: rows with the same observation time are reported; the last one
  in the file's order is used (the deterministic choice the loader always made: a later row
  supersedes an earlier one), and it passes the checks above like any other row.

Defaults never fire on the bundled data (checked in ``tests/unit/test_data_quality.py``):
its largest cross-venue deviation is 12% (a Uniswap bar low in the 2025-02-03 crash), its
largest single-observation move 21% (the daily ETH oracle on 2024-08-05), its largest
cross-venue funding difference 0.11% per interval and its fastest index growth 0.06% a day.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field as dc_field

import numpy as np

from .bands import Bands   # the limits live apart, numpy-free (config validation reads them)

__all__ = ["Bands", "Checked", "SeriesQuality", "REASONS", "PEER_MAX_AGE_H", "assess", "price_group"]

HOUR = 3600

#: A peer's close older than this (hours) at the tick is not a reference: hourly venues only.
PEER_MAX_AGE_H = 2.0

#: Reason codes of a faulty row (index = code; 0 = good).
REASONS = ("ok", "nan", "inf", "zero", "negative", "cross_venue", "jump", "funding_deviation",
           "index_decrease", "index_jump")
_C = {r: k for k, r in enumerate(REASONS)}


@dataclass
class SeriesQuality:
    """Per raw row of one series (aligned with its ``avail``).

    Attributes:
        code: int8 reason code (:data:`REASONS`; 0 = good).
        column: int8 index of the column that failed first (into ``columns``), -1 when good.
        ref: the reference the failing value was compared with (median, last good), NaN if none.
        keep: rows used to build fields: good and not superseded by a later duplicate.
        columns: the series' columns, in order.
        duplicates: ``(ts epoch s, rows, values differ)`` per duplicated observation time.
    """

    code: np.ndarray
    column: np.ndarray
    ref: np.ndarray
    keep: np.ndarray
    columns: tuple[str, ...]
    duplicates: list[tuple[int, int, bool]] = dc_field(default_factory=list)

    @property
    def faulty(self) -> int:
        return int(np.count_nonzero(self.code))

    def reason(self, row: int) -> str:
        """One line for a faulty row, e.g. ``cross_venue: 3.5e+05 vs median 3512.3``."""
        c = REASONS[int(self.code[row])]
        ref = float(self.ref[row])
        if c in ("nan", "inf", "zero", "negative"):
            return c
        what = {"cross_venue": "median of the asset's venues", "jump": "last good value",
                "funding_deviation": "median of the other venues' rates", "index_decrease": "last good index",
                "index_jump": "last good index"}[c]
        return f"{c}: vs {what} {ref:.6g}"


_BAR = ("open", "high", "low", "close")
_QUOTES = (("USDT", "USD"), ("_USD", "USD"), ("USD", "USD"), ("WETH", "ETH"), ("_ETH", "ETH"))


def price_group(name: str) -> str | None:
    """The asset group of a price series, e.g. ``perp.okx.ETHUSDT`` -> ``'ETH/USD'``,
    ``oracle.WETH_USD`` -> ``'ETH/USD'``, ``dex.uniswapv3.EIGENWETH`` -> ``'EIGEN/ETH'``;
    ``funding.<venue>.<SYM>`` -> ``'funding:ETH'``; None for other series."""
    kind, _, rest = name.partition(".")
    if kind in ("perp", "spot", "dex", "funding"):
        sym = rest.rpartition(".")[2]
    elif kind == "oracle":
        sym = rest
    else:
        return None
    for suffix, quote in _QUOTES:
        if sym.endswith(suffix) and len(sym) > len(suffix):
            base = sym[: -len(suffix)].rstrip("_")
            base = "ETH" if base == "WETH" else base
            return f"funding:{base}" if kind == "funding" else f"{base}/{quote}"
    return None


def _rules(name: str, columns) -> dict[str, str]:
    """column -> rule: 'price' (finite, > 0), 'index' (price + monotone), 'rate' (finite, >= 0),
    'finite', 'funding'. Unlisted columns (bar volume) are not checked."""
    kind = name.partition(".")[0]
    if kind in ("perp", "spot", "dex"):
        return {c: "price" for c in columns if c in _BAR}
    if kind == "oracle":
        return {c: "price" for c in columns}
    if kind == "aave":
        return {c: ("index" if c.endswith("_index") else "rate") for c in columns}
    if kind == "funding":
        return {c: "funding" for c in columns}
    if kind == "gas":
        return {c: "price" for c in columns}
    return {c: "finite" for c in columns}


def _first_fail(code: np.ndarray, column: np.ndarray, ref: np.ndarray, bad: np.ndarray, reason: str, col: int,
                r: np.ndarray | float = np.nan) -> None:
    """Record ``reason`` on rows newly ``bad`` (the first failing check of a row wins)."""
    new = bad & (code == 0)
    if new.any():
        code[new] = _C[reason]
        column[new] = col
        ref[new] = r[new] if isinstance(r, np.ndarray) else r


def _last_ok(ok: np.ndarray) -> np.ndarray:
    """For each row, the index of the closest earlier-or-same ``ok`` row (-1 if none): the
    running maximum of ``where(ok, row, -1)``, found from the (usually few) rows not ok, as
    an integer running maximum over every row costs ~3x more."""
    idx = np.arange(ok.size)
    bad = np.flatnonzero(~ok)
    if bad.size:
        # A row not ok reads the row before its run of rows not ok (-1 for a run from row 0).
        start = np.ones(bad.size, dtype=bool)
        start[1:] = bad[1:] != bad[:-1] + 1
        idx[bad] = np.maximum.accumulate(np.where(start, bad, -1)) - 1
    return idx


def _prev_good(values: np.ndarray, ok: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    """For each row, the value of the closest earlier ``ok`` row (NaN if none). ``idx``:
    :func:`_last_ok` of ``ok``, when already known (the same for every column of a series)."""
    idx = _last_ok(ok) if idx is None else idx
    prev = np.empty_like(values)
    if values.size:
        prev[0] = np.nan
        # idx is non-decreasing, so the rows with none (-1) are a prefix: one gather, then NaN
        # there (mode "clip" reads row 0 for them, and skips take's buffering of ``out``).
        np.take(values, idx[:-1], out=prev[1:], mode="clip")
        prev[1:int(np.searchsorted(idx, 0)) + 1] = np.nan
    return prev


def _against_last_good(values: np.ndarray, avail: np.ndarray, ok: np.ndarray, test_rows: np.ndarray, fails,
                       shared: dict | None = None, days: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(bad, reference) of rows ``test_rows`` compared with the last *good* row before them.

    ``fails(x, prev, dt_days)`` is vectorised. Comparing with the previous row that passed
    the per-value checks is exact when nothing fails; when something does, a second pass in
    order makes a run of faulty values all compare with the last good one (load-time only).
    With no row to test (a price every row of which other venues confirm) nothing is bad and
    the reference is never read: (all False, NaN). ``shared``: a dict kept across the calls
    for the columns of one series with the same ``avail, ok`` (the last good row before each
    row and the days since it, found once: ~0.1 ms a column). ``days`` False: ``fails`` does not
    read ``dt_days`` (jump, funding), which is then None in the vectorised call and not found."""
    if not test_rows.any():
        return np.zeros(values.shape, dtype=bool), np.full(values.shape, np.nan)
    shared = {} if shared is None else shared
    if "idx" not in shared:
        shared["idx"] = _last_ok(ok)
    if days and "dt" not in shared:
        shared["dt"] = (avail - _prev_good(avail.astype(np.float64), ok, shared["idx"])) / 86400.0
    prev = _prev_good(values, ok, shared["idx"])
    with np.errstate(divide="ignore", invalid="ignore"):
        bad = test_rows & ~np.isnan(prev) & fails(values, prev, shared["dt"] if days else None)
    if not bad.any():
        return bad, prev
    bad = np.zeros_like(ok)
    ref = np.full(values.shape, np.nan)
    last_v, last_t = np.nan, np.nan
    for k in range(values.size):
        if not ok[k]:
            continue
        if test_rows[k] and last_v == last_v:
            with np.errstate(divide="ignore", invalid="ignore"):
                if bool(fails(np.array([values[k]]), np.array([last_v]), np.array([(avail[k] - last_t) / 86400.0]))[0]):
                    bad[k] = True
                    ref[k] = last_v
                    continue
        last_v, last_t = values[k], float(avail[k])
    return bad, ref


def _asof(avail: np.ndarray, values: np.ndarray, ok: np.ndarray, at: np.ndarray, max_age_s: float,
          rows: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Value of the latest ``ok`` row with ``at - max_age_s < avail <= at`` (NaN if none), per ``at``.
    ``rows``: :func:`_asof_rows` of the same ``avail, ok, at, max_age_s``, when already known."""
    hit, src = rows if rows is not None else _asof_rows(avail, ok, at, max_age_s)
    out = np.full(at.shape, np.nan)
    out[hit] = values[src]
    return out


def _asof_rows(avail: np.ndarray, ok: np.ndarray, at: np.ndarray, max_age_s: float,
               good: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ticks ``at`` that have such a row, the row of each) for :func:`_asof`: the same for every
    column of a series, so a peer's four bar columns share one search. ``good``:
    :func:`_good_rows` of ``avail, ok``, when already known."""
    a, rows = good if good is not None else _good_rows(avail, ok)
    if a.size == 0:
        return np.zeros(at.shape, dtype=bool), np.zeros(0, dtype=np.intp)
    k = np.searchsorted(a, at, side="right") - 1
    hit = (k >= 0) & (at - a[np.maximum(k, 0)] <= max_age_s)
    return hit, rows[k[hit]]


def _good_rows(avail: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(``avail`` of the ``ok`` rows, their row numbers): what :func:`_asof_rows` searches, the
    same for every series that has this one as a peer."""
    return avail[ok], np.flatnonzero(ok)


#: Longest hour grid (:func:`_hour_grid`) built for a peer, in hours (~23 years; 1.6 MB).
_GRID_MAX_H = 200_000


def _hour_grid(avail: np.ndarray, ok: np.ndarray, max_age_s: float) -> tuple[int, np.ndarray] | None:
    """:func:`_asof_rows` of ``avail, ok, max_age_s`` for every whole hour at once, so a
    peer's searches (one per series of its group, ~0.2 ms each for ~15k rows) become one
    gather each (:func:`_grid_rows`): ``(h0, rows)``, ``rows[i]`` the row :func:`_asof_rows`
    finds for ``at = (h0 + i) * HOUR`` s, -1 for none (first and last entries -1: the hours
    before and after, where nothing is found).

    Exact for any ``at`` on the hour (a tick always is): the latest ok row with ``avail <= at``
    is the last ok row whose availability rounds up to an hour ``<= at``. None (the caller
    searches instead) unless ``avail`` is int64 and the ok rows are in availability order
    (what the search assumes), or when the hours span more than :data:`_GRID_MAX_H`."""
    if avail.dtype != np.int64 or not np.isfinite(max_age_s) or max_age_s < 0:
        return None
    a, rows = _good_rows(avail, ok)
    if a.size == 0 or (a.size > 1 and not bool((a[1:] >= a[:-1]).all())):
        return None
    lo = -(-int(a[0]) // HOUR)                           # first hour a row is available at
    hi = (int(a[-1]) + int(np.floor(max_age_s))) // HOUR   # last hour the last row is fresh at
    n = hi - lo + 1
    if n > _GRID_MAX_H:
        return None
    n = max(n, 0)
    first = -(-a // HOUR) - lo                           # per ok row, the grid hour it is first seen at
    last = np.ones(a.size, dtype=bool)
    last[:-1] = first[1:] != first[:-1]                  # the latest row of each such hour
    last &= first < n
    src = np.full(n + 2, -1, dtype=np.intp)
    if last.all():                                       # one row an hour (the usual): no selection
        src[first + 1] = rows
    else:
        src[first[last] + 1] = rows[last]
    np.maximum.accumulate(src, out=src)                  # rows increase with avail: latest row so far
    src[n + 1] = -1
    mid = src[1:n + 1]
    stale = (np.arange(lo, lo + n, dtype=np.int64) * HOUR - avail[np.maximum(mid, 0)]) > max_age_s
    mid[stale] = -1
    return lo - 1, src


def _grid_rows(grid: tuple[int, np.ndarray], at_h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows :func:`_asof_rows` finds at hours ``at_h`` (``at / HOUR``, int64), read off
    :func:`_hour_grid`, as :func:`_take_asof` reads them: (row per hour, -1 for none; the
    positions of the -1s)."""
    h0, src = grid
    i = at_h - h0
    np.minimum(i, src.size - 1, out=i)      # hours off the grid read its -1 ends (np.clip: slower)
    np.maximum(i, 0, out=i)
    k = src[i]
    return k, np.flatnonzero(k < 0)


def _take_asof(values: np.ndarray, k: np.ndarray, miss: np.ndarray) -> np.ndarray:
    """:func:`_asof` from (row per ``at``, -1 for none; the positions of the -1s): float64
    ``values[k]``, NaN at ``miss``. One gather and a few NaNs, where :func:`_asof` fills NaNs
    and then scatters through a mask (~1.5x the time; the values are the same)."""
    if miss.size == k.size:
        return np.full(k.shape, np.nan)
    out = values.take(k).astype(np.float64, copy=False)
    out[miss] = np.nan
    return out


def _nanmedian0(stack: np.ndarray) -> np.ndarray:
    """Per column of 2-D ``stack`` (k rows, a few venues), the median of its non-NaN values,
    NaN where there are none: ``np.nanmedian(stack, axis=0)`` bit for bit, without its masked arrays.

    numpy (for fewer than 600 rows) masks the NaNs, sorts, and returns
    ``(0.0 + low + high) / 2`` of the two middle values (low = high for an odd count): the sum
    starts from 0.0, so a zero median is always +0.0 (which of two zeros sorts first never
    shows). The same here, without masked arrays: NaNs sort last as +inf (one sort of every
    column), and only the first ``count`` values of a column are ever picked, so a real +inf is
    picked only where numpy picks it too."""
    nan = np.isnan(stack)
    k = stack.shape[0]
    cnt = k - np.count_nonzero(nan, axis=0)
    s = np.where(nan, np.inf, stack)
    s.sort(axis=0)
    rows = list(s)
    # Columns with every value: the middle rows, whole; the few others by their own count.
    out = rows[(k - 1) // 2] + 0.0
    out += rows[k // 2]
    out /= 2.0
    part = np.flatnonzero(cnt != k)
    if part.size:
        c = cnt[part]
        hi = c // 2
        s = np.array([r[part] for r in rows])      # those columns only, ranks as rows
        cols = np.arange(part.size)
        v = s[np.maximum(hi - 1 + (c & 1), 0), cols] + 0.0
        v += s[np.minimum(hi, k - 1), cols]
        v /= 2.0
        v[c == 0] = np.nan
        out[part] = v
    return out


def _cross_venue(x: np.ndarray, vals: list[np.ndarray], test: np.ndarray, dev: float,
                 scratch: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(bad, median) of the cross-venue check of price ``x`` (shape (n,)) on the rows ``test``:
    ``bad = test & (|x / m - 1| > dev)``, ``m`` the median of the non-NaN values of ``vals``
    (k arrays of n: x itself on its good rows, then the peers' as-of values) per row, as
    ``_nanmedian0`` gives it; ``median`` holds ``m`` on the bad rows (NaN elsewhere: it is
    only ever read there, as a faulty row's reference).

    The median is sorted out only where it could matter: it lies between the least and the
    greatest value of its row (``(0.0 + a + b) / 2`` of two of them, which cannot leave that
    range while ``2 * max`` is finite), and for x > 0 the float ``|x / m - 1|`` is monotone
    on each side of x in m (division and subtraction round monotonically), so it is largest
    at one of the two ends. A row whose ends are both within ``dev`` is not bad, exactly as
    the median would say; every other row (and any row whose ends are not positive and far
    from overflow) gets the median itself.

    ``scratch``: two arrays like ``vals[0]`` to overwrite, reused across a series' columns
    (two fresh ~120 kB arrays a column cost more than the copy into them)."""
    n = x.shape[0]
    med = np.full(n, np.nan)
    if not test.any():
        return np.zeros(n, dtype=bool), med
    with np.errstate(all="ignore"):
        if scratch is None or scratch[0].dtype != vals[0].dtype or scratch[0].shape != vals[0].shape:
            lo, hi = vals[0].copy(), vals[0].copy()
        else:
            lo, hi = scratch
            np.copyto(lo, vals[0])
            np.copyto(hi, vals[0])
        for v in vals[1:]:
            np.fmin(lo, v, out=lo)
            np.fmax(hi, v, out=hi)
        # safe = (lo > 0) & (hi < 1e300) & (x > 0) & (|x / lo - 1| <= dev) & (|x / hi - 1| <= dev),
        # the same float operations in place (arrays of ~15k: fresh temporaries cost as much).
        safe = lo > 0.0
        safe &= hi < 1e300
        safe &= x > 0.0
        for m in (lo, hi):
            np.divide(x, m, out=m)
            m -= 1.0
            np.abs(m, out=m)
            safe &= m <= dev
    rows = np.flatnonzero(test & ~safe)
    bad = np.zeros(n, dtype=bool)
    if rows.size:
        with np.errstate(all="ignore"):
            m = _nanmedian0(np.array([v[rows] for v in vals]))
            hit = np.abs(x[rows] / m - 1.0) > dev
        bad[rows[hit]] = True
        med[rows] = m
    return bad, med


def _all_pass(v: np.ndarray, rule: str) -> bool:
    """Whether no value of non-empty float column ``v`` fails the per-value checks of ``rule`` (in
    :func:`_checked`): two reductions instead of four masks, for the usual all-good column.
    ``min`` is NaN when any value is, and every comparison with NaN is False."""
    lo, hi = v.min(), v.max()
    if rule in ("price", "index"):
        return bool(lo > 0) and bool(hi < np.inf)
    if rule == "rate":
        return bool(lo >= 0) and bool(hi < np.inf)
    return bool(lo > -np.inf) and bool(hi < np.inf)


def _checked(series: dict) -> tuple[dict[str, SeriesQuality], dict[str, np.ndarray]]:
    """The per-value checks of every row of every series, and the duplicates: (``name ->
    SeriesQuality`` with those verdicts only, ``name ->`` rows that pass them and are kept)."""
    out: dict[str, SeriesQuality] = {}
    basic: dict[str, np.ndarray] = {}      # rows passing the per-value checks
    for name, s in series.items():
        cols = tuple(s.values)
        n = s.avail.size
        code = np.zeros(n, dtype=np.int8)
        column = np.full(n, -1, dtype=np.int8)
        ref = np.full(n, np.nan)
        for j, c in enumerate(cols):
            rule = _rules(name, cols).get(c)
            if rule is None:
                continue
            v = s.values[c]
            if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size and _all_pass(v, rule):
                continue
            _first_fail(code, column, ref, np.isnan(v), "nan", j)
            _first_fail(code, column, ref, np.isinf(v), "inf", j)
            if rule in ("price", "index"):
                _first_fail(code, column, ref, v == 0, "zero", j)
                _first_fail(code, column, ref, v < 0, "negative", j)
            elif rule == "rate":
                _first_fail(code, column, ref, v < 0, "negative", j)
        keep = np.ones(n, dtype=bool)
        dups: list[tuple[int, int, bool]] = []
        ts = getattr(s, "ts", None)
        # Strictly increasing times (the bundle's) have no duplicate: the sort below would find none.
        if ts is not None and ts.size > 1 and not bool((ts[1:] > ts[:-1]).all()):
            order = np.argsort(ts, kind="stable")
            st = ts[order]
            same = np.nonzero(st[1:] == st[:-1])[0]
            if same.size:
                keep[order[same]] = False           # superseded by the next row with the same time
                for t in np.unique(st[same + 1]):
                    rows = order[st == t]
                    differ = any(not np.array_equal(s.values[c][rows], s.values[c][rows[:1]].repeat(rows.size), equal_nan=True)
                                 for c in cols)
                    dups.append((int(t), int(rows.size), bool(differ)))
        out[name] = SeriesQuality(code, column, ref, keep, cols, dups)
        basic[name] = (code == 0) & keep

    return out, basic


def _groups(series: dict) -> dict[str, list[str]]:
    """Price group (:func:`price_group`) -> its series, in ``series`` order."""
    groups: dict[str, list[str]] = {}
    for name in series:
        g = price_group(name)
        if g is not None:
            groups.setdefault(g, []).append(name)
    return groups


def _judge(name: str, series: dict, out: dict[str, SeriesQuality], basic: dict[str, np.ndarray], groups: dict[str, list[str]],
           bands: Bands, judge_from: dict[str, int] | None, memo: dict | None = None) -> None:
    """The checks of series ``name`` against the others and its own history (cross-venue,
    funding, jump, index), added to ``out[name]`` in place. Of the other series it reads only
    their values and ``basic`` rows (:func:`_checked`), never their verdicts: series can be
    judged in any order, or only some of them, with the same verdicts. ``memo``: a dict kept
    across the judgements of one ``series, basic`` (each peer's :func:`_hour_grid` or
    :func:`_good_rows`, found once)."""
    memo = {} if memo is None else memo

    def good(p: str) -> tuple[np.ndarray, np.ndarray]:
        g = memo.get(p)
        if g is None:
            g = memo[p] = _good_rows(series[p].avail, basic[p])
        return g

    def peer_rows_at(p: str, max_age_s: float) -> tuple[np.ndarray, np.ndarray]:
        # :func:`_asof_rows` of peer ``p`` at this series' ticks, as :func:`_take_asof` reads
        # them: off the peer's hour grid (found once, kept in ``memo``) when that is no longer
        # than a few times the ticks (then cheaper than a search), else by searching its good
        # rows. Both give the same rows.
        key = ("grid", p, max_age_s)
        grid = memo.get(key)
        if grid is None and tick_h is not None:
            ps = series[p]
            span = (int(ps.avail[-1]) - int(ps.avail[0])) // HOUR if ps.avail.size else 0
            if span <= 4 * tick_h.size + 1024:
                grid = memo[key] = _hour_grid(ps.avail, basic[p], max_age_s) or False
        if grid and tick_h is not None:
            return _grid_rows(grid, tick_h)
        hit, src = _asof_rows(series[p].avail, basic[p], tick, max_age_s, good(p))
        k = np.full(tick.shape, -1, dtype=np.intp)
        k[hit] = src
        return k, np.flatnonzero(~hit)
    s = series[name]
    q = out[name]
    if s.avail.size == 0 or (judge_from is not None and judge_from.get(name, 0) >= s.avail.size):
        return                                             # nothing to judge (context rows only)
    rules = _rules(name, q.columns)
    g = price_group(name)
    peers = [p for p in groups.get(g, []) if p != name]
    # The tick that first uses the row, and (int64 rows, for peer_rows_at) its hour number.
    tick_h = -(-s.avail // HOUR) if s.avail.dtype == np.int64 else None
    tick = tick_h * HOUR if tick_h is not None else -(-s.avail // HOUR) * HOUR
    own = basic[name]                                      # rows judged and used as references
    if judge_from is not None and judge_from.get(name, 0) > 0:
        own = own.copy()
        own[:judge_from[name]] = False
    ok = own.copy()
    if g is not None and g.startswith("funding:"):
        c = q.columns.index("rate") if "rate" in q.columns else 0
        v = s.values[q.columns[c]]
        others = np.array([_asof(series[p].avail, series[p].values["rate"], basic[p], tick, HOUR - 1)
                           for p in peers if "rate" in series[p].values]) if peers else np.empty((0, tick.size))
        cnt = np.sum(~np.isnan(others), axis=0) if others.size else np.zeros(tick.size, dtype=int)
        with np.errstate(all="ignore"):
            med = _nanmedian0(np.where(cnt >= 2, others, 0.0)) if others.size else np.full(tick.size, np.nan)
        bad = ok & (cnt >= 2) & (np.abs(v - med) > bands.max_funding_deviation)
        _first_fail(q.code, q.column, q.ref, bad, "funding_deviation", c, med)
        ok = own & (q.code == 0)
        bad, r = _against_last_good(v, s.avail, ok, cnt < 2, lambda x, p, d: np.abs(x - p) > bands.max_funding_deviation,
                                    days=False)
        _first_fail(q.code, q.column, q.ref, bad, "funding_deviation", c, r)
        return
    price_cols = [j for j, c in enumerate(q.columns) if rules.get(c) == "price"]
    if price_cols and g is not None:
        confirmed = np.ones(s.avail.size, dtype=bool)
        scratch = (np.empty(s.avail.size), np.empty(s.avail.size))      # _cross_venue's, every column
        peer_rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for j in price_cols:
            col = q.columns[j]
            x = s.values[col]
            vals = [np.where(ok, x, np.nan)]
            for p in peers:      # the same column of the other venues (an oracle's price for any)
                ps = series[p]
                pc = col if col in ps.values else ("price" if "price" in ps.values else "close" if col == "price" else None)
                if pc in ps.values:
                    if p not in peer_rows:
                        peer_rows[p] = peer_rows_at(p, PEER_MAX_AGE_H * HOUR)
                    vals.append(_take_asof(ps.values[pc], *peer_rows[p]))
            cnt = sum((v == v).view(np.int8) for v in vals)      # non-NaN values per tick
            confirmed &= cnt >= 3
            bad, med = _cross_venue(x, vals, ok & (cnt >= 3), bands.max_cross_venue_deviation, scratch)
            _first_fail(q.code, q.column, q.ref, bad, "cross_venue", j, med)
        unconfirmed = ~confirmed
    else:
        unconfirmed = np.ones(s.avail.size, dtype=bool)
    ok = own & (q.code == 0)
    if price_cols and name.partition(".")[0] != "gas":      # gas prices jump 100x for real
        last_good: dict = {}      # every column reads the same ``ok`` rows (code is not re-read)
        for j in price_cols:
            x = s.values[q.columns[j]]
            bad, r = _against_last_good(x, s.avail, ok, unconfirmed,
                                        lambda v, p, d: np.abs(v / p - 1.0) > bands.max_jump, last_good, days=False)
            _first_fail(q.code, q.column, q.ref, bad, "jump", j, r)
    for j, c in enumerate(q.columns):
        if rules.get(c) != "index":
            continue
        ok = own & (q.code == 0)
        x = s.values[c]
        # One pass for both, so a row after a spike is compared with the last good index.
        bad, r = _against_last_good(x, s.avail, ok, np.ones_like(ok), lambda v, p, d: (v < p) | (
            (v / p) ** (1.0 / np.maximum(d, 1.0 / 24)) - 1.0 > bands.max_index_growth_per_day))
        with np.errstate(invalid="ignore"):
            _first_fail(q.code, q.column, q.ref, bad & (x < r), "index_decrease", j, r)
        _first_fail(q.code, q.column, q.ref, bad, "index_jump", j, r)


def assess(series: dict, bands: Bands | None = None, judge_from: dict[str, int] | None = None) -> dict[str, SeriesQuality]:
    """Check every row of every series (``name -> trimtab.data.feed.Series``).

    Returns ``name -> SeriesQuality``. Pure: nothing is modified. See the module docstring
    for the checks; ``bands`` defaults to :class:`Bands`.

    ``judge_from`` (``name -> row``, for re-checking the tail of a growing store,
    :mod:`trimtab.live.checks`): the rows of ``name`` before that row are *context* only --
    checked per value, so they serve the other series' cross-venue and funding medians (which
    read only the per-value result of a peer's rows), but neither judged further nor a
    reference for their own series' last-good checks. Their verdicts in the result are
    meaningless; series not listed are judged whole. None: every row is judged.
    """
    bands = bands or Bands()
    out, basic = _checked(series)
    groups = _groups(series)
    memo: dict = {}
    for name in series:
        _judge(name, series, out, basic, groups, bands, judge_from, memo)
    for q in out.values():
        q.keep &= q.code == 0
    return out


class Checked(Mapping):
    """:func:`assess` of ``series`` with ``bands`` (``judge_from`` None), each series judged when
    first read: the same ``name -> SeriesQuality`` mapping bit for bit (:func:`_judge`), without
    judging the series no one reads (a run reads its strategy's few of the bundle's ~30). The
    per-value checks of every series, which any judgement may read, are done at once."""

    def __init__(self, series: dict, bands: Bands | None = None):
        self._series = series
        self._bands = bands or Bands()
        self._out, self._basic = _checked(series)
        self._groups = _groups(series)
        self._judged: set[str] = set()
        self._memo: dict = {}

    def __getitem__(self, name: str) -> SeriesQuality:
        q = self._out[name]   # KeyError for a series it does not hold, as a dict
        if name not in self._judged:
            _judge(name, self._series, self._out, self._basic, self._groups, self._bands, None, self._memo)
            q.keep &= q.code == 0
            self._judged.add(name)
        return q

    def __iter__(self):
        return iter(self._out)

    def __len__(self) -> int:
        return len(self._out)
