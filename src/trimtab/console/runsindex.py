"""The runs of a folder at a glance: :func:`list_runs` and :func:`run_entry`.

Each run directory (a strategy, drift-basket or portfolio run, backtest or live) gives one entry:
``id, kind, mode, name, config, state, window, last_time, tick, equity, apy, alive, pid, status,
health``.

* ``status``: ``live`` (a process holds the run's lock, :func:`trimtab.runs.holder`: a live
  run, or a backtest still writing), ``stopped`` (a live run stopped by ``trimtab stop`` or the
  console), ``finished`` (its summary is written), ``interrupted`` (no process, no summary: a
  killed run; ``--resume`` continues it).
* ``apy``: the summary's once finished; while running, the same formula
  (:func:`trimtab.engine.results.performance`) on the first and last equity journaled.
* ``health``: the worst of the health factor and the smallest CEX margin ratio at the last tick
  against the thresholds the run's own rules compare them with (its rule trace of that tick,
  :func:`trimtab.explain.tick_trace`), plus Aave's liquidation at 1.0 for the health factor:
  ``critical`` at or below a threshold, ``warning`` within :data:`WARN_MARGIN` above the highest
  one, ``ok`` above, ``n/a`` without debt or perp position (inf). A portfolio's is its worst
  sleeve's.
"""
from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd

from ..engine.results import performance
from ..explain import RunError, tick_trace
from ..reports import ReportError
from ..reports.rundata import opened, read_json_object, read_meta, tables
from ..runs import holder, run_id_problem
from . import ConsoleError
from .journals import last_tick

#: ``warning`` when a metric is less than this fraction above its highest threshold.
WARN_MARGIN = 0.05
#: Aave v3 liquidates below health factor 1.0.
AAVE_LIQUIDATION_HF = 1.0
HEALTH_METRICS = ("health_factor", "margin_ratio_min")
LEVELS = ("n/a", "ok", "warning", "critical")

_health_cache: dict[tuple, dict] = {}


def _stamp(journal: Path) -> tuple:
    """Changes whenever the journal does (its WAL file included: a live run writes there)."""
    out = []
    for p in (journal, journal.with_name(journal.name + "-wal")):
        try:
            st = p.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def thresholds_of(trace: list[dict]) -> dict[str, list[float]]:
    """metric -> thresholds its rules compare it ``<`` / ``<=`` against, from a rule trace
    (``comparisons: [[left, observed, op, threshold, result], ...]``)."""
    out: dict[str, list[float]] = {m: [] for m in HEALTH_METRICS}
    for r in trace if isinstance(trace, list) else []:
        for c in (r.get("comparisons") or []) if isinstance(r, dict) else []:
            if isinstance(c, list) and len(c) == 5 and c[0] in out and c[2] in ("<", "<=") \
                    and isinstance(c[3], (int, float)) and not isinstance(c[3], bool) and math.isfinite(c[3]):
                out[c[0]].append(float(c[3]))
    return out


