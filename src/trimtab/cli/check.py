"""The static checks: ``trimtab validate``, ``trimtab audit`` and ``trimtab test`` (rule fixtures).

None of them runs a strategy; each exits 1 when it finds an error (a config issue, an error
finding, a failing rule case).
"""
# No `from __future__ import annotations`: typer reads these at every start-up (cli/main.py).

import json
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ..diagnostics import Diagnostic, format_line, to_json
from ..errors import ConfigError, TrimtabError
from .common import fail, out_console, parse_time

# Command modules import the engine inside the command, so `trimtab --help` and a usage error
# stay fast (no pandas/numpy load); no import here hides a cycle (tests/unit/test_layering.py).


def validate(
    configs: list[Path] = typer.Argument(..., metavar="CONFIG", help="Strategy config files to check."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: per config, ok and its diagnostics "
                                 "(file, line, col, code, path, message, severity, hint, loc)."),
) -> None:
    """Load and cross-check each CONFIG (and its machine, rules and venues) without running it.

    Prints ``ok: CONFIG (...)`` per valid file, else every issue as
    ``file:line:col: path: message; hint``; with ``--json``, one JSON object
    ``{"errors": N, "configs": [{"config", "ok", "diagnostics": [...]}]}`` instead.
    Exits 1 if any file has an error.
    """
    from ..config.load import load_strategy
    from ..portfolio.config import is_portfolio_file, load_portfolio

    failed = 0
    results: list[dict] = []
    for path in configs:
        diags: list[Diagnostic] = []
        try:
            if Path(path).exists() and is_portfolio_file(path):
                pf = load_portfolio(path)  # a portfolio of strategies: its sleeves are checked too
                ok = f"portfolio, machine {pf.machine.name}, {len(pf.sleeves)} sleeves"
            else:
                s = load_strategy(path)
                ok = f"machine {s.machine.name}, {len(s.rules)} rules, {len(s.venues)} venues"
        except ConfigError as e:
            diags = e.issues
        except TrimtabError as e:  # anything else raised on purpose while loading
            diags = [Diagnostic(str(path), 1, 1, (), " ".join(str(e).split()))]
        failed += bool(diags)
        results.append({"config": str(path), "ok": not diags, "diagnostics": [to_json(d) for d in diags]})
        if not as_json:
            sys.stdout.write("".join(format_line(d) + "\n" for d in diags) if diags else f"ok: {path} ({ok})\n")
    if as_json:
        sys.stdout.write(json.dumps({"errors": failed, "configs": results}, indent=2) + "\n")
    sys.stdout.flush()
    if failed:
        sys.stderr.write(f"{failed} of {len(configs)} config{'s' if len(configs) != 1 else ''} with errors\n")
        raise typer.Exit(1)


class Format(str, Enum):
    """Output of ``trimtab audit --format``: a readable table, JSON or Markdown (cli/audit.py)."""

    table = "table"
    json = "json"
    markdown = "markdown"


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
    A warning the config acknowledges (``audit: {accept: ["CODE@FILE:PATH: reason"]}``) is shown
    as ``accepted`` with its reason and not counted as a warning; an acknowledgement that matches
    no warning is itself a warning (``stale-accept``). JSON adds ``accepted`` (a count at the top,
    per config the findings with their ``reason``).
    """
    from ..audit import audit_config
    from .audit import print_table, to_json, to_markdown

    t0, t1 = parse_time(start, "start"), parse_time(end, "end")
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
            raise fail(f"cannot read the market data ({e}); use --no-data to audit without it") from None
    reports = [audit_config(p, data=data, start=t0, end=t1, check_data=not no_data) for p in configs]
    if fmt == Format.json:
        sys.stdout.write(to_json(reports))
    elif fmt == Format.markdown:
        sys.stdout.write(to_markdown(reports))
    else:
        print_table(reports, out_console())
    sys.stdout.flush()
    if any(r.errors for r in reports):
        raise typer.Exit(1)


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

    if not (math.isfinite(min_coverage) and 0 <= min_coverage <= 100):
        raise typer.BadParameter(f"must be a percentage from 0 to 100, got {min_coverage}", param_hint="'--min-coverage'")
    targets = paths or [Path("tests/rules")]
    missing = [p for p in targets if not p.exists()]
    if missing:
        raise typer.BadParameter(f"not found: {', '.join(map(str, missing))}", param_hint="'PATH'")
    result = run_files(targets)
    print_report(result, out_console(), verbose=verbose)
    low = [c for c in result.coverage.values() if c.pairs and 100 * c.transitions_covered / len(c.pairs) < min_coverage]
    if result.failed or result.issues or low or not result.cases:
        raise typer.Exit(1)
