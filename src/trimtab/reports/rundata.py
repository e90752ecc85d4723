"""A run directory read back for reporting: :func:`load_run` -> :class:`LoadedRun`.

Reads what every run kind writes (README "Each run writes runs/<run-id>/"):

* ``summary.json`` -- the summary (schema/summary.schema.json); checked for the keys a report uses;
* ``equity.csv`` -- per tick: ``time, equity, nav`` and the journal's metrics (a portfolio's own
  file: ``time, equity, cash, sleeve.<id>``);
* ``journal.sqlite`` (strategy and drift-basket runs) through the readers of
  :mod:`trimtab.engine.journal` and its tables (docs/journal.md): states, transitions, plans with
  their steps' statuses, funding fills per venue, a basket's rebalances;
* ``portfolio.sqlite`` (portfolio runs): the portfolio's NAV and state per tick, its
  transitions and reallocations; each sleeve's ``sleeves/<id>/summary.json`` for its data notes.

The journal readers are public and shared with the operator console (which imports this layer,
never the reverse): :func:`connect` / :func:`opened` (read-only, live-run safe), :func:`tables`,
:func:`read_meta`, :func:`read_plans`, :func:`read_strategy_journal`, and
:func:`load_journal_run` for a run still going (no summary.json or equity.csv yet).

Every file is treated as possibly corrupt: parsed as data (JSON, CSV, SQLite opened read-only),
checked, and refused with a :class:`~trimtab.reports.ReportError` naming the file and what is wrong.
"""
from __future__ import annotations

import json
import math
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd

from ..engine.journal import metric_names, read_metrics
from ..engine.results import equity_columns
from . import ReportError

#: Summary keys every report reads, with the type each must have.
SUMMARY_KEYS: dict[str, type | tuple[type, ...]] = {
    "kind": str, "name": str, "share_class": str, "start": str, "end": str,
    "initial_equity": (int, float), "final_equity": (int, float), "attribution": dict,
}
#: Largest JSON or CSV file read (bytes): a run's files are a few MB; more is not a run's.
MAX_FILE_BYTES = 512 * 1024 * 1024


