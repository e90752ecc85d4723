"""The engine loop's column-wise shortcuts give what the tick-by-tick code gives, bit for bit.

- :meth:`Attribution.add_span` (a quiet span's attribution, reconciliation and ledger amounts)
  against the per-tick calls it stands for, on random parts with zeros, NaN, cancellations and
  several parts per category;
- ``equity.csv`` written from the metric columns the journal kept as it wrote them against the
  file read back from the closed journal, for real short backtests of shipped configs;
- :func:`trimtab.engine.results.utc_texts` against ``time.strftime``;
- :func:`trimtab.engine.results.csv_floats` (Arrow's text where it is repr's) against ``repr``.
"""
from __future__ import annotations

import math
import random
import time
from pathlib import Path

import numpy as np
import pytest

from trimtab.accounting.attribution import Attribution
from trimtab.config.load import load_strategy
from trimtab.data.feed import load_market_data
from trimtab.engine.backtest import run_backtest
from trimtab.engine.results import csv_floats, utc_texts, write_equity_csv

ROOT = Path(__file__).resolve().parents[2]


def _bits(x):
    """A float's identity for comparison: its repr (tells -0.0 from 0.0; nan equals nan)."""
    return None if x is None else repr(x)


def _per_tick(cats, parts, events, changes, start_total):
    """What the kernel does tick by tick: start_tick, add_move, add (events), check; the ledger
    amounts per tick as dicts."""
    a = Attribution()
    a.total.update(start_total)
    ticks = []
    for j in range(len(changes)):
        a.start_tick()
        a.add_move(cats, tuple(parts[j].tolist()))
        for c, amt in events.get(j, ()):
            a.add(c, amt)
        a.check(changes[j])
        ticks.append(dict(a.tick))
    return a, ticks


def _random_case(rng: random.Random):
    cats = tuple(rng.choice(["price_delta", "basis", "supply_yield", "borrow_cost", "staking_yield"])
                 for _ in range(rng.randint(1, 8)))
    k = rng.randint(1, 60)
    parts = np.empty((k, len(cats)))
    for j in range(k):
        for c in range(len(cats)):
            r = rng.random()
            parts[j, c] = (0.0 if r < 0.3 else -0.0 if r < 0.35 else math.nan if r < 0.37
                           else rng.uniform(-1, 1) * 10 ** rng.randint(-9, 6))
        if len(cats) > 1 and rng.random() < 0.2:  # an exact cancellation inside one tick
            parts[j, 1] = -parts[j, 0]
    events = {j: [("funding", rng.choice([0.0, rng.uniform(-50, 50)])) for _ in range(rng.randint(1, 3))]
              for j in range(k) if rng.random() < 0.2}
    changes = [rng.uniform(-1e4, 1e4) for _ in range(k)]
    start = {c: rng.uniform(-1e5, 1e5) for c in ("price_delta", "basis", "funding", "supply_yield")}
    return cats, parts, events, changes, start


def test_add_span_matches_per_tick_bit_for_bit():
    rng = random.Random(14)
    for _ in range(300):
        cats, parts, events, changes, start = _random_case(rng)
        want, ticks = _per_tick(cats, parts, events, changes, start)
        got = Attribution()
        got.total.update(start)
        amounts = got.add_span(cats, parts, events, changes)
        assert amounts is not None
        assert list(got.total) == list(want.total)
        assert [_bits(v) for v in got.total.values()] == [_bits(v) for v in want.total.values()]
        assert _bits(got.max_error) == _bits(want.max_error)
        for j, tick in enumerate(ticks):
            row = {c: v[j] for c, v in amounts.items() if v[j] is not None}
            assert {c: _bits(v) for c, v in row.items()} == {c: _bits(v) for c, v in tick.items()}, (cats, j)
        assert {c: _bits(v) for c, v in got.tick.items()} == {c: _bits(v) for c, v in ticks[-1].items()}


def test_add_span_refuses_what_it_cannot_order():
    a = Attribution()
    before = dict(a.total)
    parts = np.ones((2, 1))
    # an event in a market move's category: the per-tick order between them would matter
    assert a.add_span(("funding",), parts, {0: [("funding", 1.0)]}, [0.0, 0.0]) is None
    # a category attribution has no total for yet
    assert a.add_span(("made_up",), parts, {}, [0.0, 0.0]) is None
    assert a.total == before and a.max_error == 0.0


@pytest.fixture(scope="module")
def data():
    return load_market_data()


@pytest.mark.parametrize("config", ["usdt_eth_staking_hedged_leveraged", "btc_basis", "pure_lending_usdt"])
def test_equity_csv_from_kept_columns_is_the_journal_read_back(tmp_path, data, config):
    strategy = load_strategy(ROOT / "configs" / f"{config}.yaml")
    r = run_backtest(strategy, start="2025-01-01", end="2025-02-01", out=tmp_path, run_id="run", data=data)
    kept = (r.run_dir / "equity.csv").read_bytes()
    # the perp venues, in order, are the header's margin_ratio.<venue> columns
    header = kept.split(b"\n", 1)[0].decode().split(",")
    perp_venues = [h.split(".", 1)[1] for h in header if h.startswith("margin_ratio.")]
    again = tmp_path / "again.csv"
    write_equity_csv(again, r.epoch, r.values, _nav(r.run_dir), r.run_dir / "journal.sqlite", perp_venues)
    assert kept.count(b"\n") == r.ticks + 1
    assert again.read_bytes() == kept


