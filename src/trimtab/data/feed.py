"""Historical market data on one hourly UTC clock, without look-ahead.

Reads the bundle written by :mod:`trimtab.data.build` (``data/series/*.parquet``,
``data/manifest.json``, ``data/static.json``; conventions in ``data/README.md``)
and exposes every series as float64 arrays aligned to an hourly tick index::

    md = load_market_data(start="2024-08-01", end="2024-09-01")
    close = md.field("perp.binance.ETHUSDT.close")      # shape (len(md.epoch),)
    age = md.age_hours("perp.binance.ETHUSDT")           # hours since the last bar closed

Clock rules (no look-ahead):

* Each stored row has an *availability* time (``avail``): when it could first be
  known (a 1h bar at its close = open + 1h, a funding event at its timestamp, a
  daily aggregate at the next midnight, ...; see :mod:`trimtab.data.catalog`).
  A row is used from the first tick ``t >= avail`` on.
* ``asof`` fields: value at tick ``t`` = latest row available at or before ``t``.
  Before the first available row: NaN. A hole in the data is never zero-filled;
  it shows as a growing :meth:`MarketData.age_hours` and in :meth:`MarketData.gaps`.
* ``event`` fields (funding): the value only at the tick of the event, NaN elsewhere.
* Accruing Aave indices sampled daily: accrued from the last sample at the rates in force
  then, as the protocol computes them (:mod:`trimtab.data.accrual`: liquidity index linear,
  borrow index compounded); no look-ahead to the next sample.
* Bad rows: every row is checked first (:mod:`trimtab.data.quality`: NaN, zero, negative,
  cross-venue deviation, jumps, falling indices, duplicate timestamps). Fields and ages are
  built from the good rows only, and :meth:`MarketData.quarantine` says at which ticks a
  series' latest row was faulty. A data directory (``TRIMTAB_DATA``) is read as untrusted:
  a damaged manifest or series file is a :class:`DataError`, never a traceback.

This module loads the bundle and serves it (:class:`MarketData`, :func:`load_market_data`);
the clock's arithmetic and the interpolation are :mod:`trimtab.data.clock`.
"""

from __future__ import annotations

import difflib
import json
import os
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trimtab.errors import TrimtabError

from ..timeutil import UtcTime, utc as _utc
from .accrual import ACCRUAL, accrue
from .clock import HOUR, epoch_s, epochs, find_gaps, geometric, to_ts
from .location import BUNDLED_DATA_DIR, DEFAULT_DATA_DIR, data_dir
from .quality import Bands, Checked, SeriesQuality

if TYPE_CHECKING:  # pyarrow (~30-40 ms) is imported where a file is read: `trimtab run` reads the
    import pyarrow as pa  # bundle in a forked child (trimtab.data.background), never in its own process

__all__ = ["BUNDLED_DATA_DIR", "DEFAULT_DATA_DIR", "Gap", "DataError", "MarketData", "data_dir",
           "load_market_data", "set_data_dir"]


def set_data_dir(path: str | Path) -> Path:
    """Make ``path`` the data directory of this process and of every process it starts (it is
    exported as ``TRIMTAB_DATA``, which ``compare``'s workers and other children inherit).

    Returns the absolute path. Raises:
        DataError: ``path`` is not a directory.
    """
    p = Path(path).expanduser().absolute()
    if not p.is_dir():
        raise DataError(f"data directory {path} does not exist or is not a directory; give a directory "
                        "holding manifest.json and series/ (`trimtab --data DIR data build` makes one)")
    os.environ["TRIMTAB_DATA"] = str(p)
    return p


class DataError(TrimtabError):
    """Missing bundle file, unknown series or field, or a timestamp outside the clock.

    Messages name the offending key and list close matches, e.g.
    ``unknown series 'perp.binance.ETHUSD'; did you mean: perp.binance.ETHUSDT``.
    """


@dataclass(frozen=True)
class Gap:
    """A hole in one series: consecutive observations further apart than the threshold.

    ``start`` is the availability time of the last observation before the hole,
    ``end`` that of the first one after it (both tz-aware UTC; clipped to the
    requested window by :meth:`MarketData.gaps`); ``hours = (end - start)`` in hours.
    """

    series: str
    start: UtcTime
    end: UtcTime
    hours: float


