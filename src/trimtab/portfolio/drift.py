"""Running the token drift engine: the rebalance log and alerts of a ``token_weights`` basket.

The engine (:class:`trimtab.engine.kernel.Engine`) runs the basket like any strategy: the
machine (machines/drift.yaml) fires on the drift rules, the planner
(:class:`trimtab.planner.drift.Basket`) matches the swaps, the executor fills them on the
simulated venues. :class:`DriftTracker` sits beside the engine, reads what each tick did and
writes two tables into the run's own ``journal.sqlite``:

``rebalances`` (one row per rebalance plan, seed 002 "Comprehensive Logging"):
    tick, time, plan_id, trigger, status (SUCCESS, PARTIAL, BLOCKED, SKIPPED, FAILED, NOOP),
    price_source, max_drift (before the trades), drifts (token -> drift, JSON), trades (every
    matched trade with its path, USD amount, amount in, quoted out, amount_out_min, expected
    out and status, JSON), amounts (instrument -> net change from the plan's swap fills, token
    units, JSON), path (the swap legs run, JSON), gas_eth, gas_usd, gas_price_gwei,
    gas_baseline_gwei, execution_usd (the swaps' equity impact at the valuation prices: pool fee,
    spread + slippage, and the pool price's difference from the valuation price -- negative when
    the pool paid better), cost_usd (execution + gas), expected_cost (the plan's, share class),
    failure.
``alerts`` (seed 002 "Alert Conditions"), each kind with its own cooldown in simulated minutes:
    ``high_drift`` (largest |drift| before the tick's rebalance above ``alerts.high_drift``),
    ``rebalance_failed`` (a rebalance FAILED at execution, or a trade was BLOCKED by the
    slippage guard -- PARTIAL or BLOCKED), ``unusual_gas`` (a rebalance paid a gas price above
    ``alerts.gas_multiple`` x the trailing median of ``alerts.gas_baseline_h`` hours, so its gas
    cost is above that multiple of the expected cost). An alert inside its cooldown is not
    journaled; it is counted as suppressed (``suppressed_since_last`` on the next one).

Rows go through the journal's connection, so they are committed with the journal's own rows
(at its flushes, checkpoints and close). :meth:`DriftTracker.state` / :meth:`restore` carry
the cooldown clocks and counters across a stop (the portfolio runner checkpoints them).
"""
from __future__ import annotations

import json
import math
import sqlite3
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..accounting.book import Fill
from ..data.feed import MarketData, load_market_data
from ..engine.kernel import Engine, RunResult
from ..engine.window import new_run_id
from ..engine.flows import Flow
from ..engine.journal import dumps, jsonable
from ..planner.drift import basket_of
from ..runs import claim
from ..secrets import scrubbing
from ..venues.sim import GAS_FIELD, WALLET_ETH
from .window import strategy_window

SCHEMA = """
CREATE TABLE IF NOT EXISTS rebalances (rebalance_id INTEGER PRIMARY KEY, tick INTEGER, time TEXT, plan_id TEXT, trigger TEXT,
  status TEXT, price_source TEXT, max_drift REAL, drifts TEXT, trades TEXT, amounts TEXT, path TEXT, gas_eth REAL, gas_usd REAL,
  gas_price_gwei REAL, gas_baseline_gwei REAL, execution_usd REAL, cost_usd REAL, expected_cost REAL, failure TEXT);
CREATE TABLE IF NOT EXISTS alerts (alert_id INTEGER PRIMARY KEY, tick INTEGER, time TEXT, kind TEXT, severity TEXT, value REAL,
  threshold REAL, message TEXT, suppressed_since_last INTEGER);
"""

ALERT_KINDS = ("high_drift", "rebalance_failed", "unusual_gas")
_SEVERITY = {"high_drift": "warning", "rebalance_failed": "critical", "unusual_gas": "warning"}


