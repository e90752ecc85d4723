"""The portfolio run's own journal (trimtab.portfolio.store), on real SQLite files."""
from __future__ import annotations

import json
import sqlite3

import pytest

from trimtab.engine.checkpoint import CheckpointError, encode
from trimtab.engine.recovery import MARKER, check_marker
from trimtab.portfolio.store import FILE, PortfolioStore, read_meta, rollback_journal


def _realloc_row(rid: int, start: int, status: str) -> tuple:
    rec = {"id": rid, "start_tick": start, "status": status, "trigger": "drift"}
    return (rid, start, "t", None, None, "drift", status, json.dumps(rec))


def _tick_rows(store: PortfolioStore, tick: int) -> None:
    store.buf["decisions"].append((tick, f"t{tick}", "idle", "idle", None, "{}", "[]"))
    store.buf["series"].append((tick, f"t{tick}", 100.0 + tick, 1.0, 1.0, "idle"))
    store.buf["sleeve_series"].append((tick, "a", 50.0, 1.0))


def test_rows_wait_in_the_buffer_until_a_checkpoint_commits_them_with_the_marker(tmp_path):
    store = PortfolioStore(tmp_path)
    store.meta("window", {"start": "2024-06-01T00:00Z", "end": "2024-06-02T00:00Z", "capital": 1000.0})
    store.commit()
    store.start_marker()
    for t in range(3):
        _tick_rows(store, t)
    other = sqlite3.connect(tmp_path / FILE)
    assert other.execute("SELECT count(*) FROM series").fetchone()[0] == 0  # nothing half-written
    blob = encode("portfolio", {"portfolio": {}, "sleeves": {}})
    store.checkpoint(2, blob)
    assert other.execute("SELECT count(*) FROM series").fetchone()[0] == 3
    assert other.execute("SELECT tick FROM checkpoints").fetchall() == [(2,)]
    assert all(not rows for rows in store.buf.values())
    check_marker(tmp_path, FILE, 2, blob)  # the marker names this very checkpoint
    with pytest.raises(CheckpointError, match="lost committed ticks|older"):
        check_marker(tmp_path, FILE, 1, blob)
    other.close()
    meta, has_cp = read_meta(tmp_path / FILE)
    assert has_cp and meta["window"]["capital"] == 1000.0
    assert (tmp_path / MARKER).is_file()


def test_history_prefers_the_buffered_record_and_orders_by_id(tmp_path):
    store = PortfolioStore(tmp_path)
    store.buf["reallocations"] += [_realloc_row(2, 5, "withdrawing"), _realloc_row(1, 1, "done")]
    store.checkpoint(5, encode("portfolio", {"portfolio": {}, "sleeves": {}}))
    store.buf["reallocations"].append(_realloc_row(2, 5, "depositing"))  # the same one, later
    store.buf["reallocations"].append(_realloc_row(3, 7, "withdrawing"))
    hist = store.history()
    assert [(r["id"], r["status"]) for r in hist] == [(1, "done"), (2, "depositing"), (3, "withdrawing")]


def test_rollback_drops_only_what_was_written_after_the_tick(tmp_path):
    store = PortfolioStore(tmp_path)
    for t in range(6):
        _tick_rows(store, t)
    store.buf["reallocations"] += [_realloc_row(1, 2, "done"), _realloc_row(2, 4, "withdrawing")]
    store.checkpoint(5, encode("portfolio", {"portfolio": {}, "sleeves": {}}))
    store.rollback(3)
    assert [t for t, _ in store.equity_rows(10)] == [0, 1, 2, 3]
    assert sorted({t for t, *_ in store.sleeve_rows(10)}) == [0, 1, 2, 3]
    assert [r["id"] for r in store.history()] == [1]
    assert list(store.equity_rows(2)) == [(0, 100.0), (1, 101.0)]


def test_a_sleeve_journal_is_trimmed_back_to_its_checkpoint(tmp_path):
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    db.executescript("CREATE TABLE series (tick INTEGER); CREATE TABLE ledger (tick INTEGER);"
                     "CREATE TABLE fills (fill_id INTEGER, tick INTEGER);")
    db.executemany("INSERT INTO series VALUES (?)", [(t,) for t in range(8)])
    db.executemany("INSERT INTO ledger VALUES (?)", [(t,) for t in range(8)])
    db.executemany("INSERT INTO fills VALUES (?, ?)", [(i, i) for i in range(1, 8)])
    db.commit()
    rollback_journal(db, 4, 3)
    assert db.execute("SELECT max(tick) FROM series").fetchone() == (4,)
    assert db.execute("SELECT max(tick) FROM ledger").fetchone() == (4,)
    assert db.execute("SELECT max(fill_id) FROM fills").fetchone() == (3,)


@pytest.mark.parametrize("value", ["[[[[", '"' + "x" * 10 + '"[', "not json"])
def test_hostile_meta_records_are_a_one_line_refusal(tmp_path, value):
    store = PortfolioStore(tmp_path)
    store.db.execute("INSERT INTO meta VALUES ('window', ?)", (value,))
    store.commit()
    store.db.close()
    with pytest.raises(CheckpointError) as e:
        read_meta(tmp_path / FILE)
    assert "its meta records cannot be read" in str(e.value) and "\n" not in str(e.value)
