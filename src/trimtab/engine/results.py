"""Performance statistics of an equity series (share class units, hourly).

* APR = (E_end / E_start - 1) x 365 / days; APY = (E_end / E_start) ^ (365 / days) - 1;
* max drawdown = max over t of 1 - E_t / max(E_s, s <= t), a fraction;
* Sharpe = mean / std of daily returns (equity sampled at 00:00 UTC) x sqrt(365), risk-free 0
  (crypto trades every day, hence 365).

Also the run's ``equity.csv`` (:func:`write_equity_csv`): equity and NAV per tick, then the
risk metrics the engine journaled at that tick.
"""
from __future__ import annotations

import math
import operator
import sqlite3
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .journal import MetricsRow, read_metrics


def performance(equity) -> dict[str, float]:
    """APY, APR, max drawdown and Sharpe of an equity ``pd.Series`` indexed by UTC timestamps
    (:func:`performance_of` on its values and epoch seconds: the same floats)."""
    return performance_of(equity.to_numpy(dtype=np.float64), equity.index.as_unit("s").asi8)


def performance_of(values, epoch) -> dict[str, float]:
    """APY, APR, max drawdown and Sharpe (module docstring) of an equity series, without pandas.

    Args:
        values: equity (or NAV) per tick, float, shape (n,), n >= 1; NaN where unknown.
        epoch: each tick's UTC time, int epoch seconds, ascending, shape (n,).

    Returns:
        ``{"apy", "apr", "max_drawdown", "sharpe", "days"}``: fractions, Sharpe annualised
        by sqrt(365), ``days`` the span in days. The very floats the pandas formulation
        gives (``cummax``, ``resample("1D").first()``, ``pct_change``, ``mean`` / ``std``, ddof 1;
        pandas' nanops: sum / count, two-pass variance), which tests compare against.
    """
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(epoch, dtype=np.int64)
    e0, e1 = float(v[0]), float(v[-1])
    days = float(t[-1] - t[0]) / 86400
    growth = e1 / e0 if e0 > 0 else float("nan")
    apr = (growth - 1) * 365 / days if days > 0 else 0.0
    apy = growth ** (365 / days) - 1 if days > 0 and growth > 0 else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        # pandas' cummax skips NaN: the running max of the values so far (fmax ignores a NaN).
        draw = 1 - v / np.fmax.accumulate(v)
        draw = draw[~np.isnan(draw)]
        mdd = float(draw.max()) if draw.size else float("nan")
        # The first known value of each UTC day (resample("1D").first().dropna()).
        ok = ~np.isnan(v)
        _, first = np.unique(t[ok] // 86400, return_index=True)
        daily = v[ok][first]
        r = daily[1:] / daily[:-1] - 1          # pct_change().dropna()
        r = r[~np.isnan(r)]
        sharpe = 0.0
        if r.size > 2:
            mean, std = series_mean(r), series_std(r)
            if std > 0:
                sharpe = float(mean / std * math.sqrt(365))
    return {"apy": apy, "apr": apr, "max_drawdown": mdd, "sharpe": sharpe, "days": days}


def series_mean(x: np.ndarray) -> float:
    """``Series.mean()`` of NaN-free float64 ``x`` (shape (n,), n >= 1): numpy's (pairwise)
    sum / n, as pandas' nanops compute it."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    return float(x.sum(dtype=np.float64) / np.float64(x.size))


def series_std(x: np.ndarray) -> float:
    """``Series.std()`` (ddof 1) of NaN-free float64 ``x`` (shape (n,), n >= 2): pandas'
    two-pass variance sqrt(sum((mean - x)^2) / (n - 1)), the mean as in :func:`series_mean`."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    count = np.float64(x.size)
    avg = x.sum(dtype=np.float64) / count
    return float(np.sqrt(((avg - x) ** 2).sum(dtype=np.float64) / (count - 1.0)))


def equity_columns(perp_venues: Sequence[str]) -> list[str]:
    """The metric columns of ``equity.csv`` after ``time, equity, nav``, in file order:
    ``health_factor, ltv, margin_ratio_min, margin_ratio.<venue>`` per perp venue (in the
    given order), ``net_delta, delta_drift`` (names as :mod:`trimtab.metrics` declares them)."""
    return ["health_factor", "ltv", "margin_ratio_min", *(f"margin_ratio.{v}" for v in perp_venues),
            "net_delta", "delta_drift"]


def metric_columns(n: int, rows: Sequence[MetricsRow], perp_venues: Sequence[str], first: int = 0) -> dict[str, np.ndarray]:
    """:func:`equity_columns` as float64 arrays of the ``n`` ticks ``first..first+n-1``: entry
    ``i`` holds the float of tick ``first + i``'s journal row, NaN where the tick has no row or
    lacks the metric (rows of other ticks are ignored). ``rows``:
    :func:`trimtab.engine.journal.read_metrics` rows."""
    names = equity_columns(perp_venues)
    inside = [r for r in rows if 0 <= r.tick - first < n]
    at = np.array([r.tick - first for r in inside], dtype=np.intp)
    cols = {}
    for k in names:
        col = cols[k] = np.full(n, math.nan)
        col[at] = [r.metrics.get(k, math.nan) for r in inside]   # a tick's row is unique (its primary key)
    return cols


def _utc_parts(epoch: Sequence[int], day_fmt: str, clock_fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """(date text, time of day text) per epoch second of ``epoch``, as two object arrays of str
    (shape (n,)): ``time.strftime(day_fmt, time.gmtime(d * 86400))`` and ``time.strftime(clock_fmt,
    time.gmtime(s))`` of ``(d, s) = divmod(e, 86400)``, each distinct day and second of the day
    formatted once and shared (hourly ticks repeat 24 clocks, and a day 24 times)."""
    fmt, gm = time.strftime, time.gmtime
    e = np.asarray(epoch, dtype=np.int64)
    d, s = np.divmod(e, 86400)   # floors as Python's divmod does (times before 1970)
    out = []
    for parts, f, scale in ((d, day_fmt, 86400), (s, clock_fmt, 1)):
        uniq, which = np.unique(parts, return_inverse=True)
        texts = np.empty(uniq.size, dtype=object)
        texts[:] = [fmt(f, gm(x * scale)) for x in uniq.tolist()]
        out.append(texts[which.reshape(-1)])
    return out[0], out[1]


def utc_texts(epoch: Sequence[int], day_fmt: str, clock_fmt: str) -> list[str]:
    """``time.strftime(day_fmt + clock_fmt, time.gmtime(e))`` for each epoch second ``e``, as
    the date's text (``day_fmt``: date directives only) and the time of day's (``clock_fmt``:
    ``%H``, ``%M``, ``%S`` and literals), each formatted once per distinct day / second of the
    day (:func:`_utc_parts`). The same text (UTC has no DST and gmtime no leap seconds)."""
    days, clocks = _utc_parts(epoch, day_fmt, clock_fmt)
    return list(map(operator.add, days.tolist(), clocks.tolist()))


def csv_floats(col: np.ndarray) -> list[str]:
    """The text ``DataFrame.to_csv`` writes for float64 column ``col`` (shape (n,)): numpy's
    shortest round-trip text, which is Python's ``repr`` (``inf``, ``-0.0``), and an empty field
    for NaN. Used for every equity.csv (strategies here, portfolios in trimtab.portfolio).

    Arrow's text (:func:`_arrow_texts`, ~4x faster than ``repr`` here, which cost most of
    equity.csv) where it is ``repr``'s, :func:`_arrow_is_repr`; ``repr`` for the rest."""
    col = np.asarray(col, dtype=np.float64)
    text = _arrow_texts(col)
    own = np.flatnonzero(~_arrow_is_repr(col))
    for i, x in zip(own.tolist(), col[own].tolist()):
        text[i] = _repr_text(x)
    return text


def _repr_floats(col: np.ndarray) -> list[str]:
    """:func:`csv_floats`' text by ``repr`` alone: cheaper for a short run's few floats than
    importing Arrow's compute module (~4 ms)."""
    return list(map(_repr_text, np.asarray(col, dtype=np.float64).tolist()))


def _repr_text(x: float) -> str:
    """``to_csv``'s text of one float: its ``repr``, empty for NaN."""
    return repr(x) if x == x else ""


def _arrow_is_repr(col: np.ndarray) -> np.ndarray:
    """Per float of ``col`` (shape (n,)), bool: is Arrow's text of it Python's ``repr``?

    Both write the shortest digits that read back as the float (of those, the closest to it:
    double-conversion and David Gay's dtoa), without exponent from 1e-4 (repr) / 1e-6 (Arrow)
    up to 1e16 / 1e10; Arrow omits ``.0`` of an integral float. So: True for a non-integral
    magnitude in [1e-4, 1e10) (15M random floats agree there); False for NaN, +-inf, integral
    values (-0.0 too) and every other magnitude."""
    with np.errstate(invalid="ignore"):
        mag = np.abs(col)
        return (mag >= 1e-4) & (mag < 1e10) & (col != np.trunc(col))


def _arrow_texts(col: np.ndarray) -> list[str]:
    """Arrow's float64 -> string cast of ``col`` (shape (n,)) as str (``nan``, ``inf``, ``1``,
    ``1e+10``: :func:`_arrow_is_repr` says where it is ``repr``'s). Called through
    ``pyarrow._compute`` (private): ``pyarrow.compute`` costs ~20 ms to import, more than this
    saves a short run; the public path if that module moves. The array wraps ``col``'s buffer:
    ``pa.array`` would import pandas (to test for a Series), which a run never does."""
    import pyarrow as pa
    values = np.ascontiguousarray(col, dtype=np.float64)
    array = pa.Array.from_buffers(pa.float64(), values.size, [None, pa.py_buffer(values)])
    try:
        from pyarrow._compute import CastOptions, call_function
    except ImportError:   # another pyarrow layout: the public cast, the same text
        return array.cast(pa.string()).to_pylist()
    return call_function("cast", [array], CastOptions(pa.string())).to_pylist()


def write_equity_csv(path: Path, epoch: Sequence[int], equity: Sequence[float], nav: Sequence[float], journal: Path,
                     perp_venues: Sequence[str], columns: dict[str, np.ndarray] | None = None) -> None:
    """Write ``equity.csv`` to ``path``: ``time`` (``YYYY-MM-DD HH:MM:SS+00:00`` of each tick's
    epoch second), ``equity``, ``nav`` and :func:`metric_columns`, the metrics read from the
    closed journal at ``journal`` (the SQLite file). Read at the end of the run so the tick loop
    does nothing more. Byte for byte the file pandas wrote (``tests/pandas_reference.equity_table(...).to_csv(path,
    index_label="time")``), without pandas: inf (no debt, no perp position) as ``inf``,
    which ``pd.read_csv`` reads back as inf, and NaN as an empty field.

    Args:
        epoch, equity, nav: per tick, int epoch seconds, share class, NAV per unit; one length n.
        columns: the metric columns already in hand (name -> float64 array of n, as
            :func:`metric_columns` reads them: NaN where absent, no -0.0), e.g. kept by the
            journal as it wrote them (:meth:`Journal.kept_columns`); the journal is then not read.

    Raises:
        sqlite3.Error: the journal cannot be read. ValueError: the lengths differ."""
    n = len(epoch)
    if len(equity) != n or len(nav) != n:
        raise ValueError(f"equity.csv columns differ in length: {n} times, {len(equity)} equity, {len(nav)} nav")
    names = equity_columns(perp_venues)
    if columns is not None and (set(columns) != set(names) or any(len(columns[k]) != n for k in names)):
        raise ValueError(f"equity.csv metric columns {sorted(columns)} do not match {names} over {n} ticks")
    floats = csv_floats if n >= _ARROW_MIN else _repr_floats   # the same text either way
    db = sqlite3.connect(journal) if columns is None else None
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(",".join(["time", "equity", "nav", *names]) + "\n")
            # A block of ticks at a time: the journal's rows and their text for the whole run at
            # once were the largest part of the run's peak memory.
            for lo in range(0, n, _BLOCK):
                hi = min(lo + _BLOCK, n)
                if columns is None:
                    block = metric_columns(hi - lo, read_metrics(db, lo, hi - 1, names=names), perp_venues, lo)
                else:
                    block = {k: columns[k][lo:hi] for k in names}
                cols = [utc_texts(epoch[lo:hi], "%Y-%m-%d ", "%H:%M:%S+00:00"),
                        floats(np.asarray(equity[lo:hi], dtype=np.float64)),
                        floats(np.asarray(nav[lo:hi], dtype=np.float64))]
                cols += [floats(block[k]) for k in names]
                f.write("\n".join(map(",".join, zip(*cols))) + "\n")
    finally:
        if db is not None:
            db.close()


#: Ticks per block of equity.csv (a few hundred kB of text at a time).
_BLOCK = 2048
#: Ticks from which equity.csv's floats go through Arrow (:func:`csv_floats`); a shorter run's
#: ~30 columns take ``repr`` alone (:func:`_repr_floats`): ~0.3 us more a float, against ~4 ms
#: of importing Arrow's compute module (even at ~400 ticks).
_ARROW_MIN = 256
