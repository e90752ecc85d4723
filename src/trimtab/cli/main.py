"""The ``trimtab`` command line.

* ``trimtab run CONFIG`` -- backtest on the bundled data; ``trimtab validate CONFIG...``;
* ``trimtab audit CONFIG...`` -- static findings (structure, rules, thresholds, venues, data);
* ``trimtab diagram CONFIG`` -- the machine as Mermaid text and an SVG/PNG image;
* ``trimtab explain RUN --at TIME`` / ``--transitions`` -- why the run did what it did;
* ``trimtab schema`` -- JSON Schemas of the YAML files; ``trimtab test`` -- rule fixtures.

Output discipline: stdout carries the command's result only (the readable summary, or with
``--json`` exactly one JSON object); progress and errors go to stderr.

Exit codes: 0 success; 1 a runtime or data error (one line, no traceback) or, for
``validate``/``audit``/``test``, a config with errors, an error finding, a failing rule test,
or for ``run`` an audit error finding (the run is refused; ``--allow-audit-errors`` runs it);
2 a config error in ``run`` (every issue printed) or a usage error: a bad flag value, one line
``error: Invalid value for '--flag': ...`` (cli/guard.py, cli/preflight.py).

Everything printed is redacted of loaded ``TRIMTAB_*`` secrets (cli/guard.py).
"""
from __future__ import annotations

import json
import sqlite3
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..errors import ConfigError, TrimtabError
from .guard import TrimtabGroup

