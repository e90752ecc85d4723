"""The engine kernel, one tick per hour of real data (DESIGN.md "The runtime pipeline"), shared
by backtests (:mod:`trimtab.engine.backtest`), live runs (:mod:`trimtab.live.runner`) and the
sleeves of a portfolio (:mod:`trimtab.portfolio.runner`).

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
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..accounting.attribution import Attribution
from ..accounting.book import Book, Fill, Leg
from ..config.load import Strategy
from ..data.feed import DataError, MarketData
from ..data.market import MarketView
from ..data.signals import SignalBook, align, read_signals
from ..planner.compile import MIN_TRADE_USD, Planner
from ..planner.yield_impact import analyse, positions_of
from ..templates.registry import template_for
from ..venues.pricing import Pricing
from ..venues.rewards import RewardAccrual
from ..venues.costs import costs_block
from ..venues.sim import SimVenues
from .executor import Executor
from .flows import CapitalFlows, Flow, read_flows
from .journal import Journal, jsonable
from .legrisk import LegRisk
from .machine import Decision, StrategyMachine
from .monitors import Monitors
from .results import equity_columns, equity_csv_arrays, performance_of, utc_texts, write_equity_csv
from .quiet import QuietSpans
from .stretch import Stretches
from .window import series_notes

@dataclass
class RunResult:
    """The summary (JSON-ready) and where the run was written.

    ``values`` and ``epoch``: equity (share class) and UTC time (epoch seconds) per tick run;
    :attr:`equity` is the same as a ``pd.Series``, built on first use (a run never imports
    pandas; ``ticks`` counts them without it)."""

    summary: dict
    run_dir: Path
    values: list[float] = field(repr=False, default_factory=list)
    decision_ns: list[int] = field(repr=False, default_factory=list)
    #: ticks whose monitors read a quiet stretch ("vector") or were computed one by one ("per_tick")
    paths: dict = field(repr=False, default_factory=dict)
    epoch: list[int] = field(repr=False, default_factory=list)
    #: Waits for the files a helper process still writes into ``run_dir`` (``equity.csv``,
    #: :attr:`Engine.csv_helper`), writing them here if it cannot; a no-op otherwise. Raises
    #: OSError when the file cannot be written.
    settle: Callable[[], None] = field(repr=False, compare=False, default=lambda: None)

    @property
    def ticks(self) -> int:
        """Ticks run."""
        return len(self.values)

    @property
    def equity(self):
        """Equity per tick as a ``pd.Series`` (float64) indexed by the ticks' UTC times (ns)."""
        import pandas as pd  # for callers that want pandas (tests, benches); never a run

        index = pd.DatetimeIndex(pd.to_datetime(self.epoch, unit="s", utc=True).as_unit("ns"))
        return pd.Series(self.values, index=index, dtype="float64")

