"""Why did the strategy do that? Reads a run's journal (``runs/<id>/journal.sqlite``).

* :func:`explain_at` -- the decision in force at a time: the machine state (and since when),
  every rule evaluated at that tick with each comparison's observed value and threshold, the
  transitions tried from the state, the metrics the rules saw (per-venue margin ratios too),
  and the plan in force with its steps, their expected costs and their status at that time.
* :func:`list_transitions` -- every transition of the run with the comparisons of the rules that
  fired it and the plan it submitted.

Every run kind: a strategy, basket or live run (``journal.sqlite``), a portfolio run
(``portfolio.sqlite``: its machine's decisions, the reallocation in force and its sleeves' run
directories, :func:`portfolio_explain_at`), a portfolio's sleeve (``<run>/sleeves/<id>``, a
strategy journal). :func:`find_journal` finds the journal of any of them.

The metrics shown are one set, the ones the rules saw (:func:`rules_saw`).

A "full" journal stores each tick's rule trace; a "slim" one (the default) does not, and
:func:`tick_trace` recomputes it exactly: the run's rules and parameters (journal meta, compiled
as :func:`trimtab.config.load.load_strategy` does) traced by
:func:`trimtab.engine.machine.trace_rules`, the function the machine itself uses, on the metrics
the rules saw (the tick's stored metrics, with the few values that changed after the decision
restored: :func:`trimtab.engine.journal.rule_inputs_at`).

Both return plain JSON-ready dicts (``trimtab explain --json``); :func:`print_explain` and
:func:`print_transitions` render them. Journal tables: see :mod:`trimtab.engine.journal`.
"""
from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

from .engine.journal import rule_inputs_at
from .errors import TrimtabError
from .metrics import REGISTRY, Family, Scope


