"""`trimtab compare` on several cores: each config's backtest in its own worker process gives
the rows a sequential run gives, and a config that fails is reported without losing the others."""
import json
import subprocess
import sys
from pathlib import Path

from trimtab.compare import compare

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [ROOT / "configs" / f"{m}.yaml" for m in ("pure_lending_usdt", "eth_staking_only", "usdt_eth_staking_hedged_simple")]


def _same(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "run_dir"}  # each run has its own directory


def test_parallel_rows_equal_sequential_rows(tmp_path):
    seen = []
    seq = compare(CONFIGS, tmp_path / "seq", start="2024-07-01", end="2024-07-15", jobs=1)
    par = compare(CONFIGS, tmp_path / "par", start="2024-07-01", end="2024-07-15", jobs=2,
                  progress=lambda k, n, name, error: seen.append((k, n, name, error)))
    assert [r["mode"] for r in par["rows"]] == ["pure_lending_usdt", "eth_staking_only", "usdt_eth_staking_hedged_simple"]
    assert [_same(r) for r in par["rows"]] == [_same(r) for r in seq["rows"]]
    assert par["window"] == seq["window"] and par["benchmark"] == seq["benchmark"] and par["failed"] == {}
    assert sorted(k for k, *_ in seen) == [1, 2, 3] and {x[1] for x in seen} == {3}
    assert sorted(x[2] for x in seen) == sorted(r["mode"] for r in seq["rows"]) and all(x[3] is None for x in seen)
    for r in par["rows"]:   # every worker wrote its own run
        assert Path(r["run_dir"], "journal.sqlite").exists() and Path(r["run_dir"]).parent == Path(par["dir"])
    assert Path(par["dir"]).parent == tmp_path / "par" and Path(par["dir"]).name.startswith("compare-")


def test_a_failed_config_is_reported_and_the_others_kept(tmp_path):
    # weETH data starts 2024-05-12: eth_staking_only cannot run in March, pure lending can.
    p = subprocess.run([sys.executable, "-m", "trimtab.cli.main", "compare", "configs/pure_lending_usdt.yaml",
                        "configs/eth_staking_only.yaml", "--start", "2024-03-01", "--end", "2024-03-08",
                        "--out", str(tmp_path), "--jobs", "2", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 1, p.stderr
    r = json.loads(p.stdout)
    assert [x["mode"] for x in r["rows"]] == ["pure_lending_usdt"]
    assert list(r["failed"]) == ["configs/eth_staking_only.yaml"] and "outside" in r["failed"]["configs/eth_staking_only.yaml"]
    assert "eth_staking_only failed" in p.stderr and "error: configs/eth_staking_only.yaml" in p.stderr
