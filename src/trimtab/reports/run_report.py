"""The report of one run: :func:`build_run_page` (a :class:`~trimtab.reports.html.Page`) and
:func:`write_run_report` (``<run_dir>/report.html`` by default).

Sections, each only where the run has it (else a one-line note saying why, never an empty chart):
equity and NAV; drawdown; health factor and LTV against Aave's liquidation levels and the
strategy's guards; margin ratio per venue against maintenance and the guards; delta drift (a
drift basket: token drift at its rebalances); cumulative funding per venue; the P&L attribution
as a waterfall; the state timeline with transitions marked; tables of plans (each step's
status), a basket's rebalances or a portfolio's sleeves and reallocations; the data notes.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from . import ReportError, charts
from .html import Page, Section, render_page
from .rundata import LoadedRun, data_notes, load_run
from .thresholds import run_thresholds

#: Steps listed per plan in the plans table; the rest are counted.
MAX_STEPS_SHOWN = 40
#: Plans listed in full; a long run's older plans are summarised by status.
MAX_PLANS_SHOWN = 200


def _pct(x) -> str:
    return f"{x:.2%}" if isinstance(x, (int, float)) and x == x else "n/a"


def _facts(run: LoadedRun) -> list[tuple[str, str]]:
    s = run.summary
    sc = run.share_class
    facts = [("window (UTC)", f"{s['start']} → {s['end']}"), ("initial equity", f"{s['initial_equity']:,.2f} {sc}"),
             ("final equity", f"{s['final_equity']:,.2f} {sc}"), ("APY", _pct(s.get("apy"))), ("APR", _pct(s.get("apr"))),
             ("max drawdown", _pct(s.get("max_drawdown"))),
             ("Sharpe", f"{s['sharpe']:.2f}" if isinstance(s.get("sharpe"), (int, float)) else "n/a")]
    if s.get("net_flows"):
        facts.append(("net flows", f"{s['net_flows']:+,.2f} {sc}"))
    for key in ("transitions", "plans", "failed_plans", "liquidations"):
        if isinstance(s.get(key), int):
            facts.append((key.replace("_", " "), f"{s[key]:,}"))
    if isinstance(s.get("reconciliation_error"), (int, float)):
        facts.append(("reconciliation error", f"{s['reconciliation_error']:.2g} {sc}"))
    if s.get("overrides"):
        facts.append(("overrides (--set)", ", ".join(f"{k}={v}" for k, v in s["overrides"].items())))
    return facts


def _plan_rows(run: LoadedRun) -> list[dict]:
    rows: list[dict] = []
    for p in run.plans[-MAX_PLANS_SHOWN:]:
        rows.append({"time": p["time"], "plan": p["plan_id"], "state": p["state"], "trigger": p["trigger"], "status": p["status"],
                     "expected cost": p["expected_cost"], "step": f"{len(p['steps'])} steps", "venue": "", "operation": ""})
        for st in p["steps"][:MAX_STEPS_SHOWN]:
            rows.append({"_sub": True, "time": st["time"] or "", "plan": "", "state": "", "trigger": "", "status": st["status"],
                         "expected cost": None, "step": f"{st['id']}: {st['description']}", "venue": st["venue"], "operation": st["operation"]})
        if len(p["steps"]) > MAX_STEPS_SHOWN:
            rows.append({"_sub": True, "step": f"... {len(p['steps']) - MAX_STEPS_SHOWN} more steps"})
    return rows


def build_run_page(run: LoadedRun) -> Page:
    """The report page of ``run`` (any kind); see the module docstring for its sections."""
    th = run_thresholds(run)
    s = run.summary
    portfolio = run.kind == "portfolio"
    secs = [Section(key, title, fig, note) for key, title, fig, note in charts.run_charts(run, th)]
    if portfolio:
        secs.append(Section("sleeves_note", "Sleeves", None, "each sleeve is a strategy run with its own report: "
                            + ", ".join(f"trimtab report {run.run_dir / 'sleeves' / k}" for k in (s.get("sleeves") or {}))))
    secs.append(Section("attribution", "P&L attribution", charts.fig_waterfall(run),
                        f"start equity + categories + capital flows = end equity; reconciliation error "
                        f"{s['reconciliation_error']:.2g} {run.share_class}" if isinstance(s.get("reconciliation_error"), (int, float)) else "not recorded"))
    tl = charts.fig_timeline(run)
    secs.append(Section("timeline", "State timeline", tl, None if tl else "the run has no state rows"))
    if not portfolio:
        note = None if len(run.plans) <= MAX_PLANS_SHOWN else f"the last {MAX_PLANS_SHOWN} of {len(run.plans)} plans"
        secs.append(Section("plans", "Plans and their steps", None, note, _plan_rows(run),
                            ["time", "plan", "state", "trigger", "status", "expected cost", "step", "venue", "operation"]))
    flows = [f for f in s.get("flows") or [] if isinstance(f, dict)] if isinstance(s.get("flows"), list) else []
    if flows:
        secs.append(Section("flows", "Capital flows", None, "deposits, withdrawal requests and their payouts (share class)", flows))
    for title, rows in run.tables.items():
        secs.append(Section(title, title.capitalize(), None, None, rows))
    notes = data_notes(run)
    secs.append(Section("data_notes", "Data notes", None, "; ".join(th.notes) or None, notes, ["source", "note", "detail"]))
    kind = {"strategy": "strategy", "drift_basket": "drift basket", "portfolio": "portfolio"}.get(run.kind, run.kind)
    return Page(title=f"{s['name']}: run report", subtitle=f"{kind} run · share class {run.share_class} · {run.run_dir}",
                facts=_facts(run), sections=secs)


def write_html(html: str, out: Path) -> Path:
    """Write ``html`` to ``out`` atomically (a temporary file in the same folder, then renamed), so
    a reader never sees half a report. Raises ReportError if the folder cannot be written."""
    out = Path(out)
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=out.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(html)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is private (0600); a report is as readable as any other file written
        os.replace(tmp, out)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise ReportError(f"cannot write {out}: {e}") from None
    return out


def write_run_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Read the run in ``run_dir`` and write its report to ``out`` (default
    ``<run_dir>/report.html``). Returns the path. Raises ReportError (see :func:`load_run`)."""
    run = load_run(run_dir)
    return write_html(render_page(build_run_page(run)), Path(out) if out is not None else Path(run_dir) / "report.html")