@dataclass
class Series:
    """One loaded series: raw rows (sorted by availability) and its clock policy."""

    name: str
    avail: np.ndarray                  # int64 epoch seconds, non-decreasing
    values: dict[str, np.ndarray]      # column -> float64, aligned with avail
    interval_h: float
    fill: str                          # "asof" | "event"
    geometric: tuple[str, ...]
    meta: dict = dc_field(default_factory=dict)
    ts: np.ndarray | None = None       # observation times (epoch s), for duplicate detection


class MarketData:
    """All loaded series on one hourly UTC clock.

    Attributes:
        epoch: int64 epoch seconds of each tick (hourly, inclusive [start, end]), shape ``(n,)``.
        index: the same ticks as a ``pd.DatetimeIndex`` (tz UTC), built on first use (it imports
            pandas, which a ``trimtab run`` never does: the run path reads ``epoch``).
        static: the parsed ``data/static.json`` (risk parameters, gas units, costs, rewards).
        bands: the data checks' limits (:class:`trimtab.data.quality.Bands`).

    Every row passes the checks of :mod:`trimtab.data.quality` first: :meth:`field` and
    :meth:`age_hours` are built from the good rows only, and :meth:`quarantine` says at which
    ticks a series' latest row was faulty. Arrays returned by :meth:`field`,
    :meth:`age_hours` and :meth:`quarantine` are read-only and cached (field and age arrays for
    as long as a caller holds them).
    """

    def __init__(self, index, series: dict[str, Series], static: dict,
                 bundle: Iterable[str] = (), bands=None, quality: Mapping | None = None, shared: dict | None = None):
        # ``index``: the clock as int64 epoch seconds (what the loader builds), or a tz-aware
        # ``pd.DatetimeIndex`` (a live feed's ticks, tests), kept as given.
        if hasattr(index, "asi8"):
            self._index = index
            self.epoch = index.as_unit("s").asi8.astype(np.int64)
        else:
            self._index = None
            self.epoch = np.asarray(index, dtype=np.int64)
        self.static = static
        self._series = series
        self._bundle = sorted(bundle)
        self.bands = Bands.of(bands)
        self._quality = quality
        # Checks per Bands, shared with every slice / with_checks of this data (``shared``): they
        # read the rows only, never the clock, so one assessment serves all of them (a resumed
        # live run slices one tick at a time out of the same rows).
        self._shared: dict = {} if shared is None else shared
        if quality is not None:
            self._shared.setdefault(self.bands, quality)
        # Field and age arrays are cached while anyone holds them: the engine's view copies each
        # into a list once and drops the array, so the window's arrays (~6 MB for the flagship)
        # are not kept for the run's life. Asked again after that, one is rebuilt, identical.
        self._fields: weakref.WeakValueDictionary[str, np.ndarray] = weakref.WeakValueDictionary()
        self._quar: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._clear: tuple[np.ndarray, np.ndarray] | None = None
        # The last series' row-per-tick array only: a view loads a series' fields, age and
        # quarantine one after another, and one array per series kept for the run's life held
        # ~2 MB of the flagship's peak.
        self._last: tuple[str, np.ndarray] | None = None
        self._good: dict[str, Series] = {}

    @property
    def index(self):
        """The ticks as a tz-aware UTC ``pd.DatetimeIndex`` (hourly frequency when built from
        the loader's clock), built on first use: it imports pandas."""
        if self._index is None:
            import pandas as pd  # only for callers that want pandas (reports, tests); never a run

            idx = pd.to_datetime(self.epoch, unit="s", utc=True).as_unit("ns")
            self._index = pd.DatetimeIndex(idx, freq="h") if _hourly(self.epoch) else idx
        return self._index

    # -- lookup -----------------------------------------------------------------
    def series_names(self) -> list[str]:
        """Names of the loaded series, sorted."""
        return sorted(self._series)

    def _get(self, name: str) -> Series:
        s = self._series.get(name)
        if s is None:
            close = difflib.get_close_matches(name, list(self._series) + self._bundle, n=5, cutoff=0.6)
            hint = f"; did you mean: {', '.join(dict.fromkeys(close))}" if close else ""
            where = " (it is in the bundle but was not loaded: pass it in series=)" if name in self._bundle else ""
            raise DataError(f"unknown series {name!r}{where}{hint}; loaded: {len(self._series)} series")
        return s

    def fields(self, series: str) -> list[str]:
        """Column names of ``series`` (e.g. ``['open', 'high', 'low', 'close', 'volume']``)."""
        return list(self._get(series).values)

    def _last_index(self, s: Series) -> np.ndarray:
        """Per tick, the row index of the latest observation available at or before it (-1: none)."""
        key = s.name if s is self._series.get(s.name) else "\0good:" + s.name
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        k = np.searchsorted(s.avail, self.epoch, side="right") - 1
        self._last = (key, k)
        return k

    # -- data checks --------------------------------------------------------------
    def quality(self) -> Mapping[str, SeriesQuality]:
        """Per series, the checks of every raw row (:func:`trimtab.data.quality.assess`), each
        series judged when first read (:class:`trimtab.data.quality.Checked`: a run reads a few)."""
        if self._quality is None:
            q = self._shared.get(self.bands)
            if q is None:
                q = self._shared[self.bands] = Checked(self._series, self.bands)
            self._quality = q
        return self._quality

    def with_checks(self, bands) -> MarketData:
        """This clock and data checked with other limits (``bands``: a :class:`Bands`, the
        strategy config's ``data_checks`` or None for the defaults); self if they are the same."""
        b = Bands.of(bands)
        if b == self.bands:
            return self
        return MarketData(self._index if self._index is not None else self.epoch, self._series, self.static, self._bundle, b,
                          shared=self._shared)

    def _clean(self, name: str) -> Series:
        """The series restricted to its good rows (the series itself when every row is good)."""
        g = self._good.get(name)
        if g is None:
            s = self._get(name)
            keep = self.quality()[name].keep
            g = s if keep.all() else Series(s.name, s.avail[keep], {c: v[keep] for c, v in s.values.items()},
                                             s.interval_h, s.fill, s.geometric, s.meta)
            self._good[name] = g
        return g

    def fault(self, series: str, row: int) -> tuple[str, float, str]:
        """(column, raw value, reason) of faulty raw row ``row`` of ``series`` (see :meth:`quarantine`)."""
        s, q = self._get(series), self.quality()[series]
        col = q.columns[int(q.column[row])]
        return col, float(s.values[col][row]), q.reason(row)

    def quarantine(self, series: str) -> tuple[np.ndarray, np.ndarray]:
        """(reason code per tick, raw row per tick) of ticks whose latest row of ``series`` is faulty.

        Codes index :data:`trimtab.data.quality.REASONS` (0: not quarantined); the row (-1 where
        not quarantined) gives the faulty values and reason via :meth:`quality`. An as-of series
        is quarantined from the faulty row's availability until the next row; an event series
        (funding) only at the tick of the faulty event.
        """
        hit = self._quar.get(series)
        if hit is None:
            s = self._get(series)
            q = self.quality()[series]
            if not (s.avail.size and q.code.any()):
                # No faulty row: every such series shares one read-only all-clear pair per clock
                # (a pair per series held ~9 bytes x ticks each, for the run's life).
                if self._clear is None:
                    codes, rows = np.zeros(self.epoch.shape, dtype=np.int8), np.full(self.epoch.shape, -1, dtype=np.int64)
                    codes.flags.writeable = rows.flags.writeable = False
                    self._clear = (codes, rows)
                hit = self._quar[series] = self._clear
                return hit
            codes = np.zeros(self.epoch.shape, dtype=np.int8)
            rows = np.full(self.epoch.shape, -1, dtype=np.int64)
            if s.avail.size and q.code.any():
                if s.fill == "event":
                    for r in np.nonzero(q.code)[0]:
                        k = np.searchsorted(self.epoch, s.avail[r], side="left")
                        if k < self.epoch.size and self.epoch[k] - s.avail[r] < HOUR:
                            codes[k], rows[k] = q.code[r], r
                else:
                    k = self._last_index(s)
                    c = np.where(k >= 0, q.code[np.maximum(k, 0)], 0)
                    codes[:] = c
                    rows[c != 0] = k[c != 0]
            codes.flags.writeable = rows.flags.writeable = False
            hit = self._quar[series] = (codes, rows)
        return hit

    def field(self, name: str) -> np.ndarray:
        """Values of ``"<series>.<column>"`` on the clock, float64, shape ``(len(epoch),)``.

        As-of (latest row available at or before each tick), NaN before the first;
        funding (event series): value only at its settlement tick, NaN elsewhere;
        daily Aave indices: accrued from the last sample at the rate in force then (liquidity
        index linear, borrow index compounded, :mod:`trimtab.data.accrual`); other geometric
        columns: geometric interpolation between samples. Never zero-filled.

        Raises:
            DataError: unknown series or column (with close matches).
        """
        arr = self._fields.get(name)
        if arr is not None:
            return arr
        series, _, col = name.rpartition(".")
        if not series:
            raise DataError(f"field name {name!r} must be '<series>.<column>', e.g. 'perp.binance.ETHUSDT.close'")
        s = self._get(series)
        if col not in s.values:
            close = difflib.get_close_matches(col, list(s.values), n=3, cutoff=0.5)
            hint = f"; did you mean: {', '.join(close)}" if close else ""
            raise DataError(f"series {series!r} has no field {col!r}{hint}; fields: {', '.join(s.values)}")
        s = self._clean(series)      # faulty rows are never read (trimtab.data.quality)
        v = s.values[col]
        if s.fill == "event":
            arr = np.full(self.epoch.shape, np.nan)
            if self.epoch.size:
                k = np.searchsorted(self.epoch, s.avail, side="left")   # first tick at or after the event
                ok = k < self.epoch.size
                ok[ok] = self.epoch[k[ok]] - s.avail[ok] < HOUR           # event within the hour ending at tick
                arr[k[ok]] = v[ok]                                        # later rows win on a shared tick
        elif v.size == 0:     # a series with no rows yet (a live source that has not answered)
            arr = np.full(self.epoch.shape, np.nan)
        elif col in s.geometric and col in ACCRUAL and ACCRUAL[col][0] in s.values:
            # Aave indices: accrued from the last sample at its rate, as the protocol does
            # (trimtab.data.accrual); never toward the next day's sample (look-ahead).
            arr = accrue(s.avail, v, s.values[ACCRUAL[col][0]], self.epoch, ACCRUAL[col][1])
        elif col in s.geometric:
            arr = geometric(s.avail, v, self.epoch)
        else:
            k = self._last_index(s)
            arr = np.where(k >= 0, v[np.maximum(k, 0)], np.nan)
        arr.flags.writeable = False
        self._fields[name] = arr
        return arr

    def age_hours(self, series: str) -> np.ndarray:
        """Hours since the latest good observation of ``series`` available at or before each tick.

        float64, shape ``(len(epoch),)``; ``np.inf`` before the first observation.
        For daily interpolated indices this is the age of the previous daily sample,
        so a missing day shows. Compare against the native interval to detect staleness.
        """
        key = "\0age:" + series
        arr = self._fields.get(key)
        if arr is None:
            s = self._clean(series)
            k = self._last_index(s)
            if s.avail.size == 0:
                arr = np.full(self.epoch.shape, np.inf)
            else:
                arr = np.where(k >= 0, (self.epoch - s.avail[np.maximum(k, 0)]) / HOUR, np.inf)
            arr.flags.writeable = False
            self._fields[key] = arr
        return arr

    def interval_hours(self, series: str) -> float:
        """Native interval of ``series`` in hours (1 for bars, 8 for funding, 24 for daily)."""
        return self._get(series).interval_h

    def coverage(self, series: str) -> tuple[UtcTime, UtcTime]:
        """First and last availability time of ``series`` in the bundle (UTC)."""
        s = self._get(series)
        if s.avail.size == 0:
            raise DataError(f"series {series!r} has no observations")
        return to_ts(s.avail[0]), to_ts(s.avail[-1])

    def gaps(self, series: str, start=None, end=None, factor: float = 2.0) -> list[Gap]:
        """Holes longer than ``factor`` x the native interval between consecutive observations.

        Only holes overlapping [start, end] (default: this clock's span) are returned,
        clipped to it. Time before the first or after the last observation is not a
        gap (see :meth:`coverage` and :meth:`age_hours`).
        """
        s = self._get(series)
        lo = epoch_s(start) if start is not None else int(self.epoch[0])
        hi = epoch_s(end) if end is not None else int(self.epoch[-1])
        out = []
        for a, b in find_gaps(s.avail, s.interval_h, factor):
            if b > lo and a < hi:
                a, b = max(a, lo), min(b, hi)
                out.append(Gap(series, to_ts(a), to_ts(b), (b - a) / HOUR))
        return out

    # -- clock ------------------------------------------------------------------
    def position(self, ts) -> int:
        """Tick index of ``ts`` (must be an exact hour within the clock).

        Raises:
            DataError: not on the hour, or outside [index[0], index[-1]].
        """
        e = epoch_s(ts)
        if e % HOUR:
            raise DataError(f"{_utc(ts)} is not on an hourly tick")
        i = (e - int(self.epoch[0])) // HOUR if self.epoch.size else -1
        if not 0 <= i < self.epoch.size:
            n = self.epoch.size
            raise DataError(f"{_utc(ts)} is outside the clock [{to_ts(self.epoch[0]) if n else None}, "
                            f"{to_ts(self.epoch[-1]) if n else None}]")
        return int(i)

    def slice(self, start, end) -> MarketData:
        """A MarketData on the sub-clock [start, end] (same series, arrays recomputed)."""
        return MarketData(_clock(start, end), self._series, self.static, self._bundle, self.bands, self.quality(),
                          shared=self._shared)

    def __repr__(self) -> str:
        n = self.epoch.size
        span = f"{to_ts(self.epoch[0])} .. {to_ts(self.epoch[-1])}" if n else "empty"
        return f"MarketData({len(self._series)} series, {n} hourly ticks, {span})"


