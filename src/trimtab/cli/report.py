"""``trimtab report RUN``: one self-contained HTML report of a run or a sweep (trimtab.reports).

RUN is a run directory, a sweep directory (holds sweep.json / sweep.parquet), or the id of
either under ``--runs``. The report is written to ``-o`` (default ``<dir>/report.html``) and its
path printed on stdout. Exit codes as in :mod:`trimtab.cli.main`: 1 for a run or sweep that
cannot be reported (one line naming the file and what is wrong), 2 for a bad flag.
"""
# No `from __future__ import annotations`: typer reads these at every start-up (cli/main.py).

import sys
from pathlib import Path
from typing import Optional

import typer

from .common import fail

# Command modules import the engine inside the command, so `trimtab --help` and a usage error
# stay fast (no pandas/plotly load); no import here hides a cycle (tests/unit/test_layering.py).


def resolve_report_target(run: str, runs_dir: Path) -> Path:
    """The directory ``run`` names: itself if it is a run or sweep directory (or the folder of its
    summary.json / journal.sqlite / sweep.json), else ``runs_dir/run``.
    Raises typer.BadParameter when neither exists, listing the latest runs under ``runs_dir``."""
    p = Path(run)
    if p.is_file() and p.name in ("summary.json", "journal.sqlite", "sweep.json", "sweep.parquet"):
        p = p.parent  # a file of the run, as `trimtab explain` takes its journal
    for cand in (p, runs_dir / run):
        if cand.is_dir() and any((cand / f).is_file() for f in ("summary.json", "sweep.json", "sweep.parquet")):
            return cand
    known = sorted((d for d in runs_dir.glob("*") if (d / "summary.json").is_file() or (d / "sweep.json").is_file()),
                   key=lambda d: d.stat().st_mtime) if runs_dir.is_dir() else []
    hint = f"; latest under {runs_dir}/: {', '.join(d.name for d in known[-5:])}" if known else ""
    raise typer.BadParameter(f"{run!r} is not a run or sweep directory, nor a run id under {runs_dir}/ (a run directory holds "
                             f"summary.json, a sweep directory sweep.json){hint}", param_hint="'RUN'")


def report(
    run: str = typer.Argument(..., metavar="RUN", help="Run or sweep directory, or its id under --runs."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file to write (default: <RUN dir>/report.html)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs", help="Folder holding run directories (for a run id)."),
    x: Optional[str] = typer.Option(None, "--x", help="Sweep: swept parameter on the heatmap's x axis (default: the first)."),
    y: Optional[str] = typer.Option(None, "--y", help="Sweep: swept parameter on the y axis (default: the second)."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Sweep: metric of the heatmap and the ranking (default: the sweep's, else apy)."),
    top: int = typer.Option(10, "--top", help="Sweep: best variants listed."),
) -> None:
    """Write one self-contained HTML report (opens with no network) of a run or a sweep.

    A run: equity and NAV, drawdown, health factor, LTV and margin ratios against their
    thresholds, delta drift, funding per venue, the attribution waterfall, the state timeline,
    plans and data notes. A sweep: metric heatmaps over two swept parameters, the best variants,
    and the walk-forward charts when it has one.
    """
    if top < 1:
        raise typer.BadParameter(f"must be at least 1, got {top}", param_hint="'--top'")
    if out is not None and (out.is_dir() or out.suffix.lower() not in (".html", ".htm")):
        raise typer.BadParameter(f"must be an .html file, got {str(out)!r}", param_hint="'--out'")
    target = resolve_report_target(run, runs_dir)
    from ..reports import ReportError
    from ..reports.sweepdata import is_sweep_dir

    sweep = is_sweep_dir(target)
    if not sweep and (x or y or metric):
        flag = "--x" if x else "--y" if y else "--metric"
        raise typer.BadParameter(f"applies to a sweep report; {target} is a run", param_hint=f"'{flag}'")
    try:
        if sweep:
            from ..reports.sweep_report import write_sweep_report

            path = write_sweep_report(target, out, x=x, y=y, metric=metric, top=top)
        else:
            from ..reports.run_report import write_run_report

            path = write_run_report(target, out)
    except ReportError as e:
        msg = str(e)
        for flag in ("--x", "--y", "--metric", "--top"):
            if msg.startswith(f"{flag}: "):
                raise typer.BadParameter(msg[len(flag) + 2:], param_hint=f"'{flag}'") from None
        raise fail(msg) from None
    sys.stdout.write(f"{path}\n")


def report_after_run(run_dir: Path | str | None, as_json: bool) -> None:
    """``trimtab run --report``: write ``<run_dir>/report.html`` once the run has finished and say
    where: on stdout after the readable summary, on stderr with ``--json`` (whose stdout is exactly
    the summary). A run that cannot be reported: one error line, exit 1 (the run itself is kept)."""
    from ..reports import ReportError
    from ..reports.run_report import write_run_report

    if run_dir is None:
        raise fail("--report: the run wrote no run directory to report on")
    try:
        path = write_run_report(run_dir)
    except ReportError as e:
        raise fail(f"--report: {e}") from None
    (sys.stderr if as_json else sys.stdout).write(f"report {path}\n")
