"""The token drift engine (issue 6, seed 002) on the bundled real data: drift and its threshold,
the cooldown on the hourly clock, matched trades and their size limits, the slippage guard,
the health gate, ORACLE vs ROUTER prices, the rebalance log and alerts with cooldowns.

Unit-level checks drive the engine's own stages (tests/conftest.py ``stages``) at real ticks
with a book set by hand; run-level checks run the shipped ``configs/portfolio_drift.yaml`` (or a
variant with other parameters in a temporary project root) and read the run's SQLite journal.
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from trimtab.accounting.book import Fill, Leg
from trimtab.config.load import load_strategy
from trimtab.planner.drift import HEALTHY, STALE, DIVERGED, Basket
from trimtab.portfolio.drift import run_drift
from trimtab.explain import run_traces

ROOT = Path(__file__).resolve().parents[2]
DRIFT = ROOT / "configs" / "portfolio_drift.yaml"
ETH, BTC, USDT = "wallet:BaseToken:ETH", "wallet:BaseToken:BTC", "wallet:BaseToken:USDT"


@pytest.fixture(scope="module")
def drift():
    return load_strategy(DRIFT)


def variant(tmp_path: Path, **params) -> Path:
    """configs/portfolio_drift.yaml with some parameters (or template fields) changed, in a
    project root under tmp_path whose machines/, rules/ and venues/ are the shipped ones."""
    root = tmp_path / "proj"
    (root / "configs").mkdir(parents=True, exist_ok=True)
    for d in ("machines", "rules", "venues"):
        if not (root / d).exists():
            os.symlink(ROOT / d, root / d)
    text = DRIFT.read_text()
    fields = {"price_source": "ORACLE ", "calendar": "none "}
    for k, v in params.items():
        if k in fields:
            text = text.replace(f"{k}: {fields[k]}", f"{k}: {v} ")
        elif f"\n  {k}: " in text:
            line = next(ln for ln in text.splitlines() if ln.startswith(f"  {k}: "))
            text = text.replace(line, f"  {k}: {v}")
        else:
            text = text.replace("parameters:\n", f"parameters:\n  {k}: {v}\n", 1)
    path = root / "configs" / f"drift_{abs(hash(tuple(sorted(params.items()))))}.yaml"
    path.write_text(text)
    return path


def hold(st, **usd):
    """Put token positions worth ``usd`` (at the tick's oracle prices) into the stage's book."""
    for tok, v in usd.items():
        key = f"wallet:BaseToken:{tok}"
        q = v / st.px.asset_usd(tok)
        st.book.apply(Fill(st.view.i, "wallet", "deposit_capital", "capital", [Leg(key, q, q)]))


def at(stages, strategy, when: str):
    st = stages(when, "2025-09-20", strategy)
    st.view.i = 0
    return st


# --------------------------------------------------------------------------- drift and matching
def test_drift_is_value_minus_target_over_target(stages, drift):
    st = at(stages, drift, "2024-08-05T03:00")
    hold(st, ETH=50_000, BTC=30_000, USDT=20_000)
    b = st.planner.basket
    s = b.state(st.book, drift.params).by_token()
    assert s["ETH"].drift == pytest.approx((50_000 - 40_000) / 40_000)
    assert s["BTC"].drift == pytest.approx((30_000 - 40_000) / 40_000)
    assert s["USDT"].drift == pytest.approx(0.0, abs=1e-12)
    m = st.monitors.run(0, False, drift.params)
    assert m["max_drift"] == pytest.approx(0.25) and m["drift.ETH"] == pytest.approx(0.25) and m["unhealthy_tokens"] == 0


def test_matching_pairs_oversized_with_undersized_back_to_target(stages, drift):
    st = at(stages, drift, "2024-08-05T03:00")
    hold(st, ETH=46_000, BTC=37_000, USDT=17_000)  # ETH +6k over; BTC 3k and USDT 3k under
    p = dict(drift.params, trade_max_usd=1e9)
    trades = st.planner.basket.match(st.planner.basket.state(st.book, p), p)
    got = sorted((t.sell, t.buy, round(t.usd, 6), t.status) for t in trades)
    assert got == [("ETH", "BTC", 3000.0, "planned"), ("ETH", "USDT", 3000.0, "planned")]
    assert [t.path for t in sorted(trades, key=lambda t: t.buy)] == [["ETH", "USDT", "BTC"], ["ETH", "USDT"]]


def test_trade_size_limits_skip_dust_and_cut_large_trades(stages, drift):
    st = at(stages, drift, "2024-08-05T03:00")
    hold(st, ETH=40_030, BTC=79_970, USDT=40_000)  # total 160k: ETH needs 23,970 from BTC's 15,970 and USDT's 8,000
    b = st.planner.basket
    trades = b.match(b.state(st.book, drift.params), drift.params)
    by = {(t.sell, t.buy): t for t in trades}
    assert by[("BTC", "ETH")].status == "clamped" and by[("BTC", "ETH")].usd == 10_000  # max 10,000 (seed)
    assert by[("USDT", "ETH")].usd == pytest.approx(8_000)
    hold(st, ETH=23_950)  # now ETH is over by ~30 USD... every other gap is small too
    small = b.match(b.state(st.book, drift.params), drift.params)
    assert small and all(t.status == "skipped" and t.usd < 50 for t in small if t.usd < 50)


def test_plan_sells_before_buys_and_routes_eth_btc_through_usdt(stages, drift):
    st = at(stages, drift, "2024-08-05T03:00")
    hold(st, ETH=44_000, BTC=36_000, USDT=20_000)
    plan = st.planner.plan(st.book, st.equity(), "rebalancing", "target", drift.params, "rebalance_drift")
    ops = [(s.instructions[0].asset, s.instructions[0].params["buy"], s.depends_on) for s in plan.steps]
    assert ops[0][:2] == ("ETH", "USDT") and ops[1][:2] == ("USDT", "BTC") and ops[1][2] == (plan.steps[0].id,)
    st.ex.submit(plan, 0)
    s = Basket(drift, drift.config.targets[0], st.px, st.sim).state(st.book, drift.params).by_token()
    assert abs(s["BTC"].drift) < 0.01 and abs(s["ETH"].drift) < 0.01  # back to target up to fees and gas
    assert not st.book.check_fills()


# --------------------------------------------------------------------------- guards
def test_slippage_guard_blocks_a_trade_that_would_fill_worse(stages, drift):
    """2025-02-25 08:00: the Uniswap pool is ~0.85% above the Bybit close. Buying ETH quoted at
    the ORACLE price would fill ~0.95% worse (pool premium + the 0.05% pool fee + spread), more
    than a 0.5% tolerance: not sent (logged); quoted at the ROUTER (pool) price, the fill is the
    quote less fee and spread, inside the tolerance: sent. (Issue 13 moved ETH/USDT to the 0.05%
    pool: with the old 0.3% fee this tick failed the shipped 1% tolerance; it now passes it,
    so the guard is shown at 0.5%.)"""
    st = at(stages, drift, "2025-02-25T08:00")
    hold(st, ETH=30_000, BTC=40_000, USDT=30_000)
    params = dict(drift.params, slippage_tolerance=0.005)
    plan = st.planner.plan(st.book, st.equity(), "rebalancing", "target", params, "rebalance_drift")
    tr = plan.targets["basket"]["trades"]
    assert tr and all(t["status"] == "blocked" for t in tr) and not plan.steps
    t = tr[0]
    assert t["expected_out"] < t["min_out"] == pytest.approx(t["quoted_out"] * 0.995)
    assert "slippage guard" in t["reason"] and any("slippage guard" in n for n in plan.notes)
    router = drift.config.targets[0].model_copy(update={"price_source": "ROUTER"})
    rplan = Basket(drift, router, st.px, st.sim).plan(st.book, st.equity(), "rebalancing", "target", params, "x")
    rtr = rplan.targets["basket"]["trades"]
    assert rtr and all(x["status"] == "sent" for x in rtr) and len(rplan.steps) == len(rtr)
    assert any(x["buy"] == "ETH" and x["usd"] > 5_000 for x in rtr)


def test_health_gate_stale_and_diverged_prices(stages, drift):
    st = at(stages, drift, "2024-09-02T06:00")  # Binance BTC bars missing since 01:00 (data gap)
    hold(st, ETH=30_000, BTC=60_000, USDT=10_000)
    b = st.planner.basket
    s = b.state(st.book, drift.params).by_token()
    assert s["BTC"].health == STALE and "old" in s["BTC"].reason
    assert s["ETH"].health == HEALTHY
    m = st.monitors.run(0, False, drift.params)
    assert m["unhealthy_tokens"] == 1 and m["max_drift"] == pytest.approx(max(abs(s["ETH"].drift), abs(s["USDT"].drift)))
    plan = st.planner.plan(st.book, st.equity(), "rebalancing", "target", drift.params, "x")
    assert all("BTC" not in (t["sell"], t["buy"]) for t in plan.targets["basket"]["trades"])
    assert any(n.startswith("BTC: STALE") for n in plan.notes)
    tight = dict(drift.params, price_max_divergence=1e-6)  # pool and CEX never agree to 1e-6
    assert b.state(st.book, tight).by_token()["ETH"].health == DIVERGED


def test_oracle_and_router_price_sources(stages, drift):
    st = at(stages, drift, "2024-08-05T03:00")
    hold(st, ETH=40_000, BTC=40_000, USDT=20_000)
    oracle = Basket(drift, drift.config.targets[0], st.px, st.sim)
    router = Basket(drift, drift.config.targets[0].model_copy(update={"price_source": "ROUTER"}), st.px, st.sim)
    o, r = oracle.state(st.book, drift.params).by_token(), router.state(st.book, drift.params).by_token()
    assert o["ETH"].price == st.view.get("spot.bybit.ETHUSDT.close")
    assert r["ETH"].price == st.view.get("dex.uniswapv3.WETHUSDT.close") != o["ETH"].price
    assert o["BTC"].price == r["BTC"].price == st.view.get("spot.binance.BTCUSDT.close")  # no WBTC pool series: same source
    assert r["ETH"].value == pytest.approx(o["ETH"].qty * r["ETH"].price)


# --------------------------------------------------------------------------- runs: threshold, cooldown, log, alerts
@pytest.fixture(scope="module")
def run(market, tmp_path_factory):
    s = load_strategy(DRIFT)
    out = tmp_path_factory.mktemp("drift")
    return run_drift(s, start="2024-06-01", end="2024-10-01", out=out, run_id="drift", data=market)


def rows(run, sql):
    db = sqlite3.connect(run.run_dir / "journal.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(sql)]
    finally:
        db.close()


def test_threshold_rule_fires_exactly_when_drift_passes_it(run):
    decisions = rows(run, "SELECT tick, source, trigger FROM decisions ORDER BY tick")
    traces = run_traces(run.run_dir / "journal.sqlite")  # a slim journal: rebuilt from the stored metrics
    assert len(traces) == len(decisions)
    for d in decisions:
        rule = {r["rule"]: r for r in traces[d["tick"]]}["drift_rebalance"]
        max_drift = rule["comparisons"][0][1]
        assert rule["comparisons"][0][3] == 0.15
        if d["trigger"] == "rebalance_drift":
            assert max_drift > 0.15
        elif d["trigger"] is None and d["source"] == "idle":
            assert not rule["result"]
    rebalances = rows(run, "SELECT * FROM rebalances ORDER BY tick")
    assert rebalances and all(r["max_drift"] > 0.15 for r in rebalances)


def test_log_records_drift_amounts_path_gas_and_cost_equal_to_the_fills(run):
    rebalances = rows(run, "SELECT * FROM rebalances ORDER BY tick")
    assert [r["tick"] for r in rebalances[:4]] == [0, 1, 2, 3]  # the basket is built 10,000 USD per trade, one tick each
    fills = rows(run, "SELECT plan_id, operation, category, legs FROM fills WHERE plan_id IS NOT NULL")
    net: dict[str, float] = {}
    for r in rebalances:
        legs = [l for f in fills if f["plan_id"] == r["plan_id"] and f["operation"] == "swap" and f["category"] != "gas"
                for l in json.loads(f["legs"])]
        for k, v in json.loads(r["amounts"]).items():
            assert v == pytest.approx(sum(l[1] for l in legs if l[0] == k), abs=1e-12)
            net[k] = net.get(k, 0.0) + v
        gas = sum(-l[1] for f in fills if f["plan_id"] == r["plan_id"] and f["category"] == "gas" for l in json.loads(f["legs"]))
        assert r["gas_eth"] == pytest.approx(gas)
        assert r["cost_usd"] == pytest.approx(r["execution_usd"] + r["gas_usd"])
        assert set(json.loads(r["drifts"])) == {"ETH", "BTC", "USDT"} and json.loads(r["path"])
    # positions = sum of fills: capital 100k USDT + the swaps - the gas
    pos = run.summary["final_positions"]
    gas_total = sum(r["gas_eth"] for r in rebalances)
    assert pos["wallet:BaseToken:BTC"] == pytest.approx(net["wallet:BaseToken:BTC"], rel=1e-12)
    assert pos["wallet:BaseToken:ETH"] == pytest.approx(net["wallet:BaseToken:ETH"] - gas_total, rel=1e-12)
    assert pos["wallet:BaseToken:USDT"] == pytest.approx(100_000 + net["wallet:BaseToken:USDT"], rel=1e-12)
    assert run.summary["positions_match_fills"] and run.summary["reconciliation_error"] < 1e-6


def test_alerts_respect_their_own_cooldowns(market, tmp_path):
    # A 0.5% slippage tolerance, so some trades are blocked (rebalance_failed): with the 0.05%
    # ETH/USDT pool (issue 13) the shipped 1% tolerance blocks none in this window; under the
    # old 0.3% fee it did.
    s = load_strategy(variant(tmp_path, slippage_tolerance=0.005))
    run = run_drift(s, start="2024-06-01", end="2024-10-01", out=tmp_path / "runs", run_id="alerts", data=market)
    alerts = rows(run, "SELECT * FROM alerts ORDER BY tick")
    kinds = {a["kind"] for a in alerts}
    assert {"high_drift", "unusual_gas", "rebalance_failed"} <= kinds
    cooldown_h = {"high_drift": 4, "rebalance_failed": 1, "unusual_gas": 4}
    for k in kinds:
        ticks = [a["tick"] for a in alerts if a["kind"] == k]
        assert all(b - a >= cooldown_h[k] for a, b in zip(ticks, ticks[1:])), (k, ticks)
    first = alerts[0]
    assert first["kind"] == "high_drift" and first["tick"] == 0 and first["value"] == pytest.approx(4.0)  # all in USDT: ETH/BTC at -100%
    d = run.summary["drift"]["alerts"]
    assert d["high_drift"]["suppressed"] >= 3  # ticks 1-3 of the build are inside the 240-minute cooldown
    for a in alerts:
        if a["kind"] == "unusual_gas":
            assert a["value"] > 2.0
    failed = rows(run, "SELECT tick FROM rebalances WHERE status IN ('FAILED', 'PARTIAL', 'BLOCKED')")
    assert {a["tick"] for a in alerts if a["kind"] == "rebalance_failed"} <= {r["tick"] for r in failed}


def test_a_shorter_alert_cooldown_lets_each_alert_through(market, tmp_path):
    s = load_strategy(variant(tmp_path, alert_high_drift_cooldown_min=60))
    r = run_drift(s, start="2024-06-01", end="2024-06-03", out=tmp_path / "runs", run_id="x", data=market)
    a = r.summary["drift"]["alerts"]["high_drift"]
    assert a["fired"] == 4 and a["suppressed"] == 0  # one per hour of the 4-tick build


def test_cooldown_in_simulated_minutes_on_the_hourly_clock(market, tmp_path):
    """15 minutes never binds on hourly ticks (next rebalance 1 tick later); 150 minutes lets
    the next drift rebalance happen ceil(150 / 60) = 3 ticks later."""
    out = {}
    for c in (15, 150):
        s = load_strategy(variant(tmp_path, drift_cooldown_min=c))
        r = run_drift(s, start="2024-06-01", end="2024-06-02", out=tmp_path / f"runs{c}", run_id="x", data=market)
        db = sqlite3.connect(r.run_dir / "journal.sqlite")
        out[c] = [t for (t,) in db.execute("SELECT tick FROM rebalances ORDER BY tick")]
        db.close()
    assert out[15] == [0, 1, 2, 3]
    assert out[150] == [0, 3, 6, 9]


def test_calendar_rebalance_on_each_period_start(market, tmp_path):
    s = load_strategy(variant(tmp_path, calendar="weekly", drift_threshold=5.0, trade_max_usd=1.0e9))
    r = run_drift(s, start="2024-06-01", end="2024-07-01", out=tmp_path / "runs", run_id="x", data=market)
    db = sqlite3.connect(r.run_dir / "journal.sqlite")
    got = [(t, trig) for t, trig in db.execute("SELECT time, trigger FROM rebalances ORDER BY tick")]
    db.close()
    mondays = ["2024-06-03", "2024-06-10", "2024-06-17", "2024-06-24", "2024-07-01"]  # 07-01 00:00 is the last tick
    assert got == [(f"{d}T00:00Z", "rebalance_calendar") for d in ["2024-06-01"] + mondays]
