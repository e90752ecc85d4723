"""Corrupt run state is refused, never run and never silently continued (issue 11 parts 1 and 3).

A real live replay is SIGKILLed after SQLite has moved part of its journal into the main file
(so the last ticks live only in the ``-wal`` file), then copies of its run directory are damaged
the ways a disk, a careless operator or an attacker would: the -wal file dropped, the journal
truncated, bytes flipped in its middle, a text file in its place, a crafted pickle (or garbage)
as the checkpoint. Each ``trimtab run ... --resume`` exits 1 with one line naming the path and
the reason, no traceback, and runs nothing; the intact copy resumes and ends exactly where an
uninterrupted run ends. The same holds for a portfolio's checkpoint and its sleeve journals.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trimtab.engine.backtest import run_backtest

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = "configs/usdt_eth_staking_hedged_leveraged.yaml"
START, END = "2024-06-01", "2024-10-01"
WINDOW = ["--start", START, "--end", END]
KILL_AFTER = 1100  # ticks: past SQLite's first automatic WAL checkpoint (1000 pages) of this journal
# --speed 720000 paces the replay at 200 ticks/s at most: the kill lands seconds before its 2929th tick.


class Payload:
    """Loading this pickle creates ``path``."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "trimtab.cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def resume(out: Path, run_id: str = "k"):
    return cli("run", FLAGSHIP, "--live", "--replay", *WINDOW, "--out", str(out), "--run-id", run_id, "--resume",
               "--speed", "1e9", "--json")