class DriftTracker:
    """The rebalance log and alerts of one engine running a ``token_weights`` basket.

    Call :meth:`after_step` after every ``engine.step(i)`` with the metrics it returned.

    Raises:
        ValueError: the engine's strategy has no ``token_weights`` target.
    """

    def __init__(self, engine: Engine):
        target = basket_of(engine.strategy)
        if target is None or engine.planner.basket is None:
            raise ValueError(f"{engine.strategy.name} has no token_weights target")
        self.engine = engine
        self.target = target
        self.basket = engine.planner.basket
        self.db: sqlite3.Connection = engine.journal.db
        self.db.executescript(SCHEMA)
        p = engine.params
        v = lambda e: engine.strategy.target_value(e, p)  # noqa: E731
        a = target.alerts
        self.thresholds = {"high_drift": v(a.high_drift), "unusual_gas": v(a.gas_multiple)}
        self.cooldown_s = {"high_drift": v(a.high_drift_cooldown_min) * 60, "rebalance_failed": v(a.failed_cooldown_min) * 60,
                           "unusual_gas": v(a.gas_cooldown_min) * 60}
        # Expected gas price: median of the trailing window, this tick included (no look-ahead).
        hours = max(int(round(v(a.gas_baseline_h))), 1)
        self.gas_baseline = trailing_median(engine.view.cols[GAS_FIELD], hours).tolist()
        self.fills: list[Fill] = []
        self.failures: dict[str, str] = {}
        ex = engine.executor
        on_fill, on_step = ex.on_fill, ex.on_step

        def fill_hook(f):
            on_fill(f)
            if f.plan_id:
                self.fills.append(f)

        def step_hook(pid, s, status, tick, detail):
            on_step(pid, s, status, tick, detail)
            if status == "failed":
                self.failures[pid] = f"{s.id} {s.description}: {detail}"

        ex.on_fill, ex.on_step = fill_hook, step_hook
        self.last_alert: dict[str, int | None] = {k: None for k in ALERT_KINDS}
        self.suppressed: dict[str, int] = {k: 0 for k in ALERT_KINDS}
        self.fired: dict[str, int] = {k: 0 for k in ALERT_KINDS}
        self.suppressed_total: dict[str, int] = {k: 0 for k in ALERT_KINDS}
        self.counts: dict[str, float] = defaultdict(float)
        self.by_status: dict[str, int] = defaultdict(int)
        self.next_rebalance_id = self._max_id("rebalances", "rebalance_id") + 1
        self.next_alert_id = self._max_id("alerts", "alert_id") + 1
        self.recent_alerts: list[dict] = []

    def _max_id(self, table: str, col: str) -> int:
        return self.db.execute(f"SELECT COALESCE(MAX({col}), 0) FROM {table}").fetchone()[0]

    # ------------------------------------------------------------------ per tick
    def after_step(self, i: int, metrics: dict[str, float]) -> list[dict]:
        """Log the rebalances planned at tick ``i`` and raise the tick's alerts; returns the
        rebalance rows written (as dicts)."""
        eng = self.engine
        plans, self.basket.planned = self.basket.planned, []
        rows = [self._rebalance(i, plan) for plan in plans]
        # The drift the tick saw before trading: the first plan's (the metrics are after it).
        pre_drift = (rows[0]["max_drift"] or 0.0) if rows else metrics.get("max_drift", 0.0)
        self.fills = [f for f in self.fills if f.tick > i]
        now = eng.view.epoch[i]
        if pre_drift > self.thresholds["high_drift"]:
            self._alert(i, now, "high_drift", pre_drift, self.thresholds["high_drift"],
                        f"largest |drift| {pre_drift:.2%} > {self.thresholds['high_drift']:.2%}")
        for row in rows:
            if row["status"] in ("FAILED", "PARTIAL", "BLOCKED"):
                self._alert(i, now, "rebalance_failed", 1.0, 0.0, f"rebalance {row['plan_id']} {row['status']}: {row['failure']}")
            if row["gas_eth"] > 0 and row["gas_baseline_gwei"] > 0:
                ratio = row["gas_price_gwei"] / row["gas_baseline_gwei"]
                if ratio > self.thresholds["unusual_gas"]:
                    self._alert(i, now, "unusual_gas", ratio, self.thresholds["unusual_gas"],
                                f"rebalance {row['plan_id']} paid {row['gas_usd']:.2f} USD of gas at {row['gas_price_gwei']:.2f} gwei, "
                                f"{ratio:.2f}x the {row['gas_baseline_gwei']:.2f} gwei median (expected {row['gas_usd'] / ratio:.2f} USD)")
        return rows

    def _rebalance(self, i: int, plan) -> dict:
        eng = self.engine
        px = eng.px
        basket = plan.targets.get("basket", {})
        fills = [f for f in self.fills if f.plan_id == plan.id]
        gas_eth = -sum(leg.delta for f in fills if f.category == "gas" for leg in f.legs if leg.key == WALLET_ETH)
        sc = px.share_usd()
        eth = px.eth_usd()
        execution_usd = -sum(f.impact for f in fills if f.category == "trading_fees") * sc
        gas_usd = gas_eth * eth
        amounts: dict[str, float] = defaultdict(float)
        path = []
        for f in fills:
            if f.operation == "swap" and f.category != "gas":
                for leg in f.legs:
                    amounts[leg.key] += leg.delta
                path.append({"venue": f.venue, "sell": f.legs[0].key.split(":")[-1], "amount_in": -f.legs[0].delta,
                             "buy": f.legs[1].key.split(":")[-1], "amount_out": f.legs[1].delta, "price": f.price,
                             "price_field": f.price_field, "note": f.note})
        for leg_key in [k for k, q in amounts.items() if abs(q) < 1e-15]:
            amounts.pop(leg_key)
        trades = basket.get("trades", [])
        st = {s: sum(1 for t in trades if t["status"] == s) for s in ("sent", "skipped", "clamped", "blocked")}
        sent = st["sent"] + st["clamped"]
        failure = self.failures.pop(plan.id, None)
        if failure:
            status = "FAILED"
        elif sent and st["blocked"]:
            status = "PARTIAL"
        elif st["blocked"]:
            status = "BLOCKED"
        elif sent:
            status = "SUCCESS"
        elif trades:
            status = "SKIPPED"
        else:
            status = "NOOP"
        reasons = [f"{t['sell']}->{t['buy']}: {t['reason']}" for t in trades if t["status"] == "blocked"]
        reasons += [f"{tok}: {d['health']} ({d['reason']})" for tok, d in basket.get("tokens", {}).items() if d.get("health") != "HEALTHY"]
        row = {
            "rebalance_id": self.next_rebalance_id, "tick": i, "time": eng.iso[i], "plan_id": plan.id, "trigger": plan.trigger,
            "status": status, "price_source": basket.get("price_source"), "max_drift": basket.get("max_drift"),
            "drifts": {tok: d.get("drift") for tok, d in basket.get("tokens", {}).items()},
            "trades": trades, "amounts": dict(amounts), "path": path, "gas_eth": gas_eth, "gas_usd": gas_usd,
            "gas_price_gwei": eng.view.get(GAS_FIELD, i), "gas_baseline_gwei": self.gas_baseline[i],
            "execution_usd": execution_usd, "cost_usd": execution_usd + gas_usd, "expected_cost": plan.expected_cost,
            "failure": failure or ("; ".join(reasons) if reasons else None),
        }
        self.next_rebalance_id += 1
        self.db.execute("INSERT INTO rebalances VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (
            row["rebalance_id"], i, row["time"], plan.id, plan.trigger, status, row["price_source"], row["max_drift"],
            dumps(row["drifts"]), dumps(trades), dumps(row["amounts"]), dumps(path), gas_eth, gas_usd, _num(row["gas_price_gwei"]),
            _num(row["gas_baseline_gwei"]), execution_usd, execution_usd + gas_usd, plan.expected_cost, row["failure"]))
        self.by_status[status] += 1
        c = self.counts
        c["rebalances"] += 1
        for s, n in st.items():
            c[f"trades_{s}"] += n
        c["gas_eth"] += gas_eth
        c["gas_usd"] += gas_usd
        c["execution_usd"] += execution_usd
        c["traded_usd"] += sum(t["usd"] or 0.0 for t in trades if t["status"] in ("sent", "clamped"))
        return row

    def _alert(self, i: int, now: int, kind: str, value: float, threshold: float, message: str) -> None:
        last = self.last_alert[kind]
        if last is not None and now - last < self.cooldown_s[kind]:
            self.suppressed[kind] += 1
            self.suppressed_total[kind] += 1
            return
        row = {"alert_id": self.next_alert_id, "tick": i, "time": self.engine.iso[i], "kind": kind, "severity": _SEVERITY[kind],
               "value": value, "threshold": threshold, "message": message, "suppressed_since_last": self.suppressed[kind]}
        self.db.execute("INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,?)", tuple(row.values()))
        self.next_alert_id += 1
        self.last_alert[kind] = now
        self.suppressed[kind] = 0
        self.fired[kind] += 1
        self.recent_alerts = (self.recent_alerts + [row])[-20:]

    # ------------------------------------------------------------------ checkpoints and summary
    def state(self) -> dict:
        """Cooldown clocks, counters and ids, as plain JSON-able data (trimtab.engine.checkpoint)."""
        return {"last_alert": dict(self.last_alert), "suppressed": dict(self.suppressed), "fired": dict(self.fired),
                "suppressed_total": dict(self.suppressed_total), "counts": dict(self.counts), "by_status": dict(self.by_status),
                "next_rebalance_id": self.next_rebalance_id, "next_alert_id": self.next_alert_id, "recent_alerts": list(self.recent_alerts)}

    def restore(self, st: dict) -> None:
        """Load a :meth:`state` taken from a tracker of the same run."""
        self.last_alert, self.suppressed, self.fired = dict(st["last_alert"]), dict(st["suppressed"]), dict(st["fired"])
        self.suppressed_total = dict(st["suppressed_total"])
        self.counts = defaultdict(float, st["counts"])
        self.by_status = defaultdict(int, st["by_status"])
        self.next_rebalance_id, self.next_alert_id = st["next_rebalance_id"], st["next_alert_id"]
        self.recent_alerts = list(st["recent_alerts"])

    def summary(self, metrics: dict[str, float] | None = None) -> dict:
        """Rebalances by status, trades, gas and costs (USD), alerts fired and suppressed by
        kind with the latest ones, and the basket's final drifts and weights."""
        c = self.counts
        out = {
            "price_source": self.target.price_source,
            "calendar": self.target.calendar,
            "rebalances": int(c["rebalances"]),
            "by_status": dict(sorted(self.by_status.items())),
            "trades": {s: int(c[f"trades_{s}"]) for s in ("sent", "clamped", "skipped", "blocked")},
            "traded_usd": c["traded_usd"],
            "gas_eth": c["gas_eth"], "gas_usd": c["gas_usd"], "execution_usd": c["execution_usd"], "cost_usd": c["gas_usd"] + c["execution_usd"],
            "alerts": {k: {"fired": self.fired[k], "suppressed": self.suppressed_total[k]} for k in ALERT_KINDS},
            "recent_alerts": self.recent_alerts[-5:],
        }
        st = self.basket.state(self.engine.book, self.engine.params)
        out["final"] = {t.token: {"weight": t.value / st.total if st.total else 0.0, "target_weight": t.weight, "drift": t.drift,
                                  "health": t.health} for t in st.tokens}
        return out


