"""The same run gives the same journal in every process: nothing a run computes may depend on
Python's per-process string hashing (set and dict-of-set iteration order), which changes the
order of float sums and so their last digits. Two real `trimtab run` subprocesses with
different PYTHONHASHSEED values must write identical fills, metrics and ledgers."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from trimtab.engine.journal import read_ledger, read_metrics

ROOT = Path(__file__).resolve().parents[2]
TRIMTAB = Path(sys.executable).parent / "trimtab"

CASES = [
    # the flagship through the August 2024 crash: entry, three perp venues, emergency, re-entry
    ("usdt_eth_staking_hedged_leveraged", "2024-07-25", "2024-08-12"),
    # the drift basket: many tokens, routed swaps
    ("portfolio_drift", "2024-06-01", "2024-07-15"),
]


def _journal(run_dir: Path) -> tuple:
    path = next(run_dir.rglob("journal.sqlite"))
    db = sqlite3.connect(path)
    try:
        fills = db.execute("SELECT tick, venue, operation, category, price, impact, legs FROM fills ORDER BY fill_id").fetchall()
        metrics = [(r.tick, r.state, sorted(r.metrics.items())) for r in read_metrics(db)]
        ledger = sorted((t, sorted(a.items())) for t, a in read_ledger(db).items())
    finally:
        db.close()
    return fills, metrics, ledger


@pytest.mark.parametrize("config, start, end", CASES)
def test_two_hash_seeds_write_the_same_journal(tmp_path, config, start, end):
    got = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        p = subprocess.run([str(TRIMTAB), "run", f"configs/{config}.yaml", "--start", start, "--end", end,
                            "--out", str(tmp_path / seed), "--run-id", "r", "--json"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-2000:]
        got.append(_journal(tmp_path / seed / "r"))
    (f1, m1, l1), (f2, m2, l2) = got
    assert f1 and m1
    assert f1 == f2, "fills differ between hash seeds"
    assert m1 == m2, "metrics differ between hash seeds"
    assert l1 == l2, "ledger differs between hash seeds"
