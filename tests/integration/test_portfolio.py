"""A portfolio of strategies (issue 6, seed 003) on the bundled real data: the shipped configs
through ``trimtab run``, the allocation methods, the limits, capital moved by exiting before
entering, reconciliation, and a run stopped halfway and resumed in a new process ending
exactly where an uninterrupted run ends. Every run writes real SQLite journals; the checks
read them back.

Variants run in a temporary project root (shipped machines/, rules/, venues/ and sleeve
configs linked in) with two sleeves -- Aave USDT lending and the ETH/BTC/USDT drift basket --
over June to mid-August 2024 (the August 5 crash included), so each run takes a second or two.
"""
from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trimtab.errors import ConfigError
from trimtab.portfolio.config import load_portfolio
from trimtab.portfolio.runner import PortfolioRunner

ROOT = Path(__file__).resolve().parents[2]
START, END = "2024-06-01", "2024-08-15"
SLEEVE_CONFIGS = ("pure_lending_usdt.yaml", "portfolio_drift.yaml", "usdt_eth_staking_hedged_simple.yaml")


def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    if not root.exists():
        (root / "configs").mkdir(parents=True)
        for d in ("machines", "rules", "venues"):
            os.symlink(ROOT / d, root / d)
        for c in SLEEVE_CONFIGS:
            os.symlink(ROOT / "configs" / c, root / "configs" / c)
    return root


def portfolio_yaml(tmp_path: Path, name: str, allocation: str, basket: dict | None = None, lending: dict | None = None,
                   limits: str = "", params: str = "") -> Path:
    """A two-sleeve portfolio config (lending 50% / basket 50%, weights in [0.1, 0.9]) in the
    temporary project; ``lending`` / ``basket`` override sleeve fields."""
    def sleeve(sid: str, config: str, extra: dict | None) -> str:
        f = {"id": sid, "config": config, "weight": 0.5, "min_weight": 0.1, "max_weight": 0.9, **(extra or {})}
        return "{" + ", ".join(f"{k}: {v}" for k, v in f.items()) + "}"

    text = f"""name: {name}
share_class: USDT
capital: 200000
checkpoint_every_h: 100
parameters:
  reallocation_cooldown_h: 24
{params}sleeves:
  - {sleeve("lending", "pure_lending_usdt.yaml", lending)}
  - {sleeve("basket", "portfolio_drift.yaml", basket)}
allocation: {allocation}
limits: {{min_move: 2000, weight_tolerance: 0.02{limits}}}
"""
    path = project(tmp_path) / "configs" / f"{name}.yaml"
    path.write_text(text)
    return path


def run(path: Path, tmp_path: Path, market, end: str = END, **kw):
    runner = PortfolioRunner.start(path, tmp_path / "runs", path.stem, START, end, data=market)
    return runner.run(**kw)


