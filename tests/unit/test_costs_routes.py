"""Issue 13 part 1: pool fee tiers per pair, the interpolated execution-cost table, route choice
and the summary's costs by route. Real bundled data and real venue files throughout."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from trimtab.config.load import load_strategy
from trimtab.planner.routes import YEAR_S, candidates, choose, deadline_s
from trimtab.config.domains import fee_tier_mismatches
from trimtab.venues.costs import COST_LEVELS, costs_block, interp_bps

ROOT = Path(__file__).resolve().parents[2]
ROW = {"10k": 20, "100k": 24, "1m": 35}  # data/static.json execution_costs_bps.ETH_weETH


# ------------------------------------------------------------------ the interpolation
@pytest.mark.parametrize("usd, want", [
    (1_000, 20.0), (10_000, 20.0),                      # flat below the smallest size
    (10_000 * math.sqrt(10), 22.0),                     # half way in log size: half way in cost
    (100_000, 24.0),
    (100_000 * math.sqrt(10), 29.5),
    (1_000_000, 35.0), (5_000_000, 35.0),               # flat above the largest size
    (-100_000 * math.sqrt(10), 29.5),                   # the sign of a trade does not matter
])
def test_interpolation_is_log_linear_between_the_table_sizes(usd, want):
    assert interp_bps(ROW, usd) == pytest.approx(want, abs=1e-12)


def test_interpolation_closed_form_at_any_size_and_monotone():
    for usd in (12_345.0, 50_000.0, 99_999.0, 250_000.0, 777_777.0):
        lo, hi = (10_000, 100_000) if usd <= 100_000 else (100_000, 1_000_000)
        c0, c1 = (20, 24) if usd <= 100_000 else (24, 35)
        assert interp_bps(ROW, usd) == pytest.approx(c0 + (c1 - c0) * math.log(usd / lo) / math.log(hi / lo), rel=1e-12)
    sizes = [10 ** (4 + k / 20) for k in range(41)]
    costs = [interp_bps(ROW, s) for s in sizes]
    assert costs == sorted(costs) and costs[0] == 20 and costs[-1] == 35
    # the old step function charged a 10,001 USD trade the 100k figure (24 bps); now it pays ~20
    assert interp_bps(ROW, 10_001) == pytest.approx(20.0, abs=1e-3)


# ------------------------------------------------------------------ pools
def test_pools_a_desk_uses_and_the_live_fee_tiers_agree(flagship):
    uni = flagship.venues["uniswap_v3"]
    fees = {name: p.fee_bps for name, p in uni.pairs.items()}
    assert fees == {"ETH/USDT": 5.0, "weETH/ETH": 1.0, "wstETH/ETH": 1.0, "EIGEN/ETH": 30.0, "ETHFI/ETH": 30.0}
    assert fee_tier_mismatches(uni) == []
    router = load_strategy(ROOT / "configs" / "portfolio_drift.yaml").venues["uniswap_v3_router"]
    assert fee_tier_mismatches(router) == []
    # a venue file whose sim fee and live tier disagree is caught
    bad = uni.model_copy(update={"pairs": {**uni.pairs, "ETH/USDT": uni.pairs["ETH/USDT"].model_copy(update={"fee_bps": 30.0})}})
    assert fee_tier_mismatches(bad) == [("ETH/USDT", "uniswap_v3 pair ETH/USDT: fee_bps 30 but live fee_tiers 500 (= 5 bps)")]


# ------------------------------------------------------------------ closed form per route
def _gas_usd(st_, op: str) -> float:
    return st_.sim.gas_units[op] * st_.view.get("gas.ethereum.gas_price_gwei") * 1e-9 * st_.px.eth_usd()


def test_each_route_costs_fee_plus_interpolated_slippage_plus_gas(stages):
    st_ = stages("2024-08-05", "2024-08-07")
    st_.view.i = 5
    sim, px = st_.sim, st_.px
    units = 30.0  # weETH, ~100k USD: between the 10k and 100k (or 100k and 1m) sizes
    usd = units * px.asset_usd("weETH")
    quotes = {q.kind: q for q in candidates(sim, "weETH", "ETH", units)}
    assert set(quotes) == {"dex", "withdrawal_queue"}
    dex, queue = quotes["dex"], quotes["withdrawal_queue"]
    slip = interp_bps(sim.exec_costs["ETH_weETH"], usd)
    assert (dex.venue, dex.label, dex.fee_bps) == ("uniswap_v3", "uniswap_v3 weETH/ETH 0.01%", 1.0)
    assert dex.slippage_bps == pytest.approx(slip, rel=1e-12)
    assert dex.cost_usd == pytest.approx(usd * (1.0 + slip) / 1e4 + _gas_usd(st_, "TOKEN_SWAP"), rel=1e-12)
    apr = st_.view.get("staking.weETH.apr")
    assert 0 < apr < 0.1
    assert queue.delay_s == 604800 and queue.fee_bps == 0 and queue.slippage_bps == 0
    assert queue.cost_usd == pytest.approx(_gas_usd(st_, "STAKE_WITHDRAWAL") + usd * apr * 604800 / YEAR_S, rel=1e-12)
    # the fill states the same split, and the swap delivers exactly amount x rate x (1 - cost)
    fill = sim.swap(5, dex.venue, "weETH", "ETH", units)
    rate = px.eth_rate("weETH")
    assert fill.legs[1].delta == pytest.approx(units * rate * (1 - (1.0 + slip) / 1e4), rel=1e-12)
    assert fill.note == (f"weETH->ETH via uniswap_v3 weETH/ETH 0.01%: pool fee 1.0000 + spread/slippage {slip:.4f} bps"
                         f" on {usd / px.share_usd():.6f}")
    # ETH -> USDT: the 0.05% pool; ETH -> weETH: the mint at the oracle rate, gas only
    eth_q = candidates(sim, "ETH", "USDT", 10.0)[0]
    assert eth_q.fee_bps == 5.0 and eth_q.slippage_bps == pytest.approx(interp_bps(sim.exec_costs["ETH_USDT"], 10 * px.eth_usd()))
    mint = [q for q in candidates(sim, "ETH", "weETH", 10.0) if q.kind == "mint"][0]
    assert mint.cost_usd == pytest.approx(_gas_usd(st_, "STAKE_DEPOSIT"), rel=1e-12)
    # inside a flash-loan bundle the queue is not a route at all
    assert {q.kind for q in candidates(sim, "weETH", "ETH", units, atomic=True)} == {"dex"}


def test_cost_multiplier_scales_spread_and_slippage_only(flagship, market):
    from trimtab.data.market import MarketView
    from trimtab.venues.pricing import Pricing
    from trimtab.venues.sim import SimVenues

    def sim_with(m):
        s = load_strategy(ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml")
        s.config = s.config.model_copy(update={"costs": s.config.costs.model_copy(update={"multiplier": m})})
        data = market.slice("2024-08-05", "2024-08-06")
        view = MarketView(data, set())
        return SimVenues(s, Pricing(s, view), data.static)

    base, high = sim_with(1.0), sim_with(COST_LEVELS["high"])
    assert high.exec_cost_bps("ETH_weETH", 50_000) == pytest.approx(2 * base.exec_cost_bps("ETH_weETH", 50_000), rel=1e-12)
    assert high.pool_fee_bps("uniswap_v3", "weETH/ETH") == base.pool_fee_bps("uniswap_v3", "weETH/ETH") == 1.0
    assert high.swap_cost_bps("uniswap_v3", "weETH", "ETH", 50_000) == pytest.approx(1.0 + 2 * interp_bps(ROW, 50_000))


# ------------------------------------------------------------------ route choice
def test_routine_plans_wait_for_the_cheap_route_emergencies_pay_for_speed(stages):
    st_ = stages("2024-08-05", "2024-08-07")
    st_.view.i = 5
    quotes = candidates(st_.sim, "weETH", "ETH", 30.0)
    queue = next(q for q in quotes if q.kind == "withdrawal_queue")
    dex = next(q for q in quotes if q.kind == "dex")
    assert queue.cost_usd < dex.cost_usd  # ~6 bps of forgone yield against ~25 bps of pool fee + slippage
    week = deadline_s("target", {"route_deadline_h": 24 * 8})
    best, considered = choose(quotes, week)
    assert best is queue and [c["chosen"] for c in considered].count(True) == 1
    assert deadline_s("emergency", {"route_deadline_h": 24 * 8}) == 0
    best, considered = choose(quotes, deadline_s("emergency", {"route_deadline_h": 24 * 8}))
    assert best is dex
    assert next(c for c in considered if c["kind"] == "withdrawal_queue")["why"] == "delay 168.0 h is over the deadline 0.0 h"
    # the default routine deadline (24 h) is shorter than EtherFi's queue: the pool
    assert choose(quotes, deadline_s("target", {}))[0] is dex


def test_a_routine_unwind_queues_the_lst_and_the_eth_arrives_a_week_later(stages):
    strategy = load_strategy(ROOT / "configs" / "eth_staking_only.yaml")
    st_ = stages("2024-08-05", "2024-08-20", strategy)
    st_.fund(20.0, "wallet:BaseToken:weETH")
    st_.fund(0.5, "wallet:BaseToken:ETH")
    st_.view.i = 2
    params = dict(strategy.params, route_deadline_h=24 * 8.0)
    plan = st_.planner.plan(st_.book, st_.equity(), "operational", "unwind", params, "test")
    (step,) = [s for s in plan.steps if s.instructions[0].operation == "unstake"]
    ins = step.instructions[0]
    assert (ins.venue, ins.amount, step.latency_s) == ("etherfi", pytest.approx(20.0), 604800)
    chosen = [r for r in ins.params["routes"] if r["chosen"]]
    assert [r["kind"] for r in chosen] == ["withdrawal_queue"] and len(ins.params["routes"]) == 2
    rate = st_.px.eth_rate("weETH")
    st_.ex.submit(plan, 2)
    assert st_.book.qty("wallet:BaseToken:weETH") == pytest.approx(0.0, abs=1e-12)
    assert st_.book.qty("wallet:Transit:ETH") == pytest.approx(20.0 * rate, rel=1e-12)
    t0 = st_.view.epoch[2]
    arrive = next(i for i in range(st_.view.n) if st_.view.epoch[i] >= t0 + 604800)
    for i in range(3, arrive + 1):
        st_.view.i = i
        st_.ex.advance(i)
    assert st_.book.qty("wallet:Transit:ETH") == pytest.approx(0.0, abs=1e-9)
    assert not st_.book.check_fills()
    # with the default 24 h routine deadline the same unwind swaps in the pool at once
    st2 = stages("2024-08-05", "2024-08-20", strategy)
    st2.fund(20.0, "wallet:BaseToken:weETH")
    st2.view.i = 2
    p2 = st2.planner.plan(st2.book, st2.equity(), "operational", "unwind", dict(strategy.params), "test")
    assert {i.operation for s in p2.steps for i in s.instructions} >= {"swap"}
    assert "unstake" not in {i.operation for s in p2.steps for i in s.instructions}


# ------------------------------------------------------------------ the summary's costs
def test_costs_block_splits_fills_by_route_and_sums_to_the_attribution(market, tmp_path):
    from trimtab.engine.backtest import run_backtest

    s = load_strategy(ROOT / "configs" / "usdt_eth_staking_hedged_simple.yaml")
    r = run_backtest(s, start="2024-06-01", end="2024-06-04", out=tmp_path, run_id="c", data=market)
    costs, attr = r.summary["costs"], r.summary["attribution"]
    assert costs["multiplier"] == 1.0
    tot = costs["total"]
    assert tot["fee"] + tot["slippage"] + tot["price"] + tot["gas"] == pytest.approx(-(attr["trading_fees"] + attr["gas"]), abs=1e-6)
    assert "uniswap_v3 ETH/USDT 0.05%" in costs["routes"]
    perp = [k for k in costs["routes"] if k.endswith("ETHUSDT") and k.split()[0] in ("binance", "bybit", "okx")]
    assert perp and all(costs["routes"][k]["fee"] > 0 and costs["routes"][k]["slippage"] > 0 for k in perp)


def test_costs_block_closed_form_on_journal_rows():
    note = "USDT->ETH via uniswap_v3 ETH/USDT 0.05%: pool fee 5.0000 + spread/slippage 15.0000 bps"
    rows = [("p", "s1", "uniswap_v3", "swap", "trading_fees", -20.0, 0.0003, "[]", note),
            ("p", "s1", "uniswap_v3", "swap", "gas", -3.0, None, "[]", "gas"),
            ("p", "s2", "binance", "trade", "trading_fees", -7.0, 2000.0, '[["binance:Perp:ETHUSDT", -25.0, -25.0]]',
             "mark 2000.00, slippage 4.0 bps, fee 25.00 USDT"),
            ("p", "s3", "instadapp", "bundle_unwind", "gas", -4.0, None, "[]", "")]
    b = costs_block(rows, 0.5)
    assert b["multiplier"] == 0.5
    assert b["routes"]["uniswap_v3 ETH/USDT 0.05%"] == {"fee": 5.0, "slippage": 15.0, "price": 0.0, "gas": 3.0, "fills": 1}
    # perp: fee 25 USDT on 25 x 2000 = 50,000 notional is 5 bps, against 4 bps of slippage
    assert b["routes"]["binance ETHUSDT"]["fee"] == pytest.approx(7.0 * 5 / 9)
    assert b["routes"]["binance ETHUSDT"]["slippage"] == pytest.approx(7.0 * 4 / 9)
    assert b["routes"]["instadapp bundle_unwind"]["gas"] == 4.0
    assert b["total"] == pytest.approx({"fee": 5 + 7 * 5 / 9, "slippage": 15 + 7 * 4 / 9, "price": 0.0, "gas": 7.0})
    # a bundle's gas stays with the bundle, not with one of its operations
    bundle = [("p", "s9", "morpho", "flash_borrow", "trading_fees", 0.0, None, "[]", "atomic only"),
              ("p", "s9", "uniswap_v3", "swap", "trading_fees", -20.0, 1.0, "[]", note),
              ("p", "s9", "instadapp", "bundle_unwind", "gas", -6.0, None, "[]", "")]
    rb = costs_block(bundle)["routes"]
    assert rb["instadapp bundle_unwind"]["gas"] == 6.0 and rb["uniswap_v3 ETH/USDT 0.05%"]["gas"] == 0.0
    # a swap that states its notional pays exactly notional x bps; the rest is the pool's price
    on = [("p", "s1", "uniswap_v3", "swap", "trading_fees", -30.0, 0.0003, "[]", note + " on 10000.000000")]
    assert costs_block(on)["routes"]["uniswap_v3 ETH/USDT 0.05%"] == pytest.approx(
        {"fee": 5.0, "slippage": 15.0, "price": 10.0, "gas": 0.0, "fills": 1})


def test_a_venue_file_whose_pool_tier_disagrees_with_its_live_tier_is_refused_at_its_line(tmp_path):
    from trimtab.errors import ConfigError

    for d in ("machines", "rules"):
        (tmp_path / d).symlink_to(ROOT / d)
    (tmp_path / "venues").mkdir()
    for f in (ROOT / "venues").iterdir():
        if f.is_file():
            (tmp_path / "venues" / f.name).write_text(f.read_text())
        else:
            (tmp_path / "venues" / f.name).symlink_to(f)
    uni = tmp_path / "venues" / "uniswap_v3.yaml"
    text = uni.read_text()
    assert "cost_pair: ETH_USDT, fee_bps: 5.0," in text
    uni.write_text(text.replace("cost_pair: ETH_USDT, fee_bps: 5.0,", "cost_pair: ETH_USDT, fee_bps: 30.0,"))
    (tmp_path / "configs").mkdir()
    cfg = tmp_path / "configs" / "c.yaml"
    cfg.write_text((ROOT / "configs" / "eth_staking_only.yaml").read_text())
    with pytest.raises(ConfigError) as e:
        load_strategy(cfg)
    (msg,) = [str(i) for i in e.value.issues]
    line, col = next((n, ln.index("30.0") + 1) for n, ln in enumerate(uni.read_text().splitlines(), 1) if ln.startswith("  ETH/USDT:"))
    assert f"uniswap_v3.yaml:{line}:{col}: pairs.ETH/USDT.fee_bps:" in msg
    assert "fee_bps 30 but live fee_tiers 500 (= 5 bps)" in msg and "change one of them" in msg
