"""The console's JSON routes (OpenAPI description at ``/openapi.json``).

Read-only, under ``/api``:

=================================  ==============================================================
``GET /api/runs``                  every run: kind, config, state, window, equity, APY, alive, health
``GET /api/runs/{id}``             the run's entry, its summary.json (once written), its journal meta
``GET /api/runs/{id}/metrics``     metrics per tick (``columns=a,b``, ``since_tick``, ``limit``)
``GET /api/runs/{id}/transitions`` every transition with the comparisons that fired it (``explain --transitions``)
``GET /api/runs/{id}/plans``       plans with their steps' statuses (a portfolio: its reallocations)
``GET /api/runs/{id}/fills``       fills (``since_id``, ``limit``)
``GET /api/runs/{id}/alerts``      alerts, failed steps, quarantined data, feed errors, emergencies
``GET /api/runs/{id}/decision``    the decision in force at ``at`` (``explain --at``)
``GET /api/runs/{id}/status``      a strategy run's ``trimtab status`` (positions, open steps, owner)
``GET /api/runs/{id}/stream``      server-sent events of new ticks (:mod:`.live`)
=================================  ==============================================================

Action: ``POST /api/runs/{id}/stop`` with the ``X-Trimtab-Token`` header and the JSON body
``{"confirm": "<run id>", "flatten": false}`` writes the same control row as ``trimtab stop``
(:func:`trimtab.live.control.request_stop`).

Errors are JSON ``{"detail": "..."}``: 400 a bad parameter, 403 a missing or wrong token or a
foreign origin, 404 no such run (invalid ids included), 409 an action the run refuses (not
running, a backtest), 422 an unreadable journal.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from ..errors import TrimtabError
from ..explain import RunError, explain_at, list_transitions
from ..live.control import LiveError, request_stop, status as run_status
from ..reports.rundata import connect, read_json_object, read_meta
from .journals import alerts, fills, metrics, plans
from .runsindex import list_runs, run_entry
from .security import RunNotFound, TOKEN_HEADER, journal_of, resolve_run, token_matches

router = APIRouter(prefix="/api")


def settings(request: Request):
    """The app's :class:`~trimtab.console.app.Settings`."""
    return request.app.state.settings


def run_dir(request: Request, run_id: str) -> Path:
    """The checked directory of ``run_id`` (:func:`~trimtab.console.security.resolve_run`); 404 otherwise."""
    try:
        return resolve_run(settings(request).runs_dir, run_id)
    except RunNotFound as e:
        raise HTTPException(404, str(e)) from None


def _read(fn, *args, **kw):
    """Call a journal reader; a damaged journal is a 422 naming the file (the explain readers
    raise SQLite's or JSON's own errors on one)."""
    try:
        return fn(*args, **kw)
    except RunError as e:
        raise HTTPException(400, str(e)) from None
    except TrimtabError as e:  # ConsoleError, and the report's ReportError for a damaged journal
        raise HTTPException(422, str(e)) from None
    except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as e:
        where = next((a for a in args if isinstance(a, Path)), "the run's journal")
        raise HTTPException(422, f"{where}: cannot be read ({type(e).__name__}: {e}); it may be damaged") from None


@router.get("/health", summary="The server is up")
def health() -> dict[str, bool]:
    """``{"ok": true}``: the server answers (used to wait for it to start)."""
    return {"ok": True}


@router.get("/runs", summary="Every run of the runs folder")
def runs(request: Request) -> list[dict[str, Any]]:
    """Kind, mode, name, config, state, window, last time, equity, APY, alive, status and health
    of every run (trimtab.console.runsindex)."""
    return list_runs(settings(request).runs_dir)


@router.get("/runs/{run_id}", summary="One run: entry, summary, meta")
def run(request: Request, run_id: str) -> dict[str, Any]:
    """``entry`` (as in /api/runs), ``summary`` (summary.json; null while the run is going) and
    ``meta`` (the journal's: config, parameters, window, live mode, stopped)."""
    d = run_dir(request, run_id)
    entry = _read(run_entry, d)
    summary = _read(read_json_object, d / "summary.json") if (d / "summary.json").is_file() else None
    db = _read(connect, journal_of(d))
    try:
        meta = read_meta(db)
    finally:
        db.close()
    meta.pop("checkpoint", None)
    return {"entry": entry, "summary": summary, "meta": meta}


