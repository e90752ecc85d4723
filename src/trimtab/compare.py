"""Side-by-side view: every config over one common window, against its stated target and the
market-neutral benchmark (Ethena sUSDe's APY over the same days). Every run kind takes part as
``trimtab run`` runs it: strategies, ``token_weights`` drift baskets and portfolios of strategies.

Each compare writes its own folder, ``<out>/compare-<UTC time>/`` (``-2``, ``-3`` ... when two
start in the same second), never reusing an earlier one: one run folder per config inside it
(named after the strategy) and ``comparison.json``, the result :func:`compare` returns.

The common window is the intersection of the strategies' default windows (each the longest
its data allows), so every row is measured over exactly the same hours. The benchmark APY
compounds sUSDe's daily APY (data/series/benchmark.susde) over the window's days:
growth = prod((1 + apy_d) ^ (1/365)), annualised as growth ^ (365 / days) - 1.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config.load import load_strategy
from .data.feed import DataError, MarketData, load_market_data
from .engine.backtest import run_backtest
from .engine.journal import jsonable
from .engine.window import clamp_window, default_window, resolve_window
from .errors import TrimtabError
from .portfolio.config import is_basket_file, is_portfolio_file, load_portfolio
from .portfolio.drift import run_drift
from .portfolio.runner import run_portfolio
from .portfolio.window import portfolio_window, strategy_window
from .runs import safe_name
from .timeutil import utc


#: Run kinds a compare runs, as ``trimtab run`` runs each (trimtab.summary.KINDS).
KINDS = ("strategy", "drift_basket", "portfolio")


def load_config(config: Path) -> tuple[str, Any]:
    """``(kind, loaded)`` for one config, as ``trimtab run`` reads it: a portfolio of strategies
    (``sleeves:``, :func:`trimtab.portfolio.config.load_portfolio`), a ``token_weights`` basket
    or a strategy (:func:`trimtab.config.load.load_strategy`). Raises ConfigError."""
    if is_portfolio_file(config):
        return "portfolio", load_portfolio(config)
    return ("drift_basket" if is_basket_file(config) else "strategy"), load_strategy(config)


def config_window(kind: str, loaded, data: MarketData, start=None, end=None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The window ``trimtab run`` would use for ``loaded`` (``kind`` of :func:`load_config`):
    its data's longest window without ``start``/``end``, else the given one checked against it.
    Raises DataError when the window is outside the config's data."""
    if kind == "portfolio":
        return portfolio_window(loaded, data, start, end)
    if kind == "drift_basket":
        return strategy_window(loaded, data, start, end)
    if start is None and end is None:
        return default_window(loaded, data)
    return resolve_window(loaded, data, start, end)


def common_window(strategies, data: MarketData, kinds: list[str] | None = None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The latest start and earliest end over the configs' default windows (``kinds`` as
    :func:`load_config` gives them; default: every one a strategy)."""
    wins = [config_window(k, s, data) for k, s in zip(kinds or ["strategy"] * len(strategies), strategies)]
    return max(a for a, _ in wins), min(b for _, b in wins)


def run_config(kind: str, loaded, start, end, out, data: MarketData | None, run_id: str) -> dict:
    """Run ``loaded`` (:func:`load_config`) over [start, end] as ``trimtab run`` does, into
    ``out/run_id``; returns its summary (trimtab.summary). Raises TrimtabError subclasses."""
    if kind == "portfolio":
        return run_portfolio(loaded, start=start, end=end, out=out, run_id=run_id, data=data).summary
    if kind == "drift_basket":
        return run_drift(loaded, start=start, end=end, out=out, run_id=run_id, data=data).summary
    return run_backtest(loaded, start=start, end=end, out=out, data=data, run_id=run_id).summary


def _cost(kind: str, loaded) -> int:
    """How long a run takes, roughly: its targets (each a venue model valued every tick)."""
    if kind == "portfolio":
        return sum(len(s.config.targets) for _, s in loaded.sleeves)
    return len(loaded.config.targets)


def benchmark_apy(data: MarketData, start: pd.Timestamp, end: pd.Timestamp) -> float:
    """Annualised sUSDe APY over [start, end] from the daily benchmark series (as-of each day)."""
    w = data.slice(start, end)
    apy = pd.Series(w.field("benchmark.susde.apy"), index=w.index).resample("1D").first().dropna()
    if apy.empty:
        return float("nan")
    growth = float(np.prod((1 + apy.to_numpy()) ** (1 / 365)))
    days = len(apy)
    return growth ** (365 / days) - 1


_ROW_KEYS = ("kind", "share_class", "apy", "apr", "max_drawdown", "sharpe", "attribution", "reconciliation_error",
             "initial_equity", "final_equity", "net_flows", "run_dir")


def _row(loaded, summary: dict) -> dict:
    """One compare row from a run's summary: the shared keys, ``mode`` (the strategy or
    portfolio name) and the config's stated target (None where it states none)."""
    t = getattr(loaded.config, "performance_target", None)
    return {"mode": summary.get("mode") or summary["name"], **{key: summary[key] for key in _ROW_KEYS},
            "target_apy": t.apy if t else None, "target_max_drawdown": t.max_drawdown if t else None,
            "target_source": t.source if t else ""}