def grade(value: Any, lines: list[float]) -> str:
    """``critical``, ``warning``, ``ok`` or ``n/a`` for ``value`` against the lower bounds
    ``lines`` (see the module docstring)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or not lines:
        return "n/a"
    if value <= max(lines):
        return "critical"
    return "warning" if value < max(lines) * (1 + WARN_MARGIN) else "ok"


def strategy_health(journal: Path) -> dict[str, Any]:
    """``{"level", "metrics": {name: {"value", "thresholds", "level"}}}`` of a strategy journal's
    last tick (module docstring). Cached until the journal changes."""
    key = (str(journal), _stamp(journal))
    if key in _health_cache:
        return _health_cache[key]
    last = last_tick(journal)
    out: dict[str, Any] = {"level": "n/a", "metrics": {}}
    if last is not None:
        try:
            lines = thresholds_of(tick_trace(journal, last["tick"]))
        except (RunError, sqlite3.DatabaseError, ValueError, KeyError, TypeError):
            lines = {m: [] for m in HEALTH_METRICS}  # rules not rebuildable: no threshold to grade against
        lines["health_factor"].append(AAVE_LIQUIDATION_HF)
        for m in HEALTH_METRICS:
            v = last.get(m)
            value = math.inf if v == "inf" else v
            out["metrics"][m] = {"value": v, "thresholds": sorted(set(lines[m])), "level": grade(value, lines[m])}
        out["level"] = max((x["level"] for x in out["metrics"].values()), key=LEVELS.index)
    if len(_health_cache) > 512:
        _health_cache.clear()
    _health_cache[key] = out
    return out


def portfolio_health(run_dir: Path) -> dict[str, Any]:
    """A portfolio's health: its worst sleeve's (``sleeve`` names it)."""
    worst: dict[str, Any] = {"level": "n/a", "metrics": {}}
    root = run_dir / "sleeves"
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        j = d / "journal.sqlite"
        if d.is_symlink() or not j.is_file():
            continue
        h = strategy_health(j)
        if LEVELS.index(h["level"]) > LEVELS.index(worst["level"]):
            worst = {**h, "sleeve": d.name}
    return worst


def _apy(first: tuple[str, float] | None, last: tuple[str, float] | None) -> float | None:
    if not first or not last or first[0] == last[0] or not all(isinstance(x[1], float) and x[1] > 0 for x in (first, last)):
        return None
    s = pd.Series([first[1], last[1]], index=pd.to_datetime([first[0], last[0]], utc=True))
    v = performance(s)["apy"]
    return v if math.isfinite(v) else None


def run_entry(run_dir: Path) -> dict[str, Any]:
    """The entry of one run directory (module docstring). Raises ReportError for a
    journal that cannot be read."""
    portfolio = (run_dir / "portfolio.sqlite").is_file()
    journal = run_dir / ("portfolio.sqlite" if portfolio else "journal.sqlite")
    with opened(journal) as db:
        meta = read_meta(db)
        table = "series" if portfolio else "metrics"
        # A journal created but not yet past its first tick may lack the table: no first tick yet.
        first = db.execute(f"SELECT time, equity FROM {table} ORDER BY tick LIMIT 1").fetchone() if table in tables(db) else None
    summary = None
    if (run_dir / "summary.json").is_file():
        try:
            summary = read_json_object(run_dir / "summary.json")
        except ReportError:
            summary = None
    owner = holder(run_dir)
    last = last_tick(journal)
    kind = "portfolio" if portfolio else str((summary or {}).get("kind") or ("drift_basket" if "drift" in meta else "strategy"))
    live = meta.get("live") if isinstance(meta.get("live"), dict) else None
    if owner is not None:
        status = "live"
    elif meta.get("stopped") or (summary or {}).get("stopped"):
        status = "stopped"
    elif summary is not None:
        status = "finished"
    else:
        status = "interrupted"
    spec = meta.get("portfolio" if portfolio else "strategy")
    spec = spec if isinstance(spec, dict) else {}
    window = meta.get("window") if isinstance(meta.get("window"), dict) else {}
    equity = last.get("equity") if last else None
    if summary is not None and isinstance(summary.get("apy"), (int, float)) and status != "live":
        apy = float(summary["apy"]) if math.isfinite(summary["apy"]) else None
    else:
        apy = _apy((first[0], float(first[1])) if first and isinstance(first[1], (int, float)) else None,
                   (last["time"], float(equity)) if last and isinstance(equity, float) else None)
    return {
        "id": run_dir.name, "kind": kind, "mode": f"live ({live.get('feed', 'live')})" if live else "backtest",
        "name": spec.get("name") or (summary or {}).get("name"), "config": spec.get("config"),
        "share_class": window.get("share_class") or (summary or {}).get("share_class"),
        "state": last.get("state") if last else None, "window": {"start": window.get("start"), "end": window.get("end")},
        "last_time": last.get("time") if last else None, "tick": last.get("tick") if last else None,
        "equity": equity, "apy": apy, "alive": owner is not None,
        "pid": owner.get("pid") if owner and isinstance(owner.get("pid"), int) else None, "status": status,
        "health": portfolio_health(run_dir) if portfolio else strategy_health(journal),
    }


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Every run directly inside ``runs_dir`` (directories with a journal; symlinks and names
    that are not run ids are skipped), most recently written first. A run whose journal cannot be
    read is listed with ``status: "unreadable"`` and ``error``."""
    root = Path(runs_dir)
    found = []
    for d in root.iterdir() if root.is_dir() else []:
        if d.is_symlink() or not d.is_dir() or run_id_problem(d.name) is not None:
            continue
        j = d / "portfolio.sqlite" if (d / "portfolio.sqlite").is_file() else d / "journal.sqlite"
        if j.is_file() and not j.is_symlink():
            found.append((j.stat().st_mtime, d))
    out = []
    for _, d in sorted(found, key=lambda x: (-x[0], x[1].name)):
        try:
            out.append(run_entry(d))
        except (ConsoleError, ReportError, sqlite3.DatabaseError) as e:
            out.append({"id": d.name, "status": "unreadable", "error": str(e), "alive": False, "health": {"level": "n/a", "metrics": {}}})
    return out
