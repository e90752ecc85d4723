"""The journal's writer process (trimtab.engine.journal_writer): the same journal as in-process,
and failures that lose nothing committed and say what failed.

Real runs on the bundled data, real SQLite files, real child processes. ``trimtab run`` uses the
writer on a machine of more than one core; its run is compared with ``run_backtest`` writing
in-process too.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trimtab.config.load import load_strategy
from trimtab.engine.backtest import run_backtest
from trimtab.engine.journal import Journal
from trimtab.engine.journal_writer import WriterConnection, WriterError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from journal_rows import TABLES, journal_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TRIMTAB = Path(sys.executable).parent / "trimtab"

pytestmark = pytest.mark.usefixtures("no_secrets")   # (tests/conftest.py: else no writer process)


def _meta(path: Path) -> dict:
    db = sqlite3.connect(path)
    try:
        meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
        schema = db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        db.close()
    meta["summary"].pop("run_dir")
    return {"meta": meta, "schema": schema}


def _same_run(a: Path, b: Path) -> None:
    """Two run directories hold the same run: every journal table row for row (floats by repr),
    meta and schema, summary.json (but its run_dir) and equity.csv byte for byte."""
    ra, rb = journal_rows(a / "journal.sqlite"), journal_rows(b / "journal.sqlite")
    assert {t: len(v) for t, v in ra.items()} == {t: len(v) for t, v in rb.items()}
    assert sum(map(len, ra.values())) > 1000  # a real journal, not two empty ones
    for t in TABLES:
        assert ra[t] == rb[t], t
    assert _meta(a / "journal.sqlite") == _meta(b / "journal.sqlite")
    assert (a / "equity.csv").read_bytes() == (b / "equity.csv").read_bytes()
    sa, sb = json.loads((a / "summary.json").read_text()), json.loads((b / "summary.json").read_text())
    assert sa.pop("run_dir") != sb.pop("run_dir") and sa == sb


@pytest.mark.parametrize("config, window", [
    ("usdt_eth_staking_hedged_leveraged", ("2024-08-01", "2024-10-15")),  # spans, funding fills, plans, a zero metric turning
    ("ml_btc_directional_usdt_margin", ("2024-06-01", "2024-07-15")),     # signals: metrics tick by tick, stops
    ("pure_lending_usdt", ("2024-06-01", "2024-09-01")),                  # long spans, hardly a fill
])
def test_writer_process_journal_is_the_in_process_one(config, window, market, tmp_path):
    strategy = load_strategy(ROOT / "configs" / f"{config}.yaml")
    runs = {w: run_backtest(strategy, start=window[0], end=window[1], out=tmp_path / str(w), run_id="r", data=market,
                            journal_writer=w) for w in (True, False)}
    _same_run(runs[True].run_dir, runs[False].run_dir)


def test_cli_run_is_the_in_process_run(market, tmp_path):
    """``trimtab run`` (the writer process on a machine of more than one core) against
    ``run_backtest`` writing in-process."""
    cfg = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"
    p = subprocess.run([str(TRIMTAB), "run", str(cfg), "--json", "--out", str(tmp_path / "cli"), "--run-id", "w",
                        "--start", "2025-01-01", "--end", "2025-03-01"], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    inline = run_backtest(load_strategy(cfg), start="2025-01-01", end="2025-03-01", out=tmp_path / "lib", run_id="w", data=market)
    _same_run(tmp_path / "cli" / "w", inline.run_dir)


def test_reads_answer_and_writes_keep_their_order(tmp_path):
    """Reads see every earlier posted write (uncommitted ones too, as on one connection); the
    transaction commits where the journal commits; the file is complete once closed."""
    j = Journal(tmp_path / "j.sqlite", writer=True)
    assert isinstance(j.db, WriterConnection)
    j.meta("a", 1)
    j.series_row(0, 1.5, 1.0, float("nan"))
    j.flush(commit=False)
    assert j.db.execute("SELECT tick, equity, nav FROM series").fetchall() == [(0, 1.5, 1.0)]
    assert j.db.execute("SELECT value FROM meta WHERE key='a'").fetchone() == ("1",)
    assert [r[1] for r in j.db.execute("PRAGMA table_info(series)")] == ["tick", "equity", "nav", "eeth"]
    other = sqlite3.connect(tmp_path / "j.sqlite")
    assert other.execute("SELECT count(*) FROM series").fetchone() == (0,)  # not committed yet
    j.flush()
    j.db.execute("SELECT 1").fetchone()  # the commit was posted before this read
    assert other.execute("SELECT count(*) FROM series").fetchone() == (1,)
    other.close()
    j.close()
    j.close()  # again: nothing
    db = sqlite3.connect(tmp_path / "j.sqlite")
    assert db.execute("SELECT equity, eeth FROM series").fetchall() == [(1.5, None)]
    db.close()


def test_the_writer_commits_when_idle(tmp_path):
    """Past IDLE_COMMIT bytes of rows, the writer commits them as soon as nothing is queued
    (its idle time, during the run), so the run's last commit carries only what came after;
    the rows and their order are the same."""
    from trimtab.engine.journal_writer import IDLE_COMMIT

    j = Journal(tmp_path / "j.sqlite", writer=True)
    n = 0
    other = sqlite3.connect(tmp_path / "j.sqlite")
    while n * 20 < 2 * IDLE_COMMIT:  # a series row is ~20 bytes of MessagePack
        for t in range(n, n + 5000):
            j.series_row(t, float(t), 1.0, 0.0)
        n += 5000
        j.flush(commit=False)
    j.db.execute("SELECT 1").fetchone()  # every row ran
    deadline = time.monotonic() + 30
    while other.execute("SELECT count(*) FROM series").fetchone()[0] < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert other.execute("SELECT count(*) FROM series").fetchone() == (n,)  # committed, by the writer alone
    other.close()
    j.close()
    db = sqlite3.connect(tmp_path / "j.sqlite")
    assert db.execute("SELECT tick FROM series ORDER BY rowid").fetchall() == [(t,) for t in range(n)]
    db.close()


def test_a_failed_write_raises_its_sqlite_error_and_commits_nothing_after(tmp_path):
    """A posted statement that fails: the next read raises the in-process error class and
    message, naming the statement; the rows of its transaction are not committed, those
    committed before stay."""
    path = tmp_path / "j.sqlite"
    j = Journal(path, writer=True)
    j.series_row(0, 1.0, 1.0, 0.0)
    j.flush()
    j.series_row(1, 2.0, 2.0, 0.0)
    j.flush(commit=False)
    j.db.execute("INSERT INTO no_such_table VALUES (1)")
    j.series_row(2, 3.0, 3.0, 0.0)
    j.flush()  # skipped by the writer: the journal failed before
    with pytest.raises(sqlite3.OperationalError) as e:
        j.db.execute("SELECT count(*) FROM series").fetchone()
    assert "no such table: no_such_table" in str(e.value) and "INSERT INTO no_such_table" in str(e.value)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):  # and at every later call
        j.close()
    in_process = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError) as same:
        in_process.execute("INSERT INTO no_such_table VALUES (1)")
    assert str(e.value).startswith(str(same.value))
    db = sqlite3.connect(path)
    assert db.execute("SELECT tick FROM series").fetchall() == [(0,)]
    db.close()


def test_a_killed_writer_is_reported(tmp_path):
    j = Journal(tmp_path / "j.sqlite", writer=True)
    j.series_row(0, 1.0, 1.0, 0.0)
    j.flush()
    proc = j.db._proc
    proc.kill()
    proc.wait()
    with pytest.raises(WriterError, match=r"journal writer process .* ended \(exit code -9\)"):
        for _ in range(100):  # the pipe breaks at the first write or read after the child is gone
            j.series_row(1, 1.0, 1.0, 0.0)
            j.flush()
            j.db.execute("SELECT 1").fetchone()


def test_the_writer_ignores_ctrl_c(tmp_path):
    """A Ctrl-C reaches the whole process group; the parent decides what happens to the run."""
    j = Journal(tmp_path / "j.sqlite", writer=True)
    j.db.execute("SELECT 1").fetchone()  # the child is up (its handler set before it answers)
    os.kill(j.db._proc.pid, signal.SIGINT)
    j.series_row(0, 1.0, 1.0, 0.0)
    j.flush()
    assert j.db.execute("SELECT count(*) FROM series").fetchone() == (1,)
    j.close()
    assert j.db._proc.returncode == 0


PARENT = """
import os, sys
from pathlib import Path
from trimtab.engine.journal import Journal
j = Journal(Path(sys.argv[1]), writer=True)
print(j.db._proc.pid, flush=True)
for t in range(3000):
    j.series_row(t, float(t), 1.0, 0.0)
