"""The engine loop, one tick per hour of real data (DESIGN.md "The runtime pipeline").

Per tick: (1) the book's market move is attributed and venues accrue (Aave through indices,
LSTs through their rate, funding at 00/08/16 UTC, transfers arriving); (2) liquidations, as the
venues would; (3) the plan in flight advances; (4) the tight loop computes metrics; (5) the
machine takes at most one transition, and entering an action state compiles and submits a
plan; (6) attribution is reconciled with the change in equity, and everything is journaled.

A decision at tick t reads only data available at or before t: OHLCV bars count from their
close (open + 1h), oracle and index readings from their timestamp (trimtab.data.feed).
"""
from __future__ import annotations

import json
import math
import time as _time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..accounting.attribution import Attribution
from ..accounting.book import Book, Fill, Leg
from ..config.load import Strategy
from ..config.models import LeveragedStakeTarget, PerpHedgeTarget, WalletReserveTarget
from ..data.feed import DataError, MarketData, load_market_data
from ..planner.compile import Planner
from ..venues.pricing import Pricing
from ..venues.sim import GAS_FIELD, SimVenues
from .executor import Executor
from .journal import Journal, jsonable
from .machine import StrategyMachine
from .market import MarketView, series_of
from .monitors import Monitors
from .results import performance


@dataclass
class RunResult:
    """The summary (JSON-ready) and where the run was written."""

    summary: dict
    run_dir: Path
    equity: pd.Series = field(repr=False, default=None)
    decision_ns: list[int] = field(repr=False, default_factory=list)


def required_series(strategy: Strategy) -> tuple[set[str], set[str]]:
    """(series the strategy cannot run without, perp series it can run around when stale)."""
    must = {series_of((strategy.venues["wallet"].assets or {})["ETH"].usd_field), series_of(GAS_FIELD)}
    optional: set[str] = set()
    wallet_assets = strategy.venues["wallet"].assets or {}
    for t in strategy.config.targets:
        if isinstance(t, LeveragedStakeTarget):
            for k in (t.collateral, t.debt):
                must.add(strategy.instruments[k][1].reserve)
            asset = strategy.instruments[t.collateral][1].asset
            if wallet_assets[asset].eth_rate_field:
                must.add(series_of(wallet_assets[asset].eth_rate_field))
        if isinstance(t, (LeveragedStakeTarget, WalletReserveTarget)):
            for p in (strategy.venues[t.swap_venue].pairs or {}).values():
                if p.price_field and p.cost_pair == "ETH_USDT":
                    must.add(series_of(p.price_field))
        if isinstance(t, PerpHedgeTarget):
            for leg in t.legs:
                spec = strategy.instruments[leg.instrument][1]
                optional |= {series_of(spec.mark_field), series_of(spec.funding_field)}
    return must, optional


def default_window(strategy: Strategy, data: MarketData) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The longest window the strategy's required series all cover (and one hedge venue)."""
    must, optional = required_series(strategy)
    starts, ends = [], []
    for s in must:
        a, b = data.coverage(s)
        starts.append(a)
        ends.append(b)
    perps = [data.coverage(s) for s in optional if s.startswith("perp.")]
    if perps:
        starts.append(min(a for a, _ in perps))
        ends.append(max(b for _, b in perps))
    start, end = max(starts).ceil("h"), min(ends).floor("h")
    if start >= end:
        raise DataError(f"the data the strategy needs has no common window (start {start}, end {end})")
    return start, end


