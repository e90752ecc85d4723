"""The run journal: one SQLite file per run (``runs/<run-id>/journal.sqlite``).

Tables: ``meta`` (key, value JSON), ``analyses`` (yield-impact analyses before routine
rebalances, with EXECUTE / NEUTRAL / DEFER), ``decisions`` (every machine step with every rule's
observed values and thresholds), ``plans`` (the plan JSON), ``instructions`` (every step status
change), ``fills`` (every position change with its legs, price, source field and equity
impact), ``ledger`` (attribution per tick and category, share class units), ``metrics``
(the tight loop's metrics per tick), ``plan_hedge`` (each plan's hedge gap while it ran:
:class:`trimtab.engine.legrisk.PlanGap`) and ``quarantine`` (every tick at which a series the
strategy reads was quarantined by the data checks: the faulty field, value and reason). Rows
are buffered and written in batches; WAL mode so a
reader can follow a live run. Live runs also keep ``checkpoints`` (the engine state after the
last tick, written in the same transaction as that tick's rows), ``series`` (equity, NAV per
tick), ``control`` (requests such as ``stop`` from another process) and, with a live market
feed, ``observations`` (every collected market row) and ``feed_errors`` (failed fetches). Runs that execute on
real venues keep an ``outbox``: every chain transaction of a step, written and committed
*before* it is sent (write-ahead), then updated as it is sent and mined (:meth:`Journal.outbox_put`).
"""
from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

