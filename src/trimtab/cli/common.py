"""Helpers every ``trimtab`` command module shares: exit codes, one-line errors, time flags.

Exit codes (cli/main.py): ``EXIT_RUNTIME`` 1 for a runtime or data error, ``EXIT_CONFIG`` 2 for
a config error. Errors are written as one line ``error: message`` on stderr.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..diagnostics import format_line
from ..errors import ConfigError

EXIT_RUNTIME = 1
EXIT_CONFIG = 2


def stderr_console() -> Console:
    """A rich console on stderr (progress and notices; never the command's result)."""
    return Console(stderr=True, highlight=False)


def fail(message: str, code: int = EXIT_RUNTIME) -> typer.Exit:
    """Print ``error: message`` on one line to stderr; return the Exit to raise."""
    sys.stderr.write(f"error: {' '.join(str(message).split())}\n")
    return typer.Exit(code)


def print_issues(err: ConfigError, stream) -> None:
    """Every diagnostic of ``err``, one ``file:line:col: path: message; hint`` line each, to ``stream``."""
    for issue in err.issues:
        stream.write(format_line(issue) + "\n")


def json_default(x):
    """numpy scalars as their Python value; anything else as its string."""
    item = getattr(x, "item", None)
    return item() if callable(item) else str(x)


def parse_time(value: Optional[str], name: str):
    """``--name``'s value as a UTC ``pandas.Timestamp`` (a naive time is UTC), or None.

    Raises typer.BadParameter naming ``--name`` for a value that is not a date/time."""
    if value is None:
        return None
    import pandas as pd  # not at import time: `trimtab --help` should not load pandas

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as e:
        raise typer.BadParameter(f"not a date/time: {value!r} ({e})", param_hint=f"'--{name}'") from None
    if ts is pd.NaT:
        raise typer.BadParameter(f"not a date/time: {value!r}", param_hint=f"'--{name}'")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def resolve_run_dir(run: str, runs_dir: Path) -> Path:
    """``run`` itself if it is a run directory (holds journal.sqlite), else ``runs_dir / run``."""
    p = Path(run)
    return p if (p / "journal.sqlite").exists() else runs_dir / run


def out_console() -> Console:
    """stdout console; wide when not a terminal so tables do not wrap in logs and pipes."""
    c = Console(highlight=False)
    if not c.is_terminal:
        c = Console(highlight=False, width=160)
    return c
