"""A sweep directory read back for reporting: :func:`load_sweep` -> :class:`LoadedSweep`.

The file contract (written by ``trimtab sweep``, :mod:`trimtab.research.rows`):

* ``sweep.json`` -- the sweep's record (config, grid, metric, window, variants);
* ``sweep.parquet`` -- one row per variant: ``variant, status, error, param.<name>..., apy,
  max_drawdown, sharpe, worst_health_factor, worst_margin_ratio, liquidations, fees_usd,
  attribution.<category>..., final_equity, start, end, run_dir``;
* with ``--walk-forward``: ``walkforward.parquet`` (``fold, is_start, is_end, oos_start,
  oos_end, variant, param.<name>..., is_<metric>, oos_<metric>, is_apy, oos_apy,
  oos_final_equity, run_dir``) and ``walkforward_equity.csv`` (``time, equity``: the stitched
  out-of-sample equity).

Each file is checked against it; a missing file or column is a
:class:`~trimtab.reports.ReportError` naming the file and the column.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import ReportError
from .rundata import MAX_FILE_BYTES, read_json_object

SWEEP_COLUMNS = ("variant", "status", "error", "apy", "max_drawdown", "sharpe", "worst_health_factor", "worst_margin_ratio",
                 "liquidations", "fees_usd", "final_equity", "start", "end", "run_dir")
WALKFORWARD_COLUMNS = ("fold", "is_start", "is_end", "oos_start", "oos_end", "variant", "is_apy", "oos_apy", "oos_final_equity",
                       "run_dir")
NUMERIC = ("apy", "max_drawdown", "sharpe", "worst_health_factor", "worst_margin_ratio", "liquidations", "fees_usd", "final_equity")


@dataclass
class LoadedSweep:
    """``record``: sweep.json; ``rows``: sweep.parquet (metrics as float64), or for a walk-forward
    (which writes one sweep per fold, ``folds/fold-<n>/sweep.parquet``) every fold's rows with a
    ``fold`` column; ``params``: the swept names in column order (``param.<name>`` without the
    prefix); ``walkforward``: the folds or None; ``oos_equity``: the stitched out-of-sample equity
    (Series by UTC time) or None; ``folds``: fold number -> its in-sample sweep rows, or None."""

    sweep_dir: Path
    record: dict[str, Any]
    rows: pd.DataFrame
    params: list[str]
    walkforward: pd.DataFrame | None = None
    oos_equity: pd.Series | None = None
    folds: dict[int, pd.DataFrame] | None = None


def is_sweep_dir(path: Path) -> bool:
    """Whether ``path`` is a sweep directory (holds sweep.json or sweep.parquet)."""
    return (path / "sweep.json").is_file() or (path / "sweep.parquet").is_file()


def _parquet(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise ReportError(f"{path}: missing; the sweep has not written its results yet (rerun it with --resume)")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ReportError(f"{path}: {path.stat().st_size:,} bytes is too large for a sweep's results")
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
        raise ReportError(f"{path}: not a readable Parquet file ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    for col in required:
        if col not in df.columns:
            raise ReportError(f"{path}: no column {col!r} (the sweep file contract, docs/reports.md); rerun the sweep to rewrite it")
    return df


def _numbers(df: pd.DataFrame, cols, path: Path) -> None:
    for c in cols:
        vals = pd.to_numeric(df[c], errors="coerce")
        bad = vals.isna() & df[c].notna()
        if bad.any():
            raise ReportError(f"{path}: column {c!r} row {int(bad.to_numpy().nonzero()[0][0])}: {df[c][bad].iloc[0]!r} is not a number")
        df[c] = vals.astype("float64")


def load_sweep(sweep_dir: str | Path) -> LoadedSweep:
    """Read and check the sweep directory ``sweep_dir``. Raises ReportError for a missing or
    corrupt file, or a column of the contract that is missing or not numeric."""
    d = Path(sweep_dir)
    record = read_json_object(d / "sweep.json") if (d / "sweep.json").is_file() else {}
    folds = None
    if not (d / "sweep.parquet").is_file() and (d / "walkforward.parquet").is_file():
        folds = {}
        for p in sorted((d / "folds").glob("fold-*/sweep.parquet")):
            n = p.parent.name[5:]
            if n.isdigit():
                folds[int(n)] = _sweep_rows(p)
        if not folds:
            raise ReportError(f"{d / 'folds'}: no fold-<n>/sweep.parquet; the walk-forward has not written its in-sample sweeps")
        rows = pd.concat([f.assign(fold=n) for n, f in sorted(folds.items())], ignore_index=True)
    else:
        rows = _sweep_rows(d / "sweep.parquet")
    params = [c[6:] for c in rows.columns if c.startswith("param.")]
    wf = eq = None
    if (d / "walkforward.parquet").is_file():
        wf = _parquet(d / "walkforward.parquet", WALKFORWARD_COLUMNS)
        _numbers(wf, [c for c in wf.columns if c.startswith(("is_", "oos_")) and not c.endswith(("_start", "_end"))] + ["fold"],
                 d / "walkforward.parquet")
        for c in ("is_start", "is_end", "oos_start", "oos_end"):
            wf[c] = pd.to_datetime(wf[c], utc=True, errors="coerce")
            if wf[c].isna().any():
                raise ReportError(f"{d / 'walkforward.parquet'}: column {c!r} has a value that is not a date/time")
        p = d / "walkforward_equity.csv"
        if p.is_file():
            try:
                raw = pd.read_csv(p)
            except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
                raise ReportError(f"{p}: not a readable CSV ({' '.join(str(e).split())})") from None
            for c in ("time", "equity"):
                if c not in raw.columns:
                    raise ReportError(f"{p}: no column {c!r} (the sweep file contract, docs/reports.md)")
            t = pd.to_datetime(raw["time"], utc=True, errors="coerce")
            v = pd.to_numeric(raw["equity"], errors="coerce")
            if t.isna().any() or v.isna().any():
                raise ReportError(f"{p}: a time or equity value that does not parse (row {int((t.isna() | v.isna()).to_numpy().nonzero()[0][0]) + 2})")
            eq = pd.Series(v.to_numpy(float), index=pd.DatetimeIndex(t, name="time"), name="equity")
    return LoadedSweep(d, record, rows, params, wf, eq, folds)


def _sweep_rows(path: Path) -> pd.DataFrame:
    rows = _parquet(path, SWEEP_COLUMNS)
    if not any(c.startswith("param.") for c in rows.columns):
        raise ReportError(f"{path}: no param.<name> column; a sweep varies at least one parameter")
    _numbers(rows, NUMERIC + tuple(c for c in rows.columns if c.startswith("attribution.")), path)
    return rows
