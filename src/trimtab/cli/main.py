"""The ``trimtab`` command line: ``trimtab run CONFIG`` and ``trimtab validate CONFIG...``.

Output discipline: stdout carries the command's result only (the readable summary, or with
``--json`` exactly one JSON object); progress and errors go to stderr.

Exit codes: 0 success; 1 a runtime or data error (one line, no traceback) or, for
``validate``, a config with errors; 2 a config error in ``run`` (every issue printed) or a
usage error.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..errors import ConfigError, TrimtabError

app = typer.Typer(
    name="trimtab",
    help="Declarative rules and state-machine engine for multi-venue crypto yield strategies.",
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
    config: Path = typer.Argument(..., metavar="CONFIG", help="Strategy config, e.g. configs/usdt_eth_staking_hedged_leveraged.yaml"),
    start: Optional[str] = typer.Option(None, "--start", help="Window start (UTC date or time; default: start of the data)."),
    end: Optional[str] = typer.Option(None, "--end", help="Window end (UTC date or time; default: end of the data)."),
    capital: Optional[float] = typer.Option(None, "--capital", help="Initial capital in the share class (default: the config's)."),
    out: Path = typer.Option(Path("runs"), "--out", help="Directory the run folder is written under."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object (the summary) on stdout."),
) -> None:
    """Backtest CONFIG on the bundled real market data and print a summary."""
    t0, t1 = _parse_time(start, "start"), _parse_time(end, "end")
    if t0 is not None and t1 is not None and t0 >= t1:
        raise typer.BadParameter(f"start {t0:%Y-%m-%d %H:%M} is not before end {t1:%Y-%m-%d %H:%M}", param_hint="'--start'/'--end'")
    if capital is not None and not capital > 0:
        raise typer.BadParameter(f"must be positive, got {capital}", param_hint="'--capital'")

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
        with tick_progress(err, enabled=show) as progress:
            result = run_backtest(strategy, start=t0, end=t1, capital=capital, out=out, progress=progress, data=data)
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

    if as_json:
        sys.stdout.write(json.dumps(jsonable(result.summary), default=_json_default) + "\n")
        sys.stdout.flush()
        return
    from .render import print_summary

    if not show:
        ticks = len(result.equity) if result.equity is not None else 0
        sys.stderr.write(f"{strategy.name}: {ticks:,} ticks in {time.perf_counter() - started:.1f} s\n")

    print_summary(result.summary, Console(highlight=False))


@app.command()
def validate(
    configs: list[Path] = typer.Argument(..., metavar="CONFIG", help="Strategy config files to check."),
) -> None:
    """Load and cross-check each CONFIG (and its machine, rules and venues) without running it.

    Prints ``ok: CONFIG (...)`` per valid file, else every issue as ``file:line:col: path: message``.
    Exits 1 if any file has an error.
    """
    from ..config.load import load_strategy

    failed = 0
    for path in configs:
        try:
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


if __name__ == "__main__":
    app()
