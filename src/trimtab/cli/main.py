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

The commands live in one module each (cli/run.py, cli/live.py, cli/compare.py, cli/check.py,
cli/inspect.py, cli/metrics.py, cli/params.py; portfolio and basket runs in cli/portfolio.py); this module
builds the app from them, in the order ``trimtab --help`` lists them.

Everything printed is redacted of loaded ``TRIMTAB_*`` secrets (cli/guard.py).
"""
from __future__ import annotations

import atexit
import gc
import os

# A run keeps millions of long-lived objects (the imported libraries, the market view's columns,
# the journal's rows): a full collection walks all of them (~35 ms, twice per flagship run) and
# frees next to nothing. Full collections ten times rarer; the young generations as they were.
_young, _middle, _ = gc.get_threshold()
gc.set_threshold(_young, _middle, 100)
# At exit, Python's last full collection walks those objects again (~150 ms after a flagship
# run) for garbage the process is about to drop anyway: frozen objects are skipped. Registered
# first, so it runs after every other exit handler; files and the journal are closed before.
atexit.register(gc.freeze)
# The imports below make ~30k objects that live as long as the process (typer, the command
# modules and what they import) and next to no garbage: the collector is paused while they load
# (~35 collections, ~4 ms), then they are frozen (skipped by every later collection). A command
# pauses it again for its own start-up (trimtab.cli.common.pause_collection).
_collecting = gc.isenabled()
gc.disable()

# Arrow's buffers in a `trimtab` process are a few MB while the bundle loads (then numpy holds the
# values); its default mimalloc pool keeps ~9 MB more of the run's peak RSS resident than malloc.
# Read when pyarrow is first imported, so set here, before anything imports it; a value the
# user set wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
# numpy's OpenBLAS starts a worker thread per further core when numpy is imported, and each spins
# for ~0.1 s of CPU waiting for work no command gives it (a portfolio's matrices are a few sleeves
# wide, under OpenBLAS's own threading cut-off): one thread does the same arithmetic. Read when
# numpy is first imported; a value the user set wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# pydantic looks for plugins (packages declaring a `pydantic` entry point) when it builds its first
# validator: a scan of every installed package's metadata, ~5 ms a process. trimtab's models use
# none. Read at that first build; a value the user set wins (PYDANTIC_DISABLE_PLUGINS= empty
# loads every plugin).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "1")

import typer  # noqa: E402

# The command modules below do not use `from __future__ import annotations`: at every start-up
# typer reads the parameters of every command (typing.get_type_hints, twice per command), and a
# string annotation costs a compile and an eval each time (~4 ms of every `trimtab` process);
# annotations evaluated once at import cost next to nothing. Same types, same CLI.
from .check import audit, test_rules, validate  # noqa: E402
from .compare import compare  # noqa: E402
from .guard import TrimtabGroup  # noqa: E402
from .inspect import diagram, explain, schema  # noqa: E402
from .live import status, stop  # noqa: E402
from .metrics import metrics_command  # noqa: E402
from .params import params_command  # noqa: E402
from .run import run  # noqa: E402
from .serve import serve  # noqa: E402
from .report import report  # noqa: E402
from .sweep import sweep  # noqa: E402
from .data import data_app, global_options  # noqa: E402

app = typer.Typer(
    name="trimtab",
    help="Declarative rules and state-machine engine for multi-venue crypto yield strategies.",
    cls=TrimtabGroup,  # redacted output, one-line errors (cli/guard.py)
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

app.command("metrics")(metrics_command)
app.command("params")(params_command)
for command in (run, status, stop, compare, validate, audit, diagram, explain, schema):
    app.command()(command)
app.command("test")(test_rules)
app.command()(serve)
app.command()(report)
app.command()(sweep)
app.add_typer(data_app, name="data")
app.callback()(global_options)

gc.freeze()
if _collecting:
    gc.enable()


def main() -> None:
    """The ``trimtab`` console script: :data:`app`, then the process ends at once.

    Once the command has returned (its files written and closed, its writer processes reaped),
    the standard streams are flushed and the exit handlers run (``atexit``: log handlers, ...);
    then ``os._exit`` with the command's exit code skips the interpreter's teardown, which frees
    every remaining object one by one (~10 ms after a flagship backtest: the market view's
    floats) for a process about to end. Only with the main thread alone: otherwise (a thread
    still running) Python's own exit, which waits for it. In-process callers (typer's CliRunner,
    tests) call :data:`app`, which raises ``SystemExit`` as usual.
    """
    import atexit
    import sys
    import threading

    try:
        app()
        code = 0
    except SystemExit as e:
        if not (e.code is None or isinstance(e.code, int)):
            raise  # a message: Python prints it
        code = e.code or 0
    if threading.active_count() > 1:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe: Python's exit would not report it either
            pass
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    main()