def run_backtest(strategy: Strategy, start=None, end=None, capital: float | None = None, out: Path | str = "runs",
                 run_id: str | None = None, progress=None, data: MarketData | None = None, time_decisions: bool = False) -> RunResult:
    """Run ``strategy`` over the bundled real data and write ``<out>/<run_id>/``.

    Args:
        start, end: window (UTC; default: the longest window the strategy's data covers).
        capital: initial capital in the share class (default: the config's ``capital``).
        progress: optional callable ``(done_ticks, total_ticks)``.
        data: preloaded market data (tests reuse one load).
        time_decisions: record the nanoseconds of each tight loop + machine step.

    Raises:
        DataError: a window outside the data, or a series the strategy needs has no value.
    """
    capital = float(capital if capital is not None else strategy.config.capital)
    if data is None:
        data = load_market_data()
    d0, d1 = default_window(strategy, data)
    start = pd.Timestamp(start, tz="UTC") if start is not None and pd.Timestamp(start).tzinfo is None else (pd.Timestamp(start) if start is not None else d0)
    end = pd.Timestamp(end, tz="UTC") if end is not None and pd.Timestamp(end).tzinfo is None else (pd.Timestamp(end) if end is not None else d1)
    if start < d0 or end > d1:
        raise DataError(f"window {start:%Y-%m-%d %H:%M} -> {end:%Y-%m-%d %H:%M} is outside what {strategy.name}'s data covers: "
                        f"{d0:%Y-%m-%d %H:%M} -> {d1:%Y-%m-%d %H:%M} (UTC)")
    window = data.slice(start, end)

    # Build the stages.
    view = MarketView(window, set())
    px = Pricing(strategy, view)
    sim = SimVenues(strategy, px, window.static)
    view.add_fields(px.fields() | sim.fields())
    book = Book()
    attr = Attribution()
    if run_id is None:
        # Never reuse a directory: two runs started in the same second get -2, -3, ...
        base = f"{strategy.name}-{start:%Y%m%d}-{end:%Y%m%d}-{_time.strftime('%Y%m%dT%H%M%S')}"
        run_id, k = base, 1
        while (Path(out) / run_id).exists():
            k += 1
            run_id = f"{base}-{k}"
    run_dir = Path(out) / run_id
    journal = Journal(run_dir / "journal.sqlite")
    iso = [f"{t:%Y-%m-%dT%H:%MZ}" for t in view.times]
    executor = Executor(px, sim, book, attr,
                        on_fill=lambda f: journal.fill(f, iso[f.tick]),
                        on_step=lambda pid, s, st, tick, detail: journal.step(pid, s, st, tick, iso[tick], detail))
    planner = Planner(strategy, px, sim)
    monitors = Monitors(strategy, px, sim, book)
    machine = StrategyMachine(strategy)
    params = dict(strategy.params)

    journal.meta("strategy", {"name": strategy.name, "config": strategy.config_file, "machine": strategy.machine_file})
    journal.meta("window", {"start": iso[0], "end": iso[-1], "capital": capital, "share_class": strategy.config.share_class})
    journal.meta("parameters", params)
    journal.meta("config", strategy.config.model_dump())

    # Capital arrives in the wallet as the share class token (not P&L).
    sc_key = f"wallet:BaseToken:{strategy.config.share_class}"
    seed = Fill(0, "wallet", "deposit_capital", "capital", [Leg(sc_key, capital, capital)], note="initial capital")
    book.apply(seed)
    journal.fill(seed, iso[0])

    n = view.n
    eq_series = [0.0] * n
    transitions = liquidations = 0
    equity0 = None
    decision_ns: list[int] = []
    for i in range(n):
        view.i = i
        attr.start_tick()
        if i > 0:
            attr.market_move(book, px, i - 1, i)
        for f in sim.funding(i, book):
            executor.apply(f)
        executor.advance(i)
        t0 = _time.perf_counter_ns() if time_decisions else 0
        metrics = monitors.run(i, executor.in_flight, params)
        if metrics["health_factor"] < 1.0 or metrics["margin_ratio_min"] < sim.max_maintenance:
            # Only then can a venue liquidate; the venues check exactly, as they would.
            hit = sim.liquidations(i, book)
            for f, price in hit:
                executor.apply(f, price)
            liquidations += len({(f.venue, f.tick) for f, _ in hit})
            if hit:
                metrics = monitors.run(i, executor.in_flight, params)
        decision = machine.step(i, iso[i], metrics)
        if time_decisions:
            decision_ns.append(_time.perf_counter_ns() - t0)
        if decision.trigger:
            transitions += 1
            action = machine.action(decision.dest)
            if action is not None:
                p = dict(params)
                for k, v in action.overrides.items():
                    p[k] = params[v] if isinstance(v, str) else float(v)
                plan = planner.plan(book, metrics["equity"], decision.dest, action.kind, p, decision.trigger)
                decision.plan_id = plan.id
                journal.plan(plan, i)
                monitors.mark_rebalance(metrics["equity"], view.epoch[i])
                executor.submit(plan, i)
                metrics = monitors.run(i, executor.in_flight, params)
        equity = metrics["equity"]
        if equity0 is None:
            equity0 = capital
        attr.check(equity - equity0)
        eq_series[i] = equity
        journal.decision(decision)
        journal.metrics(i, iso[i], machine.state, metrics)
        journal.ledger(i, iso[i], attr.tick)
        if progress and (i % 200 == 0 or i == n - 1):
            progress(i + 1, n)

    equity = pd.Series(eq_series, index=pd.DatetimeIndex(view.times))
    perf = performance(equity)
    stale = {k: len(v) for k, v in sorted(px.stale_marks.items())}
    data_notes = []
    for s in sorted(required_series(strategy)[1]):
        gaps = window.gaps(s)
        if gaps:
            data_notes.append({"series": s, "gaps": [{"start": f"{g.start:%Y-%m-%d %H:%M}", "end": f"{g.end:%Y-%m-%d %H:%M}", "hours": g.hours} for g in gaps]})
    summary = {
        "mode": strategy.name,
        "share_class": strategy.config.share_class,
        "start": iso[0],
        "end": iso[-1],
        "initial_equity": capital,
        "final_equity": float(equity.iloc[-1]),
        "apy": perf["apy"],
        "apr": perf["apr"],
        "max_drawdown": perf["max_drawdown"],
        "sharpe": perf["sharpe"],
        "attribution": {k: v for k, v in attr.total.items()},
        "reconciliation_error": attr.max_error,
        "positions_match_fills": not book.check_fills(),
        "transitions": transitions,
        "plans": executor.counts["plans"],
        "failed_plans": executor.counts["failed_plans"],
        "last_plan_failure": executor.last_failure,
        "instructions": executor.counts["instructions"],
        "liquidations": liquidations,
        "final_state": machine.state,
        "final_positions": {k: v for k, v in sorted(book.bal.items()) if abs(v) > 1e-12},
        "stale_marks_hours": stale,
        "funding_proxies": dict(sim.funding_proxies),
        "funding_missing": dict(sim.funding_missing),
        "data_gaps": data_notes,
        "run_dir": str(run_dir),
    }
    journal.meta("summary", summary)
    journal.close()
    (run_dir / "summary.json").write_text(json.dumps(jsonable(summary), indent=2, default=str))
    equity.rename("equity").to_frame().to_csv(run_dir / "equity.csv", index_label="time")
    return RunResult(summary, run_dir, equity, decision_ns)
