"""A portfolio of strategies: sleeve engines in lockstep, capital moved by exiting before entering.

Each sleeve is a full :class:`trimtab.engine.kernel.Engine` over the same window of the
bundled data (its own journal under ``<run>/sleeves/<id>/``; a ``token_weights`` sleeve also
gets its rebalance log and alerts, :class:`trimtab.portfolio.drift.DriftTracker`), started with
``weight x capital``. Per tick :meth:`PortfolioRunner.step` steps every sleeve at tick ``i``,
then the portfolio:

1. books what the sleeves paid out (their ``payout`` flows) into the portfolio's cash and what
   they took in (``deposit`` flows) out of it -- so portfolio equity = sum of sleeve equity + cash
   at every tick, and no money appears or vanishes between them;
2. advances the reallocation in flight: once every sleeve asked to withdraw has paid (or
   ``payout_wait_h`` has passed), it deposits the cash into the sleeves below target in
   proportion to their shortfall, capped by what arrived (exit before enter); the reallocation
   is complete when the deposits have landed;
3. computes the portfolio metrics (:data:`trimtab.portfolio.config.PORTFOLIO_METRICS`) and steps
   the portfolio machine (machines/portfolio.yaml); entering ``reallocating`` starts a
   reallocation toward the targets of the allocation method (:mod:`.allocation`) under the
   limits: it asks each sleeve above target for the excess (``Engine.add_flow`` of a negative
   flow at the next tick); each sleeve's own machine unwinds 1:1 and pays out.

Storage: ``<run>/portfolio.sqlite`` holds ``meta``, ``decisions`` (every portfolio machine step
with its rules' observed values), ``reallocations`` (every reallocation: trigger, weights before,
targets and their basis, withdrawals requested and paid, deposits planned and landed, status),
``series`` (portfolio equity, cash, NAV per tick), ``sleeve_series`` (each sleeve's equity and NAV
per tick) and ``checkpoints``. :meth:`PortfolioRunner.checkpoint` commits each sleeve's journal
with its engine state (``Journal.checkpoint``) and then the portfolio's rows with every sleeve's
and the portfolio's state, every ``checkpoint_every_h`` ticks and when a run is stopped;
:meth:`PortfolioRunner.resume` rebuilds the engines from the last checkpoint (rolling back any
sleeve journal rows written after it) and continues exactly where the run stopped.
"""
from __future__ import annotations

import copy
import json
import math
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..data.feed import DataError, MarketData, load_market_data
from ..engine.kernel import Engine
from ..engine.window import clamp_window
from ..engine import checkpoint as ckpt
from ..engine.flows import Flow
from ..engine.journal import dumps, jsonable
from ..engine.machine import StrategyMachine
from ..engine.results import performance
from ..errors import TrimtabError
from ..live.secrets import scrubbing
from ..planner.compile import MIN_TRADE_USD
from ..planner.drift import basket_of, period_key
from ..timeutil import utc
from .allocation import constrain, correlation, daily_returns, method_targets, sleeve_stats
from .config import Portfolio, load_portfolio
from .drift import DriftTracker, write_summary
from .window import strategy_window

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS decisions (tick INTEGER PRIMARY KEY, time TEXT, source TEXT, dest TEXT, trigger TEXT, metrics TEXT, rules TEXT);
CREATE TABLE IF NOT EXISTS reallocations (realloc_id INTEGER PRIMARY KEY, start_tick INTEGER, start_time TEXT, end_tick INTEGER,
  end_time TEXT, trigger TEXT, status TEXT, record TEXT);
