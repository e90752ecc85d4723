"""Helpers every ``trimtab`` command module shares: exit codes, one-line errors, time flags.

Exit codes (cli/main.py): ``EXIT_RUNTIME`` 1 for a runtime or data error, ``EXIT_CONFIG`` 2 for
a config error. Errors are written as one line ``error: message`` on stderr.
"""
from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import typer

from ..diagnostics import format_line
from ..errors import ConfigError

if TYPE_CHECKING:   # rich is imported where something is drawn: a `run --json` in a pipe never is
    from rich.console import Console

EXIT_RUNTIME = 1
EXIT_CONFIG = 2


def stderr_console() -> Console:
    """A rich console on stderr (progress and notices; never the command's result)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal as rich sees it (``stderr_console().is_terminal``: where a
    progress bar or spinner is drawn). When it cannot be one -- not a tty, and neither of rich's
    overrides ``TTY_COMPATIBLE`` and ``FORCE_COLOR`` set -- answered without importing rich
    (~20 ms of a process's start); otherwise rich decides."""
    if "TTY_COMPATIBLE" not in os.environ and "FORCE_COLOR" not in os.environ:
        try:
            if not sys.stderr.isatty():
                return False
        except (AttributeError, ValueError):   # no isatty, or a closed stream: rich's own answer
            pass
    return stderr_console().is_terminal


def pause_collection() -> Callable[[], None]:
    """Pause Python's cyclic garbage collector for a command's start-up; return the call that
    ends the start-up, where the command's own work begins.

    Start-up (imports, the config, the market data, the audit) makes long-lived objects and next
    to no garbage, yet collecting walked them for ~20 ms of a `trimtab run`. The returned call
    freezes what start-up made (``gc.freeze``: later collections skip it) and collects again; it
    does nothing a second time, nor when collection was off already. The command group
    (cli/guard.py) unfreezes and turns collection back on after every command, however it ended.
    """
    if not gc.isenabled():
        return lambda: None
    gc.disable()

    def begin() -> None:
        if not gc.isenabled():
            gc.freeze()
            gc.enable()

    return begin


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
    """``--name``'s value as a UTC :class:`trimtab.timeutil.UtcTime` (a naive time is UTC), or
    None; ISO 8601 is read without pandas (:func:`trimtab.timeutil.utc`).

    Raises typer.BadParameter naming ``--name`` for a value that is not a date/time."""
    if value is None:
        return None
    from ..timeutil import NotATime, utc

    try:
        return utc(value)
    except NotATime:
        raise typer.BadParameter(f"not a date/time: {value!r}", param_hint=f"'--{name}'") from None
    except (ValueError, TypeError, OverflowError) as e:
        raise typer.BadParameter(f"not a date/time: {value!r} ({e})", param_hint=f"'--{name}'") from None


def resolve_run_dir(run: str, runs_dir: Path) -> Path:
    """``run`` itself if it is a run directory (holds journal.sqlite), else ``runs_dir / run``."""
    p = Path(run)
    return p if (p / "journal.sqlite").exists() else runs_dir / run


def out_console() -> Console:
    """stdout console; wide when not a terminal so tables do not wrap in logs and pipes."""
    from rich.console import Console

    c = Console(highlight=False)
    if not c.is_terminal:
        c = Console(highlight=False, width=160)
    return c
