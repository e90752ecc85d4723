"""Side-by-side view: every strategy over one common window, against its stated target and
the market-neutral benchmark (Ethena sUSDe's APY over the same days).

The common window is the intersection of the strategies' default windows (each the longest
its data allows), so every row is measured over exactly the same hours. The benchmark APY
compounds sUSDe's daily APY (data/series/benchmark.susde) over the window's days:
growth = prod((1 + apy_d) ^ (1/365)), annualised as growth ^ (365 / days) - 1.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd

from .config.load import load_strategy
from .data.feed import DataError, MarketData, load_market_data
from .engine.backtest import run_backtest
from .engine.window import default_window, new_run_id, resolve_window
from .errors import TrimtabError
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


_ROW_KEYS = ("mode", "share_class", "apy", "apr", "max_drawdown", "sharpe", "attribution", "reconciliation_error",
             "initial_equity", "final_equity")


def _row(strategy, summary: dict) -> dict:
    t = strategy.config.performance_target
    return {**{key: summary[key] for key in _ROW_KEYS},
            "target_apy": t.apy if t else None, "target_max_drawdown": t.max_drawdown if t else None,
            "target_source": t.source if t else "", "run_dir": summary["run_dir"]}


def _failure(e: BaseException) -> str:
    """One line for a config whose run failed: a trimtab error's own message, else the type too."""
    return str(e) if isinstance(e, TrimtabError) else f"{type(e).__name__}: {e}"


# The market data of a worker process, read by _run_one: a run's arguments are then a path and
# two times, never the data itself. A forked worker inherits the parent's (set just before the
# pool starts); a spawned one loads it once, in _init_worker.
_WORKER_DATA: MarketData | None = None


def _init_worker(data_dir: str | None) -> None:
    global _WORKER_DATA
    if _WORKER_DATA is None:
        _WORKER_DATA = load_market_data(data_dir)


def _pool_context():
    """fork where the platform has it: a worker starts in milliseconds with the modules imported
    and the data loaded (copy-on-write); spawn elsewhere (about a second of imports per worker)."""
    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def _run_one(config: str, start: str, end: str, out: str, run_id: str) -> tuple[dict | None, str | None]:
    """Worker side: one config's backtest over [start, end] (ISO UTC) -> ``(row, None)``, or
    ``(None, why)`` when it raised (the message crosses back, not the exception object, which
    may not survive the trip between processes)."""
    try:
        s = load_strategy(Path(config))
        r = run_backtest(s, start=start, end=end, out=out, data=_WORKER_DATA, run_id=run_id)
        return _row(s, r.summary), None
    except Exception as e:  # noqa: BLE001 - reported per config by the parent
        return None, _failure(e)


