"""Metrics with several targets (issue 13 part 5), on real data.

A config with two ``perp_hedge`` targets, or two ``signal_perp`` targets, used to publish only
the last target's ``venue_imbalance`` / ``signal_side`` / ``position_side``. Each target now has
its own member of a family (``venue_imbalance.<target id>``, ``signal_side.<id>``,
``position_side.<id>``, declared in :mod:`trimtab.metrics`) and the plain names are aggregates
the shipped rules read:

* ``venue_imbalance``: the signed per-target value of largest magnitude (the worst);
* ``signal_side`` / ``position_side``: the pair of the first target (config order) whose wanted
  side differs from its held side, else the first target's pair, so the shipped rule
  ``signal_side != position_side`` fires exactly when some target must trade.

The configs are temporary copies of shipped ones (usdt_eth_staking_hedged_simple with its hedge
split in two; ml_usdt_directional_usdt_margin with a second signal target on ETH) in a project
folder that links the shipped machines, rules, venues and signals.
"""
from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest

from trimtab.config.load import load_strategy, metric_members
from trimtab.engine.backtest import run_backtest
from trimtab.engine.journal import read_metrics
from trimtab.metrics import Scope, expand

ROOT = Path(__file__).resolve().parents[2]

TWO_HEDGES = """\
name: two_hedges
description: weETH staking hedged by two perp_hedge targets (usdt_eth_staking_hedged_simple, hedge split in two).
machine: lifecycle
rules: [risk, lifecycle]
venues: [wallet, etherfi, lido, uniswap_v3, binance, bybit, okx]
share_class: USDT
asset: ETH
capital: 100000
parameters:
  stake_allocation: 0.5
  gas_reserve_eth: 0.03
targets:
  - id: staking
    template: stake
    allocation: stake_allocation
    lst: weETH
    swap_venue: uniswap_v3
  - id: hedge_a
    template: perp_hedge
    allocation: 0.3
    hedges: [staking]
    hedge_ratio: 0.6
    legs:
      - {instrument: "binance:Perp:ETHUSDT", weight: 1}
  - id: hedge_b
    template: perp_hedge
    allocation: 0.2
    hedges: [staking]
    hedge_ratio: 0.4
    legs:
      - {instrument: "bybit:Perp:ETHUSDT", weight: 0.5}
      - {instrument: "okx:Perp:ETHUSDT", weight: 0.5}
  - id: gas
    template: wallet_reserve
    instrument: "wallet:BaseToken:ETH"
    amount: gas_reserve_eth
    swap_venue: uniswap_v3
"""

