"""Performance statistics of an equity series (share class units, hourly).

* APR = (E_end / E_start - 1) x 365 / days; APY = (E_end / E_start) ^ (365 / days) - 1;
* max drawdown = max over t of 1 - E_t / max(E_s, s <= t), a fraction;
* Sharpe = mean / std of daily returns (equity sampled at 00:00 UTC) x sqrt(365), risk-free 0
  (crypto trades every day, hence 365).

Also the run's ``equity.csv`` (:func:`write_equity_csv`): equity and NAV per tick, then the
risk metrics the engine journaled at that tick.
"""
from __future__ import annotations

import functools
import math
import operator
import sqlite3
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Callable, NamedTuple, Sequence

import numpy as np

if TYPE_CHECKING:  # the journal's module chain (msgspec, the writer) is imported where a journal is read:
    from .journal import MetricsRow  # trimtab run's loader imports this module to write equity.csv


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


def _utc_distinct(epoch: Sequence[int], day_fmt: str, clock_fmt: str) -> list[tuple[list[str], np.ndarray]]:
    """The date's and the time of day's text of each epoch second of ``epoch`` (n of them), as
    ``[(day_texts, day_index), (clock_texts, clock_index)]``: the texts of the distinct days /
    seconds of the day, ``time.strftime(day_fmt, time.gmtime(d * 86400))`` and
    ``time.strftime(clock_fmt, time.gmtime(s))`` of ``(d, s) = divmod(e, 86400)``, each formatted
    once (hourly ticks repeat 24 clocks, and a day 24 times), and each second's index into them
    (intp, shape (n,))."""
    fmt, gm = time.strftime, time.gmtime
    e = np.asarray(epoch, dtype=np.int64)
    d, s = np.divmod(e, 86400)   # floors as Python's divmod does (times before 1970)
    out = []
    for parts, f, scale in ((d, day_fmt, 86400), (s, clock_fmt, 1)):
        uniq, which = np.unique(parts, return_inverse=True)
        out.append(([fmt(f, gm(x * scale)) for x in uniq.tolist()], which.reshape(-1)))
    return out


def _utc_parts(epoch: Sequence[int], day_fmt: str, clock_fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """(date text, time of day text) per epoch second of ``epoch``, as two object arrays of str
    (shape (n,)), the distinct texts of :func:`_utc_distinct` shared."""
    out = []
    for texts, which in _utc_distinct(epoch, day_fmt, clock_fmt):
        shared = np.empty(len(texts), dtype=object)
        shared[:] = texts
        out.append(shared[which])
    return out[0], out[1]


def _utc_array(epoch: Sequence[int], day_fmt: str, clock_fmt: str):
    """:func:`utc_texts` as an Arrow string array (length n): the distinct texts of
    :func:`_utc_distinct` taken by index and joined in Arrow, no Python str per second."""
    arrow = _arrow()
    pa, call = arrow.pa, arrow.call
    days, clocks = (call("take", [_string_array(texts), pa.Array.from_buffers(
        pa.int64(), which.size, [None, pa.py_buffer(np.ascontiguousarray(which, dtype=np.int64))])])
        for texts, which in _utc_distinct(epoch, day_fmt, clock_fmt))
    return call("binary_join_element_wise", [days, clocks, arrow.empty])


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
    equity.csv) where it is ``repr``'s, :func:`_arrow_is_repr`; ``repr`` for the rest.
    (equity.csv itself keeps the text in Arrow: :func:`_csv_float_arrays`.)"""
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


class _Arrow(NamedTuple):
    """The Arrow pieces equity.csv's text is made with (:func:`_arrow`)."""
    pa: ModuleType
    call: Callable        # call_function(name, args, options=None): a compute kernel by name
    to_string: object     # CastOptions: float64 -> string
    null_empty: object    # JoinOptions of binary_join_element_wise: a null (NaN) joins as ""
    comma: object         # StringScalar ","
    empty: object         # StringScalar ""


@functools.cache
def _arrow() -> _Arrow:
    """Arrow's compute kernels (once per process), called through ``pyarrow._compute``
    (private): ``pyarrow.compute`` costs ~20 ms to import, more than Arrow saves a short run;
    the public names if that module moves (the same kernels)."""
    import pyarrow as pa
    try:
        from pyarrow._compute import CastOptions, JoinOptions, call_function
    except ImportError:   # another pyarrow layout: the public names
        from pyarrow.compute import CastOptions, JoinOptions, call_function
    comma, empty = _string_array([",", ""])   # pa.scalar would import pandas
    return _Arrow(pa, call_function, CastOptions(pa.string()), JoinOptions("replace", ""), comma, empty)