def compare_dir(out: Path) -> Path:
    """A new, empty folder ``out/compare-<UTC time>`` for one compare (``-2``, ``-3`` ... when
    that name is taken), created here so two compares never share one. Raises OSError when
    ``out`` cannot be written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = f"compare-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    for k in range(1, 1000):
        d = out / (base if k == 1 else f"{base}-{k}")
        try:
            d.mkdir()  # atomic: the process that creates it owns it
        except FileExistsError:
            continue
        return d
    raise OSError(f"no free compare folder name under {out} (tried {base} to {base}-999)")


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
    """Worker side: one config's run over [start, end] (ISO UTC) -> ``(row, None)``, or
    ``(None, why)`` when it raised (the message crosses back, not the exception object, which
    may not survive the trip between processes)."""
    try:
        kind, loaded = load_config(Path(config))
        return _row(loaded, run_config(kind, loaded, start, end, out, _WORKER_DATA, run_id)), None
    except Exception as e:  # noqa: BLE001 - reported per config by the parent
        return None, _failure(e)


def compare(configs: list[Path], out: Path, start=None, end=None, progress=None, data: MarketData | None = None,
            jobs: int | None = None, data_dir: Path | None = None) -> dict:
    """Run every config over the common (or given) window, each config's backtest in its own
    worker process (``jobs`` of them, default ``os.cpu_count()``; ``jobs=1`` runs them here).

    The runs go into a new folder under ``out`` (:func:`compare_dir`), one run folder per config
    named after its strategy, with the result as ``comparison.json`` beside them.

    Returns ``{"dir", "window", "benchmark", "rows", "skipped", "failed"}``: ``dir`` that
    folder, ``rows`` in the order of
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
    # Every run kind (strategy, drift basket, portfolio of strategies) runs as `trimtab run` runs it.
    skipped: dict[str, str] = {}
    todo = list(configs)
    loaded = [load_config(Path(c)) for c in todo]
    kinds = [k for k, _ in loaded]
    strategies = [x for _, x in loaded]
    a, b = common_window(strategies, data, kinds)
    if start is not None or end is not None:
        try:
            # Partly inside the common window: clamped to it (one warning), so every row still
            # covers the same hours.
            start, end = clamp_window("the configs' common data", a, b, start, end)
        except DataError:
            pass  # wholly outside the common window: each config is checked against it below
    start = utc(start) if start is not None else a
    end = utc(end) if end is not None else b
    # A window a config's data does not wholly cover fails that config before anything runs
    # (clamping it alone would put its row on other hours); outside every config's data, it is
    # the user's to fix: refused as `trimtab run` refuses it.
    outside: dict[int, str] = {}
    first_error: DataError | None = None
    for k, s in enumerate(strategies):
        try:
            d0, d1 = config_window(kinds[k], s, data)
            if start < d0 or end > d1:
                raise DataError(f"window {start:%Y-%m-%d %H:%M} -> {end:%Y-%m-%d %H:%M} is outside what {s.name}'s data "
                                f"covers: {d0:%Y-%m-%d %H:%M} -> {d1:%Y-%m-%d %H:%M} (UTC)")
        except DataError as e:
            outside[k] = _failure(e)
            first_error = first_error or e
    if strategies and len(outside) == len(strategies):
        raise first_error
    # Run ids are handed out here, so a config given twice gets two run directories (workers
    # would otherwise pick the same id); the folder is new, so no earlier run is in the way.
    out = compare_dir(out)
    ids, taken = [], set()
    for s in strategies:
        rid = base = safe_name(s.name)
        k = 1
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
                summary = run_config(kinds[k], s, start, end, out, data, ids[k])
            except Exception as e:  # noqa: BLE001 - reported per config; the others still run
                done(k, None, _failure(e))
            else:
                done(k, _row(s, summary), None)
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
                order = sorted(runnable, key=lambda k: -_cost(kinds[k], strategies[k]))
                futures = {pool.submit(_run_one, str(todo[k]), t0, t1, str(out), ids[k]): k for k in order}
                for f in as_completed(futures):
                    try:
                        row, error = f.result()
                    except Exception as e:  # noqa: BLE001 - a worker that died is reported, not fatal
                        row, error = None, _failure(e)
                    done(futures[f], row, error)
        finally:
            _WORKER_DATA = None
    result = {"dir": str(out), "window": {"start": f"{start:%Y-%m-%dT%H:%MZ}", "end": f"{end:%Y-%m-%dT%H:%MZ}"},
              "benchmark": {"name": "Ethena sUSDe", "apy": benchmark_apy(data, start, end)},
              "rows": [r for r in rows if r is not None], "skipped": skipped, "failed": failed}
    (out / "comparison.json").write_text(json.dumps(jsonable(result), indent=2, default=str))
    return result