def _hourly(epoch: np.ndarray) -> bool:
    return epoch.size < 2 or bool(np.all(np.diff(epoch) == HOUR))


def _clock(start, end) -> np.ndarray:
    """int64 epoch seconds of every whole hour in [start, end] (start rounded up, end down)."""
    s, e = _utc(start).ceil("h"), _utc(end).floor("h")
    if s > e:
        raise DataError(f"empty clock: start {s} is after end {e}")
    return np.arange(s.epoch, e.epoch + 1, HOUR, dtype=np.int64)


def _to_numpy(col: pa.ChunkedArray) -> np.ndarray:
    """An Arrow column as a new numpy array, what ``col.to_numpy()`` gives (nulls NaN; an integer
    column with nulls as float64), except a timestamp column: int64 epoch seconds (floored;
    NaT's integer where null). Read from the Arrow buffers: pyarrow's ``to_numpy`` imports
    pandas (~0.4 s, ~75 MB), which a run never does. A column of any other type (a damaged
    file: refused later) goes through ``to_numpy``."""
    import pyarrow as pa

    t = col.type
    ts = pa.types.is_timestamp(t)
    if ts:
        dt = np.dtype(np.int64)
    elif pa.types.is_float32(t) or pa.types.is_float64(t):
        dt = np.dtype(f"f{t.bit_width // 8}")
    elif pa.types.is_integer(t):
        dt = np.dtype(f"{'i' if pa.types.is_signed_integer(t) else 'u'}{t.bit_width // 8}")
    else:
        return col.to_numpy()
    parts, valid = [], []
    for ch in col.chunks:
        n = len(ch)
        bufs = ch.buffers()
        parts.append(np.frombuffer(bufs[1], dtype=dt, count=n, offset=ch.offset * dt.itemsize) if n else np.empty(0, dt))
        if ch.null_count:   # Arrow's validity bitmap, least significant bit first
            bits = np.unpackbits(np.frombuffer(bufs[0], dtype=np.uint8), bitorder="little")
            valid.append(bits[ch.offset:ch.offset + n].astype(bool))
        else:
            valid.append(np.ones(n, dtype=bool))
    out = np.concatenate(parts) if parts else np.empty(0, dt)
    ok = np.concatenate(valid) if valid else np.ones(0, dtype=bool)
    if ts:
        out = out // {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[t.unit]
        out[~ok] = np.iinfo(np.int64).min
        return out
    if not ok.all():
        out = out.astype(np.float64)
        out[~ok] = np.nan
    return out