def trailing_median(values, hours: int) -> np.ndarray:
    """Per tick ``i``, the median of the non-NaN ``values[max(0, i - hours + 1) : i + 1]`` (NaN
    where there are none): pandas' ``rolling(hours, min_periods=1).median()`` without pandas,
    the same floats (the middle value, or ``(a + b) / 2`` of the two middle values).

    Args:
        values: floats, shape (n,); hours: the window, >= 1 ticks.
    Returns:
        float64 array, shape (n,)."""
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    out = np.full(n, np.nan)
    if n == 0:
        return out
    padded = np.concatenate([np.full(hours - 1, np.nan), v])
    windows = np.lib.stride_tricks.sliding_window_view(padded, hours)      # (n, hours): row i ends at tick i
    holes = np.isnan(windows).any(axis=1)
    full = np.nonzero(~holes)[0]
    mid = hours // 2
    for lo in range(0, full.size, 1024):   # 1024 sorted rows at a time: ~1 MB per 128 hours of window
        rows = full[lo:lo + 1024]
        # Sorted rows, then the middle one or the mean of the middle two, as np.median computes it.
        srt = np.sort(windows[rows], axis=1)
        out[rows] = srt[:, mid] if hours % 2 else (srt[:, mid - 1] + srt[:, mid]) / 2
    for i in np.nonzero(holes)[0].tolist():   # the first hours and data holes: only the values there
        w = windows[i][~np.isnan(windows[i])]
        if w.size:
            w = np.sort(w)
            m = w.size // 2
            out[i] = w[m] if w.size % 2 else (w[m - 1] + w[m]) / 2
    return out


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def run_drift(strategy, start=None, end=None, capital: float | None = None, out: Path | str = "runs", run_id: str | None = None,
              progress=None, data: MarketData | None = None, flows: list[Flow] | None = None, overwrite: bool = False) -> RunResult:
    """Backtest a ``token_weights`` strategy on the bundled data with its rebalance log and alerts.

    Args:
        strategy: a loaded strategy whose target is a ``token_weights`` basket.
        start, end: window (UTC; default: the longest window every basket token's price covers).
        capital: initial capital in the share class (default: the config's).
        progress: optional callable ``(done_ticks, total_ticks)``.
        data: preloaded market data; flows: capital flows on top of the config's.
        run_id, overwrite: as :func:`trimtab.engine.backtest.run_backtest` (the run directory is
            owned for the run's life; an existing run is replaced only with ``overwrite``).

    Returns:
        The engine's :class:`RunResult` whose summary has ``kind: drift_basket`` and a ``drift``
        section (see :meth:`DriftTracker.summary` and :class:`trimtab.summary.DriftBasketSummary`); summary.json and the journal's ``summary`` carry it too.

    Raises:
        DataError: a window outside the data; ValueError: not a basket strategy; RunError: a bad
        or existing run id, or a run owned by another process (:func:`trimtab.runs.claim`).
    """
    data = data or load_market_data()
    start, end = strategy_window(strategy, data, start, end)
    with claim(out, run_id, new_id=lambda: new_run_id(strategy, start, end, out), overwrite=overwrite) as owned:
        engine = Engine(strategy, data.slice(start, end), owned.run_dir, capital=capital, flows=flows)
        tracker = DriftTracker(engine)
        n = engine.view.n
        metrics: dict[str, float] = {}
        for i in range(n):
            metrics = engine.step(i)
            tracker.after_step(i, metrics)
            if progress and (i % 200 == 0 or i == n - 1):
                progress(i + 1, n)
        drift = tracker.summary(metrics)
        result = engine.finish()
        result.summary["kind"] = "drift_basket"
        result.summary["drift"] = drift
        write_summary(result.run_dir, result.summary)
        return result


def write_summary(run_dir: Path, summary: dict) -> None:
    """Rewrite summary.json and the journal's ``summary`` meta with an extended summary."""
    (Path(run_dir) / "summary.json").write_text(json.dumps(jsonable(summary), indent=2, default=str))

    db = scrubbing(sqlite3.connect(Path(run_dir) / "journal.sqlite"))  # strings redacted of TRIMTAB_* secrets
    with db:
        db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", ("summary", dumps(summary)))
    db.close()