def compare(configs: list[Path], out: Path, start=None, end=None, progress=None, data: MarketData | None = None,
            jobs: int | None = None, data_dir: Path | None = None) -> dict:
    """Run every config over the common (or given) window, each config's backtest in its own
    worker process (``jobs`` of them, default ``os.cpu_count()``; ``jobs=1`` runs them here).

    Returns ``{"window", "benchmark", "rows", "skipped", "failed"}``: ``rows`` in the order of
    ``configs`` (the same rows whatever ``jobs``), each with the mode's APY, APR, max drawdown,
    Sharpe, attribution and target; ``failed`` maps a config whose run raised to one line saying
    why (the other configs still run and keep their rows).

    Args:
        progress: optional callable ``(done, total, name, error)`` called as each config
            finishes (``error``: None, or the line of ``failed``), in the order they finish.
        data: preloaded market data (used in this process only, so it needs ``jobs`` 1 or None,
            which then means 1); ``data_dir``: the bundle the workers (and this process) load.

    Raises:
        ConfigError: a config does not load (before anything runs); DataError: no common window, or the
            window is outside every config's data (before anything runs; outside some config's
            data, that config is in ``failed`` and the others run);
        ValueError: ``data`` with ``jobs`` > 1, or ``jobs`` < 1.
    """
    if data is not None and jobs not in (None, 1):
        raise ValueError("preloaded data cannot be shared with worker processes: pass jobs=1 (or no data)")
    jobs = 1 if data is not None else (jobs or os.cpu_count() or 1)
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    data = data or load_market_data(data_dir)
    # A portfolio of strategies is not one strategy: `trimtab run` it (its sleeves are compared here).
    skipped = {str(c): "a portfolio of strategies: run it with `trimtab run`" for c in configs if is_portfolio_file(c)}
    todo = [c for c in configs if str(c) not in skipped]
    strategies = [load_strategy(c) for c in todo]
    a, b = common_window(strategies, data)
    start = utc(start) if start is not None else a
    end = utc(end) if end is not None else b
    # A window outside a config's data fails that config before anything runs; outside every
    # config's data, it is the user's to fix: refused as `trimtab run` refuses it.
    outside: dict[int, str] = {}
    first_error: DataError | None = None
    for k, s in enumerate(strategies):
        try:
            resolve_window(s, data, start, end)
        except DataError as e:
            outside[k] = _failure(e)
            first_error = first_error or e
    if strategies and len(outside) == len(strategies):
        raise first_error
    # Run ids are handed out here, so a config given twice gets two run directories (workers
    # started in the same second would otherwise pick the same id); an existing run is never
    # replaced (trimtab.runs).
    ids, taken = [], set()
    for s in strategies:
        rid = new_run_id(s, start, end, out, prefix="compare-")
        base, k = rid, 1
        while rid in taken:
            k += 1
            rid = f"{base}-{k}"
        taken.add(rid)
        ids.append(rid)
    rows: list[dict | None] = [None] * len(strategies)
    failed: dict[str, str] = {}

    def done(k: int, row: dict | None, error: str | None) -> None:
        rows[k] = row
        if error is not None:
            failed[str(todo[k])] = error
        if progress:
            progress(sum(r is not None for r in rows) + len(failed), len(strategies), strategies[k].name, error)

    for k, why in outside.items():
        done(k, None, why)
    runnable = [k for k in range(len(strategies)) if k not in outside]
    if jobs == 1 or len(runnable) <= 1:
        for k in runnable:
            s = strategies[k]
            try:
                r = run_backtest(s, start=start, end=end, out=out, data=data, run_id=ids[k])
            except Exception as e:  # noqa: BLE001 - reported per config; the others still run
                done(k, None, _failure(e))
            else:
                done(k, _row(s, r.summary), None)
    else:
        # Worker processes run whole configs: a backtest is CPU-bound pure Python, so processes,
        # not threads, use the machine's cores. The global holds the data for the pool's whole
        # life, since the pool forks its workers when runs are submitted.
        global _WORKER_DATA
        t0, t1 = start.isoformat(), end.isoformat()
        _WORKER_DATA = data
        try:
            with ProcessPoolExecutor(max_workers=min(jobs, len(runnable)), mp_context=_pool_context(),
                                     initializer=_init_worker,
                                     initargs=(None if data_dir is None else str(data_dir),)) as pool:
                # Longest first, so no long run starts last while the other workers idle; a run's
                # cost grows with its targets (each one a venue model valued every tick).
                order = sorted(runnable, key=lambda k: -len(strategies[k].config.targets))
                futures = {pool.submit(_run_one, str(todo[k]), t0, t1, str(out), ids[k]): k for k in order}
                for f in as_completed(futures):
                    try:
                        row, error = f.result()
                    except Exception as e:  # noqa: BLE001 - a worker that died is reported, not fatal
                        row, error = None, _failure(e)
                    done(futures[f], row, error)
        finally:
            _WORKER_DATA = None
    return {"window": {"start": f"{start:%Y-%m-%dT%H:%MZ}", "end": f"{end:%Y-%m-%dT%H:%MZ}"},
            "benchmark": {"name": "Ethena sUSDe", "apy": benchmark_apy(data, start, end)},
            "rows": [r for r in rows if r is not None], "skipped": skipped, "failed": failed}