def _read_parquet(path: Path, keep) -> pa.Table:
    """The columns ``n`` of the Parquet file at ``path`` with ``keep(n)``, in file order.

    One small file: the plain reader, one thread, only the columns used (``pq.read_table`` goes
    through the dataset layer and a thread pool: ~5x the time and ~15 MB RSS here). The reader
    is pyarrow's ``ParquetReader`` itself, which ``pq.ParquetFile`` wraps: importing
    ``pyarrow.parquet`` also loads pyarrow's remote filesystems (S3, GCS, Azure, HDFS), ~18 MB
    of a run's RSS for a local file. Falls back to ``pq.ParquetFile`` if that module moves.

    Raises whatever pyarrow raises for a missing or damaged file (the caller words it)."""
    try:
        from pyarrow._parquet import ParquetReader
    except ImportError:   # another pyarrow layout: the public reader, the same table
        return _read_parquet_public(path, keep)
    try:
        reader = ParquetReader()
        reader.open(str(path), pre_buffer=True)   # as pq.ParquetFile opens it
    except (AttributeError, TypeError):   # the private reader's API changed: the public one
        return _read_parquet_public(path, keep)
    try:
        wanted = [reader.column_name_idx(n) for n in reader.schema_arrow.names if keep(n)]
        return reader.read_all(column_indices=wanted, use_threads=False)
    finally:
        reader.close()


