"""Why did the strategy do that? Reads a run's journal (``runs/<id>/journal.sqlite``).

* :func:`explain_at` -- the decision in force at a time: the machine state (and since when),
  every rule evaluated at that tick with each comparison's observed value and threshold, the
  transitions tried from the state, the metrics the rules saw (per-venue margin ratios too),
  and the plan in force with its steps, their expected costs and their status at that time.
* :func:`list_transitions` -- every transition of the run with the comparisons of the rules that
  fired it and the plan it submitted.

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

from .engine.journal import metrics_at, rule_inputs_at
from .errors import TrimtabError
from .metrics import REGISTRY, Family, Scope


def shown_metrics(m: dict[str, Any]) -> list[str]:
    """The names of ``m`` (a tick's metrics) that explain prints, in registry order: the strategy
    metrics declared with ``explain=True``, a family's members sorted (``margin_ratio.<venue>``)."""
    keys: list[str] = []
    for d in REGISTRY:
        if d.scope is not Scope.STRATEGY or not d.explain:
            continue
        if isinstance(d, Family):
            keys += sorted(k for k in m if d.member_of(k) is not None)
        elif d.name in m:
            keys.append(d.name)
    return keys


class RunError(TrimtabError):
    """A run or a time that cannot be explained (not found, outside the run)."""


def find_journal(run: str | Path, runs_dir: str | Path = "runs") -> Path:
    """The journal of ``run``: a journal.sqlite path, a run directory, or a run id under ``runs_dir``.

    Raises RunError when none exists."""
    p = Path(run)
    for cand in (p, p / "journal.sqlite", Path(runs_dir) / str(run) / "journal.sqlite"):
        if cand.is_file() and cand.suffix == ".sqlite":
            return cand
    known = sorted(d.name for d in Path(runs_dir).glob("*") if (d / "journal.sqlite").is_file()) if Path(runs_dir).is_dir() else []
    hint = f"; runs in {runs_dir}/: {', '.join(known[-5:])}" if known else ""
    raise RunError(f"no run journal at {run!r} (give a run directory, its journal.sqlite, or a run id under {runs_dir}/){hint}")


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


def _comparisons(rule: dict) -> list[dict]:
    return [{"left": c[0], "observed": c[1], "op": c[2], "threshold": c[3], "result": c[4]} for c in rule.get("comparisons") or []]


def explain_at(journal: str | Path, at) -> dict:
    """The decision in force at ``at`` (the last tick at or before it). Raises RunError."""
    path = Path(journal)
    db = _db(path)
    try:
        meta = _meta(db)
        t = iso(at)
        first = db.execute("SELECT MIN(time), MAX(time) FROM decisions").fetchone()
        if first[0] is None:
            raise RunError(f"{path}: the journal has no decisions")
        if t < first[0]:
            raise RunError(f"{t} is before the run starts ({first[0]} -> {first[1]})")
        import pandas as pd

        if pd.Timestamp(t) > pd.Timestamp(first[1]) + pd.Timedelta(hours=1):
            raise RunError(f"{t} is after the run ends ({first[0]} -> {first[1]})")
        d = db.execute("SELECT * FROM decisions WHERE time <= ? ORDER BY tick DESC LIMIT 1", (t,)).fetchone()
        tick = d["tick"]
        rules = _Traces(db, meta)(tick, d["rules"])
        machine, info = _machine_info(meta)
        since = db.execute("SELECT tick, time, source, dest, trigger, plan_id FROM decisions WHERE tick <= ? AND trigger IS NOT NULL "
                           "ORDER BY tick DESC LIMIT 1", (tick,)).fetchone()
        metrics = {k: _shown(v) for k, v in (metrics_at(db, tick) or {}).items()}
        out: dict[str, Any] = {
            "run": str(path.parent),
            "strategy": (meta.get("strategy") or {}).get("name"),
            "share_class": (meta.get("window") or {}).get("share_class"),
            "requested": t,
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
            ok = {r["rule"]: r["result"] for r in rules}
            tried = []
            for tr in machine.transitions:
                srcs = [s for s in machine.states if s != tr.dest] if tr.source == "*" else ([tr.source] if isinstance(tr.source, str) else tr.source)
                if d["source"] in srcs:
                    tried.append({"trigger": tr.trigger, "dest": tr.dest, "rules": {r: ok.get(r) for r in tr.when},
                                  "holds": all(ok.get(r) for r in tr.when), "fired": tr.trigger == d["trigger"]})
            out["transitions_tried"] = tried
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
    comparisons) and the plan it submitted (id, expected cost, steps)."""
    path = Path(journal)
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
        mt.append("  ".join(f"{k} {_fmt(m[k])}" for k in shown_metrics(m)))
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