TWO_SIGNALS = """\
name: two_signals
description: Two signal-driven perps (ml_usdt_directional_usdt_margin plus an ETH target with a stricter threshold).
machine: lifecycle
rules: [risk, lifecycle]
venues: [wallet, binance]
share_class: USDT
asset: BTC
capital: 10000
capital_at: "binance:Margin:USDT"
targets:
  - id: loose
    template: signal_perp
    instrument: "binance:Perp:BTCUSDT"
    signal: {file: signals/btc_momentum_1h.csv, signal_threshold: 0.6, max_position_size: 0.5}
  - id: strict
    template: signal_perp
    instrument: "binance:Perp:ETHUSDT"
    signal: {file: signals/btc_momentum_1h.csv, signal_threshold: 0.8, max_position_size: 0.5}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multi_target")
    for d in ("machines", "rules", "venues"):
        (root / d).symlink_to(ROOT / d)
    (root / "configs").mkdir()
    (root / "configs" / "signals").symlink_to(ROOT / "configs" / "signals")
    (root / "configs" / "two_hedges.yaml").write_text(TWO_HEDGES)
    (root / "configs" / "two_signals.yaml").write_text(TWO_SIGNALS)
    return root


def _run(project: Path, name: str, start: str, end: str, market):
    s = load_strategy(project / "configs" / f"{name}.yaml")
    res = run_backtest(s, start, end, out=project / "runs", data=market)
    db = sqlite3.connect(res.run_dir / "journal.sqlite")
    try:
        rows = [(r.tick, r.metrics) for r in read_metrics(db)]
        fills = db.execute("SELECT tick, legs FROM fills ORDER BY fill_id").fetchall()
    finally:
        db.close()
    return s, res, rows, fills


@pytest.fixture(scope="module")
def hedges(project, market):
    return _run(project, "two_hedges", "2024-05-13", "2024-07-15", market)


@pytest.fixture(scope="module")
def signals(project, market):
    return _run(project, "two_signals", "2024-01-01T01:00", "2024-02-15", market)


def test_each_hedge_target_has_its_venue_imbalance(hedges):
    s, res, rows, _ = hedges
    names = set(expand(Scope.STRATEGY, metric_members(s.config, s.venues)))
    assert {"venue_imbalance.hedge_a", "venue_imbalance.hedge_b"} <= names
    for _, m in rows:
        assert set(m) == names  # exactly the declared names, every tick
    a = [m["venue_imbalance.hedge_a"] for _, m in rows]
    b = [m["venue_imbalance.hedge_b"] for _, m in rows]
    assert any(abs(x) > 1e-3 for x in a) and any(abs(x) > 1e-3 for x in b), "both hedges hold positions"
    assert sum(abs(x - y) > 1e-4 for x, y in zip(a, b)) > len(rows) // 2, "computed per target, not one value copied"
    assert res.summary["reconciliation_error"] < 1e-6


def test_plain_venue_imbalance_is_the_worst_target(hedges):
    _, _, rows, _ = hedges
    moved = 0
    for _, m in rows:
        a, b = m["venue_imbalance.hedge_a"], m["venue_imbalance.hedge_b"]
        assert m["venue_imbalance"] == (a if abs(a) >= abs(b) else b)
        moved += abs(m["venue_imbalance"]) > 0.01
    assert moved > 0, "the window holds ticks with a real imbalance"


def _sides_from_fills(fills, instruments) -> dict[int, dict[str, float]]:
    """The side (-1/0/1) of each instrument at the end of each tick with a fill, from the fills' legs."""
    pos: dict[str, float] = defaultdict(float)
    out: dict[int, dict[str, float]] = {}
    for tick, legs in fills:
        for key, delta, _ in json.loads(legs):
            if key in instruments:
                pos[key] += delta
        out[tick] = {k: float((pos[k] > 1e-12) - (pos[k] < -1e-12)) for k in instruments}
    return out


def test_each_signal_target_has_its_sides(signals):
    s, res, rows, fills = signals
    names = set(expand(Scope.STRATEGY, metric_members(s.config, s.venues)))
    assert {"signal_side.loose", "signal_side.strict", "position_side.loose", "position_side.strict"} <= names
    for _, m in rows:
        assert set(m) == names
    assert sum(m["signal_side.loose"] != m["signal_side.strict"] for _, m in rows) > 0, "the thresholds differ: so do the sides"
    # position_side.<id> is the sign of that target's own perp, as the fills built it
    inst = {"loose": "binance:Perp:BTCUSDT", "strict": "binance:Perp:ETHUSDT"}
    by_tick = _sides_from_fills(fills, set(inst.values()))
    cur = {k: 0.0 for k in inst.values()}
    traded = set()
    for tick, m in rows:
        cur = by_tick.get(tick, cur)
        for tid, key in inst.items():
            assert m[f"position_side.{tid}"] == cur[key], (tick, tid)
            if cur[key]:
                traded.add(tid)
    assert traded == {"loose", "strict"}, "both targets held a position in the window"
    assert res.summary["reconciliation_error"] < 1e-6


def test_plain_signal_sides_name_the_first_target_that_must_trade(signals):
    _, _, rows, _ = signals
    disagreeing = 0
    for _, m in rows:
        pairs = [(m[f"signal_side.{t}"], m[f"position_side.{t}"]) for t in ("loose", "strict")]
        must = [p for p in pairs if p[0] != p[1]]
        assert (m["signal_side"] != m["position_side"]) == bool(must)
        assert (m["signal_side"], m["position_side"]) == (must[0] if must else pairs[0])
        disagreeing += len(must) == 1 and pairs[0][0] == pairs[0][1]
    # ticks where only the second target wants a trade: the last-target-wins rule and the
    # first-target rule would both miss it; this one reports it
    assert disagreeing > 0