def _nav(run_dir: Path) -> list[float]:
    """The NAV column of a run's journal (``series`` is written for every tick)."""
    import sqlite3

    db = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        return [x for (x,) in db.execute("SELECT nav FROM series ORDER BY tick")]
    finally:
        db.close()


def test_utc_texts_is_strftime():
    rng = random.Random(3)
    epochs = [rng.randint(-2 * 10**9, 4 * 10**9) for _ in range(3000)] + list(range(1_700_000_000, 1_700_000_000 + 3600 * 60, 3600))
    for day, clock in (("%Y-%m-%dT", "%H:%MZ"), ("%Y-%m-%d ", "%H:%M:%S+00:00")):
        assert utc_texts(epochs, day, clock) == [time.strftime(day + clock, time.gmtime(e)) for e in epochs]


def test_csv_floats_is_repr_with_nan_empty():
    rng = np.random.default_rng(5)
    # Every notation boundary of repr and Arrow, integral values, signed zeros, the non-finite,
    # short decimals (several shortest candidates) and random bits over the whole range.
    edges = np.array([1e-4, 1e-5, 1e-6, 1e-7, 1e10, 1e16, 1e22, 123456789012.5, 9999999999.5, 0.5, 1.0, 3.0, 2.0**53,
                      0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, 1.7976931348623157e308, 0.1, 0.3, 2.0 / 3.0])
    with np.errstate(over="ignore"):   # past the largest float: inf, which is wanted too
        edges = np.concatenate([edges, -edges, np.nextafter(edges, math.inf), np.nextafter(edges, -math.inf)])
    short = np.concatenate([np.round(rng.random(500) * 10.0 ** rng.integers(-5, 12, 500), k) for k in range(10)])
    bits = rng.integers(0, 2**63 - 2**52, 20000, dtype=np.int64).view(np.float64)   # finite, every exponent
    ranged = rng.random(20000) * 10.0 ** rng.integers(-5, 11, 20000) * rng.choice([-1.0, 1.0], 20000)
    for col in (edges, short, bits, ranged):
        assert csv_floats(col) == ["" if x != x else repr(x) for x in col.tolist()]


def test_kept_columns_are_the_metrics_read_back(tmp_path, data):
    """The journal keeps equity.csv's metrics for every tick of a fresh run, the values
    read_metrics gives back after the close (NaN where absent, -0.0 as 0.0)."""
    import sqlite3

    from trimtab.engine.journal import read_metrics
    from trimtab.engine.kernel import Engine
    from trimtab.engine.results import equity_columns, metric_columns
    from trimtab.engine.window import resolve_window

    strategy = load_strategy(ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml")
    start, end = resolve_window(strategy, data, "2025-01-01", "2025-01-20")
    e = Engine(strategy, data.slice(start, end), tmp_path / "run")
    e.run_until(e.view.n)
    kept = e.journal.kept_columns(e.view.n)
    assert kept is not None and set(kept) == set(equity_columns(e.sim.perp_venues))
    assert e.journal.kept_columns(e.view.n + 1) is None  # a tick it never saw: read the journal
    e.journal.close()
    db = sqlite3.connect(tmp_path / "run" / "journal.sqlite")
    try:
        back = metric_columns(e.view.n, read_metrics(db), e.sim.perp_venues)
    finally:
        db.close()
    for k, col in back.items():
        assert [repr(x) for x in kept[k].tolist()] == [repr(x) for x in col.tolist()], k


def test_array_shortcuts_match_their_per_tick_definitions(tmp_path, data):
    """The per-tick definitions the loop's array shortcuts stand for, on a real engine: the
    tradable flags of every perp, the freshness flags of every mark, the eETH held over a span,
    a book's positions after a funding-like change of a margin balance."""
    import math as _math

    from trimtab.accounting.book import Fill, Leg
    from trimtab.data.market import series_of
    from trimtab.engine.kernel import Engine
    from trimtab.engine.window import resolve_window

    strategy = load_strategy(ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml")
    start, end = resolve_window(strategy, data, "2025-01-01", "2025-02-01")
    e = Engine(strategy, data.slice(start, end), tmp_path / "run")
    view, px = e.view, e.px
    assert e.monitors.trade_keys
    for key in e.monitors.trade_keys:  # the perps the strategy trades (the catalog lists some without data)
        assert px.tradable_all(key) == [px.tradable(key, j) for j in range(view.n)], key
        inf = px.info[key]
        ages, q = view.ages[series_of(inf.mark_field)], view.quar.get(series_of(inf.mark_field))
        want = [not _math.isnan(v) and a <= inf.stale_after_h and not (q and q[j])
                for j, (v, a) in enumerate(zip(view.cols[inf.mark_field], ages))]
        assert view.fresh_flags(inf.mark_field, inf.stale_after_h) == want, key
    e.run_until(view.n // 2)  # a book holding weETH and perps
    book, rewards = e.book, e.rewards
    lo = e.next_tick
    per_tick = [rewards.observe(book, px, t) for t in range(lo, lo + 20)]
    held = list(rewards.held)
    span = rewards.observe_span(book, px, lo, 20, e.stretches.column)
    assert [repr(x) for x in span] == [repr(x) for x in per_tick] and rewards.held == held + per_tick
    margin = next(k for k, q in book.bal.items() if ":Margin:" in k and q)
    before = e.monitors.positions_of(book)
    book.apply(Fill(lo, margin.split(":")[0], "funding", "funding", [Leg(margin, -12.5, -12.5)]))
    assert e.monitors.positions_after(before, book, [margin]) == e.monitors.positions_of(book)
