"""Deposits and withdrawals in the middle of a leveraged, hedged run (issue 3)."""
import json
import sqlite3

import pytest

from trimtab.engine.backtest import run_backtest
from trimtab.engine.flows import FlowError, parse_flow
from trimtab.engine.journal import metrics_at

LEGS = ["aave_v3:aToken:aweETH", "aave_v3:debtToken:debtWETH", "binance:Perp:ETHUSDT", "bybit:Perp:ETHUSDT"]


def positions_at(db, tick):
    pos = {}
    for (legs,) in db.execute("SELECT legs FROM fills WHERE tick <= ?", (tick,)):
        for k, d, _ in json.loads(legs):
            pos[k] = pos.get(k, 0.0) + d
    return pos


def test_deposit_and_withdrawal_move_every_leg_in_proportion(flagship, market, tmp_path):
    flows = [parse_flow("2024-07-01T00:00:+50000"), parse_flow("2024-07-20T00:00:-60000")]
    r = run_backtest(flagship, start="2024-06-01", end="2024-08-01", out=tmp_path, run_id="flows", data=market, flows=flows)
    s = r.summary
    assert s["reconciliation_error"] <= 1e-6 * s["initial_equity"]
    assert s["failed_plans"] == 0 and s["liquidations"] == 0
    assert s["net_flows"] == pytest.approx(50000 - 60000, abs=1e-6)
    assert [f["kind"] for f in s["flows"]] == ["deposit", "withdrawal_request", "payout"]
    db = sqlite3.connect(r.run_dir / "journal.sqlite")
    for trigger, state in (("deposit", "entry_partial"), ("withdraw", "exit_partial")):
        tick, = db.execute("SELECT tick FROM decisions WHERE trigger=? ORDER BY tick LIMIT 1", (trigger,)).fetchone()
        assert db.execute("SELECT dest FROM decisions WHERE tick=?", (tick,)).fetchone()[0] == state
        done, = db.execute("SELECT min(tick) FROM decisions WHERE trigger='complete' AND tick > ?", (tick,)).fetchone()
        before, after = positions_at(db, tick - 1), positions_at(db, done)
        # Every leg (collateral, debt, each perp) scales by one common ratio: the plan sizes the
        # whole position to the new equity (re-targeting the split ETH's move has shifted).
        ratios = [after[k] / before[k] for k in LEGS]
        for k, x in zip(LEGS, ratios):
            assert x == pytest.approx(ratios[0], rel=0.005), (trigger, k, x, ratios[0])
        assert (ratios[0] > 1.3) if trigger == "deposit" else (ratios[0] < 0.7)
        # ... and the hedge still matches the on-chain delta: net delta under 2% of the hedge.
        m = metrics_at(db, done)
        hedge = -(after["binance:Perp:ETHUSDT"] + after["bybit:Perp:ETHUSDT"] + after.get("okx:Perp:ETHUSDT", 0.0))
        assert abs(m["net_delta"]) <= flagship.params["max_delta_drift"] * hedge
        drift = db.execute("SELECT delta_drift FROM metrics WHERE tick=?", (done,)).fetchone()[0]
        assert abs(drift) <= flagship.params["max_delta_drift"]
    paid = db.execute("SELECT legs FROM fills WHERE operation='withdrawal'").fetchall()
    assert sum(-json.loads(l)[0][1] for (l,) in paid) == pytest.approx(60000, rel=1e-9)
    # NAV per unit is continuous across the flows: equity jumps by the flows, NAV does not.
    import pandas as pd
    csv = pd.read_csv(r.run_dir / "equity.csv", index_col=0)
    assert csv["nav"].pct_change().abs().max() < 0.01
    assert csv["equity"].pct_change().abs().max() > 0.2


def test_full_withdrawal_exits_everything(flagship, market, tmp_path):
    r = run_backtest(flagship, start="2024-06-01", end="2024-07-15", out=tmp_path, run_id="exit", data=market,
                     flows=[parse_flow("2024-07-01:all")])
    s = r.summary
    assert s["reconciliation_error"] <= 1e-6 * s["initial_equity"]
    db = sqlite3.connect(r.run_dir / "journal.sqlite")
    assert db.execute("SELECT count(*) FROM decisions WHERE trigger='withdraw_all' AND dest='exit_full'").fetchone()[0] == 1
    left = {k: v for k, v in s["final_positions"].items() if ":Perp:" in k or k.startswith("aave_v3:")}
    assert all(abs(v) < 1e-9 for v in left.values()), left
    assert s["final_equity"] < 0.01 * s["initial_equity"]
    assert -s["net_flows"] > 0.98 * s["initial_equity"]


@pytest.mark.parametrize("text", ["2024-07-01", "2024-07-01:", "2024-07-01:abc", "nope:100", "2024-07-01:0"])
def test_bad_flows_are_reported(text):
    with pytest.raises(FlowError):
        parse_flow(text)