j.flush()                       # committed
for t in range(3000, 6000):
    j.series_row(t, float(t), 1.0, 0.0)
j.flush(commit=False)           # written, never committed
os.kill(os.getpid(), 9)
"""


def test_a_killed_run_keeps_what_it_committed(tmp_path):
    """The parent killed mid-run: the writer finishes what it was given and exits without
    committing the rest, as a dropped in-process connection would."""
    path = tmp_path / "j.sqlite"
    p = subprocess.run([sys.executable, "-c", PARENT, str(path)], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == -9, p.stderr
    child = int(p.stdout.split()[0])
    status = Path(f"/proc/{child}/status")
    for _ in range(200):  # the orphaned writer exits on its own (a zombie not yet reaped has exited)
        try:
            if "\nState:\tZ" in status.read_text():
                break
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the writer outlived its parent")
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*), max(tick) FROM series").fetchone() == (3000, 2999)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()


def test_values_bind_as_in_process(tmp_path):
    """Every value a row may hold reaches the file as an in-process connection binds it: NaN as
    NULL, +-inf, -0.0, big ints, text with quotes, None, bytes, numpy's float64 as a double and
    its other scalars as BLOBs (the buffer protocol), and an unbindable value refused."""
    import numpy as np

    rows = [(1, float("nan"), float("inf"), -0.0, "it's", None, b"\x00\x01", 2**62),
            (2, np.float64(0.1), -float("inf"), 1e-300, "", np.int64(7), np.bool_(True), -2**63)]
    sql = "INSERT INTO t VALUES (?,?,?,?,?,?,?,?)"
    got = []
    for writer in (False, True):
        path = tmp_path / f"{writer}.sqlite"
        db = WriterConnection(path) if writer else sqlite3.connect(path)
        db.execute("CREATE TABLE t (a, b REAL, c REAL, d REAL, e TEXT, f, g, h INTEGER)")
        if writer:
            db.insert_rows(sql, rows)
        else:
            db.executemany(sql, rows)
        db.commit()
        with pytest.raises(sqlite3.ProgrammingError):
            db.execute("INSERT INTO t VALUES (?,?,?,?,?,?,?,?)", (3, object(), 0, 0, 0, 0, 0, 0))
            db.execute("SELECT 1")  # the writer reports it at the next read
        db.close()
        check = sqlite3.connect(path)
        got.append([tuple(map(repr, r)) + t for r, t in zip(check.execute("SELECT * FROM t ORDER BY a"),
                                                                  check.execute("SELECT typeof(g) FROM t ORDER BY a"))])
        check.close()
    assert got[0] == got[1]
    assert got[0][0][1] == "None" and got[0][1][6] == "b'\\x01'" and got[0][1][-1] == "blob"


def test_a_journal_that_cannot_be_opened_says_so(tmp_path):
    """The writer cannot open the file (here a directory): the first read raises the error
    sqlite3 gives in-process, naming the file, and close does too; the child exits cleanly."""
    (tmp_path / "a_dir").mkdir()
    w = WriterConnection(tmp_path / "a_dir")
    w.execute("CREATE TABLE t (x)")  # posted: skipped by the writer
    with pytest.raises(sqlite3.OperationalError) as e:
        w.execute("SELECT 1").fetchone()
    with pytest.raises(sqlite3.OperationalError) as same:
        sqlite3.connect(tmp_path / "a_dir").execute("PRAGMA cache_size=-512")
    assert str(e.value).startswith(str(same.value)) and "a_dir" in str(e.value)
    with pytest.raises(sqlite3.OperationalError):
        w.close()
    assert w._proc.returncode == 0
