"""``trimtab run CONFIG``: a backtest on the bundled data, or a live run (``--live``).

A portfolio or a drift-basket config is handed to :func:`trimtab.cli.portfolio.dispatch_run`;
every other config runs through :func:`trimtab.engine.backtest.run_backtest` or
:func:`trimtab.live.runner.run_live`. Output and exit codes as in :mod:`trimtab.cli.main`.
"""
from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError, TrimtabError
from .common import (EXIT_CONFIG, fail, json_default, parse_time, pause_collection, print_issues, stderr_console,
                     stderr_is_terminal)

# Command modules import the engine inside the command, so `trimtab --help` and a usage error
# stay fast (no pandas/numpy load); no import here hides a cycle (tests/unit/test_layering.py).


def run(
    config: Path = typer.Argument(..., metavar="CONFIG", help="Strategy config, e.g. configs/<strategy>.yaml"),
    start: Optional[str] = typer.Option(None, "--start", help="Window start (UTC date or time; default: start of the data)."),
    end: Optional[str] = typer.Option(None, "--end", help="Window end (UTC date or time; default: end of the data)."),
    capital: Optional[float] = typer.Option(None, "--capital", help="Initial capital in the share class (default: the config's)."),
    out: Path = typer.Option(Path("runs"), "--out", help="Directory the run folder is written under."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object (the summary) on stdout."),
    flow: list[str] = typer.Option([], "--flow", help="Capital flow TIME:AMOUNT, repeatable: +deposit, -withdrawal, or 'all' (e.g. 2024-09-01:+50000, 2025-01-01:all)."),
    live: bool = typer.Option(False, "--live", help="Run live: step the same engine as the feed delivers ticks, paper trading, checkpointing every tick."),
    replay: bool = typer.Option(False, "--replay", help="With --live: the feed replays the bundled history at --speed (no network needed)."),
    speed: Optional[float] = typer.Option(None, "--speed", help="With --live --replay: market hours per wall hour (default 3600 = one market hour per second)."),
    run_id: Optional[str] = typer.Option(None, "--run-id", help="Name of the run directory under --out (default: generated)."),
    resume: bool = typer.Option(False, "--resume", help="With --live and --run-id: continue a stopped or killed run from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="With --run-id: replace that run if it is a finished backtest no process owns (an existing run is otherwise never replaced)."),
    execute: bool = typer.Option(False, "--execute", help="With --live: send the plans to the real venues (credentials from TRIMTAB_* environment variables; see README). Default: paper trading."),
    allow_audit_errors: bool = typer.Option(False, "--allow-audit-errors", help="Run even if `trimtab audit` finds errors in CONFIG (research only); the findings go into the summary."),
    costs: Optional[str] = typer.Option(None, "--costs", help="Execution-cost level: low, base or high = 0.5x, 1x, 2x every trade's spread + slippage (not fee tiers, exchange fees or gas); overrides the config's costs.multiplier."),
    journal: str = typer.Option("slim", "--journal", help="Journal mode: slim (default; `trimtab explain` recomputes each tick's rule trace from the stored metrics) or full (the rule trace of every tick stored as JSON)."),
    set_: list[str] = typer.Option([], "--set", metavar="NAME=VALUE", help="Override a parameter (target_ltv=0.8) or a config field by dotted path (targets.hedge.allocation=0.4, capital=50000), repeatable; validated like the YAML, recorded in the summary (`trimtab params CONFIG` lists the parameters)."),
    report: bool = typer.Option(False, "--report", help="At the end, also write <run dir>/report.html (as `trimtab report`); its path follows the summary (on stderr with --json)."),
) -> None:
    """Backtest CONFIG on the bundled real market data and print a summary (or run it live with --live).

    Every flag is checked before anything is loaded, then CONFIG is audited (as `trimtab audit`):
    an error finding refuses the run unless --allow-audit-errors.
    """
    begin = pause_collection()   # until the run itself starts
    t0, t1 = parse_time(start, "start"), parse_time(end, "end")
    check_journal_flag(journal, config)
    if t0 is not None and t1 is not None and t0 >= t1:
        raise typer.BadParameter(f"start {t0:%Y-%m-%d %H:%M} is not before end {t1:%Y-%m-%d %H:%M}", param_hint="'--start'/'--end'")
    from .preflight import amend_summary, audit_gate, check_flows_window, check_run_flags

    flows = check_run_flags(capital=capital, speed=speed, live=live, replay=replay, resume=resume, execute=execute, run_id=run_id,
                            flow=flow, out=out)
    # --- issue 6: portfolio-of-strategies and token_weights basket configs (cli/portfolio.py) ---
    from .portfolio import dispatch_run

    check_run_id_flags(run_id, resume, overwrite, live)
    multiplier = check_costs_flag(costs, config)
    check_set_flag(set_, config)
    from ..data.background import BackgroundLoad

    # Every kind of run reads the bundle: a forked child (or a thread) loads it while the config
    # loads; the child then writes a backtest's equity.csv (so this process never imports pyarrow).
    loading = BackgroundLoad(job=_equity_csv_job, prepare=_prepare_equity_csv_job)
    dispatched = dispatch_run(config, start=start, end=end, capital=capital, out=out, as_json=as_json, flow=flow, live=live,
                              run_id=run_id, resume=resume, overwrite=overwrite, allow_audit_errors=allow_audit_errors,
                              begin=begin, data_load=loading)
    if dispatched is not None:
        loading.close()
        if report:
            from .report import report_after_run

            report_after_run(dispatched, as_json)
        return
    if resume and not live:
        raise typer.BadParameter("continues a live run; add --live (and --replay for a replayed one)", param_hint="'--resume'")
    # --- end of issue 6 dispatch ---

    from ..config.load import load_strategy
    from ..engine.backtest import run_backtest
    from ..engine.journal import jsonable
    from .progress import tick_progress

    try:
        strategy = load_strategy(config, overrides=set_)
    except ConfigError as e:
        print_override_issues(e, sys.stderr)
        n = len(e.issues)
        sys.stderr.write(f"{config}: {n} configuration issue{'s' if n != 1 else ''}; nothing was run\n")
        raise typer.Exit(EXIT_CONFIG) from None
    if multiplier is not None:
        strategy.config = strategy.config.model_copy(update={"costs": strategy.config.costs.model_copy(update={"multiplier": multiplier})})

    # Progress goes to stderr, and only to a terminal (a bar cannot animate in a log file);
    # without one, the readable mode says how long the run took instead (and rich, which only
    # draws, is not imported).
    show = stderr_is_terminal()
    err = stderr_console() if show else None
    started = time.perf_counter()
    try:
        if show:
            with err.status("loading market data", spinner="dots"):
                data = loading.result()
        else:
            data = loading.result()
        if live:  # no equity.csv at the end of this process to hand over: the child ends now
            loading.close()
        on_bundle = not live or replay  # a run on the live feed is not checked against the bundle's coverage
        if on_bundle:
            from ..engine.window import resolve_window

            window = resolve_window(strategy, data, t0, t1)  # a window outside the data: one DataError line
            check_flows_window(flows, *window)
            if not live:
                # A window partly outside the data was clamped (with a warning): the audit and the
                # backtest both see the clamped one, or the audit would refuse the uncovered part.
                t0, t1 = window
        # The audit reuses the loaded data.
        audit_errors = audit_gate(config, strategy=strategy, data=data, start=t0, end=t1, check_data=on_bundle,
                                  allow=allow_audit_errors)
        begin()
        with tick_progress(err, enabled=show) as progress:
            if live:
                from ..live.runner import run_live

                if resume and run_id:
                    from .live import announce_resume

                    progress = announce_resume(progress, out / run_id)  # where it continues from

                if replay:
                    result = run_live(strategy, out=out, run_id=run_id, start=t0, end=t1, speed=speed or 3600.0, resume=resume,
                                      data=data, progress=progress, journal=journal)
                else:
                    # The live market-data feed (feeds/live.yaml): wall clock, one tick per closed hour.
                    def notice(msg: str) -> None:
                        err.print(f"[yellow]{msg}[/]", markup=True, highlight=False, soft_wrap=True) if show else \
                            sys.stderr.write(msg + "\n")

                    result = run_live(strategy, out=out, run_id=run_id, start=t0, end=t1, resume=resume, progress=progress,
                                      feed="live", notice=notice, static=data.static, execute=execute, journal=journal)
            else:
                # one run: the journal's SQLite work on another core, if there is one
                result = run_backtest(strategy, start=t0, end=t1, capital=capital, out=out, progress=progress, data=data, flows=flows,
                                      run_id=run_id, overwrite=overwrite, journal=journal, journal_writer=(os.cpu_count() or 1) > 1,
                                      csv_helper=loading)
    except ConfigError as e:
        print_issues(e, sys.stderr)
        raise typer.Exit(EXIT_CONFIG) from None
    except TrimtabError as e:
        msg = str(e) if strategy.name in str(e) else f"{strategy.name}: {e}"
        raise fail(msg) from None
    except OSError as e:  # the run directory cannot be written, the disk is full, ...
        raise fail(f"{strategy.name}: cannot write the run: {e}") from None
    except sqlite3.Error as e:  # the journal: the disk is full, the file was removed, its writer killed
        raise fail(f"{strategy.name}: cannot write the journal: {e}") from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None

    amend_summary(result.summary, getattr(result, "run_dir", None), audit_errors)
    if as_json:
        sys.stdout.write(json.dumps(jsonable(result.summary), default=json_default) + "\n")
        sys.stdout.flush()
        _settle(result, strategy.name)
        if report:
            from .report import report_after_run

            report_after_run(getattr(result, "run_dir", None), as_json)
        return
    from .render import print_summary

    if not show:
        ticks = result.ticks
        sys.stderr.write(f"{strategy.name}: {ticks:,} ticks in {time.perf_counter() - started:.1f} s\n")

    from rich.console import Console

    print_summary(result.summary, Console(highlight=False), files_ready=lambda: _settle(result, strategy.name))
    if report:
        from .report import report_after_run

        report_after_run(getattr(result, "run_dir", None), as_json)


def _settle(result, name: str) -> None:
    """Wait for the run's files still being written beside this process (``RunResult.settle``:
    the loader's child writes ``equity.csv`` while the summary is shown)."""
    try:
        result.settle()  # (a no-op for a run that left nothing to a helper: a live run's)
    except OSError as e:
        raise fail(f"{name}: cannot write the run: {e}") from None


# The forked loader's job (trimtab.data.background), imported there, not before the fork: the
# engine's modules would delay the child's start by their import time.
def _equity_csv_job(spec: dict, arrays: dict) -> None:
    """:func:`trimtab.engine.results.equity_csv_job` (in the child)."""
    from ..engine.results import equity_csv_job

    equity_csv_job(spec, arrays)


def _prepare_equity_csv_job() -> None:
    """:func:`trimtab.engine.results.prepare_equity_csv_job` (in the child, while the run goes on)."""
    from ..engine.results import prepare_equity_csv_job

    prepare_equity_csv_job()


def check_journal_flag(journal: str, config: Path) -> None:
    """--journal is slim or full (trimtab.engine.journal.MODES); full applies to a single
    strategy config (portfolio and basket runs do not take it from the CLI yet). Raises
    typer.BadParameter."""
    if journal not in ("slim", "full"):  # literal: the CLI does not import the engine before checking flags
        raise typer.BadParameter(f"{journal!r} is not a journal mode; use slim (the default) or full", param_hint="'--journal'")
    if journal != "slim":
        from ..portfolio.config import is_basket_file, is_portfolio_file

        if config.is_file() and (is_portfolio_file(config) or is_basket_file(config)):
            raise typer.BadParameter("full applies to a single strategy config; a portfolio or basket run writes slim "
                                     "journals (every tick's trace is still rebuilt by `trimtab explain`)", param_hint="'--journal'")


def check_costs_flag(costs: Optional[str], config: Path) -> float | None:
    """The spread + slippage multiplier of ``--costs`` (trimtab.venues.costs.COST_LEVELS), None
    without the flag. Raises typer.BadParameter for another word, or for a portfolio or basket
    config (set ``costs: {multiplier: x}`` in the strategy config instead)."""
    if costs is None:
        return None
    from ..venues.costs import COST_LEVELS

    if costs not in COST_LEVELS:
        raise typer.BadParameter(f"{costs!r} is not a cost level; use one of: {', '.join(COST_LEVELS)} "
                                 f"({', '.join(f'{v:g}x' for v in COST_LEVELS.values())} spread + slippage)", param_hint="'--costs'")
    from ..portfolio.config import is_basket_file, is_portfolio_file

    if config.is_file() and (is_portfolio_file(config) or is_basket_file(config)):
        raise typer.BadParameter("applies to a single strategy config; for a portfolio or basket set "
                                 "costs: {multiplier: x} in each strategy config", param_hint="'--costs'")
    return COST_LEVELS[costs]


def check_set_flag(overrides: list[str], config: Path) -> None:
    """--set applies to a single strategy config (its values are checked when it loads,
    trimtab.config.overrides). Raises typer.BadParameter for a portfolio or basket config."""
    if not overrides:
        return
    from ..portfolio.config import is_basket_file, is_portfolio_file

    if config.is_file() and (is_portfolio_file(config) or is_basket_file(config)):
        raise typer.BadParameter("applies to a single strategy config; for a portfolio or basket edit the "
                                 "strategy configs it names", param_hint="'--set'")


def print_override_issues(err: ConfigError, stream) -> None:
    """Every diagnostic of ``err``, one line each: ``--set NAME=VALUE: path: message`` for one
    at a flag, ``file:line:col: path: message`` for the others."""
    from ..config.overrides import format_issue

    for issue in err.issues:
        stream.write(format_issue(issue) + "\n")


def check_run_id_flags(run_id: Optional[str], resume: bool, overwrite: bool, live: bool) -> None:
    """--run-id is one directory name under --out (trimtab.runs); --overwrite only replaces a
    finished backtest, named by --run-id. Raises typer.BadParameter naming the flag."""
    from ..runs import run_id_problem

    if run_id is not None:
        why = run_id_problem(run_id)
        if why is not None:
            raise typer.BadParameter(why, param_hint="'--run-id'")
    if overwrite:
        if run_id is None:
            raise typer.BadParameter("names the run to replace: add --run-id", param_hint="'--overwrite'")
        if resume or live:
            raise typer.BadParameter("replaces a finished backtest; a live run is continued with --resume, never replaced",
                                     param_hint="'--overwrite'")
