"""A portfolio of strategies: sleeve engines in lockstep, capital moved by exiting before entering.

Each sleeve is a full :class:`trimtab.engine.kernel.Engine` over the same window of the
bundled data (its own journal under ``<run>/sleeves/<id>/``; a ``token_weights`` sleeve also
gets its rebalance log and alerts, :class:`trimtab.portfolio.drift.DriftTracker`), started with
``weight x capital``. Per tick :meth:`PortfolioRunner.step` steps every sleeve at tick ``i``,
then the portfolio:

1. books what the sleeves paid out (their ``payout`` flows) into the portfolio's cash and what
   they took in (``deposit`` flows) out of it -- so portfolio equity = sum of sleeve equity + cash
   at every tick, and no money appears or vanishes between them;
2. advances the reallocation in flight (:class:`trimtab.portfolio.realloc.Reallocator`: exit
   before enter -- withdrawals first, then deposits of what arrived);
3. computes the portfolio metrics (scope ``portfolio`` of :data:`trimtab.metrics.REGISTRY`) and steps
   the portfolio machine (machines/portfolio.yaml); entering ``reallocating`` starts a
   reallocation toward the targets of the allocation method (:mod:`.allocation`) under the limits.

This module keeps the loop and the run's lifecycle (start, resume, checkpoint, finish); the
rows go to ``<run>/portfolio.sqlite`` (:mod:`trimtab.portfolio.store`) and the final summary is
built by :mod:`trimtab.portfolio.summary`. :meth:`PortfolioRunner.checkpoint` commits each
sleeve's journal with its engine state (``Journal.checkpoint``) and then the portfolio's rows with
every sleeve's and the portfolio's state, every ``checkpoint_every_h`` ticks and when a run is
stopped; :meth:`PortfolioRunner.resume` rebuilds the engines from the last checkpoint (rolling
back any sleeve journal rows written after it) and continues exactly where the run stopped.
"""
from __future__ import annotations

import copy
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..data.feed import MarketData, load_market_data
from ..engine.kernel import Engine
from ..engine import checkpoint as ckpt
from ..engine import recovery
from ..engine.journal import dumps, jsonable
from ..engine.machine import StrategyMachine
from ..errors import TrimtabError
from ..planner.compile import MIN_TRADE_USD
from ..planner.drift import basket_of, period_key
from ..runs import check_run_id, claim, claim_dir, unique_run_id
from ..timeutil import utc
from .allocation import constrain, daily_returns, method_targets
from .daily import corr
from .config import Portfolio, load_portfolio
from .drift import DriftTracker, write_summary
from .equity_csv import write_portfolio_csv
from .realloc import Reallocator
from .store import FILE, META_ERRORS, PortfolioStore, meta_error, read_meta, rollback_journal
from .summary import portfolio_summary
from .window import portfolio_window

class PortfolioError(TrimtabError):
    """A portfolio run cannot start or resume; the message says why."""


@dataclass
class PortfolioResult:
    """The portfolio summary (JSON-ready), where the run was written, and its hourly equity:
    ``values`` (share class) and ``epoch`` (UTC, int epoch seconds) per tick run;
    :attr:`equity` is the same as a ``pd.Series``, built on first use (a run never imports pandas)."""

    summary: dict
    run_dir: Path
    values: list[float] = field(repr=False, default_factory=list)
    epoch: list[int] = field(repr=False, default_factory=list)

    @property
    def equity(self):
        """Portfolio equity per tick as a ``pd.Series`` (float64) indexed by the ticks' UTC times (ns)."""
        import pandas as pd  # for callers that want pandas (tests, benches); never a run

        index = pd.DatetimeIndex(pd.to_datetime(list(self.epoch), unit="s", utc=True).as_unit("ns"))
        return pd.Series(self.values, index=index, dtype="float64")


