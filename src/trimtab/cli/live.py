"""``trimtab status RUN`` and ``trimtab stop RUN``: look at a run and stop a live one."""
from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import typer
from rich.console import Console

from ..errors import TrimtabError
from .common import fail, json_default, resolve_run_dir

# Command modules import the engine inside the command, so `trimtab --help` and a usage error
# stay fast (no pandas/numpy load); no import here hides a cycle (tests/unit/test_layering.py).


def status(
    run: str = typer.Argument(..., metavar="RUN", help="Run directory or run id under --runs."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs", help="Folder holding run directories (for a run id)."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
) -> None:
    """A run's state, positions and open plans, and whether its process is alive."""
    from ..live.control import status as run_status

    try:
        st = run_status(resolve_run_dir(run, runs_dir))
    except TrimtabError as e:
        raise fail(str(e)) from None
    except sqlite3.DatabaseError as e:
        raise fail(f"{run}: not a readable run journal ({e})") from None
    if as_json:
        sys.stdout.write(json.dumps(st, default=json_default) + "\n")
        return
    out = Console(highlight=False)
    # "running" comes from the run's lock (trimtab.runs.holder), never from a pid file.
    life = (f"running (pid {st['pid']}, since {st['since']})" if st["running"] else
            "stopped" if st["stopped"] else "finished" if st["finished"] else "not running")
    out.print(f"[bold]{st['strategy']}[/bold]  ·  {life}  ·  state {st['state']} at {st['time']}  ·  equity {st['equity']:,.2f}"
              if st["equity"] is not None else f"{st['strategy']}  ·  {life}  ·  no tick yet")
    out.print(f"mode: {st['mode']}" + (f" on the {st['feed']} feed" if st.get("feed") else ""))
    rec = st.get("reconciliation")
    if rec:
        out.print(f"reconciliation at tick {rec['tick']}: " + ("book matches the venues" if rec["ok"] else
                  f"[red]{len(rec['mismatches'])} mismatch(es); the machine is halted[/red]"))
        for m in rec["mismatches"]:
            out.print(f"  {m['message']}")
    if st["stopped"]:
        out.print(f"stopped at {st['stopped'].get('time')} (flatten: {st['stopped'].get('flatten')})")
    out.print(f"last checkpoint: tick {st['checkpoint_tick']}" if st["checkpoint_tick"] is not None else "no checkpoint (a backtest)")
    out.print("positions (book units: Aave balances are scaled by the reserve index, perps in signed asset units):")
    for k, v in st["positions"].items():
        out.print(f"  {k:32s} {v:>18,.6f}")
    out.print(f"open plan steps: {len(st['open_steps'])}")
    for o in st["open_steps"]:
        out.print(f"  {o['plan_id']}/{o['step_id']} {o['status']}: {o['description']}")


def stop(
    run: str = typer.Argument(..., metavar="RUN", help="Run directory or run id under --runs."),
    flatten: bool = typer.Option(False, "--flatten", help="Unwind every position before stopping."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs", help="Folder holding run directories (for a run id)."),
) -> None:
    """The kill switch: the live run cancels its plan in flight (and with --flatten unwinds), checkpoints and exits.

    A run no process is running (its lock is free) has nothing to stop: exit 1, nothing written."""
    from ..live.control import request_stop

    try:
        owner = request_stop(resolve_run_dir(run, runs_dir), flatten=flatten)
    except TrimtabError as e:
        raise fail(str(e)) from None
    except sqlite3.DatabaseError as e:
        raise fail(f"{run}: not a readable run journal ({e})") from None
    sys.stdout.write(f"stop requested for {run}{' (flatten)' if flatten else ''} (pid {owner.get('pid')}); "
                     f"the run acts on it at its next tick\n")