def q(run_dir: Path, sql: str, db: str = "portfolio.sqlite"):
    con = sqlite3.connect(Path(run_dir) / db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def history(res) -> list[dict]:
    return res.summary["reallocations"]["history"]


def nav_returns(res, upto_tick: int, lookback: int) -> pd.DataFrame:
    """Daily NAV returns of each sleeve from the portfolio journal (independent of the runner's
    own series), the last ``lookback`` days before and including ``upto_tick``."""
    rows = q(res.run_dir, f"SELECT s.tick, s.sleeve, s.nav, p.time FROM sleeve_series s JOIN series p ON p.tick = s.tick "
                          f"WHERE s.tick <= {upto_tick}")
    df = pd.DataFrame(rows, columns=["tick", "sleeve", "nav", "time"])
    df["time"] = pd.to_datetime(df["time"].str.replace("Z", ""))
    wide = df.pivot(index="time", columns="sleeve", values="nav")
    daily = wide[wide.index.hour == 0]
    return daily.pct_change().iloc[1:].tail(lookback)


# --------------------------------------------------------------------------- the shipped configs through the CLI
def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trimtab.cli.main", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


def test_trimtab_run_portfolio_strategies(tmp_path):
    p = cli("run", "configs/portfolio_strategies.yaml", "--start", START, "--end", "2024-07-15", "--out", tmp_path, "--json")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["kind"] == "portfolio" and set(s["sleeves"]) == {"lending", "hedged", "basket"}
    rec = s["reconciliation"]
    assert rec["ok"] and abs(rec["pnl_minus_sleeve_pnl"]) < 1e-6 and abs(rec["attribution_minus_pnl"]) < 1e-6
    assert rec["positions_match_fills"] and abs(rec["cash_check"]) < 1e-6
    assert s["final_equity"] == pytest.approx(sum(v["final_equity"] for v in s["sleeves"].values()) + s["final_cash"], rel=1e-12)
    assert s["reallocations"]["count"] >= 1 and s["reallocations"]["history"][0]["status"] in ("done", "partial")
    basket = s["sleeves"]["basket"]["drift"]
    assert basket["rebalances"] >= 4 and basket["alerts"]["high_drift"]["fired"] >= 1
    for v in s["sleeves"].values():
        assert {"apy", "sharpe", "max_drawdown", "pnl", "net_flows", "final_weight"} <= set(v)
    assert set(s["correlation"]) == set(s["sleeves"])
    human = cli("run", "configs/portfolio_strategies.yaml", "--start", START, "--end", "2024-06-08", "--out", tmp_path)
    assert human.returncode == 0, human.stderr
    for text in ("sleeves", "lending", "hedged", "basket", "correlation of daily returns", "reallocations", "reconciliation: ok"):
        assert text in human.stdout


def test_trimtab_run_portfolio_drift(tmp_path):
    p = cli("run", "configs/portfolio_drift.yaml", "--start", START, "--end", "2024-07-01", "--out", tmp_path)
    assert p.returncode == 0, p.stderr
    for text in ("rebalances", "alerts (fired / suppressed by cooldown)", "high_drift", "final basket", "positions match fills: yes"):
        assert text in p.stdout
    j = cli("run", "configs/portfolio_drift.yaml", "--start", START, "--end", "2024-07-01", "--out", tmp_path, "--json")
    s = json.loads(j.stdout)
    assert s["drift"]["rebalances"] >= 4 and s["positions_match_fills"] and s["reconciliation_error"] < 1e-6


def test_portfolio_config_errors_are_reported_at_file_line_col(tmp_path):
    path = portfolio_yaml(tmp_path, "bad", "{method: threshold, threshold: 0.1}", basket={"weight": 0.6, "max_weight": 0.3},
                          lending={"config": "no_such.yaml"})
    with pytest.raises(ConfigError) as e:
        load_portfolio(path)
    msgs = [str(i) for i in e.value.issues]
    assert any(m.endswith("bad.yaml:8:27: sleeves[0].config: sleeve config 'no_such.yaml' not found next to the portfolio config")
               for m in msgs), msgs
    assert any(m.endswith("bad.yaml:9:56: sleeves[1].weight: sleeve 'basket' weight 0.6 is outside its limits [0.1, 0.3]") for m in msgs), msgs
    assert any(m.endswith("bad.yaml:8:3: sleeves: sleeve weights sum to 1.1, not 1") for m in msgs), msgs


# --------------------------------------------------------------------------- methods
@pytest.fixture(scope="module")
def threshold_run(market, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("threshold")
    return run(portfolio_yaml(tmp, "threshold", "{method: threshold, threshold: 0.05, period: weekly}"), tmp, market)


def test_threshold_reallocates_when_a_sleeve_drifts_past_the_threshold(threshold_run):
    res = threshold_run
    h = [r for r in history(res) if r["trigger"] == "reallocate"]
    assert h, "the basket's August crash moves it more than 5% from its weight"
    for r in h:
        t, w = r["targets"], r["weights_before"]
        assert t == pytest.approx({"lending": 0.5, "basket": 0.5})
        assert max(abs(w[k] - t[k]) / t[k] for k in t) > 0.05
        # what was asked for was paid (less what the sleeve's own costs kept), and it moved the
        # weights toward the targets (the market keeps moving during the ticks it takes)
        assert sum(r["paid"].values()) >= 0.99 * sum(r["withdrawals"].values())
        assert sum(abs(r["weights_after"][k] - t[k]) for k in t) < sum(abs(w[k] - t[k]) for k in t)
    decisions = q(res.run_dir, "SELECT tick, trigger, metrics FROM decisions ORDER BY tick")
    for tick, trig, m in decisions:
        m = json.loads(m)
        if trig == "reallocate":
            assert m["max_sleeve_drift"] > 0.05 and float(m["hours_since_reallocation"]) >= 24


def test_exit_before_enter_and_cash_accounting(threshold_run):
    res = threshold_run
    for r in history(res):
        if not r["deposits"]:
            continue
        sleeves = res.summary["sleeves"]
        pays = [t for k in r["withdrawals"] for (t,) in q(Path(sleeves[k]["run_dir"]), f"SELECT tick FROM fills WHERE operation = 'withdrawal' "
                                                                              f"AND tick >= {r['start_tick']}", "journal.sqlite")]
        deps = [t for k in r["deposits"] for (t,) in q(Path(sleeves[k]["run_dir"]), f"SELECT tick FROM fills WHERE operation = 'deposit' "
                                                                             f"AND tick >= {r['start_tick']} AND tick <= {r['end_tick']}", "journal.sqlite")]
        if r["withdrawals"]:
            assert pays and deps and max(t for t in pays if t <= r["end_tick"]) < min(deps), (r["id"], pays, deps)
        assert sum(r["deposited"].values()) <= r["cash_before"] + sum(r["paid"].values()) + 1e-6
    series = q(res.run_dir, "SELECT tick, equity, cash FROM series ORDER BY tick")
    sleeve = {}
    for t, k, eq in q(res.run_dir, "SELECT tick, sleeve, equity FROM sleeve_series"):
        sleeve[t] = sleeve.get(t, 0.0) + eq
    for t, eq, cash in series:
        assert cash >= -1e-9
        assert eq == pytest.approx(sleeve[t] + cash, rel=1e-12)
    assert res.summary["reconciliation"]["ok"]


def test_calendar_moves_capital_only_at_period_starts(market, tmp_path):
    res = run(portfolio_yaml(tmp_path, "calendar", "{method: calendar, period: weekly}"), tmp_path, market)
    h = history(res)
    assert len(h) >= 5
    for r in h:
        ts = pd.Timestamp(r["start_time"].replace("Z", ""))
        assert r["trigger"] == "reallocate" and ts.weekday() == 0 and ts.hour == 0, r["start_time"]


def test_adaptive_weights_by_sharpe(market, tmp_path):
    res = run(portfolio_yaml(tmp_path, "adaptive", "{method: adaptive, period: weekly, threshold: 0.05, lookback_days: 21, min_history_days: 7}"),
              tmp_path, market)
    h = [r for r in history(res) if r["target_basis"].get("basis") == "weight x max(Sharpe, 0)"]
    assert h
    for r in h:
        rets = nav_returns(res, r["start_tick"], 21)
        sharpe = rets.mean() / rets.std() * math.sqrt(365)
        raw = {k: 0.5 * max(sharpe[k], 0.0) for k in ("lending", "basket")}
        tot = sum(raw.values())
        want = {k: min(max(v / tot, 0.1), 0.9) for k, v in raw.items()}
        want = {k: v / sum(want.values()) for k, v in want.items()}
        assert r["targets"] == pytest.approx(want, rel=1e-6)


def test_risk_parity_equal_risk_contribution_and_inverse_volatility(market, tmp_path):
    wide = {"min_weight": 0.0, "max_weight": 1.0}
    for model in ("equal_risk_contribution", "inverse_volatility"):
        res = run(portfolio_yaml(tmp_path, f"rp_{model}", f"{{method: risk_parity, risk_model: {model}, period: weekly, threshold: 0.05, "
                                                          f"lookback_days: 21, min_history_days: 7}}", basket=wide, lending=wide),
                  tmp_path / model, market, end="2024-07-20")
        h = [r for r in history(res) if r["target_basis"].get("basis") in ("equal risk contribution", "1 / volatility")]
        assert h, model
        for r in h:
            rets = nav_returns(res, r["start_tick"], 21)[["lending", "basket"]]
            w = np.array([r["targets"]["lending"], r["targets"]["basket"]])
            if model == "inverse_volatility":
                inv = 1 / rets.std().to_numpy()
                assert w == pytest.approx(inv / inv.sum(), rel=1e-9)
            else:
                c = rets.cov().to_numpy()
                rc = w * (c @ w)
                assert rc[0] == pytest.approx(rc[1], rel=1e-6)
            assert r["targets"]["lending"] > r["targets"]["basket"]  # lending is the calmer sleeve


def test_limits_drawdown_cut_max_weight_and_turnover(market, tmp_path):
    res = run(portfolio_yaml(tmp_path, "limits", "{method: threshold, threshold: 0.5, period: weekly}",
                             basket={"max_drawdown": 0.08}, lending={"max_weight": 0.7}, limits=", max_turnover: 0.1"),
              tmp_path, market)
    ev = res.summary["limit_events"]
    cut = [e for e in ev if e["event"] == "drawdown_cut" and e["sleeve"] == "basket"]
    assert cut and cut[0]["drawdown"] > 0.08
    after = [r for r in history(res) if r["start_tick"] >= cut[0]["tick"] and r["trigger"] == "enforce_limits"]
    assert after and "basket" in after[0]["cut_for_drawdown"]
    assert after[0]["targets"] == pytest.approx({"lending": 0.7, "basket": 0.3})  # basket at min 0.1 would put lending above its max 0.7
    for r in history(res):
        assert all(0.1 - 1e-9 <= v <= (0.7 if k == "lending" else 0.9) + 1e-9 for k, v in r["targets"].items())
        assert sum(r["withdrawals"].values()) <= 0.1 * r["equity_before"] + 1e-6  # max_turnover


# --------------------------------------------------------------------------- stop and resume
def test_stopped_and_resumed_run_ends_where_an_uninterrupted_run_ends(market, tmp_path):
    """The shipped 3-sleeve portfolio, stopped halfway -- in the middle of a reallocation, with
    withdrawals requested and not yet paid -- then resumed by a new process from its
    checkpoint, ends with the same final equity (exactly) and the same reallocation history."""
    cfg = ROOT / "configs" / "portfolio_strategies.yaml"
    end = "2024-07-15"
    full = PortfolioRunner.start(cfg, tmp_path / "a", "full", START, end, data=market).run()
    moving = [r for r in history(full) if r["withdrawals"] and r["end_tick"] > r["start_tick"] + 1]
    assert moving, "need a reallocation spanning several ticks to stop inside"
    stop = moving[0]["start_tick"] + 1  # withdrawal requested at start_tick, paid out later
    out = tmp_path / "b"
    first = subprocess.run([sys.executable, "-m", "trimtab.portfolio", "run", cfg, "--start", START, "--end", end, "--out", out,
                            "--run-id", "resumed", "--stop-at", str(stop)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert first.returncode == 0 and f"stopped at tick {stop}" in first.stderr, first.stderr
    state = q(out / "resumed", "SELECT tick FROM checkpoints")
    assert state == [(stop - 1,)]
    second = subprocess.run([sys.executable, "-m", "trimtab.portfolio", "resume", out / "resumed"], capture_output=True, text=True,
                            cwd=ROOT, timeout=600)
    assert second.returncode == 0, second.stderr
    resumed = json.loads(second.stdout)
    assert resumed["final_equity"] == full.summary["final_equity"]
    for k, v in full.summary["sleeves"].items():
        assert resumed["sleeves"][k]["final_equity"] == v["final_equity"]
    a = q(full.run_dir, "SELECT * FROM reallocations ORDER BY realloc_id")
    b = q(out / "resumed", "SELECT * FROM reallocations ORDER BY realloc_id")
    assert a == b and len(a) == full.summary["reallocations"]["count"]
    assert q(full.run_dir, "SELECT * FROM series ORDER BY tick") == q(out / "resumed", "SELECT * FROM series ORDER BY tick")
    for k in full.summary["sleeves"]:
        fa = q(full.run_dir / "sleeves" / k, "SELECT tick, operation, legs FROM fills ORDER BY fill_id", "journal.sqlite")
        fb = q(out / "resumed" / "sleeves" / k, "SELECT tick, operation, legs FROM fills ORDER BY fill_id", "journal.sqlite")
        assert fa == fb, k  # nothing executed twice, nothing lost
