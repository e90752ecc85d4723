"""A backtest's journal commits without syncing to the disk; every other journal syncs (SQLite's
default), and a writer process's connection is set as an in-process one (issue 14)."""
from __future__ import annotations

import sqlite3

import pytest

from trimtab.engine.journal import Journal

# PRAGMA synchronous: 0 OFF, 2 FULL (https://www.sqlite.org/pragma.html#pragma_synchronous)
OFF, FULL = 0, 2

pytestmark = pytest.mark.usefixtures("no_secrets")   # (tests/conftest.py: else no writer process)


@pytest.mark.parametrize("writer", [False, True])
@pytest.mark.parametrize("synced, expected", [(True, FULL), (False, OFF)])
def test_synced_sets_the_connections_synchronous(tmp_path, writer, synced, expected):
    j = Journal(tmp_path / "journal.sqlite", writer=writer, synced=synced)
    assert (j._writer is not None) == writer
    try:
        assert j.db.execute("PRAGMA synchronous").fetchone()[0] == expected
    finally:
        j.close()


def test_an_unsynced_journal_holds_what_it_committed(tmp_path):
    path = tmp_path / "journal.sqlite"
    j = Journal(path, writer=True, synced=False)
    assert j._writer is not None
    j.meta("summary", {"final_equity": 1.5})
    j.close()
    assert j.db._proc.returncode == 0   # the writer process ended with the journal closed
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='summary'").fetchone()[0] == '{"final_equity":1.5}'
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("writer", [False, True])
def test_a_row_written_after_a_seal_is_committed_by_close(tmp_path, writer):
    """Engine.finish seals before equity.csv, then writes the summary: close commits it."""
    path = tmp_path / "journal.sqlite"
    j = Journal(path, writer=writer, synced=False)
    j.seal()
    j.meta("summary", {"final_equity": 2.5})
    j.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='summary'").fetchone()[0] == '{"final_equity":2.5}'
