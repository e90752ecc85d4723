"""Rows into SQLite in bulk: :func:`insert_rows`, the journal's one way of writing a table's
buffered rows (in-process, :class:`trimtab.engine.journal.Journal`, or in its writer process,
:mod:`trimtab.engine.journal_writer`). Standard library only: the writer process imports it."""
from __future__ import annotations

import sqlite3
from functools import lru_cache
from itertools import chain, repeat

#: Parameters per multi-row INSERT of :func:`insert_rows` (rows x columns, at most the
#: connection's limit). Replaying a flagship run's writes: 512 to 2,048 take ~9% fewer
#: instructions than ``executemany`` (callgrind); larger statements cost more to prepare
#: (32k: 1.6x as long as ``executemany``).
PARAMS_PER_STATEMENT = 1024


def insert_rows(db: sqlite3.Connection, sql: str, rows: list) -> None:
    """``db.executemany(sql, rows)`` (``sql``: an INSERT ending in one ``(?, ...)`` row) as
    multi-row ``INSERT ... VALUES (...), (...)`` statements of about
    :data:`PARAMS_PER_STATEMENT` parameters: the same rows in the same order, each resolved
    (``OR REPLACE``) against those before it, with fewer per-row steps. Rows of differing
    widths (or none) go to ``executemany`` itself, which raises its own error for them, so
    a short row can never shift another's values. Not committed."""
    widths = set(map(len, rows))
    if len(widths) != 1:
        db.executemany(sql, rows)
        return
    params = min(PARAMS_PER_STATEMENT, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    k = max(1, params // widths.pop())
    for s in range(0, len(rows), k):
        chunk = rows[s:s + k]
        db.execute(_multi_row(sql, len(chunk)), tuple(chain.from_iterable(chunk)))


@lru_cache(maxsize=64)
def _multi_row(sql: str, k: int) -> str:
    """``sql`` (ending in one ``(?, ...)`` row) with ``k`` rows of parameters."""
    return sql + ("," + sql[sql.rindex("("):]) * (k - 1)


def span_rows(first: int, times: list[str], state: str, head: tuple, columns: list[list]):
    """The ``metrics`` rows of a quiet span (:meth:`trimtab.engine.journal.Journal.quiet_span`):
    ticks ``first, first + 1, ...`` with their ``times``, ``state`` and the ``head`` values (the
    decision columns) repeated, then one value per tick of each metric column, in the table's
    column order. An iterator of tuples, built by zip (in C)."""
    n = len(times)
    return zip(range(first, first + n), times, repeat(state, n), *[repeat(x, n) for x in head], *columns)