def shown_metrics(m: dict[str, Any], compared: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The names of ``m`` (a tick's metrics) that explain prints, in registry order: the strategy
    metrics declared with ``explain=True``, a family's members sorted (``margin_ratio.<venue>``),
    then the names of ``compared`` (metrics the rules compared, e.g. a basket's ``max_drift``)
    not listed yet, in their order."""
    keys: list[str] = []
    for d in REGISTRY:
        if d.scope is not Scope.STRATEGY or not d.explain:
            continue
        if isinstance(d, Family):
            keys += sorted(k for k in m if d.member_of(k) is not None)
        elif d.name in m:
            keys.append(d.name)
    for k in compared:
        if k in m and k not in keys:
            keys.append(k)
    return keys


class RunError(TrimtabError):
    """A run or a time that cannot be explained (not found, outside the run)."""


#: The journal of each run kind's directory: a strategy or basket run's, a portfolio run's.
JOURNAL, PORTFOLIO_DB = "journal.sqlite", "portfolio.sqlite"


def find_journal(run: str | Path, runs_dir: str | Path = "runs", noun: str = "run journal") -> Path:
    """The journal of ``run``, any run kind: a ``journal.sqlite`` or ``portfolio.sqlite`` path, a
    run directory holding one (a strategy or basket run, a portfolio run, a portfolio's sleeve
    ``<run>/sleeves/<id>``), or a run id under ``runs_dir``. A ``run`` already under
    ``runs_dir`` (``runs/<id>``) is not joined to it twice.

    Raises RunError when none exists, listing the latest runs under ``runs_dir``."""
    p = Path(run)
    for cand in (p, p / JOURNAL, p / PORTFOLIO_DB, Path(runs_dir) / str(run) / JOURNAL, Path(runs_dir) / str(run) / PORTFOLIO_DB):
        if cand.is_file() and cand.suffix == ".sqlite":
            return cand
    inside = _runs_in(p)
    if inside:  # a folder of runs (a compare's): name them
        raise RunError(f"{run} holds runs, it is not one (a compare folder?): give one of {', '.join(str(p / d) for d in inside[:8])}")
    known = _runs_in(Path(runs_dir))
    hint = f"; runs in {runs_dir}/: {', '.join(known[-5:])}" if known else ""
    raise RunError(f"no {noun} at {run!r} (give a run directory, its journal.sqlite or portfolio.sqlite, or a run id "
                   f"under {runs_dir}/){hint}")


def _runs_in(folder: Path) -> list[str]:
    """Names of the run directories directly inside ``folder`` (sorted; none if not a folder)."""
    if not folder.is_dir():
        return []
    return sorted(d.name for d in folder.iterdir() if (d / JOURNAL).is_file() or (d / PORTFOLIO_DB).is_file())


def run_dir_of(run: str | Path, runs_dir: str | Path = "runs") -> Path:
    """The directory of ``run`` (as :func:`find_journal` finds it). Raises RunError
    (``no run at 'X' ...``)."""
    return find_journal(run, runs_dir, noun="run").parent


def is_portfolio(journal: str | Path) -> bool:
    """True for a portfolio run's journal (``portfolio.sqlite``)."""
    return Path(journal).name == PORTFOLIO_DB


def _db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    return db


def _meta(db) -> dict:
    out = {}
    for k, v in db.execute("SELECT key, value FROM meta"):
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def _num(x: Any) -> float:
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return math.nan
    return math.nan if x is None else float(x)


def _shown(v: float) -> float | str:
    """A metric as explain's JSON shows it: inf/-inf/nan as strings (as the journal's JSON had them)."""
    return v if v == v and v not in (math.inf, -math.inf) else str(v)


def iso(ts) -> str:
    """A time as the journal writes it: ``2024-08-05T03:00Z`` (UTC)."""
    import pandas as pd

    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return f"{t:%Y-%m-%dT%H:%MZ}"


def _machine_info(meta: dict) -> tuple[Any, dict]:
    """(MachineSpec or None, rule name -> {severity, when}) as the run used them: from the
    journal's meta (written by every run), else from the files the run names (best effort:
    they may have changed since)."""
    if meta.get("machine") and meta.get("rules"):
        from .config.models import MachineSpec

        return MachineSpec.model_validate(meta["machine"]), meta["rules"]
    strat = meta.get("strategy") or {}
    cfg = strat.get("config")
    if not cfg or not Path(cfg).exists():
        return None, {}
    try:
        from .config.load import load_strategy

        s = load_strategy(cfg)
    except Exception:  # noqa: BLE001 - extras only; explain works from the journal alone
        return None, {}
    return s.machine, {n: {"severity": r.spec.severity, "when": r.spec.when, "description": r.spec.description} for n, r in s.rules.items()}


def rule_triples(meta: dict) -> list[tuple[str, Any, str]]:
    """(name, compiled expression, severity) of every rule of the run, in rule-file order, from
    the journal's meta ``rules`` and ``parameters``: parameters folded in as constants exactly as
    :func:`trimtab.config.load.load_strategy` compiles them. Raises RunError without them."""
    from .rules.compile import compile_expr
    from .rules.nodes import names
    from .rules.parse import parse

    rules, params = meta.get("rules"), meta.get("parameters")
    if not isinstance(rules, dict) or not isinstance(params, dict):
        raise RunError("the journal has no rule trace and no rules/parameters in its meta to recompute it")
    params = {k: _num(v) for k, v in params.items()}  # meta is JSON: inf/nan were written as strings
    out = []
    for name, r in rules.items():
        node = parse(r["when"])
        consts = {n: params[n] for n in names(node) if n in params}
        out.append((name, compile_expr(node, consts), r["severity"]))
    return out


class _Traces:
    """The rule trace of any tick of one open journal: stored (full mode, or a tick whose metrics
    changed after the decision) or recomputed from the stored metrics (:func:`tick_trace`)."""

    def __init__(self, db, meta: dict):
        self.db, self.meta, self._triples = db, meta, None

    def __call__(self, tick: int, stored: str | None) -> list[dict]:
        if stored is not None:
            return json.loads(stored)
        from .engine.machine import trace_rules

        if self._triples is None:
            self._triples = rule_triples(self.meta)
        m = rule_inputs_at(self.db, tick)
        if m is None:
            raise RunError(f"the journal has no metrics at tick {tick} to recompute its rule trace from")
        return trace_rules(self._triples, m)


def tick_trace(journal: str | Path, tick: int) -> list[dict]:
    """The rule trace of ``tick`` (the machine's :class:`~trimtab.engine.machine.Decision`
    ``rules``: one entry per rule, rule-file order) as the run computed it: stored in a full
    journal, recomputed exactly in a slim one. Raises RunError for a tick the run lacks."""
    db = _db(Path(journal))
    try:
        row = db.execute("SELECT rules FROM decisions WHERE tick = ? ORDER BY rowid DESC LIMIT 1", (tick,)).fetchone()
        if row is None:
            raise RunError(f"{journal}: no decision at tick {tick}")
        return _Traces(db, _meta(db))(tick, row["rules"])
    finally:
        db.close()


def run_traces(journal: str | Path) -> dict[int, list[dict]]:
    """tick -> rule trace (:func:`tick_trace`) of every tick of the run, read in one pass."""
    db = _db(Path(journal))
    try:
        traces = _Traces(db, _meta(db))
        return {r["tick"]: traces(r["tick"], r["rules"]) for r in db.execute("SELECT tick, rules FROM decisions ORDER BY tick").fetchall()}
    finally:
        db.close()


def rules_saw(db, tick: int, trace: list[dict]) -> dict[str, float]:
    """The one set of metrics explain shows for ``tick``: the ones its rules were evaluated on.

    The journaled row holds the metrics after the tick; on a tick whose plan started (or a
    liquidation, a compensation) they differ from what the rules saw. A slim journal keeps the
    difference (``seen``, :func:`trimtab.engine.journal.rule_inputs_at`); a full journal keeps
    the trace instead, whose observed values of bare metric names are laid over the row."""
    m = dict(rule_inputs_at(db, tick) or {})
    for r in trace:
        for c in r.get("comparisons") or []:
            if isinstance(c[0], str) and c[0] in m:
                m[c[0]] = _num(c[1])
    return m


def _comparisons(rule: dict) -> list[dict]:
    return [{"left": c[0], "observed": c[1], "op": c[2], "threshold": c[3], "result": c[4]} for c in rule.get("comparisons") or []]


def _decision_row(db: sqlite3.Connection, path: Path, at) -> sqlite3.Row:
    """The journal's decision row in force at ``at``: the last tick at or before it. Raises
    RunError when ``at`` is outside the run's window."""
    t = iso(at)
    _window_check(db, t, path)
    return db.execute("SELECT * FROM decisions WHERE time <= ? ORDER BY tick DESC LIMIT 1", (t,)).fetchone()


def explain_at(journal: str | Path, at) -> dict:
    """The decision in force at ``at`` (the last tick at or before it), of any run kind (a
    portfolio run: :func:`portfolio_explain_at`). Raises RunError."""
    path = Path(journal)
    if is_portfolio(path):
        return portfolio_explain_at(path, at)
    db = _db(path)
    try:
        meta, d = _meta(db), _decision_row(db, path, at)
        tick = d["tick"]
        rules = _Traces(db, meta)(tick, d["rules"])
        machine, info = _machine_info(meta)
        since = db.execute("SELECT tick, time, source, dest, trigger, plan_id FROM decisions WHERE tick <= ? AND trigger IS NOT NULL "
                           "ORDER BY tick DESC LIMIT 1", (tick,)).fetchone()
        metrics = {k: _shown(v) for k, v in rules_saw(db, tick, rules).items()}
        out: dict[str, Any] = {
            "run": str(path.parent),
            "strategy": (meta.get("strategy") or {}).get("name"),
            "share_class": (meta.get("window") or {}).get("share_class"),
            "requested": iso(at),
            "time": d["time"],
            "tick": tick,
            "state": d["dest"],
            "from": d["source"],
            "trigger": d["trigger"],
            "since": dict(since) if since else None,
            "metrics": metrics,
            "rules": [{"rule": r["rule"], "result": r["result"], **info.get(r["rule"], {}), "comparisons": _comparisons(r)} for r in rules],
        }
        if machine is not None:
            out["transitions_tried"] = _tried(machine, d["source"], d["trigger"], {r["rule"]: r["result"] for r in rules})
        out["plan"] = _plan_at(db, tick)
        return out
    finally:
        db.close()


def _plan_at(db, tick: int) -> dict | None:
    p = db.execute("SELECT * FROM plans WHERE tick <= ? ORDER BY tick DESC LIMIT 1", (tick,)).fetchone()
    if p is None:
        return None
    plan = json.loads(p["plan"])
    status: dict[str, dict] = {}
    for row in db.execute("SELECT step_id, tick, time, status, detail FROM instructions WHERE plan_id = ? AND tick <= ? ORDER BY rowid",
                          (p["plan_id"], tick)):
        status[row["step_id"]] = {"status": row["status"], "time": row["time"], "detail": row["detail"]}
    steps = []
    for s in plan.get("steps", []):
        st = status.get(s["id"], {"status": "pending", "time": None, "detail": ""})
        steps.append({"id": s["id"], "description": s["description"], "venue": s.get("venue") or (s["instructions"][0]["venue"] if s["instructions"] else None),
                      "operation": s.get("operation") or (s["instructions"][0]["operation"] if s["instructions"] else None),
                      "bundle": s.get("bundle", False), "depends_on": s.get("depends_on", []), "latency_s": s.get("latency_s", 0),
                      "expected_cost": s.get("expected_cost", 0.0),
                      "instructions": [{k: i.get(k) for k in ("venue", "operation", "instrument", "amount", "asset", "expected_cost")} for i in s["instructions"]],
                      **st})
    final = {"done", "failed", "skipped", "cancelled"}
    done = [s for s in steps if s["status"] in final]
    if steps and len(done) == len(steps):
        state = "failed" if any(s["status"] == "failed" for s in steps) else "completed"
        when = max(s["time"] for s in done)
    else:
        state, when = "in flight", None
    return {"plan_id": p["plan_id"], "time": p["time"], "state": p["state"], "action": p["action"], "trigger": p["trigger"],
            "expected_cost": p["expected_cost"], "status": state, "finished": when, "targets": plan.get("targets"),
            "notes": plan.get("notes", []), "steps": steps}


def list_transitions(journal: str | Path) -> dict:
    """Every transition of the run: time, from, to, trigger, the rules that fired it (with their
    comparisons) and the plan it submitted (id, expected cost, steps); a portfolio run's
    transitions come with their reallocation instead (``plan_id`` is then its id)."""
    path = Path(journal)
    if is_portfolio(path):
        return portfolio_transitions(path)
    db = _db(path)
    try:
        meta = _meta(db)
        machine, _ = _machine_info(meta)
        when = {t.trigger: list(t.when) for t in machine.transitions} if machine else {}
        costs = {r["plan_id"]: (r["expected_cost"], len(json.loads(r["plan"]).get("steps", []))) for r in db.execute("SELECT plan_id, expected_cost, plan FROM plans")}
        rows = []
        traces = _Traces(db, meta)
        for d in db.execute("SELECT tick, time, source, dest, trigger, plan_id, rules FROM decisions WHERE trigger IS NOT NULL ORDER BY tick").fetchall():
            rules = traces(d["tick"], d["rules"])
            names = when.get(d["trigger"])
            fired = [r for r in rules if (r["rule"] in names if names else r["result"])]
            cost, nsteps = costs.get(d["plan_id"], (None, None))
            rows.append({"tick": d["tick"], "time": d["time"], "from": d["source"], "to": d["dest"], "trigger": d["trigger"],
                         "rules": [{"rule": r["rule"], "result": r["result"], "comparisons": _comparisons(r)} for r in fired],
                         "plan_id": d["plan_id"], "plan_cost": cost, "plan_steps": nsteps})
        return {"run": str(path.parent), "strategy": (meta.get("strategy") or {}).get("name"),
                "share_class": (meta.get("window") or {}).get("share_class"), "transitions": rows}
    finally:
        db.close()


# --------------------------------------------------------------------------- portfolio runs
def _window_check(db, t: str, path: Path) -> None:
    """Raise RunError unless time ``t`` is within the run's decisions (up to an hour after the last)."""
    first = db.execute("SELECT MIN(time), MAX(time) FROM decisions").fetchone()
    if first[0] is None:
        raise RunError(f"{path}: the journal has no decisions")
    if t < first[0]:
        raise RunError(f"{t} is before the run starts ({first[0]} -> {first[1]})")
    import pandas as pd

    if pd.Timestamp(t) > pd.Timestamp(first[1]) + pd.Timedelta(hours=1):
        raise RunError(f"{t} is after the run ends ({first[0]} -> {first[1]})")


def _json(text: Any, what: str) -> Any:
    """A JSON column read back (possibly damaged): the value, or RunError naming ``what``."""
    try:
        return json.loads(text) if text is not None else None
    except (TypeError, ValueError, RecursionError) as e:
        raise RunError(f"{what} is not readable JSON ({e})") from None


def _sleeve_dirs(path: Path) -> dict[str, str]:
    """Sleeve id -> its run directory (``<run>/sleeves/<id>``, the strategy journals)."""
    root = path.parent / "sleeves"
    return {d.name: str(d) for d in sorted(root.iterdir()) if (d / JOURNAL).is_file()} if root.is_dir() else {}


def _realloc_at(db, tick: int) -> dict | None:
    """The reallocation in force at ``tick``: the last one started at or before it, with its
    status then (``in flight`` until its end tick)."""
    r = db.execute("SELECT realloc_id, start_tick, start_time, end_tick, end_time, trigger, status, record FROM reallocations "
                   "WHERE start_tick <= ? ORDER BY start_tick DESC, realloc_id DESC LIMIT 1", (tick,)).fetchone()
    if r is None:
        return None
    rec = _json(r["record"], f"reallocation {r['realloc_id']}") or {}
    ended = r["end_tick"] is not None and r["end_tick"] <= tick
    return {"id": r["realloc_id"], "start_time": r["start_time"], "trigger": r["trigger"],
            "status": r["status"] if ended else "in flight", "end_time": r["end_time"] if ended else None,
            "targets": rec.get("targets") or {}, "paid": rec.get("paid") or {}, "deposited": rec.get("deposited") or {},
            "moved": rec.get("moved"), "costs": rec.get("costs"), "notes": rec.get("notes") or []}


def portfolio_explain_at(journal: str | Path, at) -> dict:
    """:func:`explain_at` for a portfolio run (``portfolio.sqlite``): the portfolio machine's
    state, its rules with their comparisons (stored with every decision), the transitions tried,
    the portfolio metrics the rules saw, the reallocation in force, and each sleeve's run
    directory (its strategy decisions: ``trimtab explain <run>/sleeves/<id> --at ...``).
    Raises RunError."""
    path = Path(journal)
    db = _db(path)
    try:
        meta, d = _meta(db), _decision_row(db, path, at)
        tick = d["tick"]
        rules = _json(d["rules"], f"{path}: the rule trace of tick {tick}") or []
        metrics = _json(d["metrics"], f"{path}: the metrics of tick {tick}") or {}
        machine, info = _machine_info(meta)
        since = db.execute("SELECT tick, time, source, dest, trigger FROM decisions WHERE tick <= ? AND trigger IS NOT NULL "
                           "ORDER BY tick DESC LIMIT 1", (tick,)).fetchone()
        pf = meta.get("portfolio") or {}
        out: dict[str, Any] = {
            "kind": "portfolio", "run": str(path.parent), "strategy": pf.get("name"),
            "share_class": (meta.get("window") or {}).get("share_class"), "requested": iso(at), "time": d["time"], "tick": tick,
            "state": d["dest"], "from": d["source"], "trigger": d["trigger"], "since": dict(since) if since else None,
            "metrics": {k: _shown(_num(v)) for k, v in metrics.items()},
            "rules": [{"rule": r["rule"], "result": r["result"], **info.get(r["rule"], {}), "comparisons": _comparisons(r)} for r in rules],
        }
        if machine is not None:
            ok = {r["rule"]: r["result"] for r in rules}
            out["transitions_tried"] = _tried(machine, d["source"], d["trigger"], ok)
        out["plan"] = None
        out["reallocation"] = _realloc_at(db, tick)
        out["sleeves"] = _sleeve_dirs(path)
        return out
    finally:
        db.close()


def _tried(machine, source: str, trigger: str | None, ok: dict) -> list[dict]:
    """The transitions the machine tried from ``source``, in priority order, with each rule's
    result (``ok``: rule -> result; None for a rule the run's journal lacks) and which fired."""
    tried = []
    for tr in machine.transitions:
        srcs = [s for s in machine.states if s != tr.dest] if tr.source == "*" else ([tr.source] if isinstance(tr.source, str) else tr.source)
        if source in srcs:
            tried.append({"trigger": tr.trigger, "dest": tr.dest, "rules": {r: ok.get(r) for r in tr.when},
                          "holds": all(ok.get(r) for r in tr.when), "fired": tr.trigger == trigger})
    return tried


def portfolio_transitions(journal: str | Path) -> dict:
    """:func:`list_transitions` for a portfolio run: every transition of the portfolio machine
    with the comparisons that fired it and the reallocation it started (``plan_id``: its id)."""
    path = Path(journal)
    db = _db(path)
    try:
        meta = _meta(db)
        machine, _ = _machine_info(meta)
        when = {t.trigger: list(t.when) for t in machine.transitions} if machine else {}
        starts = {r["start_tick"]: r["realloc_id"] for r in db.execute("SELECT realloc_id, start_tick FROM reallocations")}
        rows = []
        for d in db.execute("SELECT tick, time, source, dest, trigger, rules FROM decisions WHERE trigger IS NOT NULL ORDER BY tick"):
            rules = _json(d["rules"], f"{path}: the rule trace of tick {d['tick']}") or []
            names = when.get(d["trigger"])
            fired = [r for r in rules if (r["rule"] in names if names else r["result"])]
            rid = starts.get(d["tick"])
            rows.append({"tick": d["tick"], "time": d["time"], "from": d["source"], "to": d["dest"], "trigger": d["trigger"],
                         "rules": [{"rule": r["rule"], "result": r["result"], "comparisons": _comparisons(r)} for r in fired],
                         "plan_id": None if rid is None else f"reallocation {rid}", "plan_cost": None, "plan_steps": None})
        return {"kind": "portfolio", "run": str(path.parent), "strategy": (meta.get("portfolio") or {}).get("name"),
                "share_class": (meta.get("window") or {}).get("share_class"), "transitions": rows,
                "sleeves": _sleeve_dirs(path)}
    finally:
        db.close()


# --------------------------------------------------------------------------- rendering
def _fmt(x: Any) -> str:
    v = _num(x)
    if math.isnan(v):
        return "n/a" if x is None else str(x)
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == 0:
        return "0"
    return f"{v:,.2f}" if abs(v) >= 1e5 else f"{v:,.6g}"


def _cmp_text(c: dict) -> str:
    return f"{c['left']} = {_fmt(c['observed'])} {c['op']} {_fmt(c['threshold'])}"


def print_explain(e: dict, console) -> None:
    """Readable explanation of :func:`explain_at`'s result."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    sc = e.get("share_class") or ""
    head = Text(f"{e.get('strategy')}", style="bold")
    head.append(f"  ·  {e['time']} (tick {e['tick']})")
    if e["requested"] != e["time"]:
        head.append(f", the last tick at or before {e['requested']}", style="dim")
    head.append(f"\nrun {e['run']}", style="dim")
    console.print(head, soft_wrap=True)
    st = Text("state in force: ", style="bold")
    st.append(e["state"], style="bold cyan")
    if e["trigger"]:
        st.append(f"  (entered at this tick from {e['from']} by {e['trigger']})")
    elif e.get("since"):
        s = e["since"]
        st.append(f"  (since {s['time']}, {s['source']} -> {s['dest']} by {s['trigger']}); no transition at this tick")
    else:
        st.append("  (the initial state; no transition yet)")
    console.print(st, soft_wrap=True)

    m = e.get("metrics") or {}
    if m:
        mt = Text("metrics the rules saw: ", style="bold")
        compared = [c["left"] for r in e["rules"] for c in r["comparisons"]]
        names = list(m) if e.get("kind") == "portfolio" else shown_metrics(m, compared)
        mt.append("  ".join(f"{k} {_fmt(m[k])}" for k in names))
        console.print(mt, soft_wrap=True)

    t = Table(title=f"rules at {e['time']} (every rule, evaluated before the transition)", box=box.SIMPLE_HEAD, title_justify="left")
    t.add_column("rule")
    t.add_column("holds")
    t.add_column("compared")
    t.add_column("observed", justify="right")
    t.add_column("op", justify="center")
    t.add_column("threshold", justify="right")
    t.add_column("result")
    for r in e["rules"]:
        comps = r["comparisons"] or [{"left": "-", "observed": None, "op": "", "threshold": None, "result": r["result"]}]
        for j, c in enumerate(comps):
            name = Text(r["rule"] if j == 0 else "", style="bold" if r["result"] else "")
            if j == 0 and r.get("severity"):
                name.append(f" ({r['severity']})", style="dim")
            t.add_row(name, Text(("yes" if r["result"] else "no") if j == 0 else "", style="green" if r["result"] else "dim"),
                      c["left"], _fmt(c["observed"]), c["op"], _fmt(c["threshold"]),
                      Text("true" if c["result"] else "false", style="green" if c["result"] else "dim"))
    console.print(t)

    if e.get("transitions_tried"):
        tt = Table(title=f"transitions tried from {e['from']} (in order; the first whose rules all hold fires)", box=box.SIMPLE_HEAD, title_justify="left")
        tt.add_column("trigger")
        tt.add_column("to")
        tt.add_column("rules")
        tt.add_column("outcome")
        for tr in e["transitions_tried"]:
            rules = Text()
            for k, (r, ok) in enumerate(tr["rules"].items()):
                if k:
                    rules.append(" and ")
                rules.append(f"{r} {'?' if ok is None else '✓' if ok else '✗'}", style="yellow" if ok is None else "green" if ok else "dim")
            outcome = Text("fired", style="bold green") if tr["fired"] else Text("held, but an earlier one fired" if tr["holds"] else "-", style="dim")
            tt.add_row(tr["trigger"], tr["dest"], rules, outcome)
        console.print(tt)
        if any(ok is None for tr in e["transitions_tried"] for ok in tr["rules"].values()):
            console.print(Text("?: rule not in this run's journal (the machine or rule files changed since the run; "
                               "transitions are listed from the current files)", style="yellow"), soft_wrap=True)

    if e.get("kind") == "portfolio":
        _print_portfolio_tail(e, console)
        return
    p = e.get("plan")
    if not p:
        console.print(Text("plan in force: none (no plan submitted yet)", style="dim"))
        return
    pt = Text("plan in force: ", style="bold")
    pt.append(f"{p['plan_id']}  {p['action']} for {p['state']} (trigger {p['trigger']}) submitted {p['time']}, "
              f"expected cost {_fmt(p['expected_cost'])} {sc}; ")
    pt.append(f"{p['status']}{' at ' + p['finished'] if p.get('finished') else ''}",
              style="green" if p["status"] == "completed" else "red" if p["status"] == "failed" else "yellow")
    console.print(pt, soft_wrap=True)
    st = Table(box=box.SIMPLE_HEAD)
    for c in ("step", "description", "venue", "operation", "after", "expected cost", f"status at {e['time']}"):
        st.add_column(c, justify="right" if c == "expected cost" else "left")
    for s in p["steps"]:
        st.add_row(s["id"], s["description"], s["venue"] or "", s["operation"] or "", ", ".join(s["depends_on"]),
                   f"{_fmt(s['expected_cost'])} {sc}", f"{s['status']}{' ' + s['time'] if s.get('time') else ''}")
    console.print(st)
    for n in p.get("notes") or []:
        console.print(Text(f"note: {n}", style="yellow"), soft_wrap=True)


def _print_portfolio_tail(e: dict, console) -> None:
    """The reallocation in force and the sleeves' run directories of a portfolio's explain."""
    from rich.text import Text

    r = e.get("reallocation")
    if not r:
        console.print(Text("reallocation in force: none (none started yet)", style="dim"))
    else:
        t = Text("reallocation in force: ", style="bold")
        t.append(f"#{r['id']} ({r['trigger']}) started {r['start_time']}; ")
        t.append(f"{r['status']}{' at ' + r['end_time'] if r.get('end_time') else ''}",
                 style="green" if r["status"] == "done" else "yellow")
        t.append("\n  targets " + " ".join(f"{k} {_num(v):.0%}" for k, v in r["targets"].items()))
        if r["paid"]:
            t.append("\n  withdrawn " + ", ".join(f"{k} {_num(v):,.2f}" for k, v in r["paid"].items()))
        if r["deposited"]:
            t.append("\n  deposited " + ", ".join(f"{k} {_num(v):,.2f}" for k, v in r["deposited"].items()))
        console.print(t, soft_wrap=True)
    _print_sleeves(e, console)


def _print_sleeves(e: dict, console) -> None:
    from rich.text import Text

    if e.get("sleeves"):
        t = Text("sleeves (each a strategy run; explain one with `trimtab explain DIR --at TIME`):", style="bold")
        for k, d in e["sleeves"].items():
            t.append(f"\n  {k:<12} {d}")
        console.print(t, soft_wrap=True)


def print_transitions(data: dict, console) -> None:
    """Readable table of :func:`list_transitions`'s result."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    sc = data.get("share_class") or ""
    rows = data["transitions"]
    t = Table(title=f"{data.get('strategy')}: {len(rows)} transitions ({data['run']})", box=box.SIMPLE_HEAD, title_justify="left")
    for c in ("time", "from", "to", "trigger", "because", "plan", "expected cost"):
        t.add_column(c, justify="right" if c == "expected cost" else "left", overflow="fold")
    for r in rows:
        because = "; ".join(f"{x['rule']}: " + (" and ".join(_cmp_text(c) for c in x["comparisons"] if c["result"]) or "holds")
                            for x in r["rules"])
        t.add_row(r["time"], r["from"], r["to"], Text(r["trigger"], style="bold"), because, r["plan_id"] or "",
                  f"{_fmt(r['plan_cost'])} {sc}" if r["plan_cost"] is not None else "")
    console.print(t)
    if data.get("kind") == "portfolio":
        _print_sleeves(data, console)