CREATE TABLE IF NOT EXISTS series (tick INTEGER PRIMARY KEY, time TEXT, equity REAL, cash REAL, nav REAL, state TEXT);
CREATE TABLE IF NOT EXISTS sleeve_series (tick INTEGER, sleeve TEXT, equity REAL, nav REAL, PRIMARY KEY (tick, sleeve));
CREATE TABLE IF NOT EXISTS checkpoints (tick INTEGER PRIMARY KEY, state BLOB);
"""

#: Tables of a sleeve journal rolled back past a checkpoint on resume (all carry ``tick``).
_SLEEVE_TICK_TABLES = ("decisions", "instructions", "ledger", "metrics", "analyses", "series", "plans", "rebalances", "alerts")


class PortfolioError(TrimtabError):
    """A portfolio run cannot start or resume; the message says why."""


@dataclass
class PortfolioResult:
    """The portfolio summary (JSON-ready), where the run was written, and its hourly equity."""

    summary: dict
    run_dir: Path
    equity: pd.Series = field(repr=False, default=None)


class Sleeve:
    """One sleeve: its engine (and a basket's drift tracker) over the portfolio's window."""

    def __init__(self, spec, strategy, window: MarketData, run_dir: Path, capital: float, resume: bool = False):
        self.spec = spec
        self.id = spec.id
        self.strategy = strategy
        self.capital = capital
        self.engine = Engine(strategy, window, run_dir, capital=capital, resume=resume)
        self.engine.journal.flush_every = 10**9  # rows are committed with each checkpoint (never half a tick)
        self.tracker = DriftTracker(self.engine) if basket_of(strategy) is not None else None

    def step(self, i: int) -> dict[str, float]:
        """Step the sleeve's engine (and its drift tracker) at tick ``i``; returns its metrics."""
        m = self.engine.step(i)
        if self.tracker is not None:
            self.tracker.after_step(i, m)
        return m

    def state(self) -> dict:
        """The engine's :meth:`~trimtab.engine.kernel.Engine.state` and the tracker's, as plain JSON-able data."""
        return {"engine": self.engine.state(), "tracker": self.tracker.state() if self.tracker else None}

    def restore(self, st: dict) -> None:
        """Load a :meth:`state` into this sleeve's fresh (``resume=True``) engine and tracker."""
        self.engine.restore(st["engine"])
        if self.tracker is not None and st["tracker"] is not None:
            self.tracker.restore(st["tracker"])


def portfolio_window(portfolio: Portfolio, data: MarketData, start=None, end=None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The common window of every sleeve's data (or the given one, checked against each).

    Raises:
        DataError: the sleeves have no common window, or the given one is outside one of them.
    """
    wins = [strategy_window(s, data) for _, s in portfolio.sleeves]
    a, b = max(w[0] for w in wins), min(w[1] for w in wins)
    if a >= b:
        raise DataError(f"{portfolio.name}: the sleeves' data windows do not overlap")
    return clamp_window(f"{portfolio.name}'s sleeves' data (together)", a, b, start, end)


class PortfolioRunner:
    """Runs a portfolio of strategies one tick at a time. Build with :meth:`start` or :meth:`resume`."""

    def __init__(self, portfolio: Portfolio, data: MarketData, run_dir: Path, start, end, capital: float | None = None,
                 resume: bool = False):
        self.p = portfolio
        self.owned = None  # the RunClaim of run_dir, set by start() and resume()
        self.cfg = cfg = portfolio.config
        self.run_dir = Path(run_dir)
        self.start_time, self.end_time = start, end
        self.capital = float(capital if capital is not None else cfg.capital)
        window = data.slice(start, end)
        self.sleeves = [Sleeve(spec, strat, window, self.run_dir / "sleeves" / spec.id, spec.weight * self.capital, resume)
                        for spec, strat in portfolio.sleeves]
        v = self.sleeves[0].engine.view
        self.times, self.epoch, self.iso, self.n = v.times, v.epoch, self.sleeves[0].engine.iso, v.n
        self.params = dict(portfolio.params)
        self.machine = StrategyMachine(portfolio)
        self.db = scrubbing(sqlite3.connect(self.run_dir / "portfolio.sqlite"))  # strings redacted of secrets
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        ids = [s.id for s in self.sleeves]
        self.base = {s.id: s.spec.weight for s in self.sleeves}
        self.lo = {s.id: s.spec.min_weight for s in self.sleeves}
        self.hi = {s.id: s.spec.max_weight for s in self.sleeves}
        self.eq: dict[str, list[float]] = {k: [0.0] * self.n for k in ids}
        self.nav: dict[str, list[float]] = {k: [1.0] * self.n for k in ids}
        self.port_eq = [0.0] * self.n
        self.buf: dict[str, list[tuple]] = {"decisions": [], "series": [], "sleeve_series": [], "reallocations": []}
        # ---- the state that changes tick to tick (see _pstate)
        self.next_tick = 0
        self.cash = 0.0
        self.method_raw = dict(self.base)  # targets of the method before limits
        self.target_info: dict = {"basis": "configured weights"}
        self.peak = 1.0
        self.sleeve_peak = {k: 1.0 for k in ids}
        self.cut: list[str] = []  # sleeves cut to min_weight for drawdown
        self.last_realloc_epoch: int | None = None
        self.realloc: dict | None = None
        self.realloc_count = 0
        self.max_corr = math.nan
        self.transitions = 0
        self.limit_events: list[dict] = []
        self.history_status: dict[str, int] = defaultdict(int)
        if not resume:
            self._meta("portfolio", {"name": portfolio.name, "config": portfolio.config_file, "machine": portfolio.machine_file})
            self._meta("window", {"start": self.iso[0], "end": self.iso[-1], "capital": self.capital, "share_class": cfg.share_class})
            self._meta("config", cfg.model_dump())
            self._meta("parameters", self.params)
            self._meta("machine", portfolio.machine.model_dump())
            self._meta("rules", {n: {"when": r.spec.when, "severity": r.spec.severity, "file": r.file, "line": r.line}
                                 for n, r in portfolio.rules.items()})
            self.db.commit()
            ckpt.start_marker(self.run_dir, "portfolio.sqlite")

    # ------------------------------------------------------------------ construction
    @classmethod
    def start(cls, config: str | Path | Portfolio, out: Path | str = "runs", run_id: str | None = None, start=None, end=None,
              capital: float | None = None, data: MarketData | None = None) -> "PortfolioRunner":
        """A new run of the portfolio ``config`` (a path or a loaded :class:`Portfolio`) under
        ``out/run_id`` over ``start..end`` (default: the sleeves' common window).

        The run directory is owned by the runner until :meth:`run` returns (:func:`trimtab.runs.claim`).

        Raises:
            ConfigError: the config or a sleeve's does not load; DataError: no such window;
            RunError: a bad run id, a run id that exists (resume it instead), a run owned by
            another process.
        """
        from ..runs import claim, unique_run_id

        portfolio = config if isinstance(config, Portfolio) else load_portfolio(config)
        data = data or load_market_data()
        s0, s1 = portfolio_window(portfolio, data, start, end)
        owned = claim(out, run_id, new_id=lambda: unique_run_id(out, portfolio.name, s0, s1))
        runner = owned.build(lambda: cls(portfolio, data, owned.run_dir, s0, s1, capital))
        runner.owned = owned
        return runner

    @classmethod
    def resume(cls, run_dir: str | Path, data: MarketData | None = None) -> "PortfolioRunner":
        """Continue the portfolio run in ``run_dir`` from its last checkpoint (a new process, or a
        new runner in the same one). The config is reloaded from the path the run recorded.

        Raises:
            PortfolioError: no run or no checkpoint there; ConfigError: the config no longer loads;
            RunError: the run is owned by another process (:func:`trimtab.runs.claim_dir`).
        """
        from ..runs import claim_dir

        run_dir = Path(run_dir)
        path = run_dir / "portfolio.sqlite"
        if not path.exists():
            raise PortfolioError(f"no portfolio run at {run_dir}")
        owned = claim_dir(run_dir, resume=True)
        runner = owned.build(lambda: cls._resume(run_dir, path, data))
        runner.owned = owned
        return runner

    @classmethod
    def _resume(cls, run_dir: Path, path: Path, data: MarketData | None) -> "PortfolioRunner":
        """:meth:`resume` once ``run_dir`` is owned: rebuild the runner at its last checkpoint."""
        db = ckpt.open_checked(path, ckpt.PORTFOLIO_TABLES)  # SQLite's integrity check first
        try:
            meta = {k: ckpt.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
            has_cp = db.execute("SELECT count(*) FROM checkpoints").fetchone()[0] > 0
            config, w = meta["portfolio"]["config"], meta["window"]
            start, end, capital = utc(w["start"].replace("Z", "")), utc(w["end"].replace("Z", "")), float(w["capital"])
        except (sqlite3.DatabaseError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
            raise ckpt.CheckpointError(f"{path}: its meta records cannot be read ({type(e).__name__}: {e}); "
                                       "refusing to resume") from None
        finally:
            db.close()
        if not has_cp:
            raise PortfolioError(f"{run_dir} has no checkpoint to resume from")
        if "summary" in meta:
            raise PortfolioError(f"{run_dir} has finished; nothing to resume")
        portfolio = load_portfolio(config)
        # Every journal checked and the checkpoint decoded before any engine opens a journal.
        tick, state = ckpt.load_portfolio(run_dir, {spec.id: spec.weight * capital for spec, _ in portfolio.sleeves})
        data = data or load_market_data()
        runner = cls(portfolio, data, run_dir, start, end, capital, resume=True)
        try:
            runner._restore(tick, state)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise ckpt.CheckpointError(f"{run_dir}: checkpoint at tick {tick} does not fit this portfolio: {e}; "
                                       "refusing to resume") from None
        for s in runner.sleeves:
            bad = s.engine.book.check_fills()
            if bad:
                raise ckpt.CheckpointError(f"{run_dir}: checkpoint at tick {tick}: sleeve {s.id} holds positions that are not "
                                           f"the sum of their fills ({bad[0]}); refusing to resume")
        return runner

    def _meta(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, dumps(value)))

    # ------------------------------------------------------------------ the loop
    def run(self, stop_at: int | None = None, progress=None) -> PortfolioResult | None:
        """Step to the end (and :meth:`finish`), or stop before tick ``stop_at``: checkpoint and
        return None (continue with :meth:`resume`). Either way (or on an error) the run directory
        is released (:class:`trimtab.runs.RunClaim`)."""
        try:
            return self._run(stop_at, progress)
        finally:
            if self.owned is not None:
                self.owned.release()

    def _run(self, stop_at: int | None, progress) -> PortfolioResult | None:
        end = self.n if stop_at is None else min(stop_at, self.n)
        every = self.cfg.checkpoint_every_h
        for i in range(self.next_tick, end):
            self.step(i)
            if progress and (i % 200 == 0 or i == self.n - 1):
                progress(i + 1, self.n)
            if (i + 1) % every == 0 and i + 1 < end:
                self.checkpoint()
        if self.next_tick < self.n:
            self.checkpoint()
            return None
        return self.finish()

    def step(self, i: int) -> dict[str, float]:
        """Process tick ``i`` for every sleeve, then the portfolio; returns its metrics."""
        if i != self.next_tick:
            raise ValueError(f"tick {i} out of order: expected {self.next_tick}")
        r = self.realloc
        for s in self.sleeves:
            log = s.engine.cflows.log
            k = len(log)
            m = s.step(i)
            self.eq[s.id][i] = m["equity"]
            self.nav[s.id][i] = s.engine.nav_series[i]
            for e in log[k:]:
                if e["kind"] == "payout":
                    self.cash += e["amount"]
                    if r is not None and s.id in r["withdrawals"]:
                        r["paid"][s.id] = r["paid"].get(s.id, 0.0) + e["amount"]
                elif e["kind"] == "deposit":
                    self.cash -= e["amount"]
                    if r is not None and s.id in r["deposits"]:
                        r["deposited"][s.id] = r["deposited"].get(s.id, 0.0) + e["amount"]
        total = self._total(i)
        self.port_eq[i] = total
        nav = total / self.capital
        self.peak = max(self.peak, nav)
        for s in self.sleeves:
            self.sleeve_peak[s.id] = max(self.sleeve_peak[s.id], self.nav[s.id][i])
        self._drawdown_cuts(i)
        if self.realloc is not None:
            self._progress(i)
        if i > 0 and period_key(self.times[i], self.cfg.allocation.period) != period_key(self.times[i - 1], self.cfg.allocation.period):
            self._period_start(i)
        seen = metrics = self.metrics(i)
        decision = self.machine.step(i, self.iso[i], metrics)
        if decision.trigger:
            self.transitions += 1
            if self.machine.action(decision.dest) is not None:
                self._start(i, decision.trigger)
                metrics = self.metrics(i)
        # The metrics the machine decided on (before any reallocation it started).
        self.buf["decisions"].append((i, self.iso[i], decision.source, decision.dest, decision.trigger, dumps(seen),
                                      json.dumps(decision.rules, separators=(",", ":"))))
        self.buf["series"].append((i, self.iso[i], total, self.cash, nav, self.machine.state))
        for s in self.sleeves:
            self.buf["sleeve_series"].append((i, s.id, self.eq[s.id][i], self.nav[s.id][i]))
        self.next_tick = i + 1
        return metrics

    def _dust(self) -> float:
        """Smallest single withdrawal or deposit (share class): twice the planner's minimum trade,
        so a sleeve is never asked for a move its own plans would skip."""
        return 2 * MIN_TRADE_USD / self.sleeves[0].engine.px.share_usd()

    def _total(self, i: int) -> float:
        return sum(self.eq[s.id][i] for s in self.sleeves) + self.cash

    # ------------------------------------------------------------------ targets and metrics
    def targets(self) -> dict[str, float]:
        """Target weights now: the method's, with drawdown-cut sleeves at their minimum, within
        each sleeve's [min_weight, max_weight] (:func:`~trimtab.portfolio.allocation.constrain`)."""
        return constrain(self.method_raw, self.lo, self.hi, {k: self.lo[k] for k in self.cut})

    def _drawdown_cuts(self, i: int) -> None:
        for s in self.sleeves:
            limit = s.spec.max_drawdown
            if limit is None:
                continue
            dd = 1 - self.nav[s.id][i] / self.sleeve_peak[s.id]
            if dd > limit and s.id not in self.cut:
                self.cut.append(s.id)
                self.limit_events.append({"tick": i, "time": self.iso[i], "sleeve": s.id, "event": "drawdown_cut",
                                          "drawdown": dd, "limit": limit})
            elif dd < limit / 2 and s.id in self.cut:
                self.cut.remove(s.id)
                self.limit_events.append({"tick": i, "time": self.iso[i], "sleeve": s.id, "event": "drawdown_recovered",
                                          "drawdown": dd, "limit": limit})

    def _period_start(self, i: int) -> None:
        a = self.cfg.allocation
        rets = daily_returns(self.times, self.nav, i, a.lookback_days)
        if len(self.sleeves) > 1 and len(rets) > 2:
            c = rets.corr().to_numpy()
            vals = [c[x][y] for x in range(len(c)) for y in range(x + 1, len(c)) if not math.isnan(c[x][y])]
            self.max_corr = max(vals) if vals else math.nan
            if vals and self.max_corr > self.cfg.limits.max_correlation:
                self.limit_events.append({"tick": i, "time": self.iso[i], "event": "correlation", "max_correlation": self.max_corr,
                                          "limit": self.cfg.limits.max_correlation})
        if a.method in ("adaptive", "risk_parity"):
            self.method_raw, info = method_targets(a.method, self.base, rets, a.risk_model, a.min_history_days)
            self.target_info = jsonable(info)

    def metrics(self, i: int) -> dict[str, float]:
        """The portfolio metrics at tick ``i`` (names: PORTFOLIO_METRICS)."""
        total = self._total(i)
        t = self.targets()
        w = {k: (self.eq[k][i] / total if total > 0 else 0.0) for k in t}
        drift = max((abs(w[k] - t[k]) / t[k] if t[k] > 0 else (math.inf if w[k] > 0 else 0.0)) for k in t)
        min_move = self.cfg.limits.min_move
        excess = sum(max(self.eq[k][i] - t[k] * total, 0.0) for k in t)
        moves = excess >= min_move or (self.cash >= min_move and any(t[k] * total - self.eq[k][i] >= min_move for k in t))
        last = i == self.n - 1
        a = self.cfg.allocation
        period = i > 0 and period_key(self.times[i], a.period) != period_key(self.times[i - 1], a.period)
        if a.method == "calendar":
            due = period and moves
        else:
            due = drift > a.threshold and moves
        breaches = 0
        tol = self.cfg.limits.weight_tolerance
        for k in t:
            e = self.eq[k][i]
            if w[k] > self.hi[k] + tol and e - self.hi[k] * total >= min_move:
                breaches += 1
            elif w[k] < self.lo[k] - tol and self.lo[k] * total - e >= min_move:
                breaches += 1
            elif k in self.cut and w[k] > self.lo[k] + tol and e - self.lo[k] * total >= min_move:
                breaches += 1
        r = self.realloc
        pending = sum(max(r["withdrawals"][k] - r["paid"].get(k, 0.0), 0.0) for k in r["withdrawals"]) if r else 0.0
        return {
            "equity": total, "cash": self.cash, "portfolio_drawdown": 1 - (total / self.capital) / self.peak,
            "max_sleeve_drift": drift, "reallocation_due": 1.0 if due and not last else 0.0, "period_start": 1.0 if period else 0.0,
            "hours_since_reallocation": (self.epoch[i] - self.last_realloc_epoch) / 3600 if self.last_realloc_epoch is not None else math.inf,
            "plan_in_flight": 1.0 if r is not None else 0.0, "sleeve_limit_breaches": 0.0 if last else float(breaches),
            "withdrawals_pending": pending, "max_correlation": self.max_corr,
        }

    # ------------------------------------------------------------------ reallocations
    def _start(self, i: int, trigger: str) -> None:
        total = self._total(i)
        t = self.targets()
        w = {k: self.eq[k][i] / total for k in t}
        min_move = self.cfg.limits.min_move
        dust = self._dust()
        withdrawals = {k: self.eq[k][i] - t[k] * total for k in t if self.eq[k][i] - t[k] * total >= dust}
        if sum(withdrawals.values()) < min_move:
            withdrawals = {}
        cap = self.cfg.limits.max_turnover * total
        if sum(withdrawals.values()) > cap:
            f = cap / sum(withdrawals.values())
            withdrawals = {k: v * f for k, v in withdrawals.items()}
        self.realloc_count += 1
        r = {
            "id": self.realloc_count, "trigger": trigger, "method": self.cfg.allocation.method, "start_tick": i, "start_time": self.iso[i],
            "equity_before": total, "cash_before": self.cash, "weights_before": w, "targets": t, "target_basis": self.target_info,
            "cut_for_drawdown": list(self.cut), "withdrawals": withdrawals, "paid": {}, "deposits": {}, "deposited": {},
            "status": "withdrawing", "notes": [], "end_tick": None, "end_time": None,
        }
        self.realloc = r
        self.last_realloc_epoch = self.epoch[i]
        when = self.times[i + 1]
        for s in self.sleeves:
            if s.id in withdrawals:
                s.engine.add_flow(Flow(when, -withdrawals[s.id]))
        if not withdrawals:
            self._deposit(i)
        self._save_realloc()

    def _progress(self, i: int) -> None:
        r = self.realloc
        if r["status"] == "withdrawing":
            waited = (self.epoch[i] - self.epoch[r["start_tick"]]) / 3600
            timed_out = waited >= self.params.get("payout_wait_h", 72.0)
            done = True
            for s in self.sleeves:
                if s.id not in r["withdrawals"]:
                    continue
                cf = s.engine.cflows
                if cf.next < len(cf.flows):
                    done = False
                    continue
                rest = cf.pending_withdrawal
                if rest <= 1e-6:
                    continue
                # A remainder the sleeve's planner will not trade for (its plans skip moves under
                # MIN_TRADE_USD: costs paid out of the withdrawal leave a little unpaid) would keep
                # the sleeve's machine unwinding every other tick: cancel it (and everything left
                # once the wait is over) and carry on with what was paid.
                small = rest <= 0.02 * r["withdrawals"][s.id] or rest * s.engine.px.share_usd() <= 2 * MIN_TRADE_USD
                if small or timed_out:
                    cf.pending_withdrawal = 0.0
                    cf.log.append({"time": self.iso[i], "kind": "withdrawal_cancelled", "amount": rest})
                    r["notes"].append(f"{s.id}: {rest:,.2f} of the withdrawal {'left unpaid' if small else 'unpaid after the wait'}, "
                                      f"request cancelled")
                    if not small:
                        r["timed_out"] = True
                else:
                    done = False
            if done:
                r["withdraw_end_tick"] = i
                self._deposit(i)
        elif r["status"] == "depositing":
            if all(r["deposited"].get(k, 0.0) >= v - 1e-6 for k, v in r["deposits"].items()):
                self._complete(i, "done")
        self._save_realloc()

    def _deposit(self, i: int) -> None:
        r = self.realloc
        if i + 1 >= self.n:
            self._complete(i, "incomplete: the run ended before the deposits")
            return
        total = self._total(i)
        t = r["targets"]
        need = {k: t[k] * total - self.eq[k][i] for k in t if k not in r["withdrawals"] and t[k] * total - self.eq[k][i] > 0}
        avail = max(self.cash, 0.0)
        scale = min(1.0, avail / sum(need.values())) if need and sum(need.values()) > 0 else 0.0
        deposits = {k: v * scale for k, v in need.items() if v * scale >= self._dust()}
        r["deposits"] = deposits
        r["status"] = "depositing"
        if not deposits:
            self._complete(i, "done" if r["withdrawals"] or r["paid"] else "no_moves")
            return
        when = self.times[i + 1]
        for s in self.sleeves:
            if s.id in deposits:
                s.engine.add_flow(Flow(when, deposits[s.id]))

    def _complete(self, i: int, status: str) -> None:
        r = self.realloc
        total = self._total(i)
        r["status"] = "partial" if status == "done" and r.get("timed_out") else status
        r["end_tick"], r["end_time"] = i, self.iso[i]
        r["equity_after"] = total
        r["cash_after"] = self.cash
        r["weights_after"] = {s.id: self.eq[s.id][i] / total for s in self.sleeves}
        r["moved"] = sum(r["paid"].values())
        r["costs"] = r["equity_before"] - total  # includes the sleeves' P&L over the reallocation's ticks
        self.history_status[r["status"]] += 1
        self._save_realloc()
        self.realloc = None

    def _save_realloc(self) -> None:
        r = self.realloc
        if r is not None:
            self.buf["reallocations"].append((r["id"], r["start_tick"], r["start_time"], r["end_tick"], r["end_time"], r["trigger"],
                                              r["status"], dumps(r)))

    # ------------------------------------------------------------------ persistence
    def _pstate(self) -> dict:
        return {
            "next_tick": self.next_tick, "cash": self.cash, "method_raw": dict(self.method_raw), "target_info": self.target_info,
            "peak": self.peak, "sleeve_peak": dict(self.sleeve_peak), "cut": list(self.cut), "last_realloc_epoch": self.last_realloc_epoch,
            "realloc": copy.deepcopy(self.realloc), "realloc_count": self.realloc_count, "max_corr": self.max_corr,
            "transitions": self.transitions, "limit_events": list(self.limit_events), "history_status": dict(self.history_status),
            "machine": self.machine.state,
        }

    def checkpoint(self) -> None:
        """Commit every sleeve's journal with its engine state, then the portfolio's rows and the
        state of the whole portfolio, at the last tick processed."""
        tick = self.next_tick - 1
        sleeves = {}
        for s in self.sleeves:
            st = s.state()
            s.engine.journal.checkpoint(tick, ckpt.encode("engine", st["engine"]))
            sleeves[s.id] = st
        blob = ckpt.encode("portfolio", {"portfolio": self._pstate(), "sleeves": sleeves})
        with self.db:
            self._flush()
            self.db.execute("DELETE FROM checkpoints")
            self.db.execute("INSERT INTO checkpoints VALUES (?, ?)", (tick, blob))
        ckpt.write_marker(self.run_dir, "portfolio.sqlite", tick, blob)  # after the commit: see trimtab.engine.checkpoint

    _SQL = {
        "decisions": "INSERT OR REPLACE INTO decisions VALUES (?,?,?,?,?,?,?)",
        "series": "INSERT OR REPLACE INTO series VALUES (?,?,?,?,?,?)",
        "sleeve_series": "INSERT OR REPLACE INTO sleeve_series VALUES (?,?,?,?)",
        "reallocations": "INSERT OR REPLACE INTO reallocations VALUES (?,?,?,?,?,?,?,?)",
    }

    def _flush(self) -> None:
        for table, rows in self.buf.items():
            if rows:
                self.db.executemany(self._SQL[table], rows)
                rows.clear()

    def _restore(self, tick: int, st: dict) -> None:
        with self.db:  # roll the portfolio's own rows back to the checkpoint
            for table in ("decisions", "series", "sleeve_series"):
                self.db.execute(f"DELETE FROM {table} WHERE tick > ?", (tick,))
            self.db.execute("DELETE FROM reallocations WHERE start_tick > ?", (tick,))
        for s in self.sleeves:
            sst = st["sleeves"][s.id]
            _rollback(s.engine.journal.db, tick, sst["engine"]["fill_id"])
            s.restore(sst)
            if s.engine.next_tick != tick + 1:
                raise PortfolioError(f"sleeve {s.id} restored at tick {s.engine.next_tick}, the portfolio at {tick + 1}")
        p = st["portfolio"]
        self.next_tick, self.cash, self.method_raw, self.target_info = p["next_tick"], p["cash"], p["method_raw"], p["target_info"]
        self.peak, self.sleeve_peak, self.cut = p["peak"], p["sleeve_peak"], p["cut"]
        self.last_realloc_epoch, self.realloc, self.realloc_count = p["last_realloc_epoch"], p["realloc"], p["realloc_count"]
        self.max_corr, self.transitions, self.limit_events = p["max_corr"], p["transitions"], p["limit_events"]
        self.history_status = defaultdict(int, p["history_status"])
        self.machine.restore({"state": p["machine"]})
        for t, eq in self.db.execute("SELECT tick, equity FROM series WHERE tick < ? ORDER BY tick", (self.next_tick,)):
            self.port_eq[t] = eq
        for t, k, eq, nav in self.db.execute("SELECT tick, sleeve, equity, nav FROM sleeve_series WHERE tick < ?", (self.next_tick,)):
            self.eq[k][t], self.nav[k][t] = eq, nav
        self._meta("resumed", {"at_tick": self.next_tick})
        self.db.commit()

    # ------------------------------------------------------------------ the end
    def finish(self) -> PortfolioResult:
        """Finish every sleeve (their summaries and journals), summarise the portfolio, write
        ``summary.json``, ``equity.csv`` and the portfolio journal."""
        last = max(self.next_tick, 1)
        idx = pd.DatetimeIndex(self.times[:last])
        sleeves_out = {}
        final_metrics = self.metrics(last - 1)
        t_final = self.targets()
        total = self.port_eq[last - 1]
        attribution: dict[str, float] = defaultdict(float)
        pnl_sum, max_err, fills_ok = 0.0, 0.0, True
        for s in self.sleeves:
            drift = s.tracker.summary() if s.tracker else None
            res = s.engine.finish()
            sm = res.summary
            if drift is not None:
                sm["kind"] = "drift_basket"
                sm["drift"] = drift
                write_summary(res.run_dir, sm)
            pnl = sm["final_equity"] - s.capital - sm["net_flows"]
            pnl_sum += pnl
            max_err = max(max_err, sm["reconciliation_error"])
            fills_ok = fills_ok and sm["positions_match_fills"]
            for k, v in sm["attribution"].items():
                attribution[k] += v
            nav = pd.Series(self.nav[s.id][:last], index=idx)
            vol = sleeve_stats(daily_returns(self.times, {s.id: self.nav[s.id]}, last - 1))[s.id]["vol"]
            sleeves_out[s.id] = {
                "config": s.spec.config, "strategy": s.strategy.name, "target_weight": s.spec.weight, "final_target": t_final[s.id],
                "final_weight": sm["final_equity"] / total if total else 0.0, "limits": {"min_weight": s.spec.min_weight,
                "max_weight": s.spec.max_weight, "max_drawdown": s.spec.max_drawdown}, "cut_for_drawdown": s.id in self.cut,
                "initial_capital": s.capital, "final_equity": sm["final_equity"], "net_flows": sm["net_flows"], "pnl": pnl,
                "return_nav": float(nav.iloc[-1]) - 1.0, "apy": sm["apy"], "sharpe": sm["sharpe"], "max_drawdown": sm["max_drawdown"],
                "daily_volatility": vol, "reconciliation_error": sm["reconciliation_error"], "positions_match_fills": sm["positions_match_fills"],
                "plans": sm["plans"], "failed_plans": sm["failed_plans"], "transitions": sm["transitions"], "final_state": sm["final_state"],
                "attribution": sm["attribution"], "run_dir": sm["run_dir"], "drift": drift,
            }
        equity = pd.Series(self.port_eq[:last], index=idx)
        perf = performance(equity)
        port_pnl = float(equity.iloc[-1]) - self.capital
        rets = daily_returns(self.times, self.nav, last - 1)
        rows = [json.loads(r) for (r,) in self.db.execute("SELECT record FROM reallocations ORDER BY realloc_id")]
        pending = {int(x[0]): json.loads(x[7]) for x in self.buf["reallocations"]}
        hist = {r["id"]: r for r in rows}
        hist.update(pending)
        history = [hist[k] for k in sorted(hist)]
        summary = {
            "kind": "portfolio", "name": self.p.name, "portfolio": self.p.name, "share_class": self.cfg.share_class,
            "start": self.iso[0], "end": self.iso[last - 1],
            "ticks": last, "initial_equity": self.capital, "final_equity": float(equity.iloc[-1]),
            "net_flows": 0.0,   # the sleeves' payouts and deposits stay inside the portfolio (its cash)
            "pnl": port_pnl,
            "final_cash": self.cash, "apy": perf["apy"], "apr": perf["apr"], "max_drawdown": perf["max_drawdown"], "sharpe": perf["sharpe"],
            "final_nav": float(equity.iloc[-1]) / self.capital if self.capital else float("nan"),
            "allocation": self.cfg.allocation.model_dump(), "limits": self.cfg.limits.model_dump(), "parameters": self.params,
            "final_state": self.machine.state, "final_metrics": final_metrics,
            "sleeves": sleeves_out,
            "correlation": correlation(rets) if len(rets) > 2 else {},
            "attribution": dict(attribution),
            "reconciliation": {
                "pnl_minus_sleeve_pnl": port_pnl - pnl_sum,
                "attribution_minus_pnl": sum(attribution.values()) - port_pnl,
                "max_sleeve_reconciliation_error": max_err,
                "positions_match_fills": fills_ok,
                "cash_check": self.cash - (sum(-sm["net_flows"] for sm in sleeves_out.values())),
            },
            "reallocations": {
                "count": len(history), "by_status": dict(sorted(self.history_status.items())),
                "by_trigger": dict(sorted(_count(r["trigger"] for r in history).items())),
                "moved": sum(r.get("moved", 0.0) or 0.0 for r in history), "history": history,
            },
            "limit_events": self.limit_events,
            "transitions": self.transitions,
            "run_dir": str(self.run_dir),
        }
        rec = summary["reconciliation"]
        # Shared keys of every run kind (trimtab.summary): the largest mismatch, and the fills check.
        summary["reconciliation_error"] = max(abs(rec["pnl_minus_sleeve_pnl"]), abs(rec["attribution_minus_pnl"]), max_err)
        summary["positions_match_fills"] = fills_ok
        summary["reconciliation"]["ok"] = bool(abs(summary["reconciliation"]["pnl_minus_sleeve_pnl"]) <= 1e-9 * self.capital
                                               and abs(summary["reconciliation"]["attribution_minus_pnl"]) <= 1e-6 * self.capital
                                               and fills_ok)
        with self.db:
            self._flush()
            self._meta("summary", summary)
        self.db.close()
        (self.run_dir / "summary.json").write_text(json.dumps(jsonable(summary), indent=2, default=str))
        frame = pd.DataFrame({"equity": equity, "cash": None, **{f"sleeve.{k}": self.eq[k][:last] for k in self.eq}}, index=idx)
        frame["cash"] = equity - frame[[f"sleeve.{k}" for k in self.eq]].sum(axis=1)
        frame.to_csv(self.run_dir / "equity.csv", index_label="time")
        return PortfolioResult(summary, self.run_dir, equity)


def _count(items) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for x in items:
        out[x] += 1
    return out


def _rollback(db: sqlite3.Connection, tick: int, fill_id: int) -> None:
    """Delete a sleeve journal's rows written after the checkpoint at ``tick`` (a process that
    died between a sleeve's commit and the portfolio's leaves them behind)."""
    have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    with db:
        for table in _SLEEVE_TICK_TABLES:
            if table in have:
                db.execute(f"DELETE FROM {table} WHERE tick > ?", (tick,))
        db.execute("DELETE FROM fills WHERE fill_id > ?", (fill_id,))


def run_portfolio(config: str | Path, start=None, end=None, capital: float | None = None, out: Path | str = "runs",
                  run_id: str | None = None, data: MarketData | None = None, progress=None, stop_at: int | None = None,
                  resume: bool = False) -> PortfolioResult | None:
    """Run (or with ``resume``, continue ``out/run_id``) a portfolio of strategies on the bundled
    data; see :class:`PortfolioRunner`. ``stop_at``: stop before that tick (checkpointed) and
    return None.

    Raises:
        ConfigError, DataError, PortfolioError.
    """
    if resume:
        if not run_id:
            raise PortfolioError("resuming a portfolio run needs its run id (--run-id)")
        from ..runs import check_run_id

        runner = PortfolioRunner.resume(Path(out) / check_run_id(run_id), data)
    else:
        runner = PortfolioRunner.start(config, out, run_id, start, end, capital, data)
    return runner.run(stop_at=stop_at, progress=progress)
