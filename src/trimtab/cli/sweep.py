"""``trimtab sweep CONFIG --grid NAME=SPEC ...``: every variant of a grid backtested on Dask, and
``--walk-forward IS:OOS`` (trimtab.research).

Output as in :mod:`trimtab.cli.main`: the table of the best variants (or with ``--json`` one
JSON object) on stdout, the progress bar and the failed variants on stderr. Exit 0 when at least
one variant finished; 1 when none did (or a runtime error); 2 for a bad flag or config.
"""
# No `from __future__ import annotations`: typer reads these at every start-up (cli/main.py).

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError, TrimtabError
from .common import EXIT_CONFIG, EXIT_RUNTIME, fail, json_default, out_console, parse_time, stderr_console

# Command modules import the engine inside the command, so `trimtab --help` and a usage error
# stay fast (no pandas/numpy/dask load); no import here hides a cycle (tests/unit/test_layering.py).


def sweep(
    config: Path = typer.Argument(..., metavar="CONFIG", help="Strategy config, e.g. configs/<strategy>.yaml"),
    grid: list[str] = typer.Option([], "--grid", metavar="NAME=SPEC", help="A swept name (anything --set takes) and its values: a:b:step (inclusive, decimal-exact), v1,v2,..., or a:b with --random; repeatable."),
    random: Optional[int] = typer.Option(None, "--random", help="Sample N variants from the grid (distinct points of the product; an a:b interval uniformly) instead of running all of it."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of --random (default 0)."),
    start: Optional[str] = typer.Option(None, "--start", help="Window start (UTC; default: start of the config's data)."),
    end: Optional[str] = typer.Option(None, "--end", help="Window end (UTC; default: end of the config's data)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", metavar="ADDRESS", help="Run on an existing Dask cluster (tcp://host:8786); its workers must see the config, data and --out at the same paths. Default: a local cluster."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes of the local cluster (default: the machine's cores)."),
    metric: str = typer.Option("apy", "--metric", help="Rank variants (and choose the walk-forward variant) by: apy, sharpe, final_equity, worst_health_factor, worst_margin_ratio (higher is better), max_drawdown, liquidations, fees_usd (lower is better)."),
    top: int = typer.Option(10, "--top", help="Variants shown in the table."),
    out: Path = typer.Option(Path("runs"), "--out", help="Directory the sweep folder is written under."),
    sweep_id: Optional[str] = typer.Option(None, "--sweep-id", help="Name of the sweep folder under --out (default: generated from the config name and time)."),
    resume: bool = typer.Option(False, "--resume", help="With --sweep-id: continue that sweep; variants with a finished summary are kept, the rest run. Without --grid: with the flags the sweep was started with."),
    walk_forward: Optional[str] = typer.Option(None, "--walk-forward", metavar="IS:OOS", help="Walk-forward: in-sample and out-of-sample lengths (units d, w, m), e.g. 6m:3m."),
    journal: str = typer.Option("metrics", "--journal", help="Variant journals: metrics (default: summary, equity.csv and the journal's per-tick metrics only), slim or full (the run's whole journal)."),
    allow_audit_errors: bool = typer.Option(False, "--allow-audit-errors", help="Run variants that `trimtab audit` finds errors in (research only); the findings go into their summaries."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout instead of the table."),
) -> None:
    """Backtest every variant of a parameter grid on Dask; rank them, or walk them forward (--walk-forward)."""
    from .preflight import check_out_dir

    t0, t1 = parse_time(start, "start"), parse_time(end, "end")
    if t0 is not None and t1 is not None and t0 >= t1:
        raise typer.BadParameter(f"start {t0:%Y-%m-%d %H:%M} is not before end {t1:%Y-%m-%d %H:%M}", param_hint="'--start'/'--end'")
    check_out_dir(out)
    for flag, value in (("--random", random), ("--workers", workers), ("--top", top)):
        if value is not None and value < 1:
            raise typer.BadParameter(f"must be 1 or more, got {value}", param_hint=f"'{flag}'")
    if seed is not None and random is None:
        raise typer.BadParameter("seeds --random N; without it every variant of the grid runs", param_hint="'--seed'")
    seed = 0 if seed is None else seed
    if workers is not None and scheduler is not None:
        raise typer.BadParameter("sizes the local cluster; an existing cluster (--scheduler) has its own workers",
                                 param_hint="'--workers'")
    if sweep_id is not None:
        from ..runs import run_id_problem

        why = run_id_problem(sweep_id)
        if why is not None:
            raise typer.BadParameter(why, param_hint="'--sweep-id'")
        if resume and not (out / sweep_id / "sweep.json").is_file():
            raise typer.BadParameter(f"no sweep {sweep_id} in {out} to continue (no sweep.json there)", param_hint="'--resume'")
    elif resume:
        raise typer.BadParameter("names the sweep to continue: add --sweep-id ID", param_hint="'--resume'")
    if not config.is_file():
        raise typer.BadParameter(f"{config} is not a file", param_hint="'CONFIG'")
    from ..portfolio.config import is_basket_file, is_portfolio_file

    if is_portfolio_file(config) or is_basket_file(config):
        raise typer.BadParameter("a sweep varies a single strategy config (what --set takes); for a portfolio or "
                                 "basket, sweep the strategy configs it names", param_hint="'CONFIG'")

    from ..data.feed import DataError
    from ..research import ResearchError
    from ..research.cluster import dask_client
    from ..research.sweep import open_sweep, prepare, recorded_flags, run_sweep
    from ..research.walkforward import run_walk_forward

    err = stderr_console()
    try:
        if resume and not grid:
            # `--resume --sweep-id ID` alone continues with the flags the sweep was started with.
            rec = recorded_flags(out, sweep_id)
            grid, random, seed, walk_forward = rec["grid"], rec["random"], rec["seed"], rec["walk_forward"]
            t0, t1 = parse_time(rec["start"], "start"), parse_time(rec["end"], "end")
            metric, journal, allow_audit_errors = rec["metric"], rec["journal"], rec["allow_audit_errors"]
        with err.status("checking the grid", spinner="dots") if err.is_terminal else nullcontext():
            spec = prepare(config, grid, random=random, seed=seed, start=t0, end=t1, metric=metric, journal=journal,
                           allow_audit_errors=allow_audit_errors, walk_forward=walk_forward)
    except ResearchError as e:
        raise _bad(e) from None
    except ConfigError as e:
        from .run import print_override_issues

        print_override_issues(e, sys.stderr)
        sys.stderr.write(f"{config}: {len(e.issues)} configuration issue(s); nothing was run\n")
        raise typer.Exit(EXIT_CONFIG) from None
    except (DataError, TrimtabError) as e:
        raise fail(str(e)) from None

    failures: list[tuple[str, str]] = []
    owned = None
    try:
        # The cluster first: a scheduler that does not answer leaves no sweep folder behind.
        with dask_client(scheduler, workers) as client:
            owned = open_sweep(spec, out, sweep_id, resume)
            with owned, _progress(err) as progress:
                def on_done(k: int, n: int, task, row: dict) -> None:
                    if row["status"] != "ok":
                        failures.append((task.variant, row["error"]))
                    if progress is not None:
                        progress(k, n)
                    else:  # a log: one line per variant, as `compare` writes
                        sys.stderr.write(f"[{k}/{n}] {task.variant} {row['status']}\n")

                runner = run_walk_forward if walk_forward else run_sweep
                result = runner(spec, owned, client, on_done)
    except ResearchError as e:
        raise (_bad(e) if e.flag else fail(str(e))) from None
    except TrimtabError as e:
        raise fail(str(e)) from None
    except OSError as e:
        raise fail(f"cannot write the sweep under {out}: {e}") from None
    except KeyboardInterrupt:
        if owned is None:
            raise fail("interrupted before any variant ran", 130) from None
        where = "" if out == Path("runs") else f" --out {out}"
        raise fail(f"interrupted; every finished variant is kept in {out / owned.run_id}: continue with "
                   f"trimtab sweep {config} --resume --sweep-id {owned.run_id}{where}", 130) from None

    report = _report(result, spec)
    if as_json:
        sys.stdout.write(json.dumps(report, default=json_default, allow_nan=False) + "\n")
    else:
        _print(report, spec, result, top)
    for vid, why in failures:
        sys.stderr.write(f"failed: {vid}: {' '.join(str(why).split())}\n")
    for name in report.get("inert", []):
        sys.stderr.write(f"note: {name} changed nothing: every variant that differs only in it ended with the same equity "
                         f"(`trimtab params {config}` lists what reads each parameter)\n")
    if report["ok"] == 0:
        raise fail(f"no variant finished ({report['failed']} failed); the errors are listed above", EXIT_RUNTIME)


def _bad(e) -> typer.BadParameter:
    """A ResearchError naming a flag as click's usage error on that flag (exit 2)."""
    msg = str(e)
    if e.flag and msg.startswith(e.flag + ": "):
        msg = msg[len(e.flag) + 2:]
    return typer.BadParameter(msg, param_hint=f"'{e.flag}'" if e.flag else None)


@contextmanager
def _progress(console) -> Iterator:
    """Yield ``progress(done, total)`` driving a rich bar over variants on stderr, transient;
    None when stderr is not a terminal (a log gets the failures and the table instead)."""
    if not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("variants"), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn(), console=console, transient=True)
    task = bar.add_task("sweep", total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _clean(x):
    """NaN and infinities as None (JSON has neither)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _records(df) -> list[dict]:
    return [{k: _clean(v) for k, v in r.items()} for r in df.to_dict(orient="records")]


def _report(result, spec) -> dict:
    """The JSON object of ``--json`` (the table prints the same facts)."""
    from ..research.rows import DIRECTION, best, inert_params

    df = result.frame
    walk = result.walk_forward is not None
    ok = int((df["status"] == "ok").sum()) if len(df) else 0
    out = {
        "sweep_id": result.sweep_id, "sweep_dir": str(result.sweep_dir),
        "parquet": None if result.parquet is None else str(result.parquet),
        "config": str(spec.config), "metric": spec.metric, "direction": DIRECTION[spec.metric],
        "variants": len(spec.variants), "ok": ok, "failed": int(len(df) - ok), "reused": result.reused,
        "best": _records(best(df, spec.metric)) if len(df) and not walk else [],
        "failures": _records(df[df["status"] != "ok"][["variant", "error", "run_dir"]]) if len(df) else [],
        "inert": inert_params(df) if len(df) and not walk else [],
    }
    wf = result.walk_forward
    if wf is not None:
        out["walk_forward"] = {"spec": spec.walk_forward, "parquet": str(wf.parquet), "equity_csv": str(wf.equity_csv),
                               "fold_parquets": [str(p) for p in sorted(result.sweep_dir.glob("folds/fold-*/sweep.parquet"),
                                                                       key=lambda p: int(p.parent.name[5:]))],
                               "oos_apy": _clean(wf.oos_apy), "mean_is_apy": _clean(wf.mean_is_apy), "gap": _clean(wf.gap),
                               "stopped": wf.stopped, "folds": _records(wf.folds)}
    return out


def _fmt(x, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.2%}" if pct else f"{x:,.2f}" if abs(x) >= 1000 else f"{x:.4g}"
    return str(x)


_PCT = {"apy", "max_drawdown"}


def _print(report: dict, spec, result, top: int) -> None:
    from rich.table import Table

    con = out_console()
    names = spec.param_names
    shown = ["apy", "max_drawdown", "sharpe", "worst_health_factor", "worst_margin_ratio", "final_equity"]
    if spec.metric not in shown:
        shown.insert(0, spec.metric)
    arrow = "higher" if report["direction"] == "max" else "lower"
    wf = report.get("walk_forward")
    if not wf:
        t = Table(title=f"{spec.name}: best {min(top, len(report['best']))} of {report['variants']} variants by {spec.metric} "
                        f"({arrow} is better)", title_justify="left")
        t.add_column("variant", no_wrap=True, min_width=14)
        for n in names:
            t.add_column(n, justify="right")
        for c in shown:
            t.add_column(c, justify="right", style="bold" if c == spec.metric else None)
        for r in report["best"][:top]:
            t.add_row(r["variant"], *(_fmt(r[f"param.{n}"]) for n in names), *(_fmt(r[c], c in _PCT) for c in shown))
        con.print(t)
    else:
        w = Table(title=f"walk-forward {wf['spec']}: chosen in-sample by {spec.metric}, run out-of-sample", title_justify="left")
        for c in ("fold", "oos window", "variant", *names, f"is_{spec.metric}", f"oos_{spec.metric}", "oos_final_equity"):
            w.add_column(c, justify="right")
        for r in wf["folds"]:
            w.add_row(str(r["fold"]), f"{r['oos_start'][:10]} -> {r['oos_end'][:10]}", r["variant"],
                      *(_fmt(r.get(f"param.{n}")) for n in names), _fmt(r[f"is_{spec.metric}"], spec.metric in _PCT),
                      _fmt(r[f"oos_{spec.metric}"], spec.metric in _PCT), _fmt(r["oos_final_equity"]))
        con.print(w)
        con.print(f"stitched out-of-sample APY {_fmt(wf['oos_apy'], True)} vs mean in-sample APY {_fmt(wf['mean_is_apy'], True)}: "
                  f"overfitting gap {_fmt(wf['gap'], True)}")
        if wf["stopped"]:
            con.print(f"[yellow]stopped: {wf['stopped']}[/]")
        con.print(f"folds: {wf['parquet']}\nstitched equity: {wf['equity_csv']}\n"
                  f"in-sample rows: {result.sweep_dir}/folds/fold-<k>/sweep.parquet")
    done = f"{report['ok']} ok, {report['failed']} failed" + (f", {report['reused']} kept from before (--resume)" if report["reused"] else "")
    con.print(done + (f"; rows: {report['parquet']}" if report["parquet"] else ""))
