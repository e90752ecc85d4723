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
import sqlite3
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .journal import MetricsRow, read_metrics


def performance(equity: pd.Series) -> dict[str, float]:
    """APY, APR, max drawdown and Sharpe of an equity series indexed by UTC timestamps."""
    e0, e1 = float(equity.iloc[0]), float(equity.iloc[-1])
    days = (equity.index[-1] - equity.index[0]).total_seconds() / 86400
    growth = e1 / e0 if e0 > 0 else float("nan")
    apr = (growth - 1) * 365 / days if days > 0 else 0.0
    apy = growth ** (365 / days) - 1 if days > 0 and growth > 0 else float("nan")
    peak = equity.cummax()
    mdd = float((1 - equity / peak).max())
    daily = equity.resample("1D").first().dropna()
    r = daily.pct_change().dropna()
    sharpe = float(r.mean() / r.std() * math.sqrt(365)) if len(r) > 2 and r.std() > 0 else 0.0
    return {"apy": apy, "apr": apr, "max_drawdown": mdd, "sharpe": sharpe, "days": days}


def equity_columns(perp_venues: Sequence[str]) -> list[str]:
    """The metric columns of ``equity.csv`` after ``time, equity, nav``, in file order:
    ``health_factor, ltv, margin_ratio_min, margin_ratio.<venue>`` per perp venue (in the
    given order), ``net_delta, delta_drift`` (names as :mod:`trimtab.metrics` declares them)."""
    return ["health_factor", "ltv", "margin_ratio_min", *(f"margin_ratio.{v}" for v in perp_venues),
            "net_delta", "delta_drift"]


def equity_table(equity: pd.Series, nav: pd.Series, rows: Sequence[MetricsRow],
                 perp_venues: Sequence[str]) -> pd.DataFrame:
    """The ``equity.csv`` frame: index the ticks' UTC times, columns ``equity`` and ``nav``
    (share class, NAV per unit) then :func:`equity_columns`, each the float the journal row of
    that tick holds (tick ``i`` is row ``i`` of ``equity``); NaN where the tick has no row or
    lacks the metric. ``equity`` and ``nav`` share one index of ``n`` ticks; ``rows`` are
    :func:`trimtab.engine.journal.read_metrics` rows (ticks outside ``0..n-1`` are ignored)."""
    n = len(equity)
    names = equity_columns(perp_venues)
    cols = {k: [math.nan] * n for k in names}
    for r in rows:
        if 0 <= r.tick < n:
            m = r.metrics
            for k in names:
                cols[k][r.tick] = m.get(k, math.nan)
    # Built as before the metric columns existed, which are then set by position (no index
    # alignment), so time/equity/nav are written exactly as they always were.
    frame = pd.DataFrame({"equity": equity, "nav": nav})
    for k in names:
        frame[k] = np.asarray(cols[k], dtype=np.float64)
    return frame


def write_equity_csv(path: Path, equity: pd.Series, nav: pd.Series, journal: Path,
                     perp_venues: Sequence[str]) -> None:
    """Write :func:`equity_table` to ``path`` (CSV, first column ``time``), its metrics read
    from the closed journal at ``journal`` (the SQLite file). Read at the end of the run so
    the tick loop does nothing more. pandas writes inf (no debt, no perp position) as ``inf``,
    which ``pd.read_csv`` reads back as inf, and NaN as an empty field.

    Raises:
        sqlite3.Error: the journal cannot be read."""
    db = sqlite3.connect(journal)
    try:
        rows = read_metrics(db, 0, len(equity) - 1, names=equity_columns(perp_venues))
    finally:
        db.close()
    equity_table(equity, nav, rows, perp_venues).to_csv(path, index_label="time")