@dataclass
class LoadedRun:
    """One run directory, read and checked.

    ``equity``: DataFrame indexed by UTC time (hourly ticks) with float columns as in equity.csv
    (``equity``, ``nav``, ``health_factor``, ``ltv``, ``margin_ratio.<venue>``, ``net_delta``,
    ``delta_drift``...; a portfolio's ``cash``, ``sleeve.<id>`` and ``nav`` from portfolio.sqlite);
    ``inf`` where there is no debt or no perp position.
    ``states``: DataFrame ``time, state`` per tick (the machine state after the tick).
    ``transitions``: DataFrame ``time, source, dest, trigger`` (plus ``plan_id`` for a strategy).
    ``funding``: DataFrame ``time, venue, amount`` of every funding payment (share class; + received).
    ``plans``: dicts ``plan_id, time, state, action, trigger, expected_cost, status, steps`` with
    ``steps`` dicts ``id, description, venue, operation, status, time``.
    ``tables``: extra tables by title (a basket's rebalances, a portfolio's reallocations and
    sleeves), each a list of row dicts. ``journal``: the strategy journal path, or None.
    ``sleeves``: a portfolio's sleeve summaries by id (empty otherwise).
    """

    run_dir: Path
    summary: dict[str, Any]
    equity: pd.DataFrame
    states: pd.DataFrame
    transitions: pd.DataFrame
    funding: pd.DataFrame
    plans: list[dict[str, Any]] = field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    journal: Path | None = None
    sleeves: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``strategy``, ``drift_basket`` or ``portfolio`` (the summary's ``kind``)."""
        return self.summary["kind"]

    @property
    def share_class(self) -> str:
        """``USDT``, ``ETH`` or ``BTC``: the unit of equity, funding and attribution."""
        return self.summary["share_class"]


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``. Raises ReportError if it is missing, too large, not UTF-8 JSON,
    or not an object."""
    if not path.is_file():
        raise ReportError(f"{path}: missing")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ReportError(f"{path}: {path.stat().st_size:,} bytes is too large for this file; it is not a run's")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ReportError(f"{path}: not valid JSON ({e}); rerun the run to rewrite it") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def check_summary(s: dict[str, Any], path: Path) -> dict[str, Any]:
    """``s`` if it has every :data:`SUMMARY_KEYS` key with its type, finite equities and a
    numeric attribution. Raises ReportError naming the file and key."""
    for key, typ in SUMMARY_KEYS.items():
        if key not in s:
            raise ReportError(f"{path}: no {key!r} key; not a trimtab run summary (schema/summary.schema.json)")
        if not isinstance(s[key], typ) or isinstance(s[key], bool):
            raise ReportError(f"{path}: {key!r} is {type(s[key]).__name__}, expected {getattr(typ, '__name__', 'a number')}")
    for key in ("initial_equity", "final_equity"):
        if not math.isfinite(s[key]):
            raise ReportError(f"{path}: {key!r} is {s[key]}, not a finite number")
    for cat, v in s["attribution"].items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise ReportError(f"{path}: attribution {cat!r} is {v!r}, not a finite number")
    flows = s.get("net_flows", 0.0)
    if not isinstance(flows, (int, float)) or isinstance(flows, bool) or not math.isfinite(flows):
        raise ReportError(f"{path}: 'net_flows' is {flows!r}, not a finite number")
    return s


def read_equity_csv(path: Path) -> pd.DataFrame:
    """equity.csv as a float DataFrame indexed by UTC time. Raises ReportError if the file is
    missing, has no ``time``/``equity`` column, a time that does not parse, or a non-numeric value
    (named by column and row)."""
    if not path.is_file():
        raise ReportError(f"{path}: missing")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ReportError(f"{path}: {path.stat().st_size:,} bytes is too large for a run's equity.csv")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ReportError(f"{path}: not a readable CSV ({' '.join(str(e).split())})") from None
    for col in ("time", "equity"):
        if col not in raw.columns:
            raise ReportError(f"{path}: no {col!r} column (columns: {', '.join(raw.columns) or 'none'}); rerun the run to rewrite it")
    if raw.empty:
        raise ReportError(f"{path}: no rows; the run has no ticks to report")
    times = pd.to_datetime(raw["time"], utc=True, errors="coerce")
    bad = times.isna()
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise ReportError(f"{path}: row {i + 2}: time {raw['time'].iloc[i]!r} is not a date/time")
    out = pd.DataFrame(index=pd.DatetimeIndex(times, name="time"))
    for col in raw.columns.drop("time"):
        text = raw[col].str.strip()
        vals = pd.to_numeric(text.replace("", "nan"), errors="coerce")  # empty: the tick lacks the metric
        wrong = vals.isna() & ~text.str.lower().isin(("", "nan"))
        if wrong.any():
            i = int(wrong.to_numpy().nonzero()[0][0])
            raise ReportError(f"{path}: row {i + 2}: {col} = {text.iloc[i]!r} is not a number")
        out[col] = vals.to_numpy(dtype=float)
    if not out.index.is_monotonic_increasing:
        raise ReportError(f"{path}: times are not in order; rerun the run to rewrite it")
    return out


#: A step status after which the step does nothing more (trimtab.engine.executor).
FINAL_STEP_STATUSES = frozenset({"done", "failed", "skipped", "cancelled"})


def connect(path: Path) -> sqlite3.Connection:
    """``path`` opened read-only (``mode=ro``; a live run keeps writing its WAL meanwhile), waiting
    up to 10 s on a writer's lock. Raises ReportError if it is missing or not a SQLite file."""
    if not path.is_file():
        raise ReportError(f"{path}: missing")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        raise ReportError(f"{path}: not a readable SQLite journal ({e})") from None
    return db


@contextmanager
def opened(path: Path) -> Iterator[sqlite3.Connection]:
    """``path`` opened by :func:`connect` for the ``with`` block, closed after it; a SQLite error
    inside the block becomes a ReportError naming the file."""
    db = connect(path)
    try:
        yield db
    except sqlite3.DatabaseError as e:
        raise ReportError(f"{path}: cannot be read ({e}); it may be damaged") from None
    finally:
        db.close()


def tables(db: sqlite3.Connection) -> set[str]:
    """Names of the tables and views of ``db``."""
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}


