"""Operator commands on a run directory: ``trimtab stop`` (:func:`request_stop`) and
``trimtab status`` (:func:`status`), and the checked read of a run's journal meta
(:func:`read_meta`) that they and a ``--resume`` share.

They run in another process than the run itself and talk to it only through its journal (a
``control`` row) and its lock (:mod:`trimtab.runs`); the loop that acts on a stop request is
:mod:`trimtab.live.runner`.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ..engine import checkpoint, recovery
from ..engine.journal import read_metrics
from ..errors import TrimtabError
from ..runs import holder


class LiveError(TrimtabError):
    """A live run cannot start, resume or be controlled; the message says why."""


def request_stop(run_dir: Path, flatten: bool = False) -> dict:
    """Ask the live run writing ``run_dir`` to stop at its next tick (the kill switch).

    Returns the owner record of the process that will act on it (``pid``, ``started``, ...).

    Raises:
        LiveError: no run there; a run no process owns (nothing to stop: the message gives its
            last checkpoint tick and how to resume it; nothing is written); a backtest.
    """
    run_dir = Path(run_dir)
    path = run_dir / "journal.sqlite"
    if not path.exists():
        raise LiveError(f"no run at {run_dir}")
    owner = holder(run_dir)
    meta = read_meta(run_dir, "stop it")
    name = run_dir.name
    if owner is None:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            cp = db.execute("SELECT tick FROM checkpoints").fetchone()
        except sqlite3.Error:
            cp = None
        finally:
            db.close()
        if "live" not in meta:
            raise LiveError(f"run {name} is a backtest that is not running; nothing to stop")
        config = meta.get("strategy", {}).get("config", "CONFIG")
        feed = " --replay" if meta["live"].get("feed") == "replay" else ""
        execute = " --execute" if meta.get("execution") else ""
        at = f"last checkpoint tick {cp[0]}" if cp else "no checkpoint"
        raise LiveError(f"run {name} is not running ({at}); nothing to stop; resume it with "
                        f"`trimtab run {config} --live{feed}{execute} --run-id {name} --out {run_dir.parent} --resume`")
    if "live" not in meta:
        raise LiveError(f"run {name} is a backtest (pid {owner.get('pid')}); stop applies to live runs: interrupt the backtest instead")
    db = sqlite3.connect(path, timeout=30)
    with db:
        db.execute("INSERT OR REPLACE INTO control VALUES ('stop', ?, datetime('now'))", (json.dumps({"flatten": flatten}),))
    db.close()
    return owner


def status(run_dir: Path) -> dict:
    """State, positions, open plans and liveness of a run, read from its journal.

    ``running`` is decided by trying the run's lock (:func:`trimtab.runs.holder`): held means a
    process is running it (``pid`` and ``since`` from its owner record); a process killed with
    SIGKILL has released it, so its run reads as not running."""
    run_dir = Path(run_dir)
    path = run_dir / "journal.sqlite"
    if not path.exists():
        raise LiveError(f"no run at {run_dir}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        (hi,) = db.execute("SELECT max(tick) FROM metrics").fetchone()
        rows = read_metrics(db, hi, hi) if hi is not None else []  # a metric column exists once a tick wrote it
        last = (rows[0].tick, rows[0].time, rows[0].state, rows[0].metrics.get("equity")) if rows else None
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
    owner = holder(run_dir)  # the run's lock, not a pid file: a killed process holds no lock
    return {
        "run_dir": str(run_dir), "strategy": meta.get("strategy", {}).get("name"),
        "running": owner is not None, "pid": owner.get("pid") if owner else None,
        "since": owner.get("started") if owner else None,
        "mode": meta.get("live", {}).get("mode", "backtest"), "feed": meta.get("live", {}).get("feed"),
        "reconciliation": meta.get("reconciliation"),
        "finished": "summary" in meta, "stopped": meta.get("stopped"),
        "tick": last[0] if last else None, "time": last[1] if last else None,
        "state": last[2] if last else None, "equity": last[3] if last else None,
        "checkpoint_tick": cp[0] if cp else None,
        "positions": {k: v for k, v in sorted(positions.items()) if abs(v) > 1e-12},
        "open_steps": open_steps,
    }


def read_meta(run_dir: Path, doing: str = "resume") -> dict:
    """The meta of the journal of the run to resume, read after SQLite's integrity check
    (:func:`trimtab.engine.recovery.open_checked`: a damaged journal is refused, not opened).

    Raises:
        LiveError: no journal there; CheckpointError: a damaged journal or unreadable meta.
    """
    path = Path(run_dir) / "journal.sqlite"
    if not path.exists():
        raise LiveError(f"no run at {run_dir} to resume")
    db = recovery.open_checked(path, recovery.ENGINE_TABLES, doing)
    try:
        meta = {k: checkpoint.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
    except (sqlite3.DatabaseError, TypeError, ValueError, RecursionError) as e:
        raise checkpoint.CheckpointError(f"{path}: its meta table cannot be read ({e}); refusing to {doing}") from None
    finally:
        db.close()
    w = meta.get("window")
    if not (all(isinstance(v, dict) for k, v in meta.items() if k in ("strategy", "window", "live"))
            and isinstance(w, dict) and isinstance(w.get("start"), str) and isinstance(w.get("end"), str)):
        raise checkpoint.CheckpointError(f"{path}: its meta records are not trimtab's; refusing to {doing}")
    return meta
