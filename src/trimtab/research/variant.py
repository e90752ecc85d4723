"""Worker side: one variant's backtest, exactly as ``trimtab run CONFIG --set ...`` runs it.

A Dask task receives a small :class:`Task` (config path, ``--set`` strings, window, run
directory), never the market data or a loaded strategy: each worker process loads the bundle
once (:func:`_market_data`) and keeps it for every later task.
"""
from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TrimtabError

__all__ = ["JOURNAL_MODES", "Task", "compact_journal", "run_task"]

#: ``--journal`` of a sweep: "metrics" (default: summary.json, equity.csv and a journal holding
#: only its ``meta`` and ``metrics`` tables), or a run's own "slim" / "full" journal kept whole.
JOURNAL_MODES = ("metrics", "slim", "full")
#: Tables a "metrics" journal keeps (the rest are emptied, then the file is vacuumed).
_KEEP = ("meta", "metrics")

_DATA: dict[str, Any] = {}


@dataclasses.dataclass(frozen=True)
class Task:
    """One backtest to run on a worker.

    Attributes:
        variant: the variant id (the run directory's name); ``params``: ``{name: column value}``.
        config: absolute path of the strategy config; ``sets``: its ``--set NAME=VALUE`` strings.
        start, end: the window (ISO UTC, or None for the config's default, as ``trimtab run``).
        out: the directory the run directory is created in (absolute).
        capital: initial capital (share class), None for the config's.
        journal: one of :data:`JOURNAL_MODES`; allow_audit_errors: as ``trimtab run``'s flag.
        data_dir: the market-data bundle (None: the default, ``TRIMTAB_DATA`` or ``data/``).
    """

    variant: str
    params: dict
    config: str
    sets: tuple[str, ...]
    start: str | None
    end: str | None
    out: str
    capital: float | None = None
    journal: str = "metrics"
    allow_audit_errors: bool = False
    data_dir: str | None = None

    @property
    def run_dir(self) -> Path:
        """Where this task's run is written: ``out/variant``."""
        return Path(self.out) / self.variant


def _market_data(data_dir: str | None):
    """The bundle, loaded once per worker process (about 0.1 s, then reused by every task)."""
    from ..data.feed import load_market_data

    key = data_dir or ""
    if key not in _DATA:
        _DATA[key] = load_market_data(Path(data_dir) if data_dir else None)
    return _DATA[key]


def _one_line(e: BaseException) -> str:
    """An exception as one line: a ConfigError's issues joined by ``; ``, a trimtab error's own
    message, anything else prefixed with its type."""
    if isinstance(e, ConfigError):
        from ..config.overrides import format_issue

        return "; ".join(format_issue(i) for i in e.issues)
    text = " ".join(str(e).split())
    return text if isinstance(e, TrimtabError) else f"{type(e).__name__}: {text}"


def compact_journal(run_dir: Path) -> None:
    """Empty every table of ``run_dir/journal.sqlite`` but ``meta`` (config, parameters,
    overrides, window, summary) and ``metrics`` (one row per tick), then VACUUM: the
    "metrics" journal of a sweep variant, about 60% of a slim one's size."""
    path = Path(run_dir) / "journal.sqlite"
    if not path.exists():
        return
    db = sqlite3.connect(path)
    try:
        tables = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for name in tables:
            if name not in _KEEP and not name.startswith("sqlite_"):
                db.execute(f'DELETE FROM "{name}"')  # noqa: S608 - a name read from sqlite_master, quoted
        db.commit()
        db.execute("PRAGMA journal_mode=DELETE")  # fold the WAL back into the file: one file per journal
        db.execute("VACUUM")
    finally:
        db.close()


def run_task(task: Task) -> dict:
    """Run ``task`` and return its ``sweep.parquet`` row (:mod:`trimtab.research.rows`).

    The steps are ``trimtab run``'s: load the config with the overrides (validated like the
    YAML), resolve the window on the bundle, audit (an error finding fails the variant unless
    ``allow_audit_errors``, whose findings then go into the summary as ``audit.allowed_errors``),
    backtest into ``task.run_dir``, then compact the journal for the "metrics" mode.

    Never raises for a failing variant: any exception becomes a ``status="failed"`` row with
    its message, so one variant never stops the sweep.
    """
    from . import rows

    try:
        from ..audit import audit_strategy
        from ..config.load import load_strategy
        from ..engine.backtest import run_backtest
        from ..engine.window import resolve_window
        from ..summary import amend_after_run

        data = _market_data(task.data_dir)
        strategy = load_strategy(Path(task.config), overrides=list(task.sets))
        resolve_window(strategy, data, task.start, task.end)  # a window outside the data: one DataError line
        report = audit_strategy(strategy, data=data, start=_ts(task.start), end=_ts(task.end), check_data=True)
        if report.errors and not task.allow_audit_errors:
            from ..diagnostics import format_line

            raise TrimtabError(f"{len(report.errors)} audit error(s), not run (--allow-audit-errors runs anyway): "
                               + "; ".join(format_line(f, code=True) for f in report.errors))
        result = run_backtest(strategy, start=_ts(task.start), end=_ts(task.end), capital=task.capital, out=task.out,
                              data=data, run_id=task.variant, journal="slim" if task.journal == "metrics" else task.journal)
        amend_after_run(result.summary, task.run_dir, report.errors)  # as `trimtab run` does
        if task.journal == "metrics":
            compact_journal(task.run_dir)
        return rows.ok_row(task.variant, task.params, result.summary, task.run_dir)
    except Exception as e:  # noqa: BLE001 - recorded as this variant's failure; the sweep goes on
        return rows.failed_row(task.variant, task.params, _one_line(e), task.run_dir, task.start, task.end)


def _ts(t: str | None):
    import pandas as pd

    return None if t is None else pd.Timestamp(t)