def require_tables(db: sqlite3.Connection, path: Path, names: Iterable[str], what: str = "a trimtab run journal (docs/journal.md)") -> set[str]:
    """The tables of ``db`` (:func:`tables`). Raises ReportError naming ``path`` and the first of
    ``names`` it lacks."""
    have = tables(db)
    for t in names:
        if t not in have:
            raise ReportError(f"{path}: no {t!r} table; not {what}")
    return have


def read_meta(db: sqlite3.Connection) -> dict[str, Any]:
    """The journal's ``meta`` table (config, parameters, window, live mode...), each value parsed
    as JSON; a value that is not JSON is skipped, a journal without the table gives ``{}``."""
    out: dict[str, Any] = {}
    if "meta" not in tables(db):
        return out
    for k, v in db.execute("SELECT key, value FROM meta"):
        try:
            out[str(k)] = json.loads(v)
        except (TypeError, ValueError, RecursionError):
            continue
    return out


def parse_json(text: Any, what: str) -> Any:
    """``text`` (a JSON column's value) parsed; None for NULL. Raises ReportError naming ``what``
    (file and row) if it is not valid JSON."""
    try:
        return json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        raise ReportError(f"{what} is not valid JSON; the journal may be damaged") from None


def read_plans(db: sqlite3.Connection, path: Path) -> list[dict[str, Any]]:
    """Every plan of the journal ``db`` (at ``path``, for messages), oldest first: ``plan_id,
    tick, time, state, action, trigger, expected_cost`` (share class, as journaled), ``status``
    (``in flight``, ``completed``, ``failed``, ``empty``) and ``steps``: dicts ``id, description,
    venue, operation, status, time, detail``, each step's last status in ``instructions``
    (``pending`` before its first). Raises ReportError for a plan whose JSON does not parse."""
    last: dict[tuple[str, str], tuple[str, str | None, str]] = {}
    for plan_id, step_id, status, time, detail in db.execute(
            "SELECT plan_id, step_id, status, time, detail FROM instructions ORDER BY rowid"):
        last[(plan_id, step_id)] = (status, time, detail)
    out = []
    for plan_id, tick, time, state, action, trigger, cost, text in db.execute(
            "SELECT plan_id, tick, time, state, action, trigger, expected_cost, plan FROM plans ORDER BY tick, rowid"):
        plan = parse_json(text, f"{path}: plan {plan_id}")
        steps = []
        for s in plan.get("steps", []) if isinstance(plan, dict) else []:
            if not isinstance(s, dict):
                continue
            instr = s.get("instructions") if isinstance(s.get("instructions"), list) else []
            first = instr[0] if instr and isinstance(instr[0], dict) else {}
            status, when, detail = last.get((plan_id, s.get("id")), ("pending", None, ""))
            steps.append({"id": s.get("id"), "description": s.get("description", ""), "venue": s.get("venue") or first.get("venue"),
                          "operation": s.get("operation") or first.get("operation"), "status": status, "time": when,
                          "detail": detail})
        if steps and all(s["status"] in FINAL_STEP_STATUSES for s in steps):
            pstatus = "failed" if any(s["status"] == "failed" for s in steps) else "completed"
        else:
            pstatus = "in flight" if steps else "empty"
        out.append({"plan_id": plan_id, "tick": tick, "time": time, "state": state, "action": action, "trigger": trigger,
                    "expected_cost": cost, "status": pstatus, "steps": steps})
    return out


