"""The side-by-side view and CLI capital flows, through the real command line."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from trimtab.compare import benchmark_apy, common_window
from trimtab.config.load import load_strategy

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "trimtab.cli.main", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_compare_two_modes_side_by_side(tmp_path):
    p = cli("compare", "configs/pure_lending_usdt.yaml", "configs/eth_staking_only.yaml",
            "--start", "2024-06-01", "--end", "2024-08-01", "--out", str(tmp_path), "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["window"] == {"start": "2024-06-01T00:00Z", "end": "2024-08-01T00:00Z"}
    assert [x["mode"] for x in r["rows"]] == ["pure_lending_usdt", "eth_staking_only"]
    assert r["rows"][0]["target_apy"] == 0.05 and r["rows"][1]["share_class"] == "ETH"
    assert 0.03 < r["benchmark"]["apy"] < 0.5  # sUSDe paid double digits through mid 2024
    for x in r["rows"]:
        assert x["reconciliation_error"] <= 1e-6 * x["initial_equity"]
        assert Path(x["run_dir"], "journal.sqlite").exists()
    human = cli("compare", "configs/pure_lending_usdt.yaml", "--start", "2024-06-01", "--end", "2024-07-01", "--out", str(tmp_path))
    assert human.returncode == 0, human.stderr
    assert "side by side" in human.stdout and "pure_lending_usdt" in human.stdout and "Ethena sUSDe" in human.stdout
    assert "P&L attribution" in human.stdout


def test_window_partly_before_the_common_window_is_clamped_to_it(tmp_path, market):
    s = [load_strategy(ROOT / "configs" / f"{m}.yaml") for m in ("pure_lending_usdt", "eth_staking_only")]
    a, _ = common_window(s, market)
    end = a + pd.Timedelta(days=10)
    # Inside pure lending's data but before weETH's: both rows still cover the same hours.
    p = cli("compare", "configs/pure_lending_usdt.yaml", "configs/eth_staking_only.yaml", "--start", "2024-02-01",
            "--end", f"{end:%Y-%m-%d %H:%M}", "--out", str(tmp_path), "--json")
    assert p.returncode == 0, p.stderr
    assert "only partly overlaps what the configs' common data covers" in p.stderr
    r = json.loads(p.stdout)
    assert r["window"]["start"] == f"{a:%Y-%m-%dT%H:%MZ}" and not r["failed"]
    for x in r["rows"]:
        summary = json.loads(Path(x["run_dir"], "summary.json").read_text())
        assert (summary["start"], summary["end"]) == (r["window"]["start"], r["window"]["end"]), x["mode"]


def test_common_window_is_the_intersection(market):
    s = [load_strategy(ROOT / "configs" / f"{m}.yaml") for m in ("pure_lending_usdt", "eth_staking_only")]
    a, b = common_window(s, market)
    # weETH data starts 2024-05-12 (first midnight sample 05-13); USDT lending has data from 2024-01-01.
    assert str(a.date()) == "2024-05-13" and b > a
    assert benchmark_apy(market, a, b) == pytest.approx(benchmark_apy(market, a, b))


def test_run_with_flows_on_the_command_line(tmp_path):
    p = cli("run", "configs/usdt_eth_staking_hedged_simple.yaml", "--start", "2024-06-01", "--end", "2024-07-15",
            "--flow", "2024-06-20:+20000", "--flow", "2024-07-05:-10000", "--out", str(tmp_path), "--json")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["net_flows"] == pytest.approx(10000, abs=1e-6)
    kinds = [f["kind"] for f in s["flows"]]
    assert kinds[:2] == ["deposit", "withdrawal_request"] and set(kinds[2:]) == {"payout"}
    assert sum(f["amount"] for f in s["flows"] if f["kind"] == "payout") == pytest.approx(10000, rel=1e-9)
    assert s["reconciliation_error"] <= 1e-6 * s["initial_equity"]
    bad = cli("run", "configs/usdt_eth_staking_hedged_simple.yaml", "--flow", "2024-06-20:lots", "--out", str(tmp_path))
    assert bad.returncode == 2 and "amount must be a number or 'all'" in bad.stderr