app = typer.Typer(
    name="trimtab",
    help="Declarative rules and state-machine engine for multi-venue crypto yield strategies.",
    cls=TrimtabGroup,  # redacted output, one-line errors (cli/guard.py)
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

EXIT_RUNTIME = 1
EXIT_CONFIG = 2


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _fail(message: str, code: int = EXIT_RUNTIME) -> typer.Exit:
    """Print ``error: message`` on one line to stderr; return the Exit to raise."""
    sys.stderr.write(f"error: {' '.join(str(message).split())}\n")
    return typer.Exit(code)


def _print_issues(err: ConfigError, stream) -> None:
    for issue in err.issues:
        stream.write(f"{issue}\n")


def _json_default(x):
    """numpy scalars as their Python value; anything else as its string."""
    item = getattr(x, "item", None)
    return item() if callable(item) else str(x)


def _parse_time(value: Optional[str], name: str):
    if value is None:
        return None
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as e:
        raise typer.BadParameter(f"not a date/time: {value!r} ({e})", param_hint=f"'--{name}'") from None
    if ts is pd.NaT:
        raise typer.BadParameter(f"not a date/time: {value!r}", param_hint=f"'--{name}'")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@app.command()
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
) -> None:
    """Backtest CONFIG on the bundled real market data and print a summary (or run it live with --live).

    Every flag is checked before anything is loaded, then CONFIG is audited (as `trimtab audit`):
    an error finding refuses the run unless --allow-audit-errors.
    """
    t0, t1 = _parse_time(start, "start"), _parse_time(end, "end")
    if t0 is not None and t1 is not None and t0 >= t1:
        raise typer.BadParameter(f"start {t0:%Y-%m-%d %H:%M} is not before end {t1:%Y-%m-%d %H:%M}", param_hint="'--start'/'--end'")
    from .preflight import amend_summary, audit_gate, check_flows_window, check_run_flags

    flows = check_run_flags(capital=capital, speed=speed, live=live, replay=replay, resume=resume, execute=execute, run_id=run_id,
                            flow=flow, out=out)
    # --- issue 6: portfolio-of-strategies and token_weights basket configs run in trimtab.portfolio ---
    from ..portfolio.cli import dispatch_run

    _check_run_flags(run_id, resume, overwrite, live)
    if dispatch_run(config, start=start, end=end, capital=capital, out=out, as_json=as_json, flow=flow, live=live, run_id=run_id,
                    resume=resume, overwrite=overwrite, allow_audit_errors=allow_audit_errors):
        return
    if resume and not live:
        raise typer.BadParameter("continues a live run; add --live (and --replay for a replayed one)", param_hint="'--resume'")
    # --- end of issue 6 dispatch ---

    from ..config.load import load_strategy
    from ..data.feed import load_market_data
    from ..engine.backtest import run_backtest
    from ..engine.journal import jsonable
    from .progress import tick_progress

    err = _stderr()
    try:
        strategy = load_strategy(config)
    except ConfigError as e:
        _print_issues(e, sys.stderr)
        n = len(e.issues)
        sys.stderr.write(f"{config}: {n} configuration issue{'s' if n != 1 else ''}; nothing was run\n")
        raise typer.Exit(EXIT_CONFIG) from None

    # Progress goes to stderr, and only to a terminal (a bar cannot animate in a log file);
    # without one, the readable mode says how long the run took instead.
    show = err.is_terminal
    started = time.perf_counter()
    try:
        if show:
            with err.status("loading market data", spinner="dots"):
                data = load_market_data()
        else:
            data = load_market_data()
        on_bundle = not live or replay  # a run on the live feed is not checked against the bundle's coverage
        if on_bundle:
            from ..engine.window import resolve_window

            window = resolve_window(strategy, data, t0, t1)  # a window outside the data: one DataError line
            check_flows_window(flows, *window)
        # The audit reuses the loaded data.
        audit_errors = audit_gate(config, strategy=strategy, data=data, start=t0, end=t1, check_data=on_bundle,
                                  allow=allow_audit_errors)
        with tick_progress(err, enabled=show) as progress:
            if live:
                from ..live.runner import run_live

                if replay:
                    result = run_live(strategy, out=out, run_id=run_id, start=t0, end=t1, speed=speed or 3600.0, resume=resume,
                                      data=data, progress=progress)
                else:
                    # The live market-data feed (feeds/live.yaml): wall clock, one tick per closed hour.
                    def notice(msg: str) -> None:
                        err.print(f"[yellow]{msg}[/]", markup=True, highlight=False, soft_wrap=True) if show else \
                            sys.stderr.write(msg + "\n")

                    result = run_live(strategy, out=out, run_id=run_id, start=t0, end=t1, resume=resume, progress=progress,
                                      feed="live", notice=notice, static=data.static, execute=execute)
            else:
                result = run_backtest(strategy, start=t0, end=t1, capital=capital, out=out, progress=progress, data=data, flows=flows,
                                      run_id=run_id, overwrite=overwrite)
    except ConfigError as e:
        _print_issues(e, sys.stderr)
        raise typer.Exit(EXIT_CONFIG) from None
    except TrimtabError as e:
        msg = str(e) if strategy.name in str(e) else f"{strategy.name}: {e}"
        raise _fail(msg) from None
    except OSError as e:  # the run directory cannot be written, the disk is full, ...
        raise _fail(f"{strategy.name}: cannot write the run: {e}") from None
    except KeyboardInterrupt:
        raise _fail("interrupted", 130) from None

    amend_summary(result.summary, getattr(result, "run_dir", None), audit_errors)
    if as_json:
        sys.stdout.write(json.dumps(jsonable(result.summary), default=_json_default) + "\n")
        sys.stdout.flush()
        return
    from .render import print_summary

    if not show:
        ticks = len(result.equity) if result.equity is not None else 0
        sys.stderr.write(f"{strategy.name}: {ticks:,} ticks in {time.perf_counter() - started:.1f} s\n")

    print_summary(result.summary, Console(highlight=False))


def _check_run_flags(run_id: Optional[str], resume: bool, overwrite: bool, live: bool) -> None:
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


def _run_dir(run: str, runs_dir: Path) -> Path:
    p = Path(run)
    return p if (p / "journal.sqlite").exists() else runs_dir / run


