"""A backtest: the kernel (:class:`trimtab.engine.kernel.Engine`) stepped through every tick of a
window of the bundled real data at once."""
from __future__ import annotations

import gc
from contextlib import contextmanager
from pathlib import Path

from ..config.load import Strategy
from ..data.feed import MarketData, load_market_data
from ..runs import claim
from .flows import Flow
from .kernel import Engine, RunResult
from .window import new_run_id, resolve_window


def run_backtest(strategy: Strategy, start=None, end=None, capital: float | None = None, out: Path | str = "runs",
                 run_id: str | None = None, progress=None, data: MarketData | None = None, time_decisions: bool = False,
                 flows: list[Flow] | None = None, overwrite: bool = False, journal: str = "slim",
                 bulk: bool = True, journal_writer: bool = False, csv_helper=None) -> RunResult:
    """Run ``strategy`` over the bundled real data and write ``<out>/<run_id>/``.

    The run directory is owned by this call for the run's life (:func:`trimtab.runs.claim`): a
    ``run_id`` that names an existing run is refused unless ``overwrite`` and that run is a
    finished backtest nobody owns; the old run is never touched otherwise. The cyclic garbage
    collector is paused meanwhile (:func:`collector_paused`).

    Args:
        start, end: window (UTC; default: the longest window the strategy's data covers).
        capital: initial capital in the share class (default: the config's ``capital``).
        progress: optional callable ``(done_ticks, total_ticks)``.
        data: preloaded market data (tests reuse one load).
        time_decisions: record the nanoseconds of each tight loop + machine step.
        flows: capital flows on top of the config's ``flows`` file (see trimtab.engine.flows).
        run_id: the run directory's name (checked by :func:`trimtab.runs.check_run_id`; default:
            generated, :func:`new_run_id`); ``overwrite``: replace a finished backtest of that id.
        journal: "slim" (no per-tick rule trace: ``trimtab explain`` recomputes it) or "full"
            (the trace as JSON every tick); see :mod:`trimtab.engine.journal`. ValueError otherwise.
        bulk: process the quiet spans at once (:mod:`trimtab.engine.quiet`; the same results as
            False, which steps every tick).
        journal_writer: the journal's SQLite statements run in a writer process, on another
            core (:mod:`trimtab.engine.journal_writer`; the same journal). ``trimtab run`` sets
            it on a machine of more than one core; runs that already fill the cores (``compare``,
            sweeps) leave it off. The journal's commits are not synced to the disk
            (:class:`trimtab.engine.journal.Journal` ``synced``): running the backtest again
            writes it again.
        csv_helper: a process to write ``equity.csv`` while the run ends (:attr:`Engine.csv_helper`:
            ``trimtab run``'s :class:`trimtab.data.background.BackgroundLoad`, whose forked child
            loaded the data); the file may still be being written when this returns:
            ``RunResult.settle()`` waits for it (and writes it here if the helper cannot), so a
            caller can show the summary meanwhile.

    Raises:
        DataError: a window outside the data, or a series the strategy needs has no value.
        RunError: a bad run id, a run id that exists (without ``overwrite``), a run owned by
            another process.
    """
    if data is None:
        data = load_market_data()
    start, end = resolve_window(strategy, data, start, end)
    with claim(out, run_id, new_id=lambda: new_run_id(strategy, start, end, out), overwrite=overwrite) as owned, \
            collector_paused():
        engine = Engine(strategy, data.slice(start, end), owned.run_dir, capital=capital, flows=flows, time_decisions=time_decisions,
                        journal_mode=journal, bulk=bulk, journal_writer=journal_writer, journal_synced=False)
        engine.csv_helper = csv_helper
        engine.run_until(engine.view.n, progress)
        return engine.finish()


@contextmanager
def collector_paused():
    """Python's cyclic garbage collector off for the block, back as it was after (exceptions too).

    A flagship run's young collections cost ~24 ms of CPU (~50 of them, each walking every item
    of the young tick-length lists: the view's columns, the series) to free the ~1.7k objects a
    run leaves in cycles, which the first collection after the run frees instead (~6 ms, once).
    Refcounting frees everything else as before; results do not depend on it."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
