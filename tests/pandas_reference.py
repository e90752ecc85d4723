"""Reference formulas in pandas, as trimtab computed them before its run path went numpy: the
tests of the numpy forms (unit and integration) compare against these, float for float."""
from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from trimtab.engine.journal import MetricsRow
from trimtab.engine.results import metric_columns


def pandas_performance(equity: pd.Series) -> dict[str, float]:
    """``{"apy", "apr", "max_drawdown", "sharpe", "days"}`` of an equity (or NAV) series with a
    UTC DatetimeIndex: the pandas formulation trimtab.engine.results.performance had before
    :func:`trimtab.engine.results.performance_of` replaced it."""
    e0, e1 = float(equity.iloc[0]), float(equity.iloc[-1])
    days = (equity.index[-1] - equity.index[0]).total_seconds() / 86400
    growth = e1 / e0 if e0 > 0 else float("nan")
    apr = (growth - 1) * 365 / days if days > 0 else 0.0
    apy = growth ** (365 / days) - 1 if days > 0 and growth > 0 else float("nan")
    mdd = float((1 - equity / equity.cummax()).max())
    r = equity.resample("1D").first().dropna().pct_change().dropna()
    sharpe = float(r.mean() / r.std() * math.sqrt(365)) if len(r) > 2 and r.std() > 0 else 0.0
    return {"apy": apy, "apr": apr, "max_drawdown": mdd, "sharpe": sharpe, "days": days}


def equity_table(equity, nav, rows: Sequence[MetricsRow], perp_venues: Sequence[str]) -> pd.DataFrame:
    """The ``equity.csv`` frame as trimtab built it with pandas: index the ticks' UTC times,
    columns ``equity`` and ``nav`` (``pd.Series`` sharing one index of ``n`` ticks), then
    :func:`trimtab.engine.results.metric_columns`. ``.to_csv(path, index_label="time")`` is the
    file :func:`trimtab.engine.results.write_equity_csv` must write byte for byte."""
    # Built as before the metric columns existed, which are then set by position (no index
    # alignment), so time/equity/nav are written exactly as they always were.
    frame = pd.DataFrame({"equity": equity, "nav": nav})
    for k, col in metric_columns(len(equity), rows, perp_venues).items():
        frame[k] = col
    return frame