def _string_array(texts: Sequence[str]):
    """``texts`` (n str) as an Arrow string array of n, no nulls, built from its buffers:
    ``pa.array`` would import pandas (to test for a Series), which a run never does."""
    import pyarrow as pa
    raw = [t.encode() for t in texts]
    offsets = np.zeros(len(raw) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, raw), dtype=np.int32, count=len(raw)), dtype=np.int32, out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(raw), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(raw))])


def _arrow_is_repr(col: np.ndarray) -> np.ndarray:
    """Per float of ``col`` (any shape), bool: is Arrow's text of it Python's ``repr``?

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
    ``1e+10``: :func:`_arrow_is_repr` says where it is ``repr``'s)."""
    return _arrow_cast(np.ascontiguousarray(col, dtype=np.float64)).to_pylist()


def _arrow_cast(values: np.ndarray, null: np.ndarray | None = None):
    """Arrow's float64 -> string cast of C-contiguous float64 ``values`` (shape (n,)) as an
    Arrow string array of n, null where bool ``null`` (shape (n,), optional) is True. The float
    array wraps ``values``' buffer: ``pa.array`` would import pandas (to test for a Series),
    which a run never does."""
    arrow = _arrow()
    pa = arrow.pa
    valid = None if null is None else pa.py_buffer(np.packbits(~null, bitorder="little"))
    array = pa.Array.from_buffers(pa.float64(), values.size, [valid, pa.py_buffer(values)])
    return arrow.call("cast", [array], arrow.to_string)


def _csv_float_arrays(cols: Sequence[Sequence[float]]) -> list:
    """:func:`csv_floats`' text of each float column of ``cols`` (k columns of n floats) as an
    Arrow string array of n, null for NaN: no Python str per float.

    Arrow's text where it is ``repr``'s (:func:`_arrow_is_repr`), and for +-inf (``inf``,
    ``-inf`` as ``repr``); an integral magnitude below 1e10 (``-0`` too), Arrow's digits without
    ``.0``, gets ``.0`` appended, in bulk; ``repr`` writes the rest (other magnitudes: rare).

    The columns end to end are cast at once (a kernel call each costs more than its floats at
    a block's size); the fixes above are made per column slice, and only where needed."""
    arrow = _arrow()
    pa, call = arrow.pa, arrow.call
    values = np.stack([np.asarray(c, dtype=np.float64) for c in cols]) if cols else np.empty((0, 0))
    k, n = values.shape
    nan = np.isnan(values)
    text = _arrow_cast(values.reshape(-1), nan.reshape(-1) if nan.any() else None)
    with np.errstate(invalid="ignore"):   # trunc of a signalling NaN
        mag = np.abs(values)
        point = (values == np.trunc(values)) & (mag < 1e10)   # integral, finite (NaN compares False)
    own = ~_arrow_is_repr(values) & ~point & (mag < math.inf)   # neither +-inf nor NaN
    # ".0" is appended in bulk (a join over the column, ~1/10 of a repr a float) where at least
    # 1 in 16 floats are integral; fewer take repr's text with the other magnitudes.
    integral = point.sum(axis=1)
    bulk = (integral > 0) & (integral * 16 >= n)
    own |= point & ~bulk[:, None]
    out = []
    for i, (mine, pointed) in enumerate(zip(own.any(axis=1).tolist(), bulk.tolist())):
        col = text.slice(i * n, n)
        if mine:   # repr's text there, put in by a boolean mask
            mask = pa.Array.from_buffers(pa.bool_(), n, [None, pa.py_buffer(np.packbits(own[i], bitorder="little"))])
            col = call("replace_with_mask", [col, mask, _string_array(list(map(repr, values[i, own[i]].tolist())))])
        if pointed:   # ".0" after the integral ones: joined to a column of "" and ".0" (a null stays null)
            offsets = np.zeros(n + 1, dtype=np.int32)
            np.cumsum(point[i], dtype=np.int32, out=offsets[1:])
            suffix = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets * 2), pa.py_buffer(b".0" * int(offsets[-1]))])
            col = call("binary_join_element_wise", [col, suffix, arrow.empty])
        out.append(col)
    return out


