"""Issue 16's walkthrough: what a new user does to trade a market trimtab does not ship, with
no Python edit, every step a real `.venv/bin/trimtab` subprocess (README "Bring your own data"
and "Writing your own strategy" tell the same story).

In a scratch copy of the project (configs, venues, rules, machines) and of the data directory:
import CSVs for a new symbol (SOL perp candles, SOL spot candles and SOL funding on a new
exchange "myex", written as a user's export: scaled transformations of bundled series, with a
few bad rows), declare the venue and its instruments in YAML, price SOL in the wallet, write a
SOL basis strategy, then validate, audit, run, explain --at and compare it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
TRIMTAB = ROOT / ".venv" / "bin" / "trimtab"
START, END = "2025-01-01", "2025-02-01"
SOL_PER_ETH = 0.06      # the user's "SOL" prices: ETH prices scaled, so the market is real

VENUE = """\
# My exchange: a SOL USDT-margined perpetual and SOL spot (data: trimtab data import).
name: myex
model: cex_perp
description: myex SOL perpetual and spot.
instruments:
  - {key: "myex:Perp:SOLUSDT", asset: SOL, mark_field: perp.myex.SOLUSDT.close, funding_field: funding.myex.SOLUSDT.rate, cost_pair: ETHUSDT-PERP}
  - {key: "myex:Margin:USDT", asset: USDT}
  - {key: "myex:BaseToken:SOL", asset: SOL}
  - {key: "myex:Transit:USDT", asset: USDT}
operations:
  trade: {fee_bps: 5.0, min_notional: 5.0}
  deposit: {latency_s: 900}
  withdraw: {latency_s: 1800, fee: 1.0}
  spot_trade: {fee_bps: 10.0, min_notional: 5.0}
perp:
  initial_margin: 0.10
  funding_interval_h: 8
  funding_hours_utc: [0, 8, 16]
  stale_after_h: 3
  risk_limits:
    "myex:Perp:SOLUSDT":
      source: "myex published brackets"
      tiers:
        - {cap: 1000000, mmr: 0.01, cum: 0, max_leverage: 50}
        - {cap: 10000000, mmr: 0.025, cum: 15000, max_leverage: 20}
"""

CONFIG = """\
# SOL basis trade on myex: long SOL spot, short the SOL perp of the same size.
name: sol_basis
description: Long SOL spot, short SOL perp on myex.
machine: lifecycle
rules: [risk, lifecycle]
venues: [wallet, uniswap_v3, myex]
share_class: USDT
asset: SOL
capital: 100000
parameters:
  spot_allocation: 0.5
  gas_reserve_eth: 0.02
targets:
  - id: spot
    template: spot
    allocation: spot_allocation
    instrument: "myex:BaseToken:SOL"
    price_field: spot.myex.SOLUSDT.close
    fee_bps: 10
    cost_pair: ETHUSDT-PERP   # the cost table has no SOL row: the closest CEX spread
  - id: hedge
    template: perp_hedge
    allocation: 1 - spot_allocation
    hedges: [spot]
    legs:
      - {instrument: "myex:Perp:SOLUSDT", weight: 1}
  - id: gas
    template: wallet_reserve
    instrument: "wallet:BaseToken:ETH"
    amount: gas_reserve_eth
    swap_venue: uniswap_v3
"""


def trimtab(cwd: Path, *args: str, data: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRIMTAB_DATA"}
    pre = ["--data", str(data)] if data is not None else []
    return subprocess.run([str(TRIMTAB), *pre, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _user_csvs(tmp: Path) -> dict[str, Path]:
    """The user's exports: ISO timestamps, a NaN close, a negative price and a repeated bar."""
    def window(name):
        f = pd.read_parquet(ROOT / "data" / "series" / f"{name}.parquet")
        return f[(f.ts >= "2024-12-01") & (f.ts < "2025-03-01")].reset_index(drop=True)

    out = {}
    for series, src in (("perp", "perp.binance.ETHUSDT"), ("spot", "spot.bybit.ETHUSDT")):
        w = window(src)
        df = pd.DataFrame({"timestamp": w.ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
                           **{c: w[c] * SOL_PER_ETH for c in ("open", "high", "low", "close")},
                           "volume": w.volume / SOL_PER_ETH})
        if series == "perp":
            df.loc[5, "close"] = float("nan")
            df.loc[6, "low"] = -1.0
            df = pd.concat([df, df.iloc[[10]]], ignore_index=True)   # the same bar exported twice
        out[series] = tmp / f"myex_SOLUSDT_{series}_1h.csv"
        df.to_csv(out[series], index=False)
    f = window("funding.binance.ETHUSDT")
    out["funding"] = tmp / "myex_SOLUSDT_funding.csv"
    pd.DataFrame({"funding_timestamp": f.ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "funding_rate": f.rate * 1.2}).to_csv(out["funding"], index=False)
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("walkthrough")
    for d in ("configs", "venues", "rules", "machines"):
        shutil.copytree(ROOT / d, tmp / d)
    shutil.copytree(ROOT / "data", tmp / "mydata")
    return tmp, tmp / "mydata"


