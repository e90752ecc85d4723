"""Live runs through the same engine: paper trading against a feed, crash-safe.

``trimtab run CONFIG --live --replay`` builds the same :class:`trimtab.engine.backtest.Engine`
as a backtest and steps it as the feed delivers ticks. After every tick the journal commits
that tick's rows *and* the engine state (:meth:`Engine.state`) in one SQLite transaction (WAL
mode), so a process killed at any moment -- even mid-plan, with transfers in flight -- loses
the whole of the tick it was on or none of it. ``--resume RUN`` reloads the last checkpoint
and carries on from the next tick: nothing that was committed runs again, so no instruction
is executed twice, and the run ends where an uninterrupted one ends.

Execution is paper by default: fills come from the same simulated venue models as backtests.
(Orders to real venues go through :mod:`trimtab.live.adapters`, whose client order ids are
derived from plan and step ids so a resent order is recognised; the live loop does not route
to them yet.)

``trimtab stop RUN`` writes a stop request into the journal; the loop sees it at the next
tick, cancels the plan in flight (``--flatten``: submits an unwind plan first and waits for
it), checkpoints and exits. ``trimtab status RUN`` reads state, positions and open plans from
the journal, whether or not the run is alive.
"""
from __future__ import annotations

import json
import os
import pickle
import sqlite3
from pathlib import Path

from ..config.load import Strategy
from ..data.feed import MarketData, load_market_data
from ..engine.backtest import Engine, RunResult, new_run_id, resolve_window
from ..errors import TrimtabError
from .feed import ReplayFeed


class LiveError(TrimtabError):
    """A live run cannot start, resume or be controlled; the message says why."""


def run_live(strategy: Strategy, out: Path | str = "runs", run_id: str | None = None, start=None, end=None,
             speed: float = 3600.0, resume: bool = False, data: MarketData | None = None, progress=None) -> RunResult:
    """Paper-trade ``strategy`` over a replay of the bundled data, checkpointing every tick.

    Raises:
        LiveError: resuming a run that has no checkpoint, or a run directory that is not this
            strategy's; DataError for a window outside the data.
    """
    data = data or load_market_data()
    out = Path(out)
    if resume:
        if not run_id:
            raise LiveError("--resume needs the run id to continue")
        run_dir = out / run_id
        meta = _meta(run_dir)
        if meta.get("strategy", {}).get("name") != strategy.name:
            raise LiveError(f"{run_dir} is a run of {meta.get('strategy', {}).get('name')!r}, not {strategy.name!r}")
        start, end = meta["window"]["start"].replace("Z", ""), meta["window"]["end"].replace("Z", "")
    start, end = resolve_window(strategy, data, start, end)
    run_id = run_id or new_run_id(strategy, start, end, out)
    run_dir = out / run_id
    engine = Engine(strategy, data.slice(start, end), run_dir, resume=resume)
    journal = engine.journal
    journal.flush_every = 10**9  # rows are committed with each tick's checkpoint, never half a tick
    if resume:
        cp = journal.last_checkpoint()
        if cp is None:
            raise LiveError(f"{run_dir} has no checkpoint to resume from")
        engine.restore(pickle.loads(cp[1]))
        journal.meta("resumed", {"at_tick": engine.next_tick, "pid": os.getpid()})
    else:
        journal.meta("live", {"mode": "paper", "feed": "replay", "speed": speed, "pid": os.getpid()})
    (run_dir / "live.pid").write_text(str(os.getpid()))
    feed = ReplayFeed(engine.view.n, speed)
    stopped = None
    try:
        for i in feed.ticks(engine.next_tick):
            request = journal.control("stop")
            if request is not None and stopped is None:
                stopped = json.loads(request)
                engine.halted = True
                engine.executor.cancel(i, "stop requested")
                if stopped.get("flatten"):
                    plan = engine.planner.plan(engine.book, engine.equity(), "exit_full", "unwind", engine.params, "stop")
                    journal.plan(plan, i)
                    engine.executor.submit(plan, i)
            engine.step(i)
            journal.checkpoint(i, pickle.dumps(engine.state()))
            if progress:
                progress(i + 1, engine.view.n)
            if stopped is not None and not engine.executor.in_flight:
                journal.meta("stopped", {"tick": i, "time": engine.iso[i], **stopped})
                break
    finally:
        (run_dir / "live.pid").unlink(missing_ok=True)
    return engine.finish()


def request_stop(run_dir: Path, flatten: bool = False) -> None:
    """Ask the live run writing ``run_dir`` to stop at its next tick (the kill switch)."""
    path = Path(run_dir) / "journal.sqlite"
    if not path.exists():
        raise LiveError(f"no run at {run_dir}")
    db = sqlite3.connect(path, timeout=30)
    with db:
        db.execute("INSERT OR REPLACE INTO control VALUES ('stop', ?, datetime('now'))", (json.dumps({"flatten": flatten}),))
    db.close()


def status(run_dir: Path) -> dict:
    """State, positions, open plans and liveness of a run, read from its journal."""
    run_dir = Path(run_dir)
    path = run_dir / "journal.sqlite"
    if not path.exists():
        raise LiveError(f"no run at {run_dir}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        last = db.execute("SELECT tick, time, state, equity FROM metrics ORDER BY tick DESC LIMIT 1").fetchone()
        positions: dict[str, float] = {}
        for (legs,) in db.execute("SELECT legs FROM fills"):
            for k, d, _ in json.loads(legs):
                positions[k] = positions.get(k, 0.0) + d
        latest = {}
        for pid, sid, status_, desc in db.execute("SELECT plan_id, step_id, status, description FROM instructions ORDER BY rowid"):
            latest[(pid, sid)] = (status_, desc)
        open_steps = [{"plan_id": p, "step_id": s, "status": st, "description": d}
                      for (p, s), (st, d) in latest.items() if st in ("pending", "in_transit")]
        meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
        cp = db.execute("SELECT tick FROM checkpoints").fetchone()
    finally:
        db.close()
    pid_file = run_dir / "live.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    alive = pid is not None and _alive(pid)
    return {
        "run_dir": str(run_dir), "strategy": meta.get("strategy", {}).get("name"),
        "running": alive, "pid": pid if alive else None,
        "finished": "summary" in meta, "stopped": meta.get("stopped"),
        "tick": last[0] if last else None, "time": last[1] if last else None,
        "state": last[2] if last else None, "equity": last[3] if last else None,
        "checkpoint_tick": cp[0] if cp else None,
        "positions": {k: v for k, v in sorted(positions.items()) if abs(v) > 1e-12},
        "open_steps": open_steps,
    }


def _meta(run_dir: Path) -> dict:
    path = Path(run_dir) / "journal.sqlite"
    if not path.exists():
        raise LiveError(f"no run at {run_dir} to resume")
    db = sqlite3.connect(path)
    try:
        return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
    finally:
        db.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