def _arrow_rows(epoch: Sequence[int], cols: Sequence[np.ndarray]) -> memoryview:
    """equity.csv's lines of ticks ``epoch`` (n int epoch seconds) and float columns ``cols``
    (each of n), each line ``\\n`` then its fields (no line end: the caller ends the file), as
    UTF-8 bytes: the fields as :func:`_repr_rows` writes them, made and joined in Arrow."""
    arrow = _arrow()
    texts = [_utc_array(epoch, _DAY, _CLOCK), *_csv_float_arrays(cols)]
    lines = arrow.call("binary_join_element_wise", [*texts, arrow.comma], arrow.null_empty)
    _, offsets, data = lines.buffers()
    at = np.frombuffer(offsets, dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4)
    return memoryview(data)[int(at[0]):int(at[-1])]


def _repr_rows(epoch: Sequence[int], cols: Sequence[np.ndarray]) -> bytes:
    """:func:`_arrow_rows`' bytes by ``repr`` and Python's str (:func:`utc_texts`,
    :func:`_repr_floats`): a short run's few rows, without importing Arrow's compute module."""
    texts = [utc_texts(epoch, _DAY, _CLOCK), *map(_repr_floats, cols)]
    return "".join(map(",".join, zip(*texts))).encode()


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
    rows = _arrow_rows if n >= _ARROW_MIN else _repr_rows   # the same bytes either way
    db = sqlite3.connect(journal) if columns is None else None
    if db is not None:
        from .journal import read_metrics  # (only here: the loader's child writes from columns, without the journal's modules)
    try:
        with open(path, "wb") as f:
            # Each row's line starts with its "\n" (the time's text), so Arrow's joined rows
            # are written as they lie in its buffer; the last line's end closes the file.
            f.write(",".join(["time", "equity", "nav", *names]).encode())
            # A block of ticks at a time: the journal's rows and their text for the whole run at
            # once were the largest part of the run's peak memory.
            for lo in range(0, n, _BLOCK):
                hi = min(lo + _BLOCK, n)
                if columns is None:
                    block = metric_columns(hi - lo, read_metrics(db, lo, hi - 1, names=names), perp_venues, lo)
                else:
                    block = {k: columns[k][lo:hi] for k in names}
                f.write(rows(epoch[lo:hi], [equity[lo:hi], nav[lo:hi], *(block[k] for k in names)]))
            f.write(b"\n")
    finally:
        if db is not None:
            db.close()


def equity_csv_arrays(epoch, equity, nav, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """:func:`write_equity_csv`'s inputs as the 1-D arrays :func:`equity_csv_job` takes
    (``epoch`` int64, the rest float64: the same floats), the metric columns as ``m:<name>``."""
    out = {"epoch": np.asarray(epoch, dtype=np.int64), "equity": np.asarray(equity, dtype=np.float64),
           "nav": np.asarray(nav, dtype=np.float64)}
    out.update({"m:" + k: np.asarray(v, dtype=np.float64) for k, v in columns.items()})
    return out


def equity_csv_job(spec: dict, arrays: dict[str, np.ndarray]) -> None:
    """:func:`write_equity_csv` in another process (``trimtab run``'s forked helper,
    :meth:`trimtab.data.background.BackgroundLoad.submit`): ``spec`` = ``{"path", "journal",
    "perp_venues"}`` (str, str, list of str), ``arrays`` as :func:`equity_csv_arrays` made them.
    The equity and NAV columns go back to Python floats, as the engine holds them: the same
    bytes as the in-process call. Raises what :func:`write_equity_csv` raises."""
    columns = {k[2:]: v for k, v in arrays.items() if k.startswith("m:")}
    write_equity_csv(Path(spec["path"]), arrays["epoch"], arrays["equity"].tolist(), arrays["nav"].tolist(),
                     Path(spec["journal"]), list(spec["perp_venues"]), columns=columns)


def prepare_equity_csv_job() -> None:
    """What :func:`equity_csv_job` imports (pyarrow's compute kernels), made ready ahead."""
    _arrow()


#: Ticks per block of equity.csv (a few hundred kB of text at a time).
_BLOCK = 2048
#: equity.csv's time (:func:`utc_texts` formats): ``YYYY-MM-DD HH:MM:SS+00:00``, after the "\n"
#: that ends the line before (:func:`_arrow_rows`).
_DAY, _CLOCK = "\n%Y-%m-%d ", "%H:%M:%S+00:00"
#: Ticks from which equity.csv's text is made in Arrow (:func:`_arrow_rows`); a shorter run's
#: ~30 columns take ``repr`` alone (:func:`_repr_rows`): ~0.3 us more a float, against ~4 ms
#: of importing Arrow's compute module (even at ~400 ticks).
_ARROW_MIN = 256
