"""Live updates without reload: ``GET /api/runs/{id}/stream``, server-sent events
(``text/event-stream``; the browser's ``EventSource`` reconnects by itself).

Events, each ``data`` a JSON object:

* ``tick`` -- every tick journaled after ``since_tick`` (query parameter, default: the last one
  at connection): ``tick, time, state, equity, health_factor, margin_ratio_min`` (JSON values
  as :func:`trimtab.console.journals.num`);
* ``status`` -- at connection and whenever it changes: ``alive``, ``status`` (``live``,
  ``stopped``, ``finished``, ``interrupted``), ``stopped`` (the journal's stop record);
* ``end`` -- the run has no process any more and every tick was sent; the stream closes;
* ``error`` -- the journal cannot be read any more (``detail``); the stream closes.

The journal is polled every :data:`POLL_S` seconds (SQLite has no change notification across
processes); nothing is kept between connections.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import AsyncIterator

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from ..engine.journal import read_metrics
from ..reports import ReportError
from ..reports.rundata import opened as open_journal, read_meta
from ..runs import holder
from . import ConsoleError
from .api import run_dir
from .journals import num
from .security import journal_of

POLL_S = 0.5
router = APIRouter(prefix="/api")
NAMES = ("equity", "health_factor", "margin_ratio_min")


def _new_ticks(journal: Path, after: int) -> list[dict]:
    with open_journal(journal) as db:
        if journal.name == "portfolio.sqlite":
            return [{"tick": t, "time": tm, "state": st, "equity": num(e)}
                    for t, tm, st, e in db.execute("SELECT tick, time, state, equity FROM series WHERE tick > ? ORDER BY tick", (after,))]
        return [{"tick": r.tick, "time": r.time, "state": r.state, **{k: num(v) for k, v in r.metrics.items()}}
                for r in read_metrics(db, first=after + 1, names=NAMES)]


def _status(run: Path, journal: Path) -> dict:
    with open_journal(journal) as db:
        meta = read_meta(db)
    alive = holder(run) is not None
    stopped = meta.get("stopped")
    state = "live" if alive else "stopped" if stopped else "finished" if (run / "summary.json").is_file() else "interrupted"
    return {"alive": alive, "status": state, "stopped": stopped}


def _shutting_down(request: Request) -> bool:
    """True once the server is stopping (Ctrl-C): the stream ends so the shutdown need not wait."""
    server = getattr(request.app.state, "server", None)
    return bool(getattr(server, "should_exit", False))


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def _events(request: Request, run: Path, since: int | None) -> AsyncIterator[str]:
    journal = journal_of(run)
    if since is None:
        ticks = await asyncio.to_thread(_new_ticks, journal, -1)
        since = ticks[-1]["tick"] if ticks else -1
    last_status = None
    yield "retry: 2000\n\n"
    while not await request.is_disconnected() and not _shutting_down(request):
        try:
            st = await asyncio.to_thread(_status, run, journal)
            ticks = await asyncio.to_thread(_new_ticks, journal, since)
        except (ConsoleError, ReportError) as e:  # the journal became unreadable: say so and end the stream
            yield _event("error", {"detail": str(e)})
            return
        for t in ticks:
            yield _event("tick", t)
            since = t["tick"]
        if st != last_status:
            yield _event("status", st)
            last_status = st
        if not st["alive"] and not ticks:
            yield _event("end", {"last_tick": since})
            return
        await asyncio.sleep(POLL_S)


@router.get("/runs/{run_id}/stream", summary="Server-sent events: the run's new ticks and status")
async def stream(request: Request, run_id: str, since_tick: int | None = Query(None, ge=-1)) -> StreamingResponse:
    """See the module docstring for the events."""
    run = run_dir(request, run_id)
    return StreamingResponse(_events(request, run, since_tick), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
