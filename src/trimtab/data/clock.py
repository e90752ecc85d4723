"""The hourly UTC clock's arithmetic: epoch conversions, holes in a series, and geometric
interpolation of accruing indices. Pure functions over numpy arrays, shared by the loader
(:mod:`trimtab.data.feed`) and the bundle builder (:mod:`trimtab.data.build`).
"""

from __future__ import annotations

import numpy as np

from ..timeutil import UtcTime, utc

#: Seconds in an hour (the clock's tick).
HOUR = 3600


def epoch_s(ts) -> int:
    """Epoch seconds of a user time (str or Timestamp; naive means UTC, :func:`trimtab.timeutil.utc`)."""
    return utc(ts).epoch


def to_ts(epoch: int) -> UtcTime:
    """The tz-aware UTC time of ``epoch`` seconds (a datetime; formats as the Timestamp it was)."""
    return UtcTime.of_epoch(epoch)


def epochs(times) -> np.ndarray:
    """int64 epoch seconds of a sequence of timestamps (or of epoch seconds already).

    Epoch integers and numpy ``datetime64`` arrays (UTC) are converted by numpy, floored to the
    second; anything else (strings, Timestamps, a DatetimeIndex) by pandas, imported then."""
    if hasattr(times, "asi8"):  # a DatetimeIndex: its own integers, no parsing
        return times.as_unit("s").asi8.astype(np.int64)
    arr = np.asarray(times)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[s]").astype(np.int64)
    import pandas as pd  # other spellings of a time: not on the run path

    idx = pd.DatetimeIndex(pd.to_datetime(times, utc=True))
    return idx.as_unit("s").asi8.astype(np.int64)


def find_gaps(avail_epoch: np.ndarray, interval_h: float, factor: float = 2.0) -> list[tuple[int, int]]:
    """Holes in a sorted array of availability times (epoch seconds).

    Returns ``(start, end)`` epoch pairs of consecutive distinct times more than
    ``factor * interval_h`` hours apart. Shared by the loader and the build manifest.
    """
    t = np.asarray(avail_epoch, dtype=np.int64)
    if t.size < 2:
        return []
    # np.unique's sorted distinct values, without np.unique: it hashes, then sorts, and imports
    # numpy.ma on first use (~15 ms of a run's audit for arrays that arrive sorted).
    if np.any(t[1:] < t[:-1]):
        t = np.sort(t)
    t = t[np.concatenate(([True], t[1:] != t[:-1]))]
    if t.size < 2:
        return []
    d = np.diff(t)
    k = np.nonzero(d > factor * interval_h * HOUR)[0]
    return [(int(t[i]), int(t[i + 1])) for i in k]


def geometric(t_s: np.ndarray, v: np.ndarray, epoch: np.ndarray) -> np.ndarray:
    """:func:`daily_to_hourly_geometric` on checked inputs: samples ``(t_s, v)`` (epoch s, sorted;
    positive values) at ticks ``epoch`` (epoch s); NaN before the first sample, held after the last."""
    out = np.full(epoch.shape, np.nan)
    if t_s.size == 0:
        return out
    a = np.searchsorted(t_s, epoch, side="right") - 1          # last sample at or before the tick
    inside = (a >= 0) & (a < t_s.size - 1)
    ai = a[inside]
    w = (epoch[inside] - t_s[ai]) / (t_s[ai + 1] - t_s[ai])
    out[inside] = v[ai] ** (1.0 - w) * v[ai + 1] ** w            # exact at w == 0
    out[a == t_s.size - 1] = v[-1]                               # after the last sample: hold (stale)
    return out


def daily_to_hourly_geometric(times, values, hourly_index) -> np.ndarray:
    """Put a sampled, continuously accruing index on an hourly clock.

    ``idx(t) = idx_a ** (1 - w) * idx_b ** w`` with ``w = (t - t_a) / (t_b - t_a)``
    for consecutive samples ``t_a <= t < t_b`` (exactly ``idx_a`` at ``t_a``);
    NaN before the first sample; the last value held after the last sample (not
    extrapolated; callers flag it stale with the sample age).

    Why this is not look-ahead: an Aave liquidity / variable-borrow index accrues
    continuously on-chain, and its value at ``t`` was readable at ``t`` (the
    contract computes it from the last update and the current rate). The daily
    file only *samples* that observable value; compounding at a constant rate
    between samples is geometric, so this reconstructs what could have been read
    at ``t`` (up to the intraday variation of the rate). Convention from the
    data README ("interpolate between days, geometric in the index").

    Args:
        times: sample times, sorted ascending (datetime-like or int epoch seconds), shape (n,).
        values: positive sample values, shape (n,).
        hourly_index: the target ``pd.DatetimeIndex`` (tz-aware or UTC-naive), shape (m,).

    Returns:
        float64 array, shape (m,).

    Raises:
        ValueError: shapes differ, times not strictly increasing, or values not positive.
    """
    t_s = epochs(times)
    v = np.asarray(values, dtype=np.float64)
    if t_s.shape != v.shape:
        raise ValueError(f"times and values differ in shape: {t_s.shape} vs {v.shape}")
    if t_s.size > 1 and np.any(np.diff(t_s) <= 0):
        raise ValueError("sample times must be strictly increasing")
    if np.any(~(v > 0)):
        raise ValueError("geometric interpolation needs positive values")
    return geometric(t_s, v, epochs(hourly_index))
