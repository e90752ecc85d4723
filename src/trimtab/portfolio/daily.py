"""Daily tables of sleeve values and their statistics, without pandas: the very floats pandas gives.

A portfolio run never imports pandas (~0.4 s and ~75 MB a process), yet its allocation targets,
limits and summary were defined by pandas operations on the sleeves' NAV; changing a single bit
of them could move a reallocation. So each function here is the numpy (or plain Python) form of
one pandas operation, in pandas' own order of float operations (pandas 3.1, numpy 2.x; the
tests in ``tests/integration/test_portfolio_nopandas.py`` compare them bit for bit on real sleeve NAV):

* :func:`daily_first`: ``DataFrame.resample("1D").first().dropna(how="all")`` (UTC days);
* :func:`pct_change`: ``DataFrame.pct_change().iloc[1:]`` (pandas 3: no filling, x_t / x_{t-1} - 1);
* ``Series.mean()`` / ``Series.std()`` of NaN-free data: :func:`trimtab.engine.results.series_mean`
  and :func:`~trimtab.engine.results.series_std`, which a strategy's Sharpe uses too;
* :func:`cov`: ``DataFrame.cov()`` (``np.cov`` of the columns when nothing is missing, else the
  pairwise form of :func:`pairwise`);
* :func:`corr`: ``DataFrame.corr()`` (pandas' ``libalgos.nancorr``: Welford's online update per
  pair of columns over the rows where both are finite -- a sequential recurrence, so it is
  plain Python; a few hundred days by a few sleeves).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

#: Seconds in a UTC day (days are epoch // DAY, as pandas bins a tz-aware UTC index).
DAY = 86400


@dataclass(frozen=True)
class DailyTable:
    """Rows of UTC days by columns (sleeves), like the pandas DataFrame it replaces.

    ``keys``: the column names in order; ``day``: each row's UTC day (int, epoch seconds //
    86400), ascending, shape (rows,); ``values``: float64, shape (len(keys), rows) -- one
    contiguous row per column, as pandas holds a float block, so a column's sums run over the
    same memory layout. NaN where a value is missing."""

    keys: tuple[str, ...]
    day: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return int(self.day.size)

    def column(self, key: str) -> np.ndarray:
        """The float64 values of column ``key``, shape (rows,). Raises KeyError: no such column."""
        return self.values[self._index(key)]

    def _index(self, key: str) -> int:
        try:
            return self.keys.index(key)
        except ValueError:
            raise KeyError(key) from None

    def rows(self, keep: np.ndarray) -> DailyTable:
        """The rows where ``keep`` (bool, shape (rows,)) holds, or a slice of rows."""
        return DailyTable(self.keys, self.day[keep], np.ascontiguousarray(self.values[:, keep]))

    def dropna(self) -> DailyTable:
        """The rows where no column is NaN (``DataFrame.dropna()``)."""
        return self.rows(~np.isnan(self.values).any(axis=0))

    def tail(self, n: int) -> DailyTable:
        """The last ``n`` rows (``DataFrame.tail(n)``, ``n >= 0``)."""
        return self.rows(slice(max(len(self) - n, 0), None))

    def select(self, keys: Sequence[str]) -> DailyTable:
        """Columns ``keys`` in that order (``df[keys]``). Raises KeyError: an unknown column."""
        at = [self._index(k) for k in keys]
        return DailyTable(tuple(keys), self.day, self.values[at])   # fancy indexing: a new C-ordered array


def daily_first(epoch: Sequence[int], columns: Mapping[str, Sequence[float]], first: int, upto: int) -> DailyTable:
    """Each column's first known value of each UTC day over ticks ``first..upto`` (inclusive):
    ``DataFrame(columns, index=times).resample("1D").first().dropna(how="all")``.

    Args:
        epoch: each tick's UTC time, int epoch seconds, ascending.
        columns: per name, a value per tick (float; NaN unknown), indexed like ``epoch``.
        first, upto: the tick range, ``0 <= first``, ``upto < len(epoch)``.

    Returns:
        The days where some column has a value; a column's cell is its first non-NaN value of
        that day (``first`` skips NaN), NaN if it has none that day."""
    t = np.asarray(epoch[first: upto + 1], dtype=np.int64) // DAY
    keys = tuple(columns)
    cols = [np.asarray(columns[k][first: upto + 1], dtype=np.float64) for k in keys]
    per_col = []
    for v in cols:
        ok = ~np.isnan(v)
        days, at = np.unique(t[ok], return_index=True)
        per_col.append((days, v[ok][at]))
    days = np.unique(np.concatenate([d for d, _ in per_col])) if per_col else np.zeros(0, dtype=np.int64)
    values = np.full((len(keys), days.size), math.nan)
    for row, (d, v) in zip(values, per_col):
        row[np.searchsorted(days, d)] = v
    return DailyTable(keys, days.astype(np.int64), values)


def pct_change(table: DailyTable) -> DailyTable:
    """Row-to-row fractional change from the second row on: ``df.pct_change().iloc[1:]``
    (pandas 3 fills nothing: x_t / x_{t-1} - 1, NaN where either is NaN)."""
    v = table.values
    with np.errstate(divide="ignore", invalid="ignore"):   # pandas' arithmetic is silent too
        r = v[:, 1:] / v[:, :-1] - 1
    return DailyTable(table.keys, table.day[1:], np.ascontiguousarray(r))


def pairwise(table: DailyTable, covariance: bool) -> np.ndarray:
    """pandas' ``libalgos.nancorr(mat, cov=covariance, minp=1)``: per pair of columns, over the
    rows where both are finite, Welford's running means and sums of squares (Welford 1962;
    https://en.wikipedia.org/wiki/Algorithms_for_calculating_variance), then
    covxy / (n - 1) (covariance) or covxy / sqrt(ssq_x ssq_y) (correlation); NaN without rows
    or with a zero divisor. Returns float64 (k, k), symmetric."""
    k = len(table.keys)
    vals = table.values.tolist()
    ok = np.isfinite(table.values).tolist()
    out = np.empty((k, k))
    for xi in range(k):
        for yi in range(xi + 1):
            xs, ys, okx, oky = vals[xi], vals[yi], ok[xi], ok[yi]
            nobs = 0
            mx = my = ssx = ssy = cxy = 0.0
            for i in range(len(xs)):
                if okx[i] and oky[i]:
                    vx, vy = xs[i], ys[i]
                    nobs += 1
                    dx, dy = vx - mx, vy - my
                    mx += 1.0 / nobs * dx
                    my += 1.0 / nobs * dy
                    ssx += (vx - mx) * dx
                    ssy += (vy - my) * dy
                    cxy += (vx - mx) * dy
            if nobs < 1:
                res = math.nan
            else:
                divisor = (nobs - 1.0) if covariance else math.sqrt(ssx * ssy)
                res = cxy / divisor if divisor != 0 else math.nan
            out[xi, yi] = out[yi, xi] = res
    return out


def cov(table: DailyTable) -> np.ndarray:
    """``DataFrame.cov()`` (ddof 1) of the columns: float64 (k, k). Nothing missing: ``np.cov``
    of the (k, rows) values, as pandas calls it; else :func:`pairwise` covariances."""
    k = len(table.keys)
    if not np.isnan(table.values).any():
        return np.cov(table.values, ddof=1).reshape((k, k))
    return pairwise(table, covariance=True)


def corr(table: DailyTable) -> np.ndarray:
    """``DataFrame.corr()`` (Pearson, min_periods 1) of the columns: float64 (k, k), NaN where
    undefined (:func:`pairwise`)."""
    return pairwise(table, covariance=False)
