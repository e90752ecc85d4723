"""The portfolio run's own SQLite journal, ``<run>/portfolio.sqlite``.

Tables: ``meta`` (key -> JSON), ``decisions`` (every portfolio machine step with its rules'
observed values), ``reallocations`` (one JSON record per reallocation, see
:mod:`trimtab.portfolio.realloc`), ``series`` (portfolio equity, cash, NAV, state per tick),
``sleeve_series`` (each sleeve's equity and NAV per tick) and ``checkpoints`` (the last one).

Rows are buffered in :attr:`PortfolioStore.buf` and written only with a checkpoint or the
summary, so the file never holds half a tick. The sleeves' own journals are
:class:`trimtab.engine.journal.Journal` files; :func:`rollback_journal` trims one back to a
checkpoint on resume.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ..engine import checkpoint as ckpt
from ..engine import recovery
from ..engine.journal import dumps
from ..secrets import scrubbing

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS decisions (tick INTEGER PRIMARY KEY, time TEXT, source TEXT, dest TEXT, trigger TEXT, metrics TEXT, rules TEXT);
CREATE TABLE IF NOT EXISTS reallocations (realloc_id INTEGER PRIMARY KEY, start_tick INTEGER, start_time TEXT, end_tick INTEGER,
  end_time TEXT, trigger TEXT, status TEXT, record TEXT);
CREATE TABLE IF NOT EXISTS series (tick INTEGER PRIMARY KEY, time TEXT, equity REAL, cash REAL, nav REAL, state TEXT);
CREATE TABLE IF NOT EXISTS sleeve_series (tick INTEGER, sleeve TEXT, equity REAL, nav REAL, PRIMARY KEY (tick, sleeve));
CREATE TABLE IF NOT EXISTS checkpoints (tick INTEGER PRIMARY KEY, state BLOB);
"""

#: File name of the store inside a portfolio run directory.
FILE = "portfolio.sqlite"

#: Tables of a sleeve journal rolled back past a checkpoint on resume (all carry ``tick``).
SLEEVE_TICK_TABLES = ("decisions", "instructions", "ledger", "metrics", "analyses", "series", "plans", "rebalances", "alerts")

_SQL = {
    "decisions": "INSERT OR REPLACE INTO decisions VALUES (?,?,?,?,?,?,?)",
    "series": "INSERT OR REPLACE INTO series VALUES (?,?,?,?,?,?)",
    "sleeve_series": "INSERT OR REPLACE INTO sleeve_series VALUES (?,?,?,?)",
    "reallocations": "INSERT OR REPLACE INTO reallocations VALUES (?,?,?,?,?,?,?,?)",
}


class PortfolioStore:
    """``<run_dir>/portfolio.sqlite``, opened (created if new) with its schema; strings written
    through it are redacted of secrets (:func:`trimtab.secrets.scrubbing`).

    ``buf`` maps a table (decisions, series, sleeve_series, reallocations) to rows waiting for
    the next :meth:`checkpoint` or :meth:`finish`; row shapes are the table columns above.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.db = scrubbing(sqlite3.connect(self.run_dir / FILE))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self.buf: dict[str, list[tuple]] = {"decisions": [], "series": [], "sleeve_series": [], "reallocations": []}

    def meta(self, key: str, value) -> None:
        """Write ``meta[key] = value`` (JSON) in the open transaction."""
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, dumps(value)))

    def commit(self) -> None:
        """Commit the open transaction."""
        self.db.commit()

    def start_marker(self) -> None:
        """Mark the new run's store as started (:func:`trimtab.engine.recovery.start_marker`)."""
        recovery.start_marker(self.run_dir, FILE)

    def flush(self) -> None:
        """Write every buffered row (inside the caller's transaction)."""
        for table, rows in self.buf.items():
            if rows:
                self.db.executemany(_SQL[table], rows)
                rows.clear()

    def checkpoint(self, tick: int, blob: bytes) -> None:
        """Commit the buffered rows with checkpoint ``blob`` at ``tick`` (replacing the previous
        one), then write the marker -- after the commit, see :mod:`trimtab.engine.recovery`."""
        with self.db:
            self.flush()
            self.db.execute("DELETE FROM checkpoints")
            self.db.execute("INSERT INTO checkpoints VALUES (?, ?)", (tick, blob))
        recovery.write_marker(self.run_dir, FILE, tick, blob)

    def rollback(self, tick: int) -> None:
        """Delete the rows written after the checkpoint at ``tick`` (a run that died after it)."""
        with self.db:
            for table in ("decisions", "series", "sleeve_series"):
                self.db.execute(f"DELETE FROM {table} WHERE tick > ?", (tick,))
            self.db.execute("DELETE FROM reallocations WHERE start_tick > ?", (tick,))

    def equity_rows(self, before: int):
        """``(tick, equity)`` of the portfolio for ticks below ``before``, in tick order."""
        return self.db.execute("SELECT tick, equity FROM series WHERE tick < ? ORDER BY tick", (before,))

    def sleeve_rows(self, before: int):
        """``(tick, sleeve, equity, nav)`` of every sleeve for ticks below ``before``."""
        return self.db.execute("SELECT tick, sleeve, equity, nav FROM sleeve_series WHERE tick < ?", (before,))

    def history(self) -> list[dict]:
        """Every reallocation record, written or still buffered (the buffered one wins), by id."""
        rows = [json.loads(r) for (r,) in self.db.execute("SELECT record FROM reallocations ORDER BY realloc_id")]
        hist = {r["id"]: r for r in rows}
        hist.update({int(x[0]): json.loads(x[7]) for x in self.buf["reallocations"]})
        return [hist[k] for k in sorted(hist)]

    def finish(self, summary: dict) -> None:
        """Write the buffered rows and ``meta.summary``, then close the store."""
        with self.db:
            self.flush()
            self.meta("summary", summary)
        self.db.close()


def read_meta(path: Path) -> tuple[dict, bool]:
    """The ``meta`` records of the store at ``path`` (after SQLite's integrity check) and whether
    it holds a checkpoint.

    Raises:
        CheckpointError: the file is damaged or its meta records cannot be decoded.
    """
    db = recovery.open_checked(path, recovery.PORTFOLIO_TABLES)  # SQLite's integrity check first
    try:
        meta = {k: ckpt.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
        has_cp = db.execute("SELECT count(*) FROM checkpoints").fetchone()[0] > 0
    except META_ERRORS as e:
        raise meta_error(path, e) from None
    finally:
        db.close()
    return meta, has_cp


#: What decoding hostile meta records can raise.
META_ERRORS = (sqlite3.DatabaseError, ValueError, TypeError, KeyError, AttributeError, RecursionError)


def meta_error(path: Path, e: Exception) -> ckpt.CheckpointError:
    """The one-line refusal for meta records of ``path`` that cannot be read."""
    return ckpt.CheckpointError(f"{path}: its meta records cannot be read ({type(e).__name__}: {e}); refusing to resume")


def rollback_journal(db: sqlite3.Connection, tick: int, fill_id: int) -> None:
    """Delete a sleeve journal's rows written after the checkpoint at ``tick`` (a process that
    died between a sleeve's commit and the portfolio's leaves them behind)."""
    have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    with db:
        for table in SLEEVE_TICK_TABLES:
            if table in have:
                db.execute(f"DELETE FROM {table} WHERE tick > ?", (tick,))
        db.execute("DELETE FROM fills WHERE fill_id > ?", (fill_id,))
