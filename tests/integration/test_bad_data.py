"""Fault injection: a copy of the bundled data with a x100 spike, a zero, a NaN, a duplicated
timestamp and a missing week in each kind of series the flagship reads (perp mark, the ETH
valuation reference, the LST/ETH oracle rate, an Aave index, funding), run by a real
`trimtab run --json` pointed at it with TRIMTAB_DATA.

The faults sit where the clean run trades: the Binance ETH mark is x100 at the entry tick
(2024-08-01 01:00) and zero at the rebalance tick (2024-08-06 01:00); the weETH/ETH rate is
x100 on the day of the re-entry (2024-08-06); the WETH debt index x100 would liquidate the
Aave position if it were believed. A control run with the bands opened wide shows the same
data traded and liquidated; `trimtab audit` warns of the faulty rows before any run.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"
WINDOW = ["--start", "2024-08-01", "--end", "2024-09-15"]

# series -> column -> {fault: observation time (ts)}; "week" removes [ts, ts + 7 days).
FAULTS = {
    "perp.binance.ETHUSDT": ("close", {"spike": "2024-08-01 00:00", "zero": "2024-08-06 00:00", "nan": "2024-08-10 05:00",
                                       "dup": "2024-08-12 07:00", "week": "2024-08-20 00:00"}),
    "spot.bybit.ETHUSDT": ("close", {"spike": "2024-08-06 01:00", "zero": "2024-08-03 12:00", "nan": "2024-08-08 12:00",
                                     "dup": "2024-08-13 07:00", "week": "2024-09-01 00:00"}),
    "oracle.weETH_ETH": ("price", {"spike": "2024-08-06", "zero": "2024-08-09", "nan": "2024-08-11",
                                   "dup": "2024-08-14", "week": "2024-08-25"}),
    "aave.WETH": ("variable_borrow_index", {"spike": "2024-08-10", "zero": "2024-08-12", "nan": "2024-08-15",
                                            "dup": "2024-08-17", "week": "2024-09-02"}),
    "funding.binance.ETHUSDT": ("rate", {"spike": "2024-08-01 16:00", "zero": "2024-08-02 08:00", "nan": "2024-08-04 08:00",
                                         "dup": "2024-08-05 16:00", "week": "2024-08-28 00:00"}),
}
# Ticks each series must be quarantined: hourly bars one tick per bad bar; daily samples until
# the next sample (24 ticks); funding at its settlement tick only. A zero funding rate is an
# ordinary rate, not a fault.
EXPECTED = {
    "perp.binance.ETHUSDT": {"cross_venue": 1, "zero": 1, "nan": 1},
    "spot.bybit.ETHUSDT": {"cross_venue": 1, "zero": 1, "nan": 1},
    "oracle.weETH_ETH": {"jump": 24, "zero": 24, "nan": 24},
    "aave.WETH": {"index_jump": 24, "zero": 24, "nan": 24},
    "funding.binance.ETHUSDT": {"funding_deviation": 1, "nan": 1},
}


def _inject(data_dir: Path) -> dict[str, dict[str, float]]:
    """Edit the copied parquet files; returns series -> fault -> the faulty value written."""
    written: dict[str, dict[str, float]] = {}
    for series, (col, faults) in FAULTS.items():
        path = data_dir / "series" / f"{series}.parquet"
        df = pd.read_parquet(path)
        at = {k: pd.Timestamp(v, tz="UTC") for k, v in faults.items()}
        row = {k: int(np.flatnonzero(df["ts"] == t)[0]) for k, t in at.items()}
        original = float(df.at[row["spike"], col])
        df.loc[row["spike"], col] = original * 100
        df.loc[row["zero"], col] = 0.0
        df.loc[row["nan"], col] = np.nan
        written[series] = {"spike": original * 100, "zero": 0.0}
        dup = df.iloc[[row["dup"]]].copy()
        dup[col] = dup[col] * (1 + 1e-6)          # a second, slightly different row at the same time
        df = pd.concat([df.iloc[: row["dup"] + 1], dup, df.iloc[row["dup"] + 1:]], ignore_index=True)
        week = (df["ts"] >= at["week"]) & (df["ts"] < at["week"] + pd.Timedelta(days=7))
        df = df[~week].reset_index(drop=True)
        df.to_parquet(path, index=False)
    return written


def _run(config: Path, data_dir: Path, out: Path) -> tuple[dict, sqlite3.Connection]:
    env = {**os.environ, "TRIMTAB_DATA": str(data_dir)}
    proc = subprocess.run([sys.executable, "-m", "trimtab.cli.main", "run", str(config), *WINDOW, "--out", str(out), "--json"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    summary = json.loads(proc.stdout)
    return summary, sqlite3.connect(Path(summary["run_dir"]) / "journal.sqlite")


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("bad_data") / "data"
    shutil.copytree(ROOT / "data", data_dir)
    return data_dir, _inject(data_dir)


@pytest.fixture(scope="module")
def bad_run(bad_data, tmp_path_factory):
    data_dir, written = bad_data
    summary, db = _run(CONFIG, data_dir, tmp_path_factory.mktemp("runs"))
    yield summary, db, written
    db.close()


def test_every_fault_is_quarantined_in_the_summary(bad_run):
    summary, _, _ = bad_run
    q = summary["quarantined"]
    assert {s: q[s]["reasons"] for s in q} == EXPECTED
    assert q["perp.binance.ETHUSDT"]["first"] == "2024-08-01T01:00Z"      # the entry tick
    assert q["oracle.weETH_ETH"]["first"] == "2024-08-06T00:00Z"


def test_every_quarantined_tick_is_in_the_journal_with_its_faulty_value(bad_run):
    summary, db, written = bad_run
    rows = db.execute("SELECT series, reason, COUNT(*) FROM quarantine GROUP BY series, substr(reason, 1, instr(reason || ':', ':') - 1)").fetchall()
    assert sum(n for _, _, n in rows) == sum(sum(v.values()) for v in EXPECTED.values())
    for series, vals in written.items():
        got = {v for (v,) in db.execute("SELECT value FROM quarantine WHERE series = ?", (series,))}
        assert vals["spike"] in got, series
        if series != "funding.binance.ETHUSDT":
            assert 0.0 in got and None in got, series            # the zero, and the NaN stored as NULL
    assert db.execute("SELECT COUNT(*) FROM quarantine WHERE time = '2024-08-01T01:00Z' AND field = 'perp.binance.ETHUSDT.close'").fetchone()[0] == 1


def test_no_fill_is_priced_from_a_quarantined_series(bad_run):
    _, db, written = bad_run
    fills = db.execute("SELECT tick, venue, operation, price, price_field FROM fills WHERE price IS NOT NULL").fetchall()
    assert fills, "the run traded nothing: the test would prove nothing"
    bad = {(t, s) for t, s in db.execute("SELECT tick, series FROM quarantine")}
    for tick, venue, op, price, field in fills:
        series = field.rsplit(".", 1)[0]
        assert (tick, series) not in bad, (tick, venue, op, price, field)
        for vals in written.values():
            assert not math.isclose(price, vals["spike"], rel_tol=1e-3), (tick, venue, op, price, field)
        assert price != 0.0 or op == "funding"      # a zero funding rate is an ordinary rate
    # The entry hedge still happened, on the venues whose marks were good.
    entry = {v for v, in db.execute("SELECT venue FROM fills WHERE tick = 1 AND operation = 'trade'")}
    assert "bybit" in entry and "binance" not in entry


def test_no_liquidation_and_reconciled(bad_run):
    summary, db, _ = bad_run
    assert summary["liquidations"] == 0
    assert db.execute("SELECT COUNT(*) FROM fills WHERE operation = 'liquidation'").fetchone()[0] == 0
    hf = db.execute("SELECT MIN(health_factor) FROM metrics WHERE health_factor IS NOT NULL").fetchone()[0]
    assert hf > 1.05                                   # the x100 debt index was never believed
    assert summary["reconciliation_error"] <= 1e-9 * summary["initial_equity"]
    assert summary["positions_match_fills"] is True


def test_duplicates_and_missing_weeks_are_reported(bad_run):
    summary, _, _ = bad_run
    notes = {n["series"]: n for n in summary["data_gaps"]}
    for series, (_, faults) in FAULTS.items():
        note = notes[series]
        dup = pd.Timestamp(faults["dup"], tz="UTC")
        assert any(d["values_differ"] and d["rows"] == 2 and d["time"] == f"{dup:%Y-%m-%d %H:%M}" for d in note["duplicates"]), series
        assert any(g["hours"] >= 7 * 24 for g in note["gaps"]), series     # the valuation reference included


def test_a_zero_oracle_with_no_good_value_before_it_is_a_one_line_data_error(tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(ROOT / "data", data_dir)
    path = data_dir / "series" / "oracle.weETH_ETH.parquet"
    df = pd.read_parquet(path)
    df.loc[df["ts"] <= pd.Timestamp("2024-08-01", tz="UTC"), "price"] = 0.0
    df.to_parquet(path, index=False)
    env = {**os.environ, "TRIMTAB_DATA": str(data_dir)}
    proc = subprocess.run([sys.executable, "-m", "trimtab.cli.main", "run", str(CONFIG), "--start", "2024-08-01", "--end", "2024-08-03",
                           "--out", str(tmp_path / "runs"), "--json"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "ZeroDivisionError" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.endswith("oracle.weETH_ETH is quarantined at 2024-08-01 00:00Z: oracle.weETH_ETH.price = 0.0 (zero), "
                         "and it has no earlier good value to fall back on; cannot value or trade on it"), line


def test_with_the_bands_opened_the_same_data_is_traded_and_liquidated(bad_data, tmp_path):
    """The control: a data_checks block that lets every spike through (only NaN, zero and
    falling indices are still caught) -- the x100 mark is traded and liquidates the account."""
    data_dir, written = bad_data
    for d in ("machines", "rules", "venues"):
        (tmp_path / d).symlink_to(ROOT / d)
    (tmp_path / "configs").mkdir()
    config = tmp_path / "configs" / "open.yaml"
    config.write_text(CONFIG.read_text() + "data_checks: {max_cross_venue_deviation: 1000, max_jump: 1000, "
                      "max_funding_deviation: 1000, max_index_growth_per_day: 1000}\n")
    summary, db = _run(config, data_dir, tmp_path / "runs")
    spike = written["perp.binance.ETHUSDT"]["spike"]
    traded = [p for p, in db.execute("SELECT price FROM fills WHERE venue = 'binance' AND operation IN ('trade', 'liquidation')")]
    assert any(math.isclose(p, spike, rel_tol=1e-3) for p in traded)
    assert summary["liquidations"] > 0
    assert "perp.binance.ETHUSDT" not in summary["quarantined"] or "cross_venue" not in summary["quarantined"]["perp.binance.ETHUSDT"]["reasons"]
    db.close()


def test_the_audit_warns_of_the_faulty_rows_before_a_run(bad_data):
    data_dir, _ = bad_data
    env = {**os.environ, "TRIMTAB_DATA": str(data_dir)}
    proc = subprocess.run([sys.executable, "-m", "trimtab.cli.main", "audit", str(CONFIG), *WINDOW, "--format", "json"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    faulty = {f["message"].split("'")[1]: f for f in report["configs"][0]["findings"] if "faulty rows" in f["message"]}
    assert set(faulty) == set(EXPECTED)
    # faulty rows have their own code: a config's acknowledged gaps (audit.accept data-gaps@...) never hide them
    assert all(f["code"] == "data-faulty-rows" and f["severity"] == "warning" and not f.get("accepted") for f in faulty.values())
    assert "3 faulty rows in the window (cross_venue x1, nan x1, zero x1), first at 2024-08-01 01:00" in faulty["perp.binance.ETHUSDT"]["message"]
    assert faulty["spot.bybit.ETHUSDT"]["file"] == "venues/wallet.yaml"          # located at the field naming the series