@router.get("/runs/{run_id}/metrics", summary="Metrics per tick")
def run_metrics(request: Request, run_id: str,
                columns: str | None = Query(None, description="Comma-separated metric names (default: all)"),
                since_tick: int = Query(-1, ge=-1, description="Only ticks after this one"),
                limit: int = Query(5000, ge=1, le=20000)) -> dict[str, Any]:
    """``columns``, ``rows`` (``tick, time, state`` and each metric; NaN as null, inf as "inf")
    and ``last_tick``."""
    d = run_dir(request, run_id)
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    return _read(metrics, journal_of(d), cols, since_tick, limit)


@router.get("/runs/{run_id}/transitions", summary="Every transition, with the comparisons that fired it")
def run_transitions(request: Request, run_id: str) -> dict[str, Any]:
    """The content of ``trimtab explain RUN --transitions --json``."""
    return _read(list_transitions, journal_of(run_dir(request, run_id)))


@router.get("/runs/{run_id}/plans", summary="Plans and their steps' statuses")
def run_plans(request: Request, run_id: str) -> list[dict[str, Any]]:
    """Every plan with its steps' last statuses (trimtab.console.journals.plans); a portfolio's reallocations."""
    return _read(plans, journal_of(run_dir(request, run_id)))


@router.get("/runs/{run_id}/fills", summary="Fills")
def run_fills(request: Request, run_id: str, since_id: int = Query(0, ge=0), limit: int = Query(5000, ge=1, le=20000)) -> list[dict[str, Any]]:
    """Fills with ``fill_id > since_id``, oldest first (the journal's ``fills`` columns, legs parsed)."""
    return _read(fills, journal_of(run_dir(request, run_id)), since_id, limit)


@router.get("/runs/{run_id}/alerts", summary="Alerts")
def run_alerts(request: Request, run_id: str) -> list[dict[str, Any]]:
    """Alerts, failed steps, quarantined data, feed errors and entries into emergency, oldest first."""
    return _read(alerts, journal_of(run_dir(request, run_id)))


@router.get("/runs/{run_id}/decision", summary="The decision in force at a time")
def run_decision(request: Request, run_id: str,
                 at: str = Query(..., description="UTC time, e.g. 2025-01-10T12:00Z (the last tick at or before it)")) -> dict[str, Any]:
    """The content of ``trimtab explain RUN --at AT --json``: state and since when, every rule's
    comparisons, the transitions tried, the metrics the rules saw, the plan in force."""
    d = run_dir(request, run_id)
    try:
        ts = pd.Timestamp(at)
    except (ValueError, TypeError):
        raise HTTPException(400, f"at={at!r} is not a date/time; give e.g. 2025-01-10T12:00Z") from None
    if ts is pd.NaT:
        raise HTTPException(400, f"at={at!r} is not a date/time; give e.g. 2025-01-10T12:00Z")
    return _read(explain_at, journal_of(d), ts)


@router.get("/runs/{run_id}/status", summary="A strategy run's status (trimtab status)")
def run_status_(request: Request, run_id: str) -> dict[str, Any]:
    """``trimtab status RUN --json`` of a strategy run (trimtab.live.control.status); 400 for a portfolio."""
    d = run_dir(request, run_id)
    if (d / "portfolio.sqlite").is_file():
        raise HTTPException(400, f"run {run_id} is a portfolio; its sleeves' status: trimtab status {run_id}")
    return _read(run_status, d)


class StopRequest(BaseModel):
    """The body of a stop: ``confirm`` must repeat the run id (so a click alone cannot stop a run)."""

    confirm: str = Field(description="The run id, typed again to confirm")
    flatten: bool = Field(False, description="Also unwind every position (trimtab stop --flatten)")


@router.post("/runs/{run_id}/stop", summary="Stop a live run at its next tick (the kill switch)")
def run_stop(request: Request, run_id: str, body: StopRequest) -> dict[str, Any]:
    """Needs the ``X-Trimtab-Token`` header (403 without it or with a wrong one) and ``confirm``
    equal to the run id (400). Writes the control row ``trimtab stop`` writes; 409 when the run is
    not a running live run."""
    if not token_matches(request.headers.get(TOKEN_HEADER), settings(request).token):
        raise HTTPException(403, f"stopping a run needs the console token in the {TOKEN_HEADER} header (printed by trimtab serve)")
    d = run_dir(request, run_id)
    if body.confirm != run_id:
        raise HTTPException(400, f"confirm must repeat the run id {run_id!r} to stop it")
    try:
        owner = request_stop(d, flatten=body.flatten)
    except LiveError as e:
        raise HTTPException(409, str(e)) from None
    except TrimtabError as e:
        raise HTTPException(422, str(e)) from None
    return {"requested": "stop and flatten" if body.flatten else "stop", "run": run_id, "pid": owner.get("pid"),
            "note": "the run stops at its next tick"}