@app.command()
def status(
    run: str = typer.Argument(..., metavar="RUN", help="Run directory or run id under --runs."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs", help="Folder holding run directories (for a run id)."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
) -> None:
    """A run's state, positions and open plans, and whether its process is alive."""
    from ..live.runner import status as run_status

    try:
        st = run_status(_run_dir(run, runs_dir))
    except TrimtabError as e:
        raise _fail(str(e)) from None
    except sqlite3.DatabaseError as e:
        raise _fail(f"{run}: not a readable run journal ({e})") from None
    if as_json:
        sys.stdout.write(json.dumps(st, default=_json_default) + "\n")
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


@app.command()
def stop(
    run: str = typer.Argument(..., metavar="RUN", help="Run directory or run id under --runs."),
    flatten: bool = typer.Option(False, "--flatten", help="Unwind every position before stopping."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs", help="Folder holding run directories (for a run id)."),
) -> None:
    """The kill switch: the live run cancels its plan in flight (and with --flatten unwinds), checkpoints and exits.

    A run no process is running (its lock is free) has nothing to stop: exit 1, nothing written."""
    from ..live.runner import request_stop

    try:
        owner = request_stop(_run_dir(run, runs_dir), flatten=flatten)
    except TrimtabError as e:
        raise _fail(str(e)) from None
    except sqlite3.DatabaseError as e:
        raise _fail(f"{run}: not a readable run journal ({e})") from None
    sys.stdout.write(f"stop requested for {run}{' (flatten)' if flatten else ''} (pid {owner.get('pid')}); "
                     f"the run acts on it at its next tick\n")


@app.command()
def compare(
    configs: list[Path] = typer.Argument(None, metavar="CONFIG...", help="Configs to compare (default: every configs/*.yaml)."),
    start: Optional[str] = typer.Option(None, "--start", help="Window start (default: the latest start of the configs' data)."),
    end: Optional[str] = typer.Option(None, "--end", help="Window end (default: the earliest end)."),
    out: Path = typer.Option(Path("runs"), "--out", help="Directory the run folders are written under."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
) -> None:
    """Run every strategy over one common window, side by side with its target and the sUSDe benchmark."""
    from ..compare import compare as run_compare
    from ..engine.journal import jsonable
    from .render import print_comparison

    from .preflight import check_out_dir

    check_out_dir(out)
    t0, t1 = _parse_time(start, "start"), _parse_time(end, "end")
    if t0 is not None and t1 is not None and t0 >= t1:
        raise typer.BadParameter(f"start {t0:%Y-%m-%d %H:%M} is not before end {t1:%Y-%m-%d %H:%M}", param_hint="'--start'/'--end'")
    configs = configs or sorted(p for p in Path("configs").glob("*.yaml"))
    if not configs:
        raise _fail("no configs given and none found in configs/")
    err = _stderr()

    def progress(k, n, name):
        if name:
            err.print(f"[{k + 1}/{n}] {name}", highlight=False)

    try:
        result = run_compare(configs, out, start=t0, end=t1, progress=progress)
    except ConfigError as e:
        _print_issues(e, sys.stderr)
        raise typer.Exit(EXIT_CONFIG) from None
    except TrimtabError as e:
        raise _fail(str(e)) from None
    except OSError as e:  # a run directory cannot be written
        raise _fail(f"cannot write the runs under {out}: {e}") from None
    if as_json:
        sys.stdout.write(json.dumps(jsonable(result), default=_json_default) + "\n")
        return
    out_console = Console(highlight=False)
    if not out_console.is_terminal:
        out_console = Console(highlight=False, width=200)  # a file or pipe: keep rows on one line
    print_comparison(result, out_console)


@app.command()
def validate(
    configs: list[Path] = typer.Argument(..., metavar="CONFIG", help="Strategy config files to check."),
) -> None:
    """Load and cross-check each CONFIG (and its machine, rules and venues) without running it.

    Prints ``ok: CONFIG (...)`` per valid file, else every issue as ``file:line:col: path: message``.
    Exits 1 if any file has an error.
    """
    from ..config.load import load_strategy
    from ..portfolio.config import is_portfolio_file, load_portfolio

    failed = 0
    for path in configs:
        try:
            if Path(path).exists() and is_portfolio_file(path):
                pf = load_portfolio(path)  # a portfolio of strategies: its sleeves are checked too
                sys.stdout.write(f"ok: {path} (portfolio, machine {pf.machine.name}, {len(pf.sleeves)} sleeves)\n")
                continue
            s = load_strategy(path)
        except ConfigError as e:
            failed += 1
            _print_issues(e, sys.stdout)
            continue
        except TrimtabError as e:  # anything else raised on purpose while loading
            failed += 1
            sys.stdout.write(f"{path}:1:1: <root>: {' '.join(str(e).split())}\n")
            continue
        sys.stdout.write(f"ok: {path} (machine {s.machine.name}, {len(s.rules)} rules, {len(s.venues)} venues)\n")
    sys.stdout.flush()
    if failed:
        sys.stderr.write(f"{failed} of {len(configs)} config{'s' if len(configs) != 1 else ''} with errors\n")
        raise typer.Exit(1)


def _out_console() -> Console:
    """stdout console; wide when not a terminal so tables do not wrap in logs and pipes."""
    c = Console(highlight=False)
    if not c.is_terminal:
        c = Console(highlight=False, width=160)
    return c


class Format(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


@app.command()
def audit(
    configs: list[Path] = typer.Argument(..., metavar="CONFIG", help="Strategy config files to audit."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table (readable), json, or markdown."),
    start: Optional[str] = typer.Option(None, "--start", help="Window the data must cover (default: the engine's default window)."),
    end: Optional[str] = typer.Option(None, "--end", help="Window end."),
    no_data: bool = typer.Option(False, "--no-data", help="Skip the data findings (no market data is read)."),
) -> None:
    """Audit each CONFIG: findings with severity and file:line:col. Exits 1 on any error finding.

    Structure (unreachable states, states that cannot be left, action states without a
    completion path, emergency not reachable), rules (guards that never hold, shadowed or
    overlapping transitions, no hysteresis, no cooldown), thresholds (target LTV vs max LTV and
    the emergency health factor, hedge weights, margin thresholds, allocations), venues
    (unsupported operations, minimum sizes) and data (series missing or with gaps in the window).
    """
    from ..audit import audit_config
    from .audit import print_table, to_json, to_markdown

    t0, t1 = _parse_time(start, "start"), _parse_time(end, "end")
    if (t0 is None) != (t1 is None):
        raise typer.BadParameter("give both --start and --end, or neither", param_hint="'--start'/'--end'")
    if no_data and t0 is not None:
        raise typer.BadParameter("set the window the data must cover; --no-data skips the data checks", param_hint="'--start'/'--end'")
    if t0 is not None and t0 >= t1:
        raise typer.BadParameter(f"start {t0:%Y-%m-%d %H:%M} is not before end {t1:%Y-%m-%d %H:%M}", param_hint="'--start'/'--end'")
    data = None
    if not no_data:
        from ..data.feed import DataError, load_market_data

        try:
            data = load_market_data()
        except DataError as e:
            raise _fail(f"cannot read the market data ({e}); use --no-data to audit without it") from None
    reports = [audit_config(p, data=data, start=t0, end=t1, check_data=not no_data) for p in configs]
    if fmt == Format.json:
        sys.stdout.write(to_json(reports))
    elif fmt == Format.markdown:
        sys.stdout.write(to_markdown(reports))
    else:
        print_table(reports, _out_console())
    sys.stdout.flush()
    if any(r.errors for r in reports):
        raise typer.Exit(1)


@app.command()
def diagram(
    config: Path = typer.Argument(..., metavar="CONFIG", help="Strategy config whose machine to draw."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Image file, .svg or .png (default: <config name>.svg here)."),
    expressions: bool = typer.Option(False, "--expressions", "-e", help="Label transitions with guard expressions (parameters folded in) instead of rule names."),
    no_image: bool = typer.Option(False, "--no-image", help="Only print the Mermaid text."),
) -> None:
    """Print CONFIG's state machine as Mermaid text and write it as an SVG/PNG image."""
    from ..config.load import load_strategy
    from ..diagram import draw, mermaid

    if no_image and out is not None:
        raise typer.BadParameter("names the image file; --no-image writes none", param_hint="'--out'")
    try:
        s = load_strategy(config)
    except ConfigError as e:
        _print_issues(e, sys.stderr)
        raise typer.Exit(EXIT_CONFIG) from None
    target = out or Path(f"{config.stem}.svg")
    if not no_image and target.suffix.lower() not in (".svg", ".png"):
        raise typer.BadParameter(f"must end in .svg or .png, got {target.name!r}", param_hint="'--out'")
    sys.stdout.write(mermaid(s, expressions=expressions))
    sys.stdout.flush()
    if not no_image:
        try:
            path = draw(s, target, expressions=expressions)
        except OSError as e:
            raise _fail(f"cannot write {target}: {e}") from None
        sys.stderr.write(f"wrote {path}\n")


@app.command()
def explain(
    run: str = typer.Argument(..., metavar="RUN", help="Run directory, its journal.sqlite, or a run id under --runs."),
    at: Optional[str] = typer.Option(None, "--at", help="Time to explain (UTC), e.g. 2024-08-05T03:00Z: the last tick at or before it."),
    transitions: bool = typer.Option(False, "--transitions", help="List every transition of the run (the default without --at)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs", help="Folder holding run directories (for a run id)."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
) -> None:
    """Explain a run: the decision in force at a time, or every transition.

    With --at: the state in force, every rule with its observed values and thresholds, the
    transitions tried, and the plan in force with its steps and expected costs. With
    --transitions (the default without --at): every transition with the comparisons that fired it.
    """
    from ..explain import RunError, explain_at, find_journal, list_transitions, print_explain, print_transitions

    t = _parse_time(at, "at")
    try:
        journal = find_journal(run, runs_dir)
        result: dict = {}
        if t is not None:
            result["at"] = explain_at(journal, t)
        if transitions or t is None:
            result["transitions"] = list_transitions(journal)
    except RunError as e:
        raise _fail(str(e)) from None
    except sqlite3.DatabaseError as e:
        raise _fail(f"{run}: not a readable run journal ({e})") from None
    if as_json:
        from ..engine.journal import jsonable

        sys.stdout.write(json.dumps(jsonable(result), default=_json_default) + "\n")
        return
    con = _out_console()
    if "at" in result:
        print_explain(result["at"], con)
    if "transitions" in result:
        print_transitions(result["transitions"], con)


@app.command()
def schema(
    kind: Optional[str] = typer.Argument(None, metavar="[KIND]", help="config, machine, rules, venue, ruletest or summary (default: all)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write <kind>.schema.json files into this folder instead of printing."),
) -> None:
    """JSON Schemas of trimtab's YAML and of the run summary, generated from the models (for editors and CI)."""
    from ..schema import KINDS, render, schema as get_schema, write_schemas

    from .preflight import check_out_dir

    if kind is not None and kind not in KINDS:
        raise typer.BadParameter(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}", param_hint="'KIND'")
    check_out_dir(out)
    if out is not None:
        try:
            if kind:
                out.mkdir(parents=True, exist_ok=True)
                (out / f"{kind}.schema.json").write_text(render(kind))
                sys.stderr.write(f"wrote {out / f'{kind}.schema.json'}\n")
            else:
                for p in write_schemas(out):
                    sys.stderr.write(f"wrote {p}\n")
        except OSError as e:
            raise _fail(f"cannot write the schemas into {out}: {e}") from None
        return
    if kind:
        sys.stdout.write(render(kind))
    else:
        sys.stdout.write(json.dumps({k: get_schema(k) for k in KINDS}, indent=2) + "\n")


@app.command("test")
def test_rules(
    paths: Optional[list[Path]] = typer.Argument(None, metavar="[PATH]...", help="Fixture files or folders (default: tests/rules)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="List passing cases too."),
    min_coverage: float = typer.Option(0.0, "--min-coverage", help="Fail if any machine's transition coverage (%) is below this."),
) -> None:
    """Run YAML rule tests and report the coverage of transitions and rules.

    A fixture is a metrics snapshot and parameters with the transition expected from a state
    (see tests/rules/). Exits 1 on a failing case, a fixture error or low coverage.
    """
    from ..ruletest import print_report, run_files

    import math

    if not (math.isfinite(min_coverage) and 0 <= min_coverage <= 100):
        raise typer.BadParameter(f"must be a percentage from 0 to 100, got {min_coverage}", param_hint="'--min-coverage'")
    targets = paths or [Path("tests/rules")]
    missing = [p for p in targets if not p.exists()]
    if missing:
        raise typer.BadParameter(f"not found: {', '.join(map(str, missing))}", param_hint="'PATH'")
    result = run_files(targets)
    print_report(result, _out_console(), verbose=verbose)
    low = [c for c in result.coverage.values() if c.pairs and 100 * c.transitions_covered / len(c.pairs) < min_coverage]
    if result.failed or result.issues or low or not result.cases:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