def checkpoint_tick(db: Path) -> int | None:
    if not db.exists():
        return None
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)  # never creates the file
        try:
            r = c.execute("SELECT tick FROM checkpoints").fetchone()
        finally:
            c.close()
    except sqlite3.Error:
        return None
    return r[0] if r else None


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> Path:
    """The run directory of a live replay SIGKILLed after tick KILL_AFTER (with its -wal file)."""
    out = tmp_path_factory.mktemp("killed")
    proc = subprocess.Popen([sys.executable, "-m", "trimtab.cli.main", "run", FLAGSHIP, "--live", "--replay", *WINDOW,
                             "--out", str(out), "--run-id", "k", "--speed", "720000"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    db = out / "k" / "journal.sqlite"
    t0 = time.monotonic()
    while (checkpoint_tick(db) or -1) < KILL_AFTER:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() - t0 < 300, "the replay did not reach the kill point"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert (out / "k" / "journal.sqlite-wal").stat().st_size > 0
    return out / "k"


def copy(run: Path, tmp_path: Path, name: str) -> Path:
    dst = tmp_path / name / "k"
    shutil.copytree(run, dst)
    return dst


def refused(p: subprocess.CompletedProcess, *needles: str) -> str:
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def test_dropped_wal_is_refused_as_lost_ticks(killed, tmp_path):
    run = copy(killed, tmp_path, "wal")
    committed = json.loads((run / "checkpoint.json").read_text())["tick"]
    (run / "journal.sqlite-wal").unlink()
    (run / "journal.sqlite-shm").unlink(missing_ok=True)
    # Without its -wal the database is an older, self-consistent journal: only the marker tells.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(run / "journal.sqlite", alone / "journal.sqlite")
    older = checkpoint_tick(alone / "journal.sqlite")
    assert older is not None and older < committed
    line = refused(resume(run.parent), str(run / "journal.sqlite"), "lost committed ticks",
                   f"ends at checkpoint tick {older}, but tick {committed} was committed")
    assert line.endswith("Refusing to resume")
    assert checkpoint_tick(run / "journal.sqlite") == older  # nothing was written


def test_truncated_journal_is_refused(killed, tmp_path):
    run = copy(killed, tmp_path, "truncated")
    f = run / "journal.sqlite"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    refused(resume(run.parent), str(f), "is damaged (SQLite integrity_check:", "refusing to resume")
    assert len(f.read_bytes()) == len(data) // 2


def test_flipped_bytes_in_the_middle_are_refused(killed, tmp_path):
    run = copy(killed, tmp_path, "flipped")
    (run / "journal.sqlite-wal").unlink()  # checkpointed state only, so the flip is what is read
    (run / "journal.sqlite-shm").unlink(missing_ok=True)
    f = run / "journal.sqlite"
    data = bytearray(f.read_bytes())
    mid = len(data) // 2 // 4096 * 4096  # a page in the middle: its header and first cells
    for i in range(mid, mid + 512):
        data[i] ^= 0xFF
    f.write_bytes(bytes(data))
    refused(resume(run.parent), str(f), "refusing to resume")


def test_text_file_in_place_of_the_journal_is_refused(killed, tmp_path):
    run = copy(killed, tmp_path, "text")
    for extra in ("journal.sqlite-wal", "journal.sqlite-shm"):
        (run / extra).unlink(missing_ok=True)
    (run / "journal.sqlite").write_text("this is not a journal\n" * 200)
    refused(resume(run.parent), str(run / "journal.sqlite"), "is not a readable trimtab journal (file is not a database)")


def _set_checkpoint(run: Path, blob: bytes) -> None:
    """Replace the journal's checkpoint with ``blob`` and re-sign the marker, as an attacker
    who can write the run directory would (the marker is no defence against them: the decoder is)."""
    db = sqlite3.connect(run / "journal.sqlite")
    with db:
        db.execute("UPDATE checkpoints SET state = ?", (blob,))
        tick = db.execute("SELECT tick FROM checkpoints").fetchone()[0]
    db.close()
    (run / "checkpoint.json").write_text(json.dumps({"format": "trimtab-checkpoint-marker", "database": "journal.sqlite",
                                                     "tick": tick, "sha256": hashlib.sha256(blob).hexdigest()}))


def test_crafted_pickle_checkpoint_runs_nothing(killed, tmp_path):
    run = copy(killed, tmp_path, "pickle")
    pwned = tmp_path / "pwned"
    _set_checkpoint(run, pickle.dumps({"engine": Payload(pwned)}))
    line = refused(resume(run.parent), str(run), "not a trimtab checkpoint: it is a Python pickle, which trimtab never loads")
    assert "refusing to resume" in line
    assert not pwned.exists()


@pytest.mark.parametrize("blob, needle", [
    (os.urandom(4096), "not a trimtab checkpoint"),
    (b'{"format": "trimtab-checkpoint", "version": 2, "kind": "engine", "state": {}}', "version 2, this trimtab reads version 1"),
    (b'{"format": "trimtab-checkpoint", "version": 1, "kind": "engine", "state": {"next_tick": 3}}', "field book: Field required"),
])
def test_garbage_checkpoint_is_refused(killed, tmp_path, blob, needle):
    run = copy(killed, tmp_path, "garbage")
    _set_checkpoint(run, blob)
    refused(resume(run.parent), str(run), needle)


def test_intact_copy_resumes_to_the_uninterrupted_result(killed, tmp_path, market, flagship):
    run = copy(killed, tmp_path, "intact")
    p = resume(run.parent)
    assert p.returncode == 0, p.stderr
    resumed = json.loads(p.stdout)
    whole = run_backtest(flagship, start=START, end=END, out=tmp_path, run_id="whole", data=market).summary
    assert resumed["final_equity"] == whole["final_equity"]
    assert resumed["final_positions"] == whole["final_positions"]
    assert resumed["reconciliation_error"] <= 1e-9 * resumed["initial_equity"]
    fills = "SELECT fill_id, tick, plan_id, step_id, operation, price, legs FROM fills ORDER BY fill_id"
    a, b = sqlite3.connect(run / "journal.sqlite"), sqlite3.connect(tmp_path / "whole" / "journal.sqlite")
    try:
        assert a.execute(fills).fetchall() == b.execute(fills).fetchall()
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------- portfolios
PORTFOLIO = ROOT / "configs" / "portfolio_strategies.yaml"


def portfolio(*args):
    return subprocess.run([sys.executable, "-m", "trimtab.portfolio", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def stopped_portfolio(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("portfolio")
    p = portfolio("run", PORTFOLIO, "--start", "2024-06-01", "--end", "2024-06-20", "--out", out, "--run-id", "p", "--stop-at", 200)
    assert p.returncode == 0 and "stopped at tick 200" in p.stderr, p.stderr
    return out / "p"


def test_portfolio_crafted_pickle_and_damaged_sleeve_journal_are_refused(stopped_portfolio, tmp_path):
    run = tmp_path / "pickle" / "p"
    shutil.copytree(stopped_portfolio, run)
    pwned = tmp_path / "pwned"
    blob = pickle.dumps({"portfolio": Payload(pwned)})
    db = sqlite3.connect(run / "portfolio.sqlite")
    with db:
        db.execute("UPDATE checkpoints SET state = ?", (blob,))
    db.close()
    (run / "checkpoint.json").write_text(json.dumps({"format": "trimtab-checkpoint-marker", "database": "portfolio.sqlite",
                                                     "tick": 199, "sha256": hashlib.sha256(blob).hexdigest()}))
    refused(portfolio("resume", run), str(run), "checkpoint at tick 199: not a trimtab checkpoint: it is a Python pickle")
    assert not pwned.exists()

    run = tmp_path / "sleeve" / "p"
    shutil.copytree(stopped_portfolio, run)
    sleeve = sorted((run / "sleeves").iterdir())[0] / "journal.sqlite"
    sleeve.write_text("not a journal\n" * 100)
    for extra in ("-wal", "-shm"):
        Path(str(sleeve) + extra).unlink(missing_ok=True)
    refused(portfolio("resume", run), str(sleeve), "is not a readable trimtab journal (file is not a database)")

    run = tmp_path / "rows" / "p"
    shutil.copytree(stopped_portfolio, run)
    sleeve = sorted((run / "sleeves").iterdir())[0]
    db = sqlite3.connect(sleeve / "journal.sqlite")
    with db:
        db.execute("DELETE FROM series WHERE tick = 150")
    db.close()
    refused(portfolio("resume", run), str(sleeve), "checkpoint at tick 199 does not match the journal: series holds 199 ticks")

    run = tmp_path / "intact" / "p"
    shutil.copytree(stopped_portfolio, run)
    p = portfolio("resume", run)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["reconciliation"]["ok"] is True
