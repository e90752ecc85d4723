"""``trimtab status RUN`` and ``trimtab stop RUN``: look at a run and stop a live one."""
# No `from __future__ import annotations`: typer reads these at every start-up (cli/main.py).

import json
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..errors import TrimtabError
from .common import fail, json_default

if TYPE_CHECKING:
    from rich.console import Console

# Command modules import the engine inside the command, so `trimtab --help` and a usage error
# stay fast (no pandas/numpy load); no import here hides a cycle (tests/unit/test_layering.py).


def _find_run(run: str, runs_dir: Path) -> Path:
    """The directory of ``run`` (any run kind: a strategy, basket or live run, a portfolio, a
    portfolio's sleeve), as ``trimtab explain`` finds it; raises the CLI's one-line error."""
    from ..explain import RunError, run_dir_of

    try:
        return run_dir_of(run, runs_dir)
    except RunError as e:
        raise fail(str(e)) from None


def status(
    run: str = typer.Argument(..., metavar="RUN", help="Run directory or run id under --runs (any run kind: strategy, basket, live, portfolio)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs", help="Folder holding run directories (for a run id)."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
) -> None:
    """A run's state, positions and open plans, and whether its process is alive.

    Aave balances are shown in underlying units (scaled x the reserve index at the run's last
    tick); a portfolio run shows its own state and each sleeve's."""
    from ..live.control import status as run_status
    from ..portfolio.summary import portfolio_status

    run_dir = _find_run(run, runs_dir)
    try:
        if (run_dir / "portfolio.sqlite").is_file():
            st = portfolio_status(run_dir)
            for sl in st["sleeves"].values():
                sl["aave"] = _aave(sl)
        else:
            st = run_status(run_dir)
            st["kind"] = _kind(run_dir)
            st["aave"] = _aave(st)
    except TrimtabError as e:
        raise fail(str(e)) from None
    except sqlite3.DatabaseError as e:
        raise fail(f"{run}: not a readable run journal ({e})") from None
    if as_json:
        sys.stdout.write(json.dumps(st, default=json_default) + "\n")
        return
    from rich.console import Console

    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=160)  # a file or pipe: keep lines whole
    # "running" comes from the run's lock (trimtab.runs.holder), never from a pid file.
    life = (f"running (pid {st['pid']}, since {st['since']})" if st["running"] else
            "stopped" if st["stopped"] else "finished" if st["finished"] else "not running")
    kind = {"portfolio": "portfolio  ·  ", "drift_basket": "drift basket  ·  "}.get(st["kind"], "")
    out.print(f"[bold]{st['strategy']}[/bold]  ·  {kind}{life}  ·  state {st['state']} at {st['time']}  ·  equity {st['equity']:,.2f}"
              if st["equity"] is not None else f"{st['strategy']}  ·  {kind}{life}  ·  no tick yet", soft_wrap=True)
    out.print(f"run directory {st['run_dir']}", soft_wrap=True)
    out.print(f"mode: {st['mode']}" + (f" on the {st['feed']} feed" if st.get("feed") else ""))
    rec = st.get("reconciliation")
    if rec:
        out.print(f"reconciliation at tick {rec['tick']}: " + ("book matches the venues" if rec["ok"] else
                  f"[red]{len(rec['mismatches'])} mismatch(es); the machine is halted[/red]"))
        for m in rec["mismatches"]:
            out.print(f"  {m['message']}")
    if st["stopped"]:
        out.print(f"stopped at {st['stopped'].get('time')} (flatten: {st['stopped'].get('flatten')})")
    if st["checkpoint_tick"] is not None:
        out.print(f"last checkpoint: tick {st['checkpoint_tick']}" + (f" ({st['checkpoint_time']})" if st.get("checkpoint_time") else ""))
    else:
        out.print("no checkpoint (a backtest)")
    if st["kind"] == "portfolio":
        out.print(f"cash outside the sleeves: {st['cash']:,.2f} {st.get('share_class') or ''}" if st["cash"] is not None else "")
        if not st["running"] and not st["finished"] and st["checkpoint_tick"] is not None:
            out.print(f"not finished: continue it with `trimtab run {st.get('config') or 'CONFIG'} --run-id {Path(st['run_dir']).name} "
                      f"--out {Path(st['run_dir']).parent} --resume`", soft_wrap=True)
        r = st["reallocation_in_flight"]
        out.print(f"reallocation in flight: #{r['id']} ({r['trigger']}) since {r['start_time']}" if r else "reallocation in flight: none")
        for sid, sl in st["sleeves"].items():
            out.print(f"[bold]sleeve {sid}[/bold]: {sl['strategy']}  ·  state {sl['state']}  ·  equity "
                      + (f"{sl['equity']:,.2f}" if sl["equity"] is not None else "n/a") + f"  ·  {sl['run_dir']}", soft_wrap=True)
            _print_positions(out, sl, indent="    ")
        return
    _print_positions(out, st)
    out.print(f"open plan steps: {len(st['open_steps'])}")
    for o in st["open_steps"]:
        out.print(f"  {o['plan_id']}/{o['step_id']} {o['status']}: {o['description']}")