def _read_parquet_public(path: Path, keep) -> pa.Table:
    """:func:`_read_parquet` through the public ``pq.ParquetFile`` (the same table)."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as pf:
        return pf.read(columns=[n for n in pf.schema_arrow.names if keep(n)], use_threads=False)


def _read_series(path: Path, meta: dict) -> Series:
    if not path.exists():
        raise DataError(f"bundle file missing: {path}; rebuild with "
                        "`trimtab data build --raw ../shared/data --out data`")
    try:   # a data directory given with TRIMTAB_DATA is read as untrusted data
        table = _read_parquet(path, lambda n: n in ("avail", "ts") or n in meta["columns"])
        cols = {n: _to_numpy(table.column(n)) for n in table.column_names}
        if "avail" not in cols:
            raise DataError(f"{path}: no 'avail' column")
        avail = epochs(cols.pop("avail"))
        ts = epochs(cols.pop("ts")) if "ts" in cols else None
        missing = [c for c in meta["columns"] if c not in cols]
        if missing:
            raise DataError(f"{path}: columns {', '.join(missing)} listed in manifest.json are missing")
        # Copies, so the file's Arrow buffers are freed with the table (load_market_data then
        # returns the pool's free pages to the OS; a view would pin them for the run's life).
        values = {c: np.array(cols[c], dtype=np.float64) for c in meta["columns"]}
        del table, cols
        if ts is not None and ts.shape != avail.shape:
            raise DataError(f"{path}: 'ts' and 'avail' differ in length")
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        raise DataError(f"{path}: not a readable series file ({type(e).__name__}: {str(e)[:200]})") from None
    if avail.size > 1 and np.any(np.diff(avail) < 0):
        # The clock's searches need rows in availability order; a stable sort keeps the
        # file's order among equal times (so the later duplicate still wins).
        order = np.argsort(avail, kind="stable")
        avail, values = avail[order], {c: v[order] for c, v in values.items()}
        ts = ts[order] if ts is not None else None
    return Series(meta["name"], avail, values, float(meta["interval_h"]), meta["fill"],
                   tuple(meta.get("geometric", ())), meta, ts)


def load_market_data(data_dir: Path | None = None, start=None, end=None,
                     series: Iterable[str] | None = None) -> MarketData:
    """Load the bundle onto an hourly UTC clock.

    Args:
        data_dir: bundle directory (default :data:`DEFAULT_DATA_DIR`: env ``TRIMTAB_DATA``
            or the repository's ``data/``).
        start, end: clock bounds (str or Timestamp; naive means UTC), inclusive, rounded
            inward to whole hours. Default: from the first to the last availability time
            (rounded up to the tick) over the loaded series.
        series: names to load (default: all in the bundle).

    Returns:
        :class:`MarketData`.

    Raises:
        DataError: bundle or file missing, unknown series name (with close matches).
    """
    d = Path(data_dir) if data_dir is not None else Path(DEFAULT_DATA_DIR)
    catalog, names = read_catalog(d, series)
    return assemble(d, read_series(d, catalog, names), catalog, start, end)


def read_catalog(d: Path, series: Iterable[str] | None = None) -> tuple[dict[str, dict], list[str]]:
    """The first step of :func:`load_market_data`: the bundle's manifest at ``d``, checked.

    Returns ``(catalog, names)``: the manifest's series (name -> entry, with ``interval_h``,
    ``fill``, ``columns`` and ``name`` normalized) and the names to load (``series``, default
    all, in the manifest's order).

    Raises:
        DataError: no or an invalid manifest, a file outside ``d``, an unknown series name.
    """
    mpath = d / "manifest.json"
    if not mpath.exists():
        raise DataError(f"no data bundle at {d} (manifest.json missing); build it with "
                        "`trimtab data build --raw ../shared/data --out DIR`, or point --data at one")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        catalog = manifest["series"]
        inside = d.resolve()
        for n, m in catalog.items():
            f = (d / m["file"]).resolve()
            if not f.is_relative_to(inside):
                raise DataError(f"{mpath}: series {n!r} file {m['file']!r} is outside the data directory")
            m["interval_h"], m["fill"], m["columns"], m["name"] = float(m["interval_h"]), str(m["fill"]), list(m["columns"]), str(m.get("name", n))
    except DataError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as e:
        raise DataError(f"{mpath}: not a valid bundle manifest ({type(e).__name__}: {str(e)[:200]})") from None
    names = list(catalog) if series is None else list(series)
    for n in names:
        if n not in catalog:
            close = difflib.get_close_matches(n, list(catalog), n=5, cutoff=0.6)
            hint = f"; did you mean: {', '.join(close)}" if close else ""
            raise DataError(f"unknown series {n!r} in bundle {d}{hint}")
    return catalog, names


def read_series(d: Path, catalog: dict[str, dict], names: list[str]) -> dict[str, Series]:
    """The second step of :func:`load_market_data`: the series files of ``names`` (entries of
    :func:`read_catalog`'s ``catalog``) under ``d``, in that order, as :class:`Series`.

    Raises:
        DataError: a file missing or damaged.
    """
    import pyarrow as pa

    loaded: dict[str, Series] = {}
    pool = pa.default_memory_pool()
    # The file's Arrow buffers and the reader's scratch (decompression, decoded pages) are free
    # after each file. A pooling allocator (mimalloc, jemalloc) keeps them: hand the pages back
    # before the next file (the bundle's load peaked ~27 MB higher without it). The system
    # allocator (what `trimtab` selects, cli/main.py) reuses them itself, and its release is a
    # malloc_trim over the whole heap (~0.6 ms a file): once at the end, peak +1.5 MB.
    per_file = pool.backend_name != "system"
    for n in names:
        loaded[n] = _read_series(d / catalog[n]["file"], catalog[n])
        if per_file:
            pool.release_unused()
    if not per_file:
        pool.release_unused()
    return loaded


def assemble(d: Path, loaded: dict[str, Series], catalog: dict[str, dict], start=None, end=None,
             quality: Mapping[str, SeriesQuality] | None = None) -> MarketData:
    """The last step of :func:`load_market_data`: ``d``'s ``static.json`` and the clock
    [start, end] (default: the span of the ``loaded`` series' availability times) around them.
    ``quality``: the checks of every series with the default limits, if already made (the
    :class:`~trimtab.data.quality.Checked` of ``loaded`` judged whole, by
    :mod:`trimtab.data.background`'s child); by default made when first read.

    Raises:
        DataError: ``static.json`` is not valid JSON; no observations to bound a default clock.
    """
    spath = d / "static.json"
    try:
        static = json.loads(spath.read_text(encoding="utf-8")) if spath.exists() else {}
    except (ValueError, OSError) as e:
        raise DataError(f"{spath}: not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None
    if start is None or end is None:
        nonempty = [s.avail for s in loaded.values() if s.avail.size]
        if not nonempty:
            raise DataError("no observations in the requested series; give start and end")
        start = start if start is not None else to_ts(min(a[0] for a in nonempty)).ceil("h")
        end = end if end is not None else to_ts(max(a[-1] for a in nonempty)).ceil("h")
    return MarketData(_clock(start, end), loaded, static, bundle=catalog, quality=quality)
