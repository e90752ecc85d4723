"""Quiet spans (trimtab.engine.quiet) change nothing: a backtest run with ``Engine.run_until`` and
the spans on writes the same journal, table by table, row by row, float by float, and the same
summary as the same backtest stepped tick by tick (``bulk=False``).

Each case is a real Engine over a short window of the bundled data: the flagship through the
August 2024 crash (transitions, plans, funding settlements inside spans) and through stale
Binance marks, a basis trade, Aave lending, a leveraged loop and an ETH share class. Each also
requires that most ticks went through spans, so the comparison is not vacuous, and a signal
strategy (whose metrics are per tick only) must give the same run with spans on, none taken.
The vectorised guards are checked against the per-tick closures on real metrics, NaN included.
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
from trimtab.engine.kernel import Engine
from trimtab.rules.compile import compile_expr

ROOT = Path(__file__).resolve().parents[2]


def _run(config: str, start: str, end: str, market, out: Path, bulk: bool) -> tuple[dict, dict, Engine]:
    """Run an Engine over [start, end] with run_until and finish it: (table -> rows as text, summary, engine)."""
    e = Engine(load_strategy(ROOT / "configs" / config), market.slice(start, end), out, bulk=bulk)
    e.run_until(e.view.n)
    res = e.finish()
    summary = {k: v for k, v in res.summary.items() if k != "run_dir"}
    return journal_rows(out / "journal.sqlite"), json.loads(json.dumps(summary, default=repr)), e


def spans_match_ticks(config: str, start: str, end: str, market, out: Path) -> tuple[Engine, Engine]:
    """Run [start, end] with spans off and on, assert every journal table (row by row, column order
    included) and the summary are the same; returns (engine stepped tick by tick, engine with spans)."""
    ref, ref_summary, ref_engine = _run(config, start, end, market, out / "ticks", bulk=False)
    got, got_summary, engine = _run(config, start, end, market, out / "spans", bulk=True)
    for table in TABLES:
        assert len(got[table]) == len(ref[table]), table
        for a, b in zip(got[table], ref[table]):
            assert a == b, f"{table}: {a} != {b}"
    assert got_summary == ref_summary
    return ref_engine, engine


CASES = [
    # (config, start, end, least share of ticks processed in quiet spans)
    ("usdt_eth_staking_hedged_leveraged.yaml", "2024-07-25", "2024-08-12", 0.7),  # the crash: transitions, plans
    ("usdt_eth_staking_hedged_leveraged.yaml", "2024-06-08", "2024-06-20", 0.7),  # Binance marks stale for hours
    ("eth_basis.yaml", "2025-01-01", "2025-01-20", 0.8),
    ("pure_lending_usdt.yaml", "2025-01-01", "2025-01-20", 0.8),
    ("usdt_lend_loop.yaml", "2025-01-01", "2025-01-20", 0.8),
    ("eth_leveraged.yaml", "2025-01-01", "2025-01-20", 0.8),  # ETH share class
    ("ml_usdt_directional_usdt_margin.yaml", "2025-02-01", "2025-02-08", 0.0),  # signal perp: per tick
]


@pytest.mark.parametrize("config,start,end,share", CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_spans_change_nothing(config, start, end, share, market, tmp_path):
    ref_engine, engine = spans_match_ticks(config, start, end, market, tmp_path)
    assert ref_engine.quiet is None and engine.quiet is not None
    n = engine.view.n
    bulk = engine.quiet.counts["bulk"]
    assert bulk >= share * n, (bulk, n, engine.quiet.why)
    # every tick is either in a span or stepped for a recorded reason
    assert bulk + sum(engine.quiet.why.values()) == n
    if share == 0.0:
        assert bulk == 0 and set(engine.quiet.why) <= {"metrics per tick only (signal or basket)"}


def test_progress_reports_every_tick_range(market, tmp_path):
    """run_until reports progress as the per-tick loop did: from the first tick to the last."""
    e = Engine(load_strategy(ROOT / "configs" / "pure_lending_usdt.yaml"), market.slice("2025-01-01", "2025-01-10"), tmp_path / "r")
    seen = []
    e.run_until(e.view.n, lambda done, total: seen.append((done, total)))
    e.finish()
    assert seen[0][0] >= 1 and seen[-1] == (e.view.n, e.view.n)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert e.quiet.counts["bulk"] > 0


def _metrics_rows(config: str, start: str, end: str, market, out: Path) -> list[dict[str, float]]:
    e = Engine(load_strategy(ROOT / "configs" / config), market.slice(start, end), out, bulk=False)
    return [e.step(i) for i in range(e.view.n)]


def test_vector_guards_match_closures(market, tmp_path):
    """Every shipped rule of the flagship, vectorised, gives the per-tick closure's truth on
    real metrics, with NaN in a metric (both NaN modes) and division by zero."""
    s = load_strategy(ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml")
    rows = _metrics_rows("usdt_eth_staking_hedged_leveraged.yaml", "2024-08-01", "2024-08-08", market, tmp_path / "r")
    rng = np.random.default_rng(7)
    for j in rng.choice(len(rows), size=len(rows) // 3, replace=False):  # holes in the data
        k = rng.choice(sorted(rows[j]))
        rows[j] = {**rows[j], k: math.nan}
    names = sorted(rows[0])
    env = {k: np.array([r[k] for r in rows]) for k in names}
    for name, rule in s.rules.items():
        for nan_as in (None, True):
            vec = rule.expr.vector_guard(nan_as)
            assert vec is not None, name
            want = [bool(rule.expr.guard(nan_as)(r)) for r in rows]
            got = np.broadcast_to(vec(env), (len(rows),)).tolist()
            assert got == want, (name, nan_as)


@pytest.mark.parametrize("text", [
    "a / b > 1", "min(a, b) < 0.5", "max(a, -b, 2) >= 1", "not (a != b)", "abs(a - b) == 0 or a",
    "a and b > 0", "(a > 1) == (b > 1)",
])
def test_vector_guards_edge_values(text):
    """Division by zero, NaN and infinities give the closure's result element by element; a
    shape without a vector form is refused (None), never approximated."""
    expr = compile_expr(text, {})
    vals = [0.0, -0.0, 1.0, -2.0, math.inf, -math.inf, math.nan, 0.5]
    a = np.array([x for x in vals for _ in vals])
    b = np.array([y for _ in vals for y in vals])
    for nan_as in (None, True, False):
        vec = expr.vector_guard(nan_as)
        if vec is None:
            continue
        want = [bool(expr.guard(nan_as)({"a": x, "b": y})) for x, y in zip(a.tolist(), b.tolist())]
        assert np.broadcast_to(vec({"a": a, "b": b}), a.shape).tolist() == want, (text, nan_as)


def test_flag_metrics_follow_the_tradable_flags(market, tmp_path):
    """A quiet span runs across the hours where a traded perp's tradable flag flips (stale
    Binance marks): Monitors._flag_metrics gives at each tick the stale_venues and
    hedge_allocation_drift that run() computes from that tick's flags, and changes inside it."""
    e = Engine(load_strategy(ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"),
               market.slice("2024-06-08", "2024-06-20"), tmp_path / "r")
    e.run_until(e.view.n)
    mon, flags = e.monitors, [e.stretches.tradable(k) for k in e.monitors.trade_keys]
    flip = min(int(np.flatnonzero(f[1:] != f[:-1])[0]) + 1 for f in flags if (f[1:] != f[:-1]).any())
    lo, hi = max(flip - 5, 1), min(flip + 40, e.view.n)
    e.view.i = lo
    drift, stale = mon._flag_metrics(lo, hi, e.params)
    want_drift, want_stale = [], []
    for t in range(lo, hi):
        e.view.i = t
        mon._refresh_tradable()
        want_drift.append(mon._hedge_drift(e.params))
        want_stale.append(float(mon._stale))
    assert np.asarray(drift).tolist() == want_drift and np.asarray(stale).tolist() == want_stale
    assert len(set(want_stale)) > 1  # the flags did change inside the span
    e.finish()
