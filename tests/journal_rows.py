"""Every table of a run's journal as comparable text, for the tests proving a speed path changes
nothing (quiet stretches, quiet spans): the same tables and order as bench/journal_digest.py."""
from __future__ import annotations

import sqlite3
from pathlib import Path

#: journal table -> the key its rows are ordered by
TABLES = {"metrics": "tick", "ledger": "tick", "fills": "fill_id", "plans": "plan_id", "instructions": "rowid",
          "series": "tick", "plan_hedge": "plan_id", "analyses": "rowid", "quarantine": "rowid"}


def journal_rows(path: Path, column_order: bool = True) -> dict[str, list[str]]:
    """table -> its rows in key order, each the ``repr`` of its ``(column, value)`` pairs (floats by
    repr, so a last-bit difference shows), in table column order, or sorted by column name when
    ``column_order`` is False (two journals that added columns in different orders then compare)."""
    db = sqlite3.connect(path)
    try:
        tables = {}
        for t, key in TABLES.items():
            cur = db.execute(f"SELECT * FROM {t} ORDER BY {key}")
            names = [d[0] for d in cur.description]
            tables[t] = [repr(list(zip(names, r)) if column_order else sorted(zip(names, r), key=lambda x: x[0]))
                         for r in cur.fetchall()]
    finally:
        db.close()
    return tables
