"""The journal's multi-row INSERTs (trimtab.engine.journal.insert_rows): the very rows, values and
errors of ``executemany``, on a real SQLite file; and a step's ``instructions`` text, written
again only when it changes."""
from __future__ import annotations

import math
import sqlite3

import pytest

from trimtab.engine.journal import PARAMS_PER_STATEMENT, Journal, dumps, insert_rows
from trimtab.planner.plan import Instruction, Step

TABLE = "CREATE TABLE t (tick INTEGER PRIMARY KEY, name TEXT, x REAL, y REAL)"


def fresh(path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute(TABLE)
    return db


def edge_rows(n: int) -> list[tuple]:
    """``n`` rows of the values a journal writes (NaN, inf, -0.0, None, '', ints, quotes),
    with every 7th tick written again later (OR REPLACE keeps the last)."""
    odd = [math.nan, math.inf, -math.inf, -0.0, None, "", 1 << 62, 0.1 + 0.2, "it's"]
    rows = [(t, f"s{t}", odd[t % len(odd)], t * 1.5) for t in range(n)]
    return rows + [(t, "again", -1.0, float(t)) for t in range(0, n, 7)]


def table(db) -> list[tuple]:
    return db.execute("SELECT rowid, tick, name, x, typeof(x), y FROM t ORDER BY rowid").fetchall()


@pytest.mark.parametrize("n", [1, 5, PARAMS_PER_STATEMENT // 4, PARAMS_PER_STATEMENT // 4 + 1, 3 * PARAMS_PER_STATEMENT + 11])
def test_the_same_table_as_executemany(tmp_path, n):
    sql = "INSERT OR REPLACE INTO t (tick, name, x, y) VALUES (?,?,?,?)"
    a, b = fresh(tmp_path / "a.sqlite"), fresh(tmp_path / "b.sqlite")
    rows = edge_rows(n)
    a.executemany(sql, rows)
    insert_rows(b, sql, rows)
    got = table(b)
    assert got == table(a)
    assert len(got) == n


def test_a_constraint_error_is_executemanys(tmp_path):
    db = fresh(tmp_path / "j.sqlite")
    rows = [(t, "x", 1.0, 2.0) for t in range(50)] + [(3, "twice", 1.0, 2.0)]
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE constraint failed: t.tick"):
        insert_rows(db, "INSERT INTO t VALUES (?,?,?,?)", rows)


def test_rows_of_other_widths_raise_and_never_shift_values(tmp_path):
    db = fresh(tmp_path / "j.sqlite")
    rows = [(0, "a", 1.0), (1, "b", 2.0, 3.0, 4.0)]  # 3 + 5 parameters: two rows' worth in all
    with pytest.raises(sqlite3.ProgrammingError, match="Incorrect number of bindings"):
        insert_rows(db, "INSERT INTO t VALUES (?,?,?,?)", rows)
    assert table(db) == []
    insert_rows(db, "INSERT INTO t VALUES (?,?,?,?)", [])  # nothing to write
    assert table(db) == []


def test_a_step_row_repeats_its_instructions_only_when_they_change(tmp_path):
    ins = Instruction("aave_v3", "supply", "aave_v3:aToken:aweETH", 1.5, "weETH", expected_cost=math.inf)
    a = Step("s1", "supply", (ins,))
    same = Step("s1", "supply", (Instruction(**{**ins.__dict__}),))  # another object, the same text
    moved = Step("s1", "supply", (Instruction(**{**ins.__dict__, "amount": 2.5}),))
    j = Journal(tmp_path / "journal.sqlite")
    for st, status in ((a, "pending"), (a, "done"), (same, "done"), (moved, "done"), (a, "done")):
        j.step("p1", st, status, 0, "2024-01-01T00:00Z", "")
    j.step("p2", a, "pending", 0, "2024-01-01T00:00Z", "")  # another plan: its own first row
    j.close()
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    texts = [r[0] for r in db.execute("SELECT instructions FROM instructions ORDER BY rowid")]
    db.close()
    first = dumps([{k: v for k, v in ins.__dict__.items() if k != "params"}])
    assert '"expected_cost":"inf"' in first
    assert texts == [first, None, None, first.replace("1.5", "2.5"), first, first]
