"""Side-by-side view: every strategy over one common window, against its stated target and
the market-neutral benchmark (Ethena sUSDe's APY over the same days).

The common window is the intersection of the strategies' default windows (each the longest
its data allows), so every row is measured over exactly the same hours. The benchmark APY
compounds sUSDe's daily APY (data/series/benchmark.susde) over the window's days:
growth = prod((1 + apy_d) ^ (1/365)), annualised as growth ^ (365 / days) - 1.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .config.load import load_strategy
from .data.feed import MarketData, load_market_data
from .engine.backtest import run_backtest
from .engine.window import default_window, new_run_id
from .portfolio.config import is_portfolio_file
from .timeutil import utc


def common_window(strategies, data: MarketData) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The latest start and earliest end over the strategies' default windows."""
    wins = [default_window(s, data) for s in strategies]
    return max(a for a, _ in wins), min(b for _, b in wins)


def benchmark_apy(data: MarketData, start: pd.Timestamp, end: pd.Timestamp) -> float:
    """Annualised sUSDe APY over [start, end] from the daily benchmark series (as-of each day)."""
    w = data.slice(start, end)
    apy = pd.Series(w.field("benchmark.susde.apy"), index=w.index).resample("1D").first().dropna()
    if apy.empty:
        return float("nan")
    growth = float(np.prod((1 + apy.to_numpy()) ** (1 / 365)))
    days = len(apy)
    return growth ** (365 / days) - 1


def compare(configs: list[Path], out: Path, start=None, end=None, progress=None, data: MarketData | None = None) -> dict:
    """Run every config over the common (or given) window. Returns ``{"window", "benchmark", "rows"}``
    where each row holds the mode's APY, APR, max drawdown, Sharpe, attribution and target."""
    data = data or load_market_data()
    # A portfolio of strategies is not one strategy: `trimtab run` it (its sleeves are compared here).
    skipped = {str(c): "a portfolio of strategies: run it with `trimtab run`" for c in configs if is_portfolio_file(c)}
    strategies = [load_strategy(c) for c in configs if str(c) not in skipped]
    a, b = common_window(strategies, data)
    start = utc(start) if start is not None else a
    end = utc(end) if end is not None else b
    rows = []
    for k, s in enumerate(strategies):
        if progress:
            progress(k, len(strategies), s.name)
        # A fresh run directory each time: an existing run is never replaced (trimtab.runs).
        r = run_backtest(s, start=start, end=end, out=out, data=data,
                         run_id=new_run_id(s, start, end, out, prefix="compare-"))
        t = s.config.performance_target
        rows.append({**{key: r.summary[key] for key in ("mode", "share_class", "apy", "apr", "max_drawdown", "sharpe",
                                                         "attribution", "reconciliation_error", "initial_equity", "final_equity")},
                     "target_apy": t.apy if t else None, "target_max_drawdown": t.max_drawdown if t else None,
                     "target_source": t.source if t else "", "run_dir": r.summary["run_dir"]})
    if progress:
        progress(len(strategies), len(strategies), "")
    return {"window": {"start": f"{start:%Y-%m-%dT%H:%MZ}", "end": f"{end:%Y-%m-%dT%H:%MZ}"},
            "benchmark": {"name": "Ethena sUSDe", "apy": benchmark_apy(data, start, end)}, "rows": rows, "skipped": skipped}