def read_reallocations(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """A portfolio store's reallocations, oldest first: ``realloc_id, start_time, end_time,
    trigger, status`` (``[]`` for a store without the table)."""
    if "reallocations" not in tables(db):
        return []
    return [dict(zip(("realloc_id", "start_time", "end_time", "trigger", "status"), r)) for r in db.execute(
        "SELECT realloc_id, start_time, end_time, trigger, status FROM reallocations ORDER BY realloc_id")]


def _utc(col: pd.Series) -> pd.Series:
    return pd.to_datetime(col, utc=True, errors="coerce")


def read_strategy_journal(path: Path) -> dict[str, Any]:
    """A strategy (or drift basket) run's ``journal.sqlite`` read for its charts: ``states``,
    ``transitions``, ``funding``, ``plans`` and ``tables`` as the :class:`LoadedRun` fields of
    the same names. Raises ReportError if it is missing, lacks a table of docs/journal.md or
    cannot be read."""
    with opened(path) as db:
        have = require_tables(db, path, ("metrics", "decisions", "plans", "instructions", "fills"))
        rows = read_metrics(db, names=())
        states = pd.DataFrame({"time": _utc(pd.Series([r.time for r in rows], dtype=object)), "state": [r.state for r in rows]})
        transitions = pd.read_sql_query("SELECT time, source, dest, trigger, plan_id FROM decisions WHERE trigger IS NOT NULL "
                                        "ORDER BY tick", db)
        transitions["time"] = _utc(transitions["time"])
        funding = pd.read_sql_query("SELECT time, venue, impact AS amount FROM fills WHERE category = 'funding' ORDER BY fill_id", db)
        funding["time"] = _utc(funding["time"])
        funding["amount"] = pd.to_numeric(funding["amount"], errors="coerce")
        extra = {}
        if "rebalances" in have:
            extra["rebalances"] = [dict(zip(("time", "trigger", "status", "max_drift", "cost_usd", "failure"), r)) for r in db.execute(
                "SELECT time, trigger, status, max_drift, cost_usd, failure FROM rebalances ORDER BY rebalance_id")]
        return {"states": states, "transitions": transitions, "funding": funding, "plans": read_plans(db, path), "tables": extra}


def _read_portfolio_store(path: Path) -> dict[str, Any]:
    with opened(path) as db:
        require_tables(db, path, ("series", "decisions"), "a trimtab portfolio store")
        series = pd.read_sql_query("SELECT time, nav, state FROM series ORDER BY tick", db)
        series["time"] = _utc(series["time"])
        transitions = pd.read_sql_query("SELECT time, source, dest, trigger FROM decisions WHERE trigger IS NOT NULL ORDER BY tick", db)
        transitions["time"] = _utc(transitions["time"])
        realloc = [{"start": r["start_time"], "end": r["end_time"], "trigger": r["trigger"], "status": r["status"]}
                   for r in read_reallocations(db)]
        return {"series": series, "transitions": transitions, "reallocations": realloc}


def load_run(run_dir: str | Path) -> LoadedRun:
    """Read the run directory ``run_dir`` (any kind). Raises ReportError for a directory that is
    not a finished run, or a file in it that is missing or corrupt."""
    d = Path(run_dir)
    if not d.is_dir():
        raise ReportError(f"{d}: not a directory; give a run directory (runs/<run-id>) or a run id under --runs")
    summary = check_summary(read_json_object(d / "summary.json"), d / "summary.json")
    equity = read_equity_csv(d / "equity.csv")
    empty_funding = pd.DataFrame({"time": pd.Series([], dtype="datetime64[ns, UTC]"), "venue": [], "amount": []})
    if summary["kind"] == "portfolio":
        store = _read_portfolio_store(d / "portfolio.sqlite")
        series = store["series"].dropna(subset=["time"]).set_index("time")
        equity["nav"] = series["nav"].reindex(equity.index).astype(float)
        states = store["series"][["time", "state"]]
        sleeves = {}
        for sid in (summary.get("sleeves") or {}):
            p = d / "sleeves" / str(sid) / "summary.json"
            if p.is_file():
                sleeves[str(sid)] = read_json_object(p)
        rows = [{"sleeve": sid, **{k: v for k, v in s.items() if k in ("strategy", "target_weight", "final_target", "final_weight",
                                                                         "initial_capital", "final_equity", "pnl", "return_nav")}}
                for sid, s in (summary.get("sleeves") or {}).items() if isinstance(s, dict)]
        return LoadedRun(d, summary, equity, states, store["transitions"], empty_funding,
                         tables={"sleeves": rows, "reallocations": store["reallocations"]}, sleeves=sleeves)
    j = read_strategy_journal(d / "journal.sqlite")
    return LoadedRun(d, summary, equity, j["states"], j["transitions"], j["funding"], plans=j["plans"], tables=j["tables"],
                     journal=d / "journal.sqlite")


def load_journal_run(run_dir: str | Path) -> LoadedRun:
    """A strategy run that has not written its summary.json and equity.csv yet (a live run in
    progress, or one interrupted) as a LoadedRun built from its ``journal.sqlite``: the equity.csv
    columns (``equity``, ``nav`` from the ``series`` table, then
    :func:`~trimtab.engine.results.equity_columns`) from the metrics table, and states,
    transitions, funding and plans as :func:`read_strategy_journal`. Its summary holds only what
    the journal knows (``kind, name, share_class, start, end, initial_equity, final_equity``;
    ``attribution`` empty). Raises ReportError if the journal is missing, damaged or has no tick."""
    d = Path(run_dir)
    path = d / "journal.sqlite"
    j = read_strategy_journal(path)
    with opened(path) as db:
        meta = read_meta(db)
        venues = [n.split(".", 1)[1] for n in metric_names(db) if n.startswith("margin_ratio.")]
        cols = ["equity", *equity_columns(venues)]
        rows = read_metrics(db, names=cols)
        nav = dict(db.execute("SELECT tick, nav FROM series")) if "series" in tables(db) else {}
    if not rows:
        raise ReportError(f"{path}: no tick journaled yet")
    index = pd.DatetimeIndex(pd.to_datetime([r.time for r in rows], utc=True), name="time")
    eq = pd.DataFrame({c: [r.metrics.get(c, math.nan) for r in rows] for c in cols}, index=index, dtype=float)
    eq.insert(1, "nav", [float(nav[r.tick]) if isinstance(nav.get(r.tick), (int, float)) else math.nan for r in rows])
    window = meta.get("window") if isinstance(meta.get("window"), dict) else {}
    strategy = meta.get("strategy") if isinstance(meta.get("strategy"), dict) else {}
    summary = {"kind": "strategy", "name": str(strategy.get("name", d.name)), "share_class": str(window.get("share_class", "")),
               "start": rows[0].time, "end": rows[-1].time, "initial_equity": float(eq["equity"].iloc[0]),
               "final_equity": float(eq["equity"].iloc[-1]), "attribution": {}}
    return LoadedRun(d, summary, eq, j["states"], j["transitions"], j["funding"], plans=j["plans"], tables=j["tables"], journal=path)


def data_notes(run: LoadedRun) -> list[dict[str, str]]:
    """The data notes of a run as rows ``{source, note, detail}``: data gaps worked around, stale
    marks, funding settled by proxy or missing, quarantined series, unpaid withdrawals, audit
    errors run anyway (a portfolio: each sleeve's, its id as the source)."""
    sources = {"run": run.summary} if run.kind != "portfolio" else {f"sleeve {k}": v for k, v in run.sleeves.items()}
    out: list[dict[str, str]] = []
    for src, s in sources.items():
        for g in s.get("data_gaps") or []:
            if isinstance(g, dict):
                for gap in g.get("gaps") or []:
                    if isinstance(gap, dict):
                        out.append({"source": src, "note": f"gap in {g.get('series')}",
                                    "detail": f"{gap.get('start')} → {gap.get('end')} ({gap.get('hours')} h)"})
        for key, what in (("stale_marks_hours", "stale mark (hours marked at the reference price)"),
                          ("funding_proxies", "funding settled at the other venues' rate (settlements)"),
                          ("funding_missing", "funding settlement missing"),
                          ("quarantined", "ticks a series failed the data checks")):
            for name, n in (s.get(key) or {}).items() if isinstance(s.get(key), dict) else ():
                out.append({"source": src, "note": what, "detail": f"{name}: {n}"})
        unpaid = s.get("unpaid_withdrawals")
        if isinstance(unpaid, (int, float)) and not isinstance(unpaid, bool) and unpaid:
            out.append({"source": src, "note": "withdrawals requested but not paid",
                        "detail": f"{unpaid:,.2f} {s.get('share_class', '')}"})
        elif isinstance(unpaid, list):
            out += [{"source": src, "note": "withdrawal not fully paid", "detail": json.dumps(w)} for w in unpaid]
        audit = s.get("audit")
        if isinstance(audit, dict):
            for e in audit.get("allowed_errors") or []:
                out.append({"source": src, "note": "audit error run anyway", "detail": str(e)})
        if s.get("last_plan_failure"):
            out.append({"source": src, "note": "last plan failure", "detail": str(s["last_plan_failure"])})
    return out