from ..runs import RunError
from ..secrets import scrubbing

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS decisions (tick INTEGER, time TEXT, source TEXT, dest TEXT, trigger TEXT, plan_id TEXT, rules TEXT);
CREATE TABLE IF NOT EXISTS plans (plan_id TEXT PRIMARY KEY, tick INTEGER, time TEXT, state TEXT, action TEXT, trigger TEXT, expected_cost REAL, plan TEXT);
CREATE TABLE IF NOT EXISTS instructions (plan_id TEXT, step_id TEXT, tick INTEGER, time TEXT, status TEXT, venue TEXT, operation TEXT, bundle INTEGER, description TEXT, detail TEXT, instructions TEXT);
CREATE TABLE IF NOT EXISTS fills (fill_id INTEGER PRIMARY KEY, tick INTEGER, time TEXT, plan_id TEXT, step_id TEXT, venue TEXT, operation TEXT, category TEXT, price REAL, price_field TEXT, impact REAL, legs TEXT, note TEXT);
CREATE TABLE IF NOT EXISTS ledger (tick INTEGER, time TEXT, category TEXT, amount REAL);
CREATE TABLE IF NOT EXISTS metrics (tick INTEGER PRIMARY KEY, time TEXT, state TEXT, equity REAL, health_factor REAL, ltv REAL, margin_ratio_min REAL, net_delta REAL, delta_drift REAL, equity_deviation REAL, hedge_allocation_drift REAL, data TEXT);
CREATE TABLE IF NOT EXISTS series (tick INTEGER PRIMARY KEY, equity REAL, nav REAL, eeth REAL);
CREATE TABLE IF NOT EXISTS checkpoints (tick INTEGER PRIMARY KEY, state BLOB);
CREATE TABLE IF NOT EXISTS control (key TEXT PRIMARY KEY, value TEXT, time TEXT);
CREATE TABLE IF NOT EXISTS outbox (plan_id TEXT, step_id TEXT, idx INTEGER, venue TEXT, description TEXT, tx TEXT, raw TEXT, tx_hash TEXT, status TEXT, receipt TEXT, time TEXT, PRIMARY KEY (plan_id, step_id, idx));
CREATE TABLE IF NOT EXISTS observations (tick INTEGER, series TEXT, ts INTEGER, avail INTEGER, known INTEGER, data TEXT);
CREATE TABLE IF NOT EXISTS feed_errors (tick INTEGER, time TEXT, series TEXT, source TEXT, message TEXT);
CREATE TABLE IF NOT EXISTS analyses (tick INTEGER, time TEXT, trigger TEXT, plan_id TEXT, recommendation TEXT, analysis TEXT);
CREATE TABLE IF NOT EXISTS quarantine (tick INTEGER, time TEXT, series TEXT, field TEXT, value REAL, reason TEXT);
CREATE TABLE IF NOT EXISTS plan_hedge (plan_id TEXT PRIMARY KEY, tick INTEGER, max_unhedged_usd REAL, max_unhedged_tick INTEGER, max_drift REAL, unhedged_hours INTEGER, hours_in_flight INTEGER);
CREATE INDEX IF NOT EXISTS decisions_time ON decisions(time);
CREATE INDEX IF NOT EXISTS fills_plan ON fills(plan_id);
"""


def jsonable(x):
    """JSON-safe copy: inf/nan become the strings 'inf', '-inf', 'nan'."""
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


def dumps(x) -> str:
    return json.dumps(jsonable(x), separators=(",", ":"), default=str)


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and (math.isinf(x) or math.isnan(x))) else x


class Journal:
    """Buffered writer of one run's journal. ``flush_every`` rows per table between writes.

    ``fresh=True`` starts a new journal and raises :class:`trimtab.runs.RunError` if one (or its
    WAL files) is already at ``path``: nothing is ever deleted here (replacing a finished
    backtest is :func:`trimtab.runs.claim`'s ``overwrite``); ``fresh=False`` opens an existing one.
    """

    def __init__(self, path: Path, flush_every: int = 5000, fresh: bool = True):
        path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:  # a new run never mixes with, nor deletes, an old journal (or its WAL files)
            for old in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                if old.exists():
                    raise RunError(f"{old} already exists: a new run never replaces another run's journal")
        self.path = path
        # Every string written is redacted of loaded TRIMTAB_* secrets; with none loaded (a
        # backtest) this is the bare connection and costs nothing per tick.
        self.db = scrubbing(sqlite3.connect(path))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self.buf: dict[str, list[tuple]] = {t: [] for t in ("decisions", "plans", "instructions", "fills", "ledger", "metrics", "analyses", "series", "observations", "feed_errors", "quarantine", "plan_hedge")}
        self.flush_every = flush_every
        self._fill_id = 0

    _SQL = {
        "decisions": "INSERT INTO decisions VALUES (?,?,?,?,?,?,?)",
        "plans": "INSERT OR REPLACE INTO plans VALUES (?,?,?,?,?,?,?,?)",
        "instructions": "INSERT INTO instructions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        "fills": "INSERT INTO fills VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        "ledger": "INSERT INTO ledger VALUES (?,?,?,?)",
        "metrics": "INSERT OR REPLACE INTO metrics VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        "analyses": "INSERT INTO analyses VALUES (?,?,?,?,?,?)",
        "series": "INSERT OR REPLACE INTO series VALUES (?,?,?,?)",
        "observations": "INSERT INTO observations VALUES (?,?,?,?,?,?)",
        "feed_errors": "INSERT INTO feed_errors VALUES (?,?,?,?,?)",
        "quarantine": "INSERT INTO quarantine VALUES (?,?,?,?,?,?)",
        "plan_hedge": "INSERT OR REPLACE INTO plan_hedge VALUES (?,?,?,?,?,?,?)",
    }

    def _add(self, table: str, row: tuple) -> None:
        b = self.buf[table]
        b.append(row)
        if len(b) >= self.flush_every:
            self.flush()

    def meta(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, dumps(value)))

    def decision(self, d) -> None:
        # Rule traces are already JSON-safe (machine._num), so skip the recursive cleanup.
        self._add("decisions", (d.tick, d.time, d.source, d.dest, d.trigger, d.plan_id, json.dumps(d.rules, separators=(",", ":"))))

    def analysis(self, tick: int, time: str, trigger: str, plan_id: str, a: dict) -> None:
        """A yield-impact analysis (trimtab.planner.yield_impact.analyse) and its recommendation."""
        self._add("analyses", (tick, time, trigger, plan_id, a["recommendation"], dumps(a)))

    def plan(self, plan, tick: int) -> None:
        self._add("plans", (plan.id, tick, plan.time, plan.state, plan.action, plan.trigger, plan.expected_cost, dumps(plan.to_dict())))

    def plan_gap(self, g) -> None:
        """A plan's hedge-gap record (:class:`trimtab.engine.legrisk.PlanGap`), replacing the last."""
        self._add("plan_hedge", (g.plan_id, g.tick, g.max_unhedged_usd, g.max_unhedged_tick, g.max_drift, g.unhedged_hours,
                                 g.hours_in_flight))

    def step(self, plan_id: str, step, status: str, tick: int, time: str, detail: str) -> None:
        ins = [dict(venue=i.venue, operation=i.operation, instrument=i.instrument, amount=i.amount, asset=i.asset,
                    price_field=i.price_field, expected_cost=i.expected_cost) for i in step.instructions]
        self._add("instructions", (plan_id, step.id, tick, time, status, step.venue or step.instructions[0].venue,
                                   step.operation or step.instructions[0].operation, int(step.bundle), step.description, detail, dumps(ins)))

    def fill(self, f, time: str) -> int:
        self._fill_id += 1
        f.id = self._fill_id
        legs = [[l.key, l.delta, l.amount] for l in f.legs]
        self._add("fills", (f.id, f.tick, time, f.plan_id, f.step_id, f.venue, f.operation, f.category, _num(f.price), f.price_field, f.impact, dumps(legs), f.note))
        return f.id

    def ledger(self, tick: int, time: str, amounts: dict[str, float]) -> None:
        for cat, amt in amounts.items():
            if amt:
                self._add("ledger", (tick, time, cat, amt))

    def metrics(self, tick: int, time: str, state: str, m: dict[str, float]) -> None:
        flat = {k: (v if v == v and v not in (math.inf, -math.inf) else str(v)) for k, v in m.items()}
        self._add("metrics", (tick, time, state, m["equity"], _num(m["health_factor"]), m["ltv"], _num(m["margin_ratio_min"]),
                              m["net_delta"], m["delta_drift"], m["equity_deviation"], m["hedge_allocation_drift"],
                              json.dumps(flat, separators=(",", ":"))))

    def series_row(self, tick: int, equity: float, nav: float, eeth: float) -> None:
        self._add("series", (tick, equity, nav, eeth))

    def series(self, upto: int) -> list[tuple]:
        """(tick, equity, nav, eeth) rows before tick ``upto`` (committed ones)."""
        return self.db.execute("SELECT tick, equity, nav, eeth FROM series WHERE tick < ? ORDER BY tick", (upto,)).fetchall()

    def observation(self, tick: int, series: str, ts: int, avail: int, known: int, values: dict[str, float]) -> None:
        """A market observation a live feed collected while preparing ``tick``: observation
        time ``ts``, availability ``avail`` and the tick epoch it became ``known`` at (epoch
        seconds), values by column. Written with the tick's checkpoint, so ``--resume``
        rebuilds exactly the market data the run saw (floats round-trip through JSON)."""
        self._add("observations", (tick, series, ts, avail, known, json.dumps(values, separators=(",", ":"))))

    def observations(self, upto: int) -> list[tuple[str, int, int, int, dict]]:
        """(series, ts, avail, known, values) collected for ticks before ``upto``, in order."""
        return [(s, ts, av, kn, json.loads(d)) for s, ts, av, kn, d in self.db.execute(
            "SELECT series, ts, avail, known, data FROM observations WHERE tick < ? ORDER BY rowid", (upto,))]

    def quarantine(self, tick: int, time: str, series: str, field: str, value: float, reason: str) -> None:
        """A series quarantined at ``tick``: its latest row failed the data checks
        (trimtab.data.quality); ``value`` is the faulty value of ``field`` (NULL for NaN/inf)."""
        self._add("quarantine", (tick, time, series, field, _num(value), reason))

    def feed_error(self, tick: int, time: str, series: str, source: str, message: str) -> None:
        """A fetch that failed for ``tick``: the series it leaves without a new value (NaN or stale)."""
        self._add("feed_errors", (tick, time, series, source, message))

    def checkpoint(self, tick: int, state: bytes) -> None:
        """Write every buffered row and the engine state after ``tick`` in ONE transaction: a
        process killed at any moment leaves either the whole tick or none of it. ``state`` is
        the encoded checkpoint (:func:`trimtab.engine.checkpoint.encode`: JSON text, never
        code); :func:`trimtab.engine.recovery.commit` also replaces the run's marker."""
        with self.db:
            for table, rows in self.buf.items():
                if rows:
                    self.db.executemany(self._SQL[table], rows)
                    rows.clear()
            self.db.execute("DELETE FROM checkpoints")
            self.db.execute("INSERT INTO checkpoints VALUES (?, ?)", (tick, state))

    def last_checkpoint(self) -> tuple[int, bytes] | None:
        """(tick, encoded state) of the checkpoint, unchecked: resume through
        :func:`trimtab.engine.recovery.load_engine`, which checks the journal and decodes it."""
        return self.db.execute("SELECT tick, state FROM checkpoints ORDER BY tick DESC LIMIT 1").fetchone()

    # -- write-ahead outbox of chain transactions (live execution) ------------------------
    _OUTBOX = ("plan_id", "step_id", "idx", "venue", "description", "tx", "raw", "tx_hash", "status", "receipt", "time")

    def outbox_put(self, plan_id: str, step_id: str, idx: int, **fields) -> None:
        """Insert or update the outbox row of transaction ``idx`` of a step and COMMIT at once.

        Fields: ``venue``, ``description``, ``tx`` (the unsigned call as JSON: to, data, value),
        ``raw`` (the signed transaction, hex), ``tx_hash``, ``status`` (built, signed, sent,
        mined, reverted), ``receipt`` (JSON), ``time``. Signed bytes and hashes only: a signed
        transaction holds no key (it is public once broadcast). Only this row is committed:
        a tick's other rows stay buffered in memory until its checkpoint.
        """
        bad = set(fields) - set(self._OUTBOX[3:])
        if bad:
            raise ValueError(f"unknown outbox fields: {sorted(bad)}")
        row = self.db.execute("SELECT * FROM outbox WHERE plan_id=? AND step_id=? AND idx=?", (plan_id, step_id, idx)).fetchone()
        cur = dict(zip(self._OUTBOX, row)) if row else dict.fromkeys(self._OUTBOX)
        cur.update(fields, plan_id=plan_id, step_id=step_id, idx=idx)
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO outbox VALUES (?,?,?,?,?,?,?,?,?,?,?)", tuple(cur[k] for k in self._OUTBOX))

    def outbox(self, plan_id: str, step_id: str) -> list[dict]:
        """The outbox rows of one step, by ``idx`` (empty when nothing was ever sent for it)."""
        rows = self.db.execute("SELECT * FROM outbox WHERE plan_id=? AND step_id=? ORDER BY idx", (plan_id, step_id)).fetchall()
        return [dict(zip(self._OUTBOX, r)) for r in rows]

    def control(self, key: str) -> str | None:
        """A control request written by another process (``trimtab stop``)."""
        row = self.db.execute("SELECT value FROM control WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def consume_control(self, key: str) -> None:
        """Mark the control request ``key`` served by deleting it, uncommitted: it is committed
        with the next checkpoint (or close), so a crash before that leaves it to be served again."""
        self.db.execute("DELETE FROM control WHERE key=?", (key,))

    def flush(self) -> None:
        for table, rows in self.buf.items():
            if rows:
                self.db.executemany(self._SQL[table], rows)
                rows.clear()
        self.db.commit()

    def close(self) -> None:
        self.flush()
        self.db.close()
