"""The console's HTML pages, server-rendered with Jinja2 (autoescaped: every text from a run is
escaped): ``/`` the runs list, ``/runs/{id}`` a run page.

The run page embeds each figure's JSON (:mod:`.figures`) and draws it with the plotly.js of the
installed plotly package, served at ``/static/plotly.min.js`` (no CDN: the console works with
no internet). Its own script (``static/console.js``) fetches the decision at a clicked time,
follows the event stream of a running run and sends the stop request.
"""
from __future__ import annotations

import json

import jinja2
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from ..reports import ReportError
from ..reports.rundata import data_notes
from . import ConsoleError
from .api import run_dir
from .figures import run_figures
from .journals import alerts, loaded_run, plans
from .runsindex import list_runs, run_entry
from .security import journal_of

router = APIRouter()
_env = jinja2.Environment(loader=jinja2.PackageLoader("trimtab.console", "templates"),
                          autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)


def _fmt(v, spec: str = ",.2f") -> str:
    if isinstance(v, bool) or v is None:
        return "—" if v is None else str(v)
    if isinstance(v, (int, float)):
        return format(v, spec)
    return str(v)


def _pct(v) -> str:
    return f"{v:.2%}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "—"


_env.filters["num"] = _fmt
_env.filters["pct"] = _pct


def _script_json(data) -> str:
    """JSON safe inside a <script> element (no ``</`` can close it)."""
    text = data if isinstance(data, str) else json.dumps(data)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


_env.filters["script_json"] = _script_json


def _render(name: str, **ctx) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**ctx))


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def runs_page(request: Request) -> HTMLResponse:
    """Every run with its status (live, finished, stopped, interrupted) and health at a glance."""
    s = request.app.state.settings
    return _render("runs.html", runs=list_runs(s.runs_dir), runs_dir=str(s.runs_dir))


@router.get("/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
def run_page(request: Request, run_id: str) -> HTMLResponse:
    """Charts, plans and steps, alerts, data notes, sleeves and reallocations (a portfolio), the
    decision at a clicked time, and for a live run the stop buttons."""
    d = run_dir(request, run_id)
    j = journal_of(d)
    try:
        entry = run_entry(d)
        problem = None
        try:
            run = loaded_run(d)
            figures, notes, tables = run_figures(run), data_notes(run), run.tables
        except (ReportError, ConsoleError) as e:
            run, figures, notes, tables, problem = None, [], [], {}, str(e)
        plan_rows, alert_rows = plans(j), alerts(j)
    except (ConsoleError, ReportError) as e:
        raise HTTPException(422, str(e)) from None
    return _render("run.html", entry=entry, figures=figures, notes=notes, plans=plan_rows[-50:], n_plans=len(plan_rows),
                   alerts=alert_rows[-200:], n_alerts=len(alert_rows), sleeves=tables.get("sleeves") or [],
                   reallocations=tables.get("reallocations") or [], rebalances=(tables.get("rebalances") or [])[-100:],
                   problem=problem, portfolio=j.name == "portfolio.sqlite",
                   summary=run.summary if run is not None and (d / "summary.json").is_file() else None)