class Sleeve:
    """One sleeve: its engine (and a basket's drift tracker) over the portfolio's window."""

    def __init__(self, spec, strategy, window: MarketData, run_dir: Path, capital: float, resume: bool = False,
                 journal: str = "slim"):
        self.spec = spec
        self.id = spec.id
        self.strategy = strategy
        self.capital = capital
        self.engine = Engine(strategy, window, run_dir, capital=capital, resume=resume, journal_mode=journal)
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


class PortfolioRunner:
    """Runs a portfolio of strategies one tick at a time. Build with :meth:`start` or :meth:`resume`."""

    def __init__(self, portfolio: Portfolio, data: MarketData, run_dir: Path, start, end, capital: float | None = None,
                 resume: bool = False, journal: str = "slim"):
        self.p = portfolio
        self.owned = None  # the RunClaim of run_dir, set by start() and resume()
        self.cfg = cfg = portfolio.config
        self.run_dir = Path(run_dir)
        self.start_time, self.end_time = start, end
        self.capital = float(capital if capital is not None else cfg.capital)
        window = data.slice(start, end)
        self.sleeves = [Sleeve(spec, strat, window, self.run_dir / "sleeves" / spec.id, spec.weight * self.capital, resume, journal)
                        for spec, strat in portfolio.sleeves]
        v = self.sleeves[0].engine.view
        self.times, self.epoch, self.iso, self.n = v.times, v.epoch, self.sleeves[0].engine.iso, v.n
        self.params = dict(portfolio.params)
        self.machine = StrategyMachine(portfolio)
        self.store = PortfolioStore(self.run_dir)
        ids = [s.id for s in self.sleeves]
        self.base = {s.id: s.spec.weight for s in self.sleeves}
        self.lo = {s.id: s.spec.min_weight for s in self.sleeves}
        self.hi = {s.id: s.spec.max_weight for s in self.sleeves}
        self.eq: dict[str, list[float]] = {k: [0.0] * self.n for k in ids}
        self.nav: dict[str, list[float]] = {k: [1.0] * self.n for k in ids}
        self.port_eq = [0.0] * self.n
        # ---- the state that changes tick to tick (see _pstate)
        self.next_tick = 0
        self.cash = 0.0
        self.method_raw = dict(self.base)  # targets of the method before limits
        self.target_info: dict = {"basis": "configured weights"}
        self.peak = 1.0
        self.sleeve_peak = {k: 1.0 for k in ids}
        self.cut: list[str] = []  # sleeves cut to min_weight for drawdown
        self._targets_key: tuple | None = None   # what self._targets were constrained from (see targets)
        self._targets: dict[str, float] = {}
        self.reallocs = Reallocator(self, self.store)
        self.max_corr = math.nan
        self.transitions = 0
        self.limit_events: list[dict] = []
        if not resume:
            self.store.meta("portfolio", {"name": portfolio.name, "config": portfolio.config_file, "machine": portfolio.machine_file})
            self.store.meta("window", {"start": self.iso[0], "end": self.iso[-1], "capital": self.capital, "share_class": cfg.share_class})
            self.store.meta("config", cfg.model_dump())
            self.store.meta("parameters", self.params)
            self.store.meta("machine", portfolio.machine.model_dump())
            self.store.meta("rules", {n: {"when": r.spec.when, "severity": r.spec.severity, "file": r.file, "line": r.line}
                                 for n, r in portfolio.rules.items()})
            self.store.commit()
            self.store.start_marker()

    # ------------------------------------------------------------------ construction
    @classmethod
    def start(cls, config: str | Path | Portfolio, out: Path | str = "runs", run_id: str | None = None, start=None, end=None,
              capital: float | None = None, data: MarketData | None = None, journal: str = "slim") -> "PortfolioRunner":
        """A new run of the portfolio ``config`` (a path or a loaded :class:`Portfolio`) under
        ``out/run_id`` over ``start..end`` (default: the sleeves' common window). ``journal``: the
        sleeves' journal mode, "slim" or "full" (:mod:`trimtab.engine.journal`).

        The run directory is owned by the runner until :meth:`run` returns (:func:`trimtab.runs.claim`).

        Raises:
            ConfigError: the config or a sleeve's does not load; DataError: no such window;
            RunError: a bad run id, a run id that exists (resume it instead), a run owned by
            another process.
        """
        portfolio = config if isinstance(config, Portfolio) else load_portfolio(config)
        data = data or load_market_data()
        s0, s1 = portfolio_window(portfolio, data, start, end)
        owned = claim(out, run_id, new_id=lambda: unique_run_id(out, portfolio.name, s0, s1))
        runner = owned.build(lambda: cls(portfolio, data, owned.run_dir, s0, s1, capital, journal=journal))
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
        run_dir = Path(run_dir)
        path = run_dir / FILE
        if not path.exists():
            raise PortfolioError(f"no portfolio run at {run_dir}")
        owned = claim_dir(run_dir, resume=True)
        runner = owned.build(lambda: cls._resume(run_dir, path, data))
        runner.owned = owned
        return runner

    @classmethod
    def _resume(cls, run_dir: Path, path: Path, data: MarketData | None) -> "PortfolioRunner":
        """:meth:`resume` once ``run_dir`` is owned: rebuild the runner at its last checkpoint."""
        meta, has_cp = read_meta(path)
        try:
            config, w = meta["portfolio"]["config"], meta["window"]
            start, end, capital = utc(w["start"].replace("Z", "")), utc(w["end"].replace("Z", "")), float(w["capital"])
        except META_ERRORS as e:
            raise meta_error(path, e) from None
        if not has_cp:
            raise PortfolioError(f"{run_dir} has no checkpoint to resume from")
        if "summary" in meta:
            raise PortfolioError(f"{run_dir} has finished; nothing to resume")
        portfolio = load_portfolio(config)
        # Every journal checked and the checkpoint decoded before any engine opens a journal.
        tick, state = recovery.load_portfolio(run_dir, {spec.id: spec.weight * capital for spec, _ in portfolio.sleeves})
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
        for s in self.sleeves:
            log = s.engine.cflows.log
            k = len(log)
            m = s.step(i)
            self.eq[s.id][i] = m["equity"]
            self.nav[s.id][i] = s.engine.nav_series[i]
            for e in log[k:]:
                if e["kind"] == "payout":
                    self.cash += e["amount"]
                elif e["kind"] == "deposit":
                    self.cash -= e["amount"]
                self.reallocs.on_flow(s.id, e["kind"], e["amount"])
        total = self.total(i)
        self.port_eq[i] = total
        nav = total / self.capital
        self.peak = max(self.peak, nav)
        for s in self.sleeves:
            self.sleeve_peak[s.id] = max(self.sleeve_peak[s.id], self.nav[s.id][i])
        self._drawdown_cuts(i)
        if self.reallocs.current is not None:
            self.reallocs.progress(i)
        if i > 0 and period_key(self.times[i], self.cfg.allocation.period) != period_key(self.times[i - 1], self.cfg.allocation.period):
            self._period_start(i)
        seen = metrics = self.metrics(i)
        decision = self.machine.step(i, self.iso[i], metrics)
        if decision.trigger:
            self.transitions += 1
            if self.machine.action(decision.dest) is not None:
                self.reallocs.start(i, decision.trigger)
                metrics = self.metrics(i)
        # The metrics the machine decided on (before any reallocation it started).
        self.store.buf["decisions"].append((i, self.iso[i], decision.source, decision.dest, decision.trigger, dumps(seen),
                                      json.dumps(decision.rules, separators=(",", ":"))))
        self.store.buf["series"].append((i, self.iso[i], total, self.cash, nav, self.machine.state))
        for s in self.sleeves:
            self.store.buf["sleeve_series"].append((i, s.id, self.eq[s.id][i], self.nav[s.id][i]))
        self.next_tick = i + 1
        return metrics

    def dust(self) -> float:
        """Smallest single withdrawal or deposit (share class): twice the planner's minimum trade,
        so a sleeve is never asked for a move its own plans would skip."""
        return 2 * MIN_TRADE_USD / self.sleeves[0].engine.px.share_usd()

    def total(self, i: int) -> float:
        """Portfolio equity at tick ``i``: every sleeve's equity plus the portfolio's cash."""
        return sum(self.eq[s.id][i] for s in self.sleeves) + self.cash

    # ------------------------------------------------------------------ targets and metrics
    def targets(self) -> dict[str, float]:
        """Target weights now: the method's, with drawdown-cut sleeves at their minimum, within
        each sleeve's [min_weight, max_weight] (:func:`~trimtab.portfolio.allocation.constrain`).
        A new dict each call (a reallocation keeps the one it started with)."""
        # constrain's 200-step bisection on every tick was half of a portfolio run's time, yet its
        # inputs change only monthly or on a drawdown cut (the limits are fixed for the run):
        # recompute when they change. repr keys the floats exactly (0.0 and -0.0 differ).
        key = (tuple((k, repr(v)) for k, v in self.method_raw.items()), tuple(self.cut))
        if key != self._targets_key:
            self._targets = constrain(self.method_raw, self.lo, self.hi, {k: self.lo[k] for k in self.cut})
            self._targets_key = key
        return dict(self._targets)

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
        rets = daily_returns(self.epoch, self.nav, i, a.lookback_days)
        if len(self.sleeves) > 1 and len(rets) > 2:
            c = corr(rets)
            vals = [c[x][y] for x in range(len(c)) for y in range(x + 1, len(c)) if not math.isnan(c[x][y])]
            self.max_corr = max(vals) if vals else math.nan
            if vals and self.max_corr > self.cfg.limits.max_correlation:
                self.limit_events.append({"tick": i, "time": self.iso[i], "event": "correlation", "max_correlation": self.max_corr,
                                          "limit": self.cfg.limits.max_correlation})
        if a.method in ("adaptive", "risk_parity"):
            self.method_raw, info = method_targets(a.method, self.base, rets, a.risk_model, a.min_history_days)
            self.target_info = jsonable(info)

    def metrics(self, i: int) -> dict[str, float]:
        """The portfolio metrics at tick ``i`` (the names :data:`trimtab.metrics.REGISTRY` declares for scope ``portfolio``)."""
        total = self.total(i)
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
        pending = self.reallocs.pending()
        last_epoch = self.reallocs.last_epoch
        return {
            "equity": total, "cash": self.cash, "portfolio_drawdown": 1 - (total / self.capital) / self.peak,
            "max_sleeve_drift": drift, "reallocation_due": 1.0 if due and not last else 0.0, "period_start": 1.0 if period else 0.0,
            "hours_since_reallocation": (self.epoch[i] - last_epoch) / 3600 if last_epoch is not None else math.inf,
            "plan_in_flight": 1.0 if self.reallocs.current is not None else 0.0, "sleeve_limit_breaches": 0.0 if last else float(breaches),
            "withdrawals_pending": pending, "max_correlation": self.max_corr,
        }

    # ------------------------------------------------------------------ persistence
    def _pstate(self) -> dict:
        return {
            "next_tick": self.next_tick, "cash": self.cash, "method_raw": dict(self.method_raw), "target_info": self.target_info,
            "peak": self.peak, "sleeve_peak": dict(self.sleeve_peak), "cut": list(self.cut), "last_realloc_epoch": self.reallocs.last_epoch,
            "realloc": copy.deepcopy(self.reallocs.current), "realloc_count": self.reallocs.count, "max_corr": self.max_corr,
            "transitions": self.transitions, "limit_events": list(self.limit_events), "history_status": dict(self.reallocs.by_status),
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
        self.store.checkpoint(tick, blob)

    def _restore(self, tick: int, st: dict) -> None:
        self.store.rollback(tick)  # the portfolio's own rows back to the checkpoint
        for s in self.sleeves:
            sst = st["sleeves"][s.id]
            rollback_journal(s.engine.journal.db, tick, sst["engine"]["fill_id"])
            s.restore(sst)
            if s.engine.next_tick != tick + 1:
                raise PortfolioError(f"sleeve {s.id} restored at tick {s.engine.next_tick}, the portfolio at {tick + 1}")
        p = st["portfolio"]
        self.next_tick, self.cash, self.method_raw, self.target_info = p["next_tick"], p["cash"], p["method_raw"], p["target_info"]
        self.peak, self.sleeve_peak, self.cut = p["peak"], p["sleeve_peak"], p["cut"]
        rp = self.reallocs
        rp.last_epoch, rp.current, rp.count = p["last_realloc_epoch"], p["realloc"], p["realloc_count"]
        self.max_corr, self.transitions, self.limit_events = p["max_corr"], p["transitions"], p["limit_events"]
        rp.by_status = defaultdict(int, p["history_status"])
        self.machine.restore({"state": p["machine"]})
        for t, eq in self.store.equity_rows(self.next_tick):
            self.port_eq[t] = eq
        for t, k, eq, nav in self.store.sleeve_rows(self.next_tick):
            self.eq[k][t], self.nav[k][t] = eq, nav
        self.store.meta("resumed", {"at_tick": self.next_tick})
        self.store.commit()

    # ------------------------------------------------------------------ the end
    def finish(self) -> PortfolioResult:
        """Finish every sleeve (their summaries and journals), summarise the portfolio
        (:func:`trimtab.portfolio.summary.portfolio_summary`), write ``summary.json``,
        ``equity.csv`` and the portfolio journal."""
        last = max(self.next_tick, 1)
        final_metrics = self.metrics(last - 1)
        t_final = self.targets()
        finished = []
        for s in self.sleeves:
            drift = s.tracker.summary() if s.tracker else None
            res = s.engine.finish()
            sm = res.summary
            if drift is not None:
                sm["kind"] = "drift_basket"
                sm["drift"] = drift
                write_summary(res.run_dir, sm)
            finished.append((s, sm, drift))
        summary = portfolio_summary(self, last, final_metrics, t_final, finished, self.store.history())
        self.store.finish(summary)
        (self.run_dir / "summary.json").write_text(json.dumps(jsonable(summary), indent=2, default=str))
        equity, epoch = self.port_eq[:last], [int(e) for e in self.epoch[:last]]
        write_portfolio_csv(self.run_dir / "equity.csv", epoch, equity, {k: v[:last] for k, v in self.eq.items()})
        return PortfolioResult(summary, self.run_dir, equity, epoch)


def run_portfolio(config: str | Path, start=None, end=None, capital: float | None = None, out: Path | str = "runs",
                  run_id: str | None = None, data: MarketData | None = None, progress=None, stop_at: int | None = None,
                  resume: bool = False, journal: str = "slim") -> PortfolioResult | None:
    """Run (or with ``resume``, continue ``out/run_id``) a portfolio of strategies on the bundled
    data; see :class:`PortfolioRunner`. ``stop_at``: stop before that tick (checkpointed) and
    return None. ``journal``: the sleeves' journal mode of a new run (a resumed one keeps its own).

    Raises:
        ConfigError, DataError, PortfolioError.
    """
    if resume:
        if not run_id:
            raise PortfolioError("resuming a portfolio run needs its run id (--run-id)")
        runner = PortfolioRunner.resume(Path(out) / check_run_id(run_id), data)
    else:
        runner = PortfolioRunner.start(config, out, run_id, start, end, capital, data, journal=journal)
    return runner.run(stop_at=stop_at, progress=progress)
