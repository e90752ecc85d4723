"""One run's journal read for the console's API: metrics time series, plans with their steps'
statuses, fills, alerts, and the :class:`~trimtab.reports.rundata.LoadedRun` of the charts.

The journal is opened read-only and read through the report's readers
(:mod:`trimtab.reports.rundata`: :func:`~trimtab.reports.rundata.opened`,
:func:`~trimtab.reports.rundata.read_plans`, :func:`~trimtab.reports.rundata.load_journal_run`)
and :mod:`trimtab.engine.journal`'s (:func:`read_metrics`); tables are those of docs/journal.md.
A portfolio run's store is ``portfolio.sqlite`` (:mod:`trimtab.portfolio.store`: ``series``,
``decisions``, ``reallocations``). What is here is the console's own: JSON-ready values, paging,
alerts.

JSON values: a metric is a float; NaN (SQLite NULL: the tick lacks a value) is ``null``; inf
and -inf (no debt, no perp position) are the strings ``"inf"`` and ``"-inf"`` -- JSON has no
infinity, and explain's JSON writes them the same way.

Every file is possibly corrupt: a table that is missing or a JSON column that does not parse
raises :class:`~trimtab.reports.ReportError` naming the file (the API answers 422), never a traceback.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from ..engine.journal import metric_names, read_metrics
from ..reports import ReportError
from ..reports.rundata import LoadedRun, load_journal_run, load_run, opened, parse_json, read_plans, read_reallocations, tables

#: Largest number of rows one metrics or fills response holds; ask again with ``since_tick``.
MAX_ROWS = 20000


def num(v: Any) -> float | str | None:
    """A metric for JSON: the float, ``None`` for NaN, ``"inf"``/``"-inf"`` for infinities."""
    if v is None:
        return None
    f = float(v)
    if math.isnan(f):
        return None
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f


def metrics(journal: Path, columns: Iterable[str] | None = None, since_tick: int = -1, limit: int = MAX_ROWS) -> dict[str, Any]:
    """Metrics per tick after ``since_tick``: ``{"columns": [...], "rows": [{"tick", "time",
    "state", <column>: value}, ...], "last_tick"}``, at most ``limit`` rows, oldest first.

    A strategy run: the ``metrics`` table (:func:`~trimtab.engine.journal.read_metrics`; a
    column a tick lacks is left out of that row). A portfolio: its ``series`` table (``equity,
    cash, nav``). ``columns``: only these (unknown names are ignored), default all.
    """
    limit = max(1, min(int(limit), MAX_ROWS))
    with opened(journal) as db:
        if journal.name == "portfolio.sqlite":
            have = ["equity", "cash", "nav"]
            cols = [c for c in have if columns is None or c in set(columns)]
            sel = ", ".join(["tick", "time", "state", *cols])
            rows = [{"tick": r[0], "time": r[1], "state": r[2], **{c: num(v) for c, v in zip(cols, r[3:])}}
                    for r in db.execute(f"SELECT {sel} FROM series WHERE tick > ? ORDER BY tick LIMIT ?", (since_tick, limit))]
        else:
            names = metric_names(db)
            cols = names if columns is None else [c for c in columns if c in set(names)]
            got = read_metrics(db, first=since_tick + 1, names=cols)[:limit]
            rows = [{"tick": r.tick, "time": r.time, "state": r.state, **{c: num(v) for c, v in r.metrics.items()}} for r in got]
    return {"columns": cols, "rows": rows, "last_tick": rows[-1]["tick"] if rows else since_tick}


def last_tick(journal: Path) -> dict[str, Any] | None:
    """The last tick journaled: ``{"tick", "time", "state", "equity", "health_factor",
    "margin_ratio_min"}`` (JSON values as :func:`num`), or None before the first tick."""
    with opened(journal) as db:
        if journal.name == "portfolio.sqlite":
            r = db.execute("SELECT tick, time, state, equity FROM series ORDER BY tick DESC LIMIT 1").fetchone()
            return None if r is None else {"tick": r[0], "time": r[1], "state": r[2], "equity": num(r[3])}
        (hi,) = db.execute("SELECT max(tick) FROM metrics").fetchone()
        if hi is None:
            return None
        r = read_metrics(db, hi, hi, names=("equity", "health_factor", "margin_ratio_min"))[0]
        return {"tick": r.tick, "time": r.time, "state": r.state, **{k: num(v) for k, v in r.metrics.items()}}


def plans(journal: Path) -> list[dict[str, Any]]:
    """Every plan, oldest first (:func:`~trimtab.reports.rundata.read_plans`: ``plan_id, tick,
    time, state, action, trigger, expected_cost, status, steps``), ``expected_cost`` as
    :func:`num`. A portfolio's are its reallocations (``realloc_id, start_time, end_time,
    trigger, status``)."""
    with opened(journal) as db:
        if journal.name == "portfolio.sqlite":
            return read_reallocations(db)
        return [{**p, "expected_cost": num(p["expected_cost"])} for p in read_plans(db, journal)]


FILL_COLUMNS = ("fill_id", "tick", "time", "plan_id", "step_id", "venue", "operation", "category", "price", "price_field",
                "impact", "legs", "note")


def fills(journal: Path, since_id: int = 0, limit: int = MAX_ROWS) -> list[dict[str, Any]]:
    """Fills with ``fill_id > since_id``, oldest first, at most ``limit``: the ``fills`` table's
    columns, ``legs`` parsed (``[[instrument, delta, price], ...]``). A portfolio has none of its
    own (its sleeves' runs have them): an empty list."""
    if journal.name == "portfolio.sqlite":
        return []
    limit = max(1, min(int(limit), MAX_ROWS))
    with opened(journal) as db:
        out = []
        for r in db.execute(f"SELECT {', '.join(FILL_COLUMNS)} FROM fills WHERE fill_id > ? ORDER BY fill_id LIMIT ?", (since_id, limit)):
            row = dict(zip(FILL_COLUMNS, r))
            row["legs"] = parse_json(row["legs"], f"{journal}: fill {row['fill_id']} legs")
            row["price"], row["impact"] = num(row["price"]), num(row["impact"])
            out.append(row)
        return out


def alerts(journal: Path) -> list[dict[str, Any]]:
    """What an operator must look at, oldest first, each ``{time, tick, kind, severity, message}``:
    a drift basket's ``alerts`` (high drift, failed rebalance, unusual gas), every failed plan
    step, every tick a series was quarantined by the data checks, every failed live feed fetch,
    and every entry into the ``emergency`` state."""
    out: list[dict[str, Any]] = []
    with opened(journal) as db:
        have = tables(db)
        if journal.name == "portfolio.sqlite":
            for tick, time, src, dest, trig in db.execute(
                    "SELECT tick, time, source, dest, trigger FROM decisions WHERE trigger IS NOT NULL ORDER BY tick"):
                if dest == "emergency":
                    out.append({"time": time, "tick": tick, "kind": "emergency", "severity": "critical",
                                "message": f"{trig}: {src} -> {dest}"})
            return out
        if "alerts" in have:
            for tick, time, kind, sev, value, thr, msg in db.execute(
                    "SELECT tick, time, kind, severity, value, threshold, message FROM alerts ORDER BY alert_id"):
                out.append({"time": time, "tick": tick, "kind": kind, "severity": sev, "message": msg, "value": num(value),
                            "threshold": num(thr)})
        for plan_id, step_id, tick, time, desc, detail in db.execute(
                "SELECT plan_id, step_id, tick, time, description, detail FROM instructions WHERE status = 'failed' ORDER BY rowid"):
            out.append({"time": time, "tick": tick, "kind": "step_failed", "severity": "critical",
                        "message": f"{plan_id}/{step_id} {desc}: {detail}"})
        if "quarantine" in have:
            for tick, time, series, fld, value, reason in db.execute(
                    "SELECT tick, time, series, field, value, reason FROM quarantine ORDER BY rowid"):
                out.append({"time": time, "tick": tick, "kind": "quarantine", "severity": "warning",
                            "message": f"{series}.{fld} = {value}: {reason}"})
        if "feed_errors" in have:
            for tick, time, series, source, msg in db.execute("SELECT tick, time, series, source, message FROM feed_errors ORDER BY rowid"):
                out.append({"time": time, "tick": tick, "kind": "feed_error", "severity": "warning", "message": f"{series} ({source}): {msg}"})
        for tick, time, src, trig in db.execute(
                "SELECT tick, time, source, trigger FROM decisions WHERE trigger IS NOT NULL AND dest = 'emergency' ORDER BY tick"):
            out.append({"time": time, "tick": tick, "kind": "emergency", "severity": "critical", "message": f"{trig}: {src} -> emergency"})
    out.sort(key=lambda a: (a["tick"] if isinstance(a["tick"], int) else -1))
    return out


def loaded_run(run_dir: Path) -> LoadedRun:
    """The run for the charts: :func:`~trimtab.reports.rundata.load_run` once the run has written
    its summary and equity.csv, else (a live run in progress)
    :func:`~trimtab.reports.rundata.load_journal_run`. Raises ReportError for a damaged run, or a
    portfolio still running (its charts need its summary)."""
    if (run_dir / "summary.json").is_file() and (run_dir / "equity.csv").is_file():
        return load_run(run_dir)
    if (run_dir / "portfolio.sqlite").is_file():
        raise ReportError(f"{run_dir}: a portfolio run in progress has no summary.json yet; its charts show once it ends")
    return load_journal_run(run_dir)
