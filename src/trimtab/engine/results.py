"""Performance statistics of an equity series (share class units, hourly).

* APR = (E_end / E_start - 1) x 365 / days; APY = (E_end / E_start) ^ (365 / days) - 1;
* max drawdown = max over t of 1 - E_t / max(E_s, s <= t), a fraction;
* Sharpe = mean / std of daily returns (equity sampled at 00:00 UTC) x sqrt(365), risk-free 0
  (crypto trades every day, hence 365).
"""
from __future__ import annotations

import math

import pandas as pd


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