def test_walkthrough_new_symbol_config_only(project):
    tmp, data = project
    csv = _user_csvs(tmp)

    # 1. Import the user's files: each becomes a series a config can name at once.
    p = trimtab(tmp, "data", "import", "perp.myex.SOLUSDT", str(csv["perp"]), data=data)
    assert p.returncode == 0, p.stderr
    assert "imported perp.myex.SOLUSDT" in p.stdout
    # the bad rows are reported by reason, never zero-filled
    assert "unparsable 1" in p.stdout and "non_positive_price 1" in p.stdout and "duplicate 1" in p.stdout
    p = trimtab(tmp, "data", "import", "spot.myex.SOLUSDT", str(csv["spot"]), data=data)
    assert p.returncode == 0, p.stderr
    p = trimtab(tmp, "data", "import", "funding.myex.SOLUSDT", str(csv["funding"]), "--kind", "event",
                "--interval", "8h", data=data)
    assert p.returncode == 0, p.stderr
    assert "funding.myex.SOLUSDT.rate" in p.stdout

    p = trimtab(tmp, "data", "info", "--json", data=data)
    assert p.returncode == 0, p.stderr
    info = {r["series"]: r for r in json.loads(p.stdout)["series"]}
    perp = info["perp.myex.SOLUSDT"]
    src = pd.read_csv(csv["perp"])
    assert perp["status"] == "ok" and perp["rows"] == len(src) - 3        # NaN, negative, repeated bar
    assert info["funding.myex.SOLUSDT"]["interval_h"] == 8.0
    assert perp["first_available"] == "2024-12-01T01:00:00Z"              # a bar is known at its close

    # 2. The venue, its instruments and the SOL price: YAML only.
    (tmp / "venues" / "myex.yaml").write_text(VENUE)
    wallet = (tmp / "venues" / "wallet.yaml").read_text()
    wallet = wallet.replace('  - {key: "wallet:Transit:USDT"', '  - {key: "wallet:BaseToken:SOL", asset: SOL}\n'
                                                                 '  - {key: "wallet:Transit:USDT"', 1)
    wallet = wallet.replace("\nassets:\n", "\nassets:\n  SOL: {usd_field: spot.myex.SOLUSDT.close, delta_asset: SOL}\n", 1)
    (tmp / "venues" / "wallet.yaml").write_text(wallet)
    (tmp / "configs" / "sol_basis.yaml").write_text(CONFIG)
    cfg = "configs/sol_basis.yaml"

    # 3. validate and audit, against the user's data directory
    p = trimtab(tmp, "validate", cfg, data=data)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ok: configs/sol_basis.yaml" in p.stdout
    without = trimtab(tmp, "validate", cfg)          # the bundled data alone does not know SOL
    assert without.returncode != 0 and "perp.myex.SOLUSDT" in without.stdout + without.stderr
    p = trimtab(tmp, "audit", cfg, "--start", START, "--end", END, "--format", "json", data=data)
    assert p.returncode == 0, p.stdout + p.stderr
    findings = json.loads(p.stdout)
    flat = json.dumps(findings)
    assert '"severity": "error"' not in flat

    # 4. run
    p = trimtab(tmp, "run", cfg, "--start", START, "--end", END, "--out", "runs", "--run-id", "sol", "--json", data=data)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["name"] == "sol_basis" and s["positions_match_fills"] is True
    assert abs(s["reconciliation_error"]) < 1e-6 * s["initial_equity"]
    assert s["attribution"]["funding"] != 0                  # the imported funding was settled
    assert s["start"].startswith(START) and s["end"].startswith(END)

    # 5. explain a decision
    p = trimtab(tmp, "explain", "runs/sol", "--at", "2025-01-10T12:00Z", data=data)
    assert p.returncode == 0, p.stderr
    assert "sol_basis" in p.stdout and "margin_ratio.myex" in p.stdout and "state in force" in p.stdout

    # 6. compare, two worker processes: they read the same --data directory
    p = trimtab(tmp, "compare", cfg, "configs/pure_lending_usdt.yaml", "--start", START, "--end", END,
                "--out", "cmp", "--jobs", "2", "--json", data=data)
    assert p.returncode == 0, p.stderr
    rows = {r["mode"]: r for r in json.loads(p.stdout)["rows"]}
    assert set(rows) == {"sol_basis", "pure_lending_usdt"}
    assert rows["sol_basis"]["final_equity"] == pytest.approx(s["final_equity"], rel=1e-12)
