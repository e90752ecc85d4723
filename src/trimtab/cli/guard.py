"""The command group every ``trimtab`` command runs in: redacted output, one-line errors.

:class:`TrimtabGroup` is the typer group of :data:`trimtab.cli.main.app`. Its ``main`` (which
both the console script and ``typer.testing.CliRunner`` call) does three things around every
command (issue 11 parts 7 and 8):

* stdout and stderr are wrapped in :class:`~trimtab.secrets.RedactingStream`, so no value
  of a loaded ``TRIMTAB_*`` secret is ever printed, whatever prints it (a summary, a validation
  error echoing a config value, a flag value in a usage error, a log record);
* the process's log records are redacted (:func:`~trimtab.secrets.install_process_log_redaction`);
* a usage error (a bad flag value, a missing argument) is printed as ONE line,
  ``error: Invalid value for '--speed': ...`` (exit 2), instead of click's multi-line panel;
  an exception no command handles is one line too, ``error: internal error: ...`` (exit 1),
  never a traceback (``TRIMTAB_DEBUG=1`` prints it, redacted).

After the command, a garbage-collector pause of its start-up is undone (:func:`collection_restored`).
"""
from __future__ import annotations

import contextlib
import gc
import os
import sys
import traceback

import typer
from typer.core import TyperGroup

from ..secrets import RedactingStream, install_process_log_redaction, redact


def one_line(message: object) -> str:
    """``message`` with every run of whitespace (newlines included) as one space."""
    return " ".join(str(message).split())


@contextlib.contextmanager
def redacted_streams():
    """Replace ``sys.stdout``/``sys.stderr`` with redacting wrappers for the block (not twice)."""
    saved = sys.stdout, sys.stderr
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)
    try:
        yield
    finally:
        for s in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                s.flush()
        sys.stdout, sys.stderr = saved


@contextlib.contextmanager
def collection_restored():
    """Undo, when the block ends however it ends, a command's pause of the cyclic garbage
    collector (:func:`trimtab.cli.common.pause_collection`): frozen objects are unfrozen and
    collection is on again if it was, so a caller running commands in-process (CliRunner, tests)
    collects everything as before."""
    collecting = gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        if collecting:
            gc.enable()


class TrimtabGroup(TyperGroup):
    """A :class:`typer.core.TyperGroup` whose ``main`` redacts output and prints errors on one line."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode: bool = True, **extra):
        with collection_restored(), redacted_streams():
            install_process_log_redaction()
            code = self._run(args, prog_name, complete_var, extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(self, args, prog_name, complete_var, extra) -> int:
        try:
            rv = super().main(args=args, prog_name=prog_name or "trimtab", complete_var=complete_var,
                              standalone_mode=False, **extra)
        except typer.TyperException as e:  # click's ClickException, UsageError, BadParameter
            if type(e).__name__ == "NoArgsIsHelpError":
                return 2  # the help has been printed
            sys.stderr.write(f"error: {one_line(e.format_message())}\n")
            return e.exit_code
        except typer.Abort:
            sys.stderr.write("error: aborted\n")
            return 1
        except SystemExit as e:  # sys.exit() inside a command
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except Exception as e:  # a bug: still one line, never a traceback (unless asked for)
            if os.environ.get("TRIMTAB_DEBUG"):
                sys.stderr.write(redact("".join(traceback.format_exception(e))))
            sys.stderr.write(f"error: internal error: {type(e).__name__}: {one_line(e)} "
                             f"(TRIMTAB_DEBUG=1 prints the traceback)\n")
            return 1
        return rv if isinstance(rv, int) else 0
