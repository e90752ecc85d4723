"""``trimtab compare CONFIG...``: every config (strategy, drift basket, portfolio) over one common
window, side by side; each compare writes its runs into its own new ``<out>/compare-<time>/``."""
# No `from __future__ import annotations`: typer reads these at every start-up (cli/main.py).

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError, TrimtabError
from .common import EXIT_CONFIG, EXIT_RUNTIME, fail, json_default, parse_time, print_issues, stderr_console

# Command modules import the engine inside the command, so `trimtab --help` and a usage error
# stay fast (no pandas/numpy load); no import here hides a cycle (tests/unit/test_layering.py).


def compare(
    configs: list[Path] = typer.Argument(None, metavar="CONFIG...", help="Configs to compare (default: every configs/*.yaml)."),
    start: Optional[str] = typer.Option(None, "--start", help="Window start (default: the latest start of the configs' data)."),
    end: Optional[str] = typer.Option(None, "--end", help="Window end (default: the earliest end)."),
    out: Path = typer.Option(Path("runs"), "--out", help="Directory under which each compare writes a new compare-<UTC time>/ folder (its runs and comparison.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1,
                                       help="Configs run at once, each in its own process (default: the machine's cores)."),
) -> None:
    """Run every config (strategies, drift baskets, portfolios) over one common window, side by side with its target and the sUSDe benchmark.

    Money is formatted as `trimtab run` formats it; the runs go into a new folder under --out, printed at the end (an earlier compare is never overwritten)."""
    from ..compare import compare as run_compare
    from ..engine.journal import jsonable
    from .render import print_comparison

    from .preflight import check_out_dir

    check_out_dir(out)
    t0, t1 = parse_time(start, "start"), parse_time(end, "end")
    if t0 is not None and t1 is not None and t0 >= t1:
        raise typer.BadParameter(f"start {t0:%Y-%m-%d %H:%M} is not before end {t1:%Y-%m-%d %H:%M}", param_hint="'--start'/'--end'")
    configs = configs or sorted(p for p in Path("configs").glob("*.yaml"))
    if not configs:
        raise fail("no configs given and none found in configs/")
    err = stderr_console()

    def progress(k, n, name, error):
        err.print(f"[{k}/{n}] {name}" + (f" failed: {error}" if error else ""), highlight=False, markup=False, soft_wrap=True)

    try:
        result = run_compare(configs, out, start=t0, end=t1, progress=progress, jobs=jobs)
    except ConfigError as e:
        print_issues(e, sys.stderr)
        raise typer.Exit(EXIT_CONFIG) from None
    except TrimtabError as e:
        raise fail(str(e)) from None
    except OSError as e:  # a run directory cannot be written
        raise fail(f"cannot write the runs under {out}: {e}") from None
    if as_json:
        sys.stdout.write(json.dumps(jsonable(result), default=json_default) + "\n")
    else:
        from rich.console import Console

        out_console = Console(highlight=False)
        if not out_console.is_terminal:
            out_console = Console(highlight=False, width=200)  # a file or pipe: keep rows on one line
        print_comparison(result, out_console)
    if result["failed"]:  # the other configs' rows are printed above; the exit status says not all ran
        for config, why in result["failed"].items():
            fail(f"{config}: {why}")
        raise typer.Exit(EXIT_RUNTIME)
