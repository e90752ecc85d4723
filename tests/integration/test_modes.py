"""Every seed mode as a config-only strategy on real data (issue 3), with closed-form checks."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from trimtab.config.load import load_strategy
from trimtab.engine.backtest import run_backtest

ROOT = Path(__file__).resolve().parents[2]
from conftest import MODES  # noqa: E402  (mode_runs, the runs of every mode, is a conftest fixture)


def fills(run):
    db = sqlite3.connect(run.run_dir / "journal.sqlite")
    db.row_factory = sqlite3.Row
    return [dict(r) | {"legs": json.loads(r["legs"])} for r in db.execute("SELECT * FROM fills ORDER BY fill_id")]


@pytest.mark.parametrize("mode", MODES)
def test_mode_runs_and_reconciles(mode, mode_runs):
    s = mode_runs[mode].summary
    cap = s["initial_equity"]
    assert s["mode"] == mode
    assert s["reconciliation_error"] <= 1e-6 * cap
    assert abs(sum(s["attribution"].values()) - (s["final_equity"] - cap - s["net_flows"])) <= 1e-6 * cap
    assert s["positions_match_fills"] is True
    assert s["failed_plans"] == 0, s["last_plan_failure"]
    assert s["liquidations"] == 0
    assert s["plans"] >= 1 and s["final_equity"] > 0
    days = (json.loads((mode_runs[mode].run_dir / "summary.json").read_text())["end"] > "2025-09")
    assert days, "the default window runs to the end of the data"


def test_share_classes_are_reported_in_their_own_unit(mode_runs):
    assert mode_runs["eth_staking_only"].summary["share_class"] == "ETH"
    assert mode_runs["eth_staking_only"].summary["initial_equity"] == 30
    assert mode_runs["ml_btc_directional_usdt_margin"].summary["share_class"] == "BTC"
    # Staking in ETH terms never loses more than costs, whatever ETH did in dollars.
    s = mode_runs["eth_staking_only"].summary
    assert s["final_equity"] > s["initial_equity"] and s["max_drawdown"] < 0.01


def test_pure_lending_follows_the_real_liquidity_index(mode_runs, market):
    run = mode_runs["pure_lending_usdt"]
    s = run.summary
    f = fills(run)
    supply = [x for x in f if x["operation"] == "supply" and x["category"] != "gas"]
    assert len(supply) >= 1
    idx = market.field("aave.USDT.liquidity_index")
    end = market.position(s["end"].replace("Z", ""))
    # Every supply accrues by the real index ratio from its tick to the end (closed form).
    assert not [x for x in f if x["operation"] == "withdraw"]  # set and forget
    expected_a = sum(x["legs"][0][2] * idx[end] / x["price"] for x in supply)
    scaled = s["final_positions"]["aave_v3:aToken:aUSDT"]
    assert scaled * idx[end] == pytest.approx(expected_a, rel=1e-9)
    # Final equity = capital less what the journal records was spent (USDT for gas ETH),
    # grown by the index, plus what the wallet holds (USDT and ETH at the end price).
    spent_usdt = sum(-l[1] for x in f if x["operation"] == "swap" for l in x["legs"] if l[0] == "wallet:BaseToken:USDT" and l[1] < 0)
    eth_end = market.field("spot.bybit.ETHUSDT.close")[end]
    wallet = s["final_positions"].get("wallet:BaseToken:USDT", 0.0) + s["final_positions"].get("wallet:BaseToken:ETH", 0.0) * eth_end
    supplied = sum(x["legs"][0][2] for x in supply)
    assert supplied == pytest.approx(s["initial_equity"] - spent_usdt - s["final_positions"].get("wallet:BaseToken:USDT", 0.0), rel=1e-9)
    assert s["final_equity"] == pytest.approx(expected_a + wallet, rel=1e-9)
    assert s["attribution"]["supply_yield"] == pytest.approx(expected_a - supplied, rel=1e-6)


def test_staking_only_follows_the_real_weeth_rate(mode_runs, market):
    run = mode_runs["eth_staking_only"]
    s = run.summary
    f = fills(run)
    stakes = [x for x in f if x["operation"] == "stake" and x["category"] != "gas"]
    assert stakes
    rate = market.field("oracle.weETH_ETH.price")
    end = market.position(s["end"].replace("Z", ""))
    units = sum(x["legs"][1][1] for x in stakes)
    assert units == pytest.approx(sum(x["legs"][0][2] / x["price"] for x in stakes), rel=1e-12)
    assert s["final_positions"]["wallet:BaseToken:weETH"] == pytest.approx(units, rel=1e-12)
    # Closed form in ETH: ETH staked grows by the oracle ratio; the rest is wallet ETH (capital
    # less staked ETH, less gas, plus reward dust sold into ETH) as recorded.
    staked_eth_at_end = sum(x["legs"][0][2] * rate[end] / x["price"] for x in stakes)
    dust = sum(s["final_positions"].get(f"wallet:BaseToken:{t}", 0.0) * market.field(f"dex.uniswapv3.{t}WETH.close")[end]
               for t in ("EIGEN", "ETHFI"))  # reward tokens not yet sold, valued in ETH
    assert s["final_equity"] == pytest.approx(staked_eth_at_end + s["final_positions"].get("wallet:BaseToken:ETH", 0.0) + dust, rel=1e-9)
    assert s["attribution"]["staking_yield"] == pytest.approx(staked_eth_at_end - sum(x["legs"][0][2] for x in stakes), rel=1e-6)
    assert s["attribution"]["rewards"] > 0 and s["rewards_received"]["EIGEN"] > 0


def test_basis_funding_equals_position_times_mark_times_rate(mode_runs, market):
    run = mode_runs["btc_basis"]
    f = fills(run)
    sizes: dict[str, float] = {}
    expected = recorded = 0.0
    n = 0
    for x in f:
        if x["operation"] == "funding":
            venue = x["venue"]
            key = f"{venue}:Perp:BTCUSDT"
            i = market.position(x["time"].replace("Z", ""))
            rate = market.field(f"funding.{venue}.BTCUSDT.rate")[i]
            if rate == rate and market.age_hours(f"perp.{venue}.BTCUSDT")[i] <= 3:
                expected += -sizes[key] * market.field(f"perp.{venue}.BTCUSDT.close")[i] * rate
                recorded += x["legs"][0][1]
                n += 1
        for k, d, _ in x["legs"]:
            if ":Perp:" in k:
                sizes[k] = sizes.get(k, 0.0) + d
    assert n > 1500
    assert recorded == pytest.approx(expected, rel=1e-9)
    assert run.summary["attribution"]["funding"] == pytest.approx(sum(x["legs"][0][1] for x in f if x["operation"] == "funding"), rel=1e-9)
    assert recorded > 0  # shorts earned funding over 2024-25


def test_signal_mode_trades_the_signals_with_stops(mode_runs):
    run = mode_runs["ml_usdt_directional_usdt_margin"]
    f = fills(run)
    kinds = {x["operation"] for x in f}
    assert {"trade", "stop_loss", "take_profit"} <= kinds
    for x in f:
        if x["operation"] in ("stop_loss", "take_profit"):
            assert x["price_field"].startswith("perp.binance.BTCUSDT.")
            assert x["price_field"].rsplit(".", 1)[1] in ("high", "low")


def test_wsteth_by_one_field(market, tmp_path):
    text = (ROOT / "configs" / "eth_staking_only.yaml").read_text().replace("    lst: weETH ", "    lst: wstETH ")
    cfg = ROOT / "configs" / f"_wsteth_{tmp_path.name}.yaml"
    cfg.write_text(text)
    try:
        s = load_strategy(cfg)
    finally:
        cfg.unlink()
    assert s.config.targets[0].lst_venue == "lido"
    r = run_backtest(s, start="2024-06-01", end="2024-09-01", out=tmp_path, run_id="w", data=market)
    assert "wallet:BaseToken:wstETH" in r.summary["final_positions"]
    assert r.summary["attribution"]["staking_yield"] > 0
    assert not r.summary["rewards_received"]  # EIGEN/ETHFI drops go to weETH holders only
