"""Quiet stretches (trimtab.engine.stretch) change nothing: the same backtest with and without them
writes the same journal, table by table, row by row, float by float, and the same summary.

Each case steps a real Engine over a window of the bundled data twice, ``stretches=True`` (the
default) and ``stretches=False`` (every tick computed one by one, the reference), and compares
every row of every journal table (floats by ``repr``, so a last-bit difference fails) and the
summary. The windows are chosen for what they exercise: the flagship through the August 2024
crash (transitions, plans, funding), through a stretch of stale Binance marks (the reference
price fallback and its ``stale_marks`` count), ETH and BTC share classes (prices divided by the
share class price; a USDT margin balance whose value moves), signal strategies, a basis trade and
Aave lending; each case also requires
that most ticks took the vectorised path, so the comparison is not vacuous.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from journal_rows import TABLES, journal_rows  # noqa: E402

from trimtab.config.load import load_strategy  # noqa: E402
from trimtab.engine.kernel import Engine  # noqa: E402
from trimtab.venues import margin  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _run(config: str, start: str, end: str, market, out: Path, stretches: bool) -> tuple[dict, dict, dict]:
    """Step an Engine over [start, end] and finish it: (table -> rows as text, summary, path counts)."""
    s = load_strategy(ROOT / "configs" / config)
    e = Engine(s, market.slice(start, end), out, stretches=stretches)
    for i in range(e.view.n):
        e.step(i)
    res = e.finish()
    tables = journal_rows(out / "journal.sqlite", column_order=False)
    summary = {k: v for k, v in res.summary.items() if k != "run_dir"}
    return tables, json.loads(json.dumps(summary, default=repr)), res.paths


CASES = [
    # (config, start, end, least share of ticks on the vectorised path)
    ("usdt_eth_staking_hedged_leveraged.yaml", "2024-07-25", "2024-08-12", 0.8),   # the crash: transitions, plans
    ("usdt_eth_staking_hedged_leveraged.yaml", "2024-06-08", "2024-06-20", 0.8),   # Binance marks stale for hours
    ("eth_leveraged.yaml", "2025-01-01", "2025-01-20", 0.8),                       # ETH share class
    ("ml_usdt_directional_usdt_margin.yaml", "2025-02-01", "2025-02-15", 0.3),     # signal perp: trades often
    ("btc_basis.yaml", "2025-03-01", "2025-03-15", 0.8),
    ("ml_btc_directional_usdt_margin.yaml", "2024-01-10", "2024-01-25", 0.3),  # BTC share class: margin moves in value
    ("usdt_lend_loop.yaml", "2025-01-01", "2025-01-20", 0.8),
]


@pytest.mark.parametrize("config,start,end,share", CASES, ids=[f"{c[0].split('.')[0]}-{c[1]}" for c in CASES])
def test_stretches_change_nothing(config, start, end, share, market, tmp_path):
    on_tables, on_summary, paths = _run(config, start, end, market, tmp_path / "on", True)
    off_tables, off_summary, off_paths = _run(config, start, end, market, tmp_path / "off", False)
    assert off_paths == {}
    total = paths["vector"] + paths["per_tick"]
    assert total == len(on_tables["series"]) > 0
    assert paths["vector"] >= share * total, paths
    for t in TABLES:
        assert len(on_tables[t]) == len(off_tables[t]), t
        for k, (a, b) in enumerate(zip(on_tables[t], off_tables[t])):
            assert a == b, f"{t} row {k}:\n with    {a}\n without {b}"
    assert on_summary == off_summary


def test_stale_marks_are_counted_in_stretches(market, tmp_path):
    """The Binance window above does read stale marks inside stretches (else the case proves little)."""
    _, summary, paths = _run("usdt_eth_staking_hedged_leveraged.yaml", "2024-06-08", "2024-06-20", market, tmp_path, True)
    assert summary["stale_marks_hours"].get("binance:Perp:ETHUSDT", 0) > 0
    assert paths["vector"] > paths["per_tick"]


class _Tier:
    def __init__(self, cap, mmr, cum):
        self.cap, self.mmr, self.cum = cap, mmr, cum


class _Table:
    def __init__(self, basis, tiers):
        self.basis, self.tiers = basis, [_Tier(*t) for t in tiers]


@pytest.mark.parametrize("basis", ["notional", "quantity"])
def test_maintenance_array_is_maintenance(basis):
    """margin.maintenance_array is margin.maintenance at every mark, bit for bit: bracket edges,
    past the last cap, a NaN mark, long and short."""
    tiers = [(50_000.0, 0.004, 0.0), (600_000.0, 0.005, 50.0), (3_000_000.0, 0.0065, 950.0)]
    table = _Table(basis, tiers)
    rng = np.random.default_rng(7)
    for size in (-7.25, 3.0, 120.5):
        marks = np.concatenate([rng.uniform(100.0, 40_000.0, 500),
                                [50_000.0 / abs(size), 600_000.0 / abs(size), 3_000_000.0 / abs(size), 1e9, math.nan]])
        got = margin.maintenance_array(table, size, marks)
        want = [margin.maintenance(table, size, float(m)) for m in marks]
        assert [repr(x) for x in got.tolist()] == [repr(x) for x in want]


def test_maintenance_array_refuses_unsorted_caps():
    table = _Table("notional", [(600_000.0, 0.005, 50.0), (50_000.0, 0.004, 0.0)])
    assert margin.maintenance_array(table, 1.0, np.array([1000.0])) is None


@pytest.mark.parametrize("basis", ["notional", "quantity"])
def test_liquidation_price_array_is_liquidation_price(basis):
    """margin.liquidation_price_array is margin.liquidation_price(w, 0, 0, ...) at every wallet,
    bit for bit, None as (0.0, True): short and long, a bracket other than the first, no
    self-consistent bracket (the first candidate kept), no reachable price, NaN, inf, 0 and -0.0."""
    tiers = [(50_000.0, 0.004, 0.0), (600_000.0, 0.005, 50.0), (3_000_000.0, 0.0065, 950.0), (1e12, 0.5, 9e5)]
    table = _Table(basis, tiers)
    rng = np.random.default_rng(11)
    wallets = np.concatenate([rng.uniform(-5e5, 5e6, 800), [0.0, -0.0, math.nan, math.inf, -math.inf, 1e12]])
    for size, entry in ((-7.25, 2930.4), (3.0, 60_000.0), (120.5, 3000.0), (-900.0, 3000.0)):
        value, none = margin.liquidation_price_array(wallets, size, entry, table)
        want = [margin.liquidation_price(float(w), 0, 0, size, entry, table) for w in wallets]
        assert [None if n else repr(v) for v, n in zip(value.tolist(), none.tolist())] == [
            None if p is None else repr(p) for p in want]
        assert not (value[none] != 0.0).any()
    assert margin.liquidation_price_array(wallets, 0.0, 3000.0, table) is None
    assert margin.liquidation_price_array(wallets, 1.0, 3000.0, _Table(basis, tiers[::-1])) is None