def _kind(run_dir: Path) -> str:
    """The run kind its summary.json names ("strategy" or "drift_basket"); "strategy" for a
    run still going (no summary yet) or a summary that cannot be read."""
    try:
        kind = json.loads((run_dir / "summary.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError, RecursionError):
        return "strategy"
    return kind if kind in ("strategy", "drift_basket") else "strategy"


def _aave(st: dict) -> dict:
    """Aave positions of a status in underlying units at its last tick (trimtab.summary.aave_balances)."""
    from ..summary import aave_balances

    if not st.get("time"):
        return {}
    return aave_balances(st["positions"], Path(st["run_dir"]) / "journal.sqlite", st["time"])


def _print_positions(out: "Console", st: dict, indent: str = "  ") -> None:
    """Positions in token units (perps signed); Aave balances in underlying units with their
    scaled balance and index, or labelled scaled when the index is not known."""
    aave = st.get("aave") or {}
    note = f"; Aave: scaled balance x reserve index at {st['time']}" if aave else ""
    out.print(f"{indent[:-2]}positions (token units; perps signed{note}):")
    for k, v in st["positions"].items():
        a = aave.get(k)
        if a and a.get("underlying") is not None:
            out.print(f"{indent}{k:32s} {a['underlying']:>18,.6f} {a['asset']:<6} (scaled {a['scaled']:,.6f} x index {a['index']:.6f})")
        elif a:
            out.print(f"{indent}{k:32s} {v:>18,.6f} scaled (the reserve index at that time is not in the data)")
        else:
            out.print(f"{indent}{k:32s} {v:>18,.6f}")


def stop(
    run: str = typer.Argument(..., metavar="RUN", help="Run directory or run id under --runs."),
    flatten: bool = typer.Option(False, "--flatten", help="Unwind every position before stopping."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs", help="Folder holding run directories (for a run id)."),
) -> None:
    """The kill switch: the live run cancels its plan in flight (and with --flatten unwinds), checkpoints and exits.

    A run no process is running (its lock is free) has nothing to stop: exit 1, nothing written."""
    from ..live.control import request_stop

    run_dir = _find_run(run, runs_dir)
    if (run_dir / "portfolio.sqlite").is_file():
        raise fail(f"{run_dir} is a portfolio run, a backtest that stop cannot reach: interrupt its process (Ctrl-C), "
                   f"then continue it with `trimtab run CONFIG --run-id {run_dir.name} --resume`")
    try:
        owner = request_stop(run_dir, flatten=flatten)
    except TrimtabError as e:
        raise fail(str(e)) from None
    except sqlite3.DatabaseError as e:
        raise fail(f"{run}: not a readable run journal ({e})") from None
    sys.stdout.write(f"stop requested for {run}{' (flatten)' if flatten else ''} (pid {owner.get('pid')}); "
                     f"the run acts on it at its next tick\n")


def resume_point(run_dir: Path) -> tuple[int, str | None] | None:
    """``(tick, time)`` of the last committed checkpoint of the run at ``run_dir`` (a live run's
    ``journal.sqlite`` or a portfolio's ``portfolio.sqlite``): where a ``--resume`` continues
    from (the tick after it is the first one run again). None when there is no readable
    checkpoint (the resume itself then says why it refuses)."""
    for name, times in (("portfolio.sqlite", "series"), ("journal.sqlite", "metrics")):
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            try:
                (tick,) = db.execute("SELECT max(tick) FROM checkpoints").fetchone()
                row = db.execute(f"SELECT time FROM {times} WHERE tick = ?", (tick,)).fetchone() if tick is not None else None
            finally:
                db.close()
        except sqlite3.DatabaseError:
            return None
        return None if tick is None else (int(tick), row[0] if row and isinstance(row[0], str) else None)
    return None


def announce_resume(progress, run_dir: Path):
    """``progress`` (a ``progress(done, total)`` callable or None) wrapped so that its first call
    writes :func:`resume_notice` on stderr first. A run reports its first tick only once the
    resume checks passed, so a refused resume never claims to be resuming."""
    note = resume_notice(run_dir)
    if note is None:
        return progress
    said = False

    def first_tick(done: int, total: int) -> None:
        nonlocal said
        if not said:
            said = True
            sys.stderr.write(note + "\n")
            sys.stderr.flush()
        if progress is not None:
            progress(done, total)

    return first_tick


def resume_notice(run_dir: Path) -> str | None:
    """One line for stderr before a ``--resume``: ``resuming RUN from tick N (TIME), its last
    checkpoint``; None when :func:`resume_point` finds none."""
    p = resume_point(run_dir)
    if p is None:
        return None
    tick, when = p
    return f"resuming {Path(run_dir).name} after tick {tick}{f' ({when})' if when else ''}, its last checkpoint"