class Engine:
    """One strategy's pipeline over a window of market data, one tick at a time.

    The backtest steps it through every tick at once; a live run steps it as its clock
    reaches each tick and checkpoints it after every tick (:meth:`state`, :meth:`restore`),
    so both share every stage (DESIGN.md: only the feed, the clock and the venue side differ).
    Per tick (:meth:`step`): attribute the market move; venues accrue (funding, stops, reward
    drops, capital flows); the plan in flight advances; the tight loop; liquidations if near;
    one machine step, and a plan for an action state; leg-risk compensation; payouts;
    reconciliation; the journal.
    """

    def __init__(self, strategy: Strategy, window: MarketData, run_dir: Path, capital: float | None = None,
                 flows: list[Flow] | None = None, time_decisions: bool = False, resume: bool = False, journal_mode: str = "slim",
                 stretches: bool = True, bulk: bool = True, journal_writer: bool = False, journal_synced: bool = True):
        self.strategy = strategy
        # Every series is checked with the strategy's data_checks limits (trimtab.data.quality).
        self.window = window = window.with_checks(strategy.config.data_checks)
        self.capital = float(capital if capital is not None else strategy.config.capital)
        self.run_dir = Path(run_dir)
        self.time_decisions = time_decisions
        self.view = view = MarketView(window, set())
        self.px = px = Pricing(strategy, view)
        self.sim = sim = SimVenues(strategy, px, window.static)
        view.add_fields(px.fields() | sim.fields())
        self.book = Book()
        self.attr = Attribution()
        self.journal = journal = Journal(self.run_dir / "journal.sqlite", fresh=not resume, mode=journal_mode,
                                         writer=journal_writer, synced=journal_synced)
        self.iso = iso = iso_minutes(view, 0)
        if not resume:  # equity.csv's risk columns, kept as journaled (a resumed run reads its journal)
            journal.keep_columns(equity_columns(sim.perp_venues), view.n)
        self.executor = Executor(px, sim, self.book, self.attr,
                                 on_fill=lambda f: journal.fill(f, iso[f.tick]),
                                 on_step=lambda pid, s, st, tick, detail: journal.step(pid, s, st, tick, iso[tick], detail))
        config_dir = Path(strategy.config_file).parent
        self.signals = None
        signal_targets = [t for t in strategy.config.targets if template_for(t).signal_file(t)]
        if signal_targets:
            self.signals = SignalBook(strategy, view, config_dir)
            # A signal perp's resting stops trigger on the hour's high and low.
            view.add_fields({f"{px.info[t.instrument].mark_field.rsplit('.', 1)[0]}.{c}" for t in signal_targets
                             for c in ("high", "low")})
        self.cflows = CapitalFlows((read_flows(config_dir / strategy.config.flows) if strategy.config.flows else []) + list(flows or []),
                                   self.capital)
        self.rewards = RewardAccrual(window.static, view.epoch)
        self.planner = Planner(strategy, px, sim, self.signals)
        self.monitors = Monitors(strategy, px, sim, self.book, self.signals, self.cflows)
        self.machine = StrategyMachine(strategy)
        self.params = dict(strategy.params)
        self.legrisk = LegRisk(self.params, px)
        self._asset = strategy.config.asset
        self.sc_key = f"wallet:BaseToken:{strategy.config.share_class}"
        self.capital_key = strategy.config.capital_at or self.sc_key
        n = view.n
        self.eq_series = [0.0] * n
        self.nav_series = [1.0] * n
        self.transitions = self.liquidations = 0
        self.decision_ns: list[int] = []
        self.next_tick = 0
        self.halted = False  # set by a stop request: the machine no longer acts
        # Called as on_tick(i) inside step(), after the hour's market move, accruals and arrivals
        # and before the tight loop: live runs serve `trimtab stop` there, so its cancel and
        # unwind are priced at tick i and attributed in tick i's ledger (trimtab.live.runner).
        self.on_tick = None
        self.last_plan_empty = False
        self.funding_due = funding_ticks(view, sim, px, 0)
        # Quiet stretches: the monitors' core figures and attribution's market move of a book
        # that does not change, as arrays over the ticks ahead (trimtab.engine.stretch); the
        # same numbers as the per-tick code (``stretches=False``, which tests compare against).
        self.stretches = Stretches(px, sim, self.book) if stretches else None
        if self.stretches is not None:
            self.monitors.stretch = self.stretches
            self.attr.mover = self.stretches.attr_row
        # Quiet spans: the ticks at which only the market moves, processed at once by
        # run_until (trimtab.engine.quiet); ``bulk=False`` steps every tick (tests compare).
        self.quiet = QuietSpans(self) if self.stretches is not None and bulk else None
        if not resume:
            self._begin()

    def _begin(self) -> None:
        s, journal, iso = self.strategy, self.journal, self.iso
        journal.meta("strategy", {"name": s.name, "config": s.config_file, "machine": s.machine_file})
        journal.meta("window", {"start": iso[0], "end": iso[-1], "capital": self.capital, "share_class": s.config.share_class})
        journal.meta("parameters", self.params)
        journal.meta("overrides", s.overrides)  # `--set NAME=VALUE` flags, already folded into params and config
        journal.meta("config", s.config.model_dump())
        # The machine and rules as run, so `trimtab explain` never depends on files edited since.
        journal.meta("machine", s.machine.model_dump())
        journal.meta("rules", {n: {"when": r.spec.when, "severity": r.spec.severity, "description": r.spec.description,
                                   "file": r.file, "line": r.line} for n, r in s.rules.items()})
        # Capital arrives in the wallet as the share class token (not P&L).
        seed = Fill(0, self.capital_key.split(":")[0], "deposit_capital", "capital",
                    [Leg(self.capital_key, self.capital, self.capital)], note="initial capital")
        self.book.apply(seed)
        journal.fill(seed, iso[0])

    # ------------------------------------------------------------------ one tick
    def step(self, i: int) -> dict:
        """Process tick ``i`` (ticks must come in order); returns the tick's metrics."""
        view, px, sim, book, attr = self.view, self.px, self.sim, self.book, self.attr
        executor, journal, monitors, machine, planner = self.executor, self.journal, self.monitors, self.machine, self.planner
        cflows, rewards, params, iso = self.cflows, self.rewards, self.params, self.iso
        sc_key, capital_key = self.sc_key, self.capital_key
        if i != self.next_tick:
            raise ValueError(f"tick {i} out of order: expected {self.next_tick}")
        view.i = i
        for q in view.quarantined_at(i):
            journal.quarantine(i, iso[i], *q)
        attr.start_tick()
        if i > 0:
            attr.market_move(book, px, i - 1, i)
        if self.funding_due[i]:  # other ticks settle nothing (funding_ticks)
            for f in sim.funding(i, book):
                executor.apply(f)
        for f, price in executor.gateway.stops(i, book, sim):
            executor.apply(f, price)
        if rewards.is_due(i):
            for f in rewards.fills(i):
                executor.apply(f)
        for flow in cflows.due(view.epoch[i]):
            if flow.amount > 0:
                before = monitors.equity()
                f = Fill(i, capital_key.split(":")[0], "deposit", "capital", [Leg(capital_key, flow.amount, flow.amount)], note="capital deposit")
                book.apply(f)
                journal.fill(f, iso[i])
                cflows.deposit(flow.amount, before, iso[i])
            else:
                cflows.request(flow, iso[i])
        executor.advance(i)
        if self.on_tick is not None:
            self.on_tick(i)
        t0 = _time.perf_counter_ns() if self.time_decisions else 0
        metrics = monitors.run(i, executor.in_flight, params)
        if (metrics["health_factor"] < 1.0 or metrics["margin_ratio_min"] < sim.max_maintenance) and not monitors.liquidation_free:
            # Only then can a venue liquidate; the venues check exactly, as they would. With perps
            # max_maintenance is inf: a position can cross its liquidation price inside the hour
            # (trimtab.venues.perps), which the close's margin ratio cannot rule out. A quiet
            # stretch has checked this tick's accounts as arrays (Monitors.liquidation_free).
            hit = sim.liquidations(i, book)
            for f, price in hit:
                executor.apply(f, price)
            self.liquidations += len({(f.venue, f.tick) for f, _ in hit})
            if hit:
                metrics = monitors.run(i, executor.in_flight, params)
        if self.halted:
            # The kill switch: rules are still evaluated and journaled, but nothing fires.
            decision = Decision(i, iso[i], machine.state, machine.state, None, machine.evaluate(metrics))
        else:
            decision = machine.step(i, iso[i], metrics)
        if self.time_decisions:
            self.decision_ns.append(_time.perf_counter_ns() - t0)
        if decision.trigger:
            self.transitions += 1
            action = machine.action(decision.dest)
            if action is not None:
                p = dict(params)
                for k, v in {**action.overrides, **machine.overrides(decision.trigger)}.items():
                    p[k] = params[v] if isinstance(v, str) else float(v)
                # Size on what stays invested: equity less withdrawals requested.
                base = max(metrics["equity"] - cflows.pending_withdrawal, 0.0)
                plan = planner.plan(book, base, decision.dest, action.kind, p, decision.trigger, action.protocol)
                cflows.pending_deposit = 0.0
                analysis = None
                if machine.yield_check(decision.trigger) and plan.steps:
                    analysis = analyse(positions_of(book, px), plan.targets["positions"], plan.expected_cost, px, view,
                                       params.get("yield_horizon_days", 365.0))
                    journal.analysis(i, iso[i], decision.trigger, plan.id, analysis)
                if action.kind != "sell_dust":  # selling dust is not a rebalance: keep the clock and baseline
                    monitors.mark_rebalance(metrics["equity"], view.epoch[i])
                if analysis is not None and analysis["recommendation"] != "EXECUTE":
                    decision.plan_id = None  # deferred: the analysis is journaled, nothing is sent
                else:
                    decision.plan_id = plan.id
                    journal.plan(plan, i)
                    journal.plan_gap(self.legrisk.submitted(plan.id, i))
                    executor.submit(plan, i)
                self.last_plan_empty = not plan.steps
                metrics = monitors.run(i, executor.in_flight, params)
        if not self.halted and (executor.failed_at == i or self.legrisk.overdue(i, metrics, executor.in_flight)):
            # A leg failed, or a plan left delta unhedged too long: re-hedge what is there now.
            comp = self.legrisk.compensate(i, metrics, planner, book, params)
            if comp is not None:
                journal.plan(comp, i)
                journal.plan_gap(self.legrisk.submitted(comp.id, i))
                executor.submit(comp, i)
                metrics = monitors.run(i, executor.in_flight, params)
        if not executor.in_flight and (cflows.pending_withdrawal > 0 or (cflows.withdraw_all and machine.state == "idle")):
            # Pay out of the wallet's share-class balance what the plan has freed.
            have = max(book.qty(sc_key), 0.0)
            pay = have if cflows.withdraw_all else min(cflows.pending_withdrawal, have)
            if pay > 1e-9:
                before = monitors.equity()
                f = Fill(i, "wallet", "withdrawal", "capital", [Leg(sc_key, -pay, -pay)], note="capital paid out")
                book.apply(f)
                journal.fill(f, iso[i])
                cflows.paid(pay, before, iso[i])
                if cflows.withdraw_all:
                    cflows.withdraw_all = False
                    cflows.pending_withdrawal = 0.0
                metrics = monitors.run(i, executor.in_flight, params)
            if 0 < cflows.pending_withdrawal * px.share_usd() < MIN_TRADE_USD and self.last_plan_empty:
                # What is left is under the smallest trade a plan makes and the last plan could
                # free nothing: settle the request rather than unwinding for it every tick.
                cflows.log.append({"time": iso[i], "kind": "remainder_waived", "amount": cflows.pending_withdrawal})
                cflows.pending_withdrawal = 0.0
                metrics = monitors.run(i, executor.in_flight, params)
        eeth = rewards.observe(book, px)
        equity = metrics["equity"]
        attr.check(equity - self.capital - cflows.net)
        self.nav_series[i] = cflows.nav(equity)
        self.eq_series[i] = equity
        gap = self.legrisk.track(i, metrics, executor.in_flight, px.asset_usd(self._asset), monitors.hedged)
        if gap is not None:
            journal.plan_gap(gap)
        journal.decision(decision)
        journal.metrics(i, iso[i], machine.state, metrics)
        journal.ledger(i, iso[i], attr.tick)
        journal.series_row(i, equity, self.nav_series[i], eeth)
        self.next_tick = i + 1
        return metrics

    def run_until(self, n: int, progress=None) -> None:
        """Process ticks ``next_tick .. n - 1``: each quiet span at once (:mod:`trimtab.engine.quiet`,
        when on), every other tick through :meth:`step`; the same journal and state as stepping
        each tick. ``progress(done_ticks, n)`` is called every 200 ticks or so and at the end."""
        quiet = self.quiet
        i = self.next_tick
        while i < n:
            done = quiet.run(i, n) if quiet is not None else 0
            if not done:
                self.step(i)
                done = 1
            i += done
            if progress and ((i - 1) // 200 * 200 >= i - done or i == n):
                progress(i, n)

    def extend(self, ticks: MarketData) -> int:
        """Grow the run by the hourly ticks of ``ticks`` (a live feed delivering the hour that
        just closed): the view (:meth:`MarketView.extend`), the ISO clock, the equity and NAV
        series, the reward schedule (drops paying within the longer window) and the signals
        are extended; nothing about ticks already stepped changes. Returns the first new tick.

        Raises:
            DataError: the ticks do not continue the clock hour by hour.
        """
        view = self.view
        if self.stretches is not None:
            # A live run sees one new hour at a time: no ticks ahead to compute as arrays (a
            # stretch would be one tick long, and every array rebuilt as the view grows).
            self.stretches = self.monitors.stretch = self.attr.mover = None
            self.quiet = None
        first = view.extend(ticks)
        self.iso.extend(iso_minutes(view, first))
        self.funding_due.extend(funding_ticks(view, self.sim, self.px, first))
        added = view.n - first
        self.eq_series.extend([0.0] * added)
        self.nav_series.extend([1.0] * added)
        # Drops are sorted by pay time and the window only grows at its end, so the paid
        # prefix (``rewards.next``) keeps its meaning; the schedule is parsed once, at start.
        self.rewards.extend()
        if self.signals is not None:
            config_dir = Path(self.strategy.config_file).parent
            for t in self.strategy.config.targets:
                if template_for(t).signal_file(t):
                    self.signals.cols[t.id] = align(read_signals(config_dir / template_for(t).signal_file(t)), view.epoch)
        return first

    def add_flow(self, flow: Flow) -> None:
        """Schedule a capital flow at run time (a portfolio moving capital between sleeves): it is
        handled at the first tick at or after its time, like a flow from the config's file."""
        f = self.cflows
        pending = sorted(f.flows[f.next:] + [flow], key=lambda x: x.time)
        f.flows = f.flows[: f.next] + pending

    def equity(self) -> float:
        """Equity in the share class as the book stands."""
        return self.monitors.equity()

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        """Everything that changes from tick to tick and does not grow with the run, as plain
        JSON-able data (each component's ``snapshot()``; encoded and checked by
        :mod:`trimtab.engine.checkpoint`); the per-tick series live in the journal's ``series``
        table. Restoring both into a fresh Engine over the same window continues the run
        exactly where it was."""
        return {
            "next_tick": self.next_tick,
            "book": self.book.snapshot(),
            "executor": self.executor.snapshot(),
            "sim": self.sim.snapshot(),
            "pricing": self.px.snapshot(),
            "attr": self.attr.snapshot(),
            "monitors": self.monitors.snapshot(),
            "machine": self.machine.snapshot(),
            "cflows": self.cflows.snapshot(),
            "rewards": self.rewards.snapshot(),
            "legrisk": self.legrisk.snapshot(),
            "halted": self.halted,
            "last_plan_empty": self.last_plan_empty,
            "transitions": self.transitions,
            "liquidations": self.liquidations,
            "fill_id": self.journal._fill_id,
        }

    def restore(self, st: dict) -> None:
        """Load a :meth:`state` taken from an Engine over the same strategy and window (decoded
        and shape-checked by :func:`trimtab.engine.checkpoint.decode`).

        Raises:
            ValueError: the state does not fit this engine (a tick outside the window, a plan
                whose id does not match its content, a state the machine does not have, ...).
        """
        if not 0 < st["next_tick"] <= self.view.n:
            raise ValueError(f"next_tick {st['next_tick']} is outside the run's {self.view.n} ticks")
        self.next_tick = st["next_tick"]
        self.book.restore(st["book"])
        self.executor.restore(st["executor"])
        self.sim.restore(st["sim"])
        self.px.restore(st["pricing"])
        self.attr.restore(st["attr"])
        self.monitors.restore(st["monitors"])
        self.machine.restore(st["machine"])
        self.cflows.restore(st["cflows"])
        self.rewards.restore(st["rewards"])
        self.legrisk.restore(st["legrisk"])
        self.halted = st["halted"]
        self.last_plan_empty = st["last_plan_empty"]
        self.transitions, self.liquidations = st["transitions"], st["liquidations"]
        # The per-tick series come back from the journal (written in the same commits as the state).
        for tick, eq, nav, eeth in self.journal.series(self.next_tick):
            self.eq_series[tick], self.nav_series[tick] = eq, nav
            self.rewards.held.append(eeth)
        self.journal._fill_id = st["fill_id"]

    # ------------------------------------------------------------------ the end
    def _final_aave(self) -> dict[str, dict]:
        """The Aave positions of the final book in underlying token units, at the last tick:
        ``{key: {asset, scaled, index, index_field, underlying}}``, underlying = scaled x the
        reserve's liquidity index (aToken) or variable borrow index (debtToken) (Aave v3
        ``ScaledBalanceTokenBase.balanceOf``); ``index``/``underlying`` None where the index has
        no value at that tick."""
        out: dict[str, dict] = {}
        for k, scaled in sorted(self.book.bal.items()):
            inf = self.px.info.get(k)
            if abs(scaled) <= 1e-12 or inf is None or not inf.index_field:
                continue
            try:
                idx = self.px.index(k)
            except DataError:
                idx = None
            out[k] = {"asset": inf.asset, "scaled": scaled, "index": idx, "index_field": inf.index_field,
                      "underlying": None if idx is None else scaled * idx}
        return out

    def _costs(self) -> dict:
        """The summary's ``costs`` block, from the journal's fills (so a resumed run counts them all)."""
        self.journal.flush(commit=False)   # read here; committed once, by close()
        rows = self.journal.db.execute("SELECT plan_id, step_id, venue, operation, category, impact, price, legs, note FROM fills "
                                       "WHERE category IN ('trading_fees', 'gas') ORDER BY fill_id").fetchall()
        return costs_block(rows, self.strategy.config.costs.multiplier)

    def _hedge_gap(self) -> dict:
        """The summary's ``hedge_gap``: the plan that left the largest notional unhedged (journal
        table ``plan_hedge``, :class:`trimtab.engine.legrisk.PlanGap`) and the longest gap."""
        self.journal.flush(commit=False)
        db = self.journal.db
        top = db.execute("SELECT plan_id, max_unhedged_usd, max_unhedged_tick, unhedged_hours FROM plan_hedge "
                         "ORDER BY max_unhedged_usd DESC, tick LIMIT 1").fetchone()
        hours, plans = db.execute("SELECT coalesce(max(unhedged_hours), 0), count(*) FROM plan_hedge").fetchone()
        total = db.execute("SELECT coalesce(sum(unhedged_hours), 0) FROM plan_hedge").fetchone()[0]
        return {"max_unhedged_usd": top[1] if top else 0.0, "plan_id": top[0] if top else None,
                "time": self.iso[top[2]] if top and top[2] is not None else None,
                "max_unhedged_hours": hours, "unhedged_hours": total, "plans": plans,
                "drift_threshold": self.legrisk.max_drift}

    def finish(self) -> RunResult:
        """Summarise, write summary.json and equity.csv, close the journal."""
        view, px, sim, book, strategy, window = self.view, self.px, self.sim, self.book, self.strategy, self.window
        iso, run_dir = self.iso, self.run_dir
        last = max(self.next_tick, 1)
        # The risk columns as journaled: kept on the way, or read back from the closed journal.
        columns = self.journal.kept_columns(last)
        if columns is not None:
            # Every row committed first: a writer process inserts the rows still buffered and
            # commits them while the summary and equity.csv are built, so the reads below and
            # the close wait for less (the summary's row is then a commit of its own).
            self.journal.seal()
        equity, nav, epoch = self.eq_series[:last], self.nav_series[:last], view.epoch[:last]
        # Returns come from NAV per unit, so deposits and withdrawals are not counted as P&L.
        perf = performance_of(nav, epoch)
        stale = {k: v[0] for k, v in sorted(px.stale_marks.items())}
        data_notes = series_notes(strategy, window, view, last)
        # Shared keys first (trimtab.summary, schema/summary.schema.json); a basket run's caller
        # (trimtab.portfolio.drift) sets kind "drift_basket" and adds its drift block.
        summary = {
            "kind": "strategy",
            "name": strategy.name,
            "mode": strategy.name,
            "share_class": strategy.config.share_class,
            "start": iso[0],
            "end": iso[last - 1],
            "initial_equity": self.capital,
            "final_equity": float(equity[-1]),
            "apy": perf["apy"],
            "apr": perf["apr"],
            "max_drawdown": perf["max_drawdown"],
            "sharpe": perf["sharpe"],
            "final_nav": float(nav[-1]),
            "net_flows": self.cflows.net,
            "flows": self.cflows.log,
            "rewards_received": dict(self.rewards.paid),
            "attribution": {k: v for k, v in self.attr.total.items()},
            "reconciliation_error": self.attr.max_error,
            "positions_match_fills": not book.check_fills(),
            "transitions": self.transitions,
            "plans": self.executor.counts["plans"],
            "failed_plans": self.executor.counts["failed_plans"],
            "last_plan_failure": self.executor.last_failure,
            "instructions": self.executor.counts["instructions"],
            "liquidations": self.liquidations,
            "final_state": self.machine.state,
            "final_positions": {k: v for k, v in sorted(book.bal.items()) if abs(v) > 1e-12},
            "final_aave": self._final_aave(),
            "stale_marks_hours": stale,
            "funding_proxies": dict(sim.funding_proxies),
            "funding_missing": dict(sim.funding_missing),
            "data_gaps": data_notes,
            "quarantined": view.quarantine_summary(last),
            "costs": None,  # from the journal, below
            "hedge_gap": None,
            "overrides": dict(strategy.overrides),
            "run_dir": str(run_dir),
        }
        pending = None
        if columns is not None:
            # A helper process (trimtab run's) writes it meanwhile, if there is one.
            pending = self._offload_csv(epoch, equity, nav, columns) if self.csv_helper is not None else None
            if pending is None:
                self._equity_csv(epoch, equity, nav, columns)
        summary["costs"], summary["hedge_gap"] = self._costs(), self._hedge_gap()
        self.journal.meta("summary", summary)
        self.journal.seal()  # a writer process commits it while summary.json is written
        (run_dir / "summary.json").write_text(json.dumps(jsonable(summary), indent=2, default=str))
        self.journal.close()
        settle = RunResult.settle
        if columns is None:
            self._equity_csv(epoch, equity, nav, None)
        elif pending is not None:
            # the caller settles it once it has shown the summary: the helper writes meanwhile
            def settle() -> None:
                if not pending.wait():
                    self._equity_csv(epoch, equity, nav, columns)  # the helper failed: written here
        return RunResult(summary, run_dir, equity, self.decision_ns, dict(self.stretches.counts) if self.stretches else {}, epoch,
                         settle)

    #: Where ``equity.csv`` may be written beside this process: an object with
    #: ``submit(spec, arrays) -> pending | None`` (``pending.wait() -> bool``), e.g.
    #: :class:`trimtab.data.background.BackgroundLoad` (run_backtest's ``csv_helper``).
    csv_helper = None

    def _offload_csv(self, epoch, equity, nav, columns: dict):
        """Hand ``equity.csv`` to :attr:`csv_helper` (:func:`trimtab.engine.results.equity_csv_job`);
        its pending job, or None if it cannot take it."""
        spec = {"path": str(self.run_dir / "equity.csv"), "journal": str(self.run_dir / "journal.sqlite"),
                "perp_venues": list(self.sim.perp_venues)}
        return self.csv_helper.submit(spec, equity_csv_arrays(epoch, equity, nav, columns))

    def _equity_csv(self, epoch, equity, nav, columns: dict | None) -> None:
        """``equity.csv`` (:func:`trimtab.engine.results.write_equity_csv`): the risk columns
        given, or read from the closed journal when None."""
        write_equity_csv(self.run_dir / "equity.csv", epoch, equity, nav, self.run_dir / "journal.sqlite",
                         self.sim.perp_venues, columns=columns)


def iso_minutes(view: MarketView, first: int) -> list[str]:
    """``YYYY-MM-DDTHH:MMZ`` of the view's ticks from ``first`` on (the journal's time column).

    From the epoch seconds (UTC by construction: :class:`trimtab.data.feed.MarketData`) with
    :func:`time.gmtime`, each day and each hour formatted once (:func:`utc_texts`); the same
    text as ``f"{t:%Y-%m-%dT%H:%MZ}"`` of the tick's UTC time."""
    return utc_texts(view.epoch[first:], "%Y-%m-%dT", "%H:%MZ")


def funding_ticks(view: MarketView, sim: SimVenues, px: Pricing, first: int) -> list[bool]:
    """For each tick from ``first`` on: may :meth:`SimVenues.funding` settle anything there?

    It settles a perp only where its funding field holds a rate or at a settlement hour of
    its venue (on the hour); at any other tick it returns [] and changes nothing, so the
    kernel skips the call. Conservative: True whenever any perp's field has a value or any
    perp venue settles at that hour, and at every tick when a funding field or a venue's
    settlement hours are not known (the call then behaves, and fails, exactly as before)."""
    keys = sim.perp_keys
    n = view.n - first
    fields = [px.info[k].funding_field for k in keys]
    hours: set[int] = set()
    for k in keys:
        perp = getattr(sim.venues[px.info[k].venue], "perp", None)
        got = getattr(perp, "funding_hours_utc", None)
        if got is None:
            return [True] * n
        hours |= set(got)
    if any(f is None or f not in view.cols for f in fields):
        return [True] * n
    # A tick on the hour ``h`` (UTC) from its epoch second e: e // 3600 % 24 == h, e % 3600 < 60
    # (numpy's integer // and % floor as Python's do); a field holds a rate where it equals itself.
    e = np.asarray(view.epoch[first:], dtype=np.int64)
    due = np.isin(e // 3600 % 24, sorted(hours)) & (e % 3600 < 60)
    for f in fields:
        c = np.asarray(view.cols[f][first:], dtype=np.float64)
        due |= c == c
    return due.tolist()
