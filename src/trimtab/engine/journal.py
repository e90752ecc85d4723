"""The run journal: one SQLite file per run (``runs/<run-id>/journal.sqlite``); the tables,
their columns and the two modes are described in docs/journal.md.

Tables: ``meta`` (key, value JSON), ``analyses`` (yield-impact analyses before routine
rebalances, with EXECUTE / NEUTRAL / DEFER), ``metrics`` (one row per tick: time, state, the
machine step and one REAL column per metric: :func:`read_metrics`), ``decisions`` (a view of
``metrics``: every machine step's source, dest, trigger, plan; with ``mode="full"`` also every
rule's observed values and thresholds, the ``rules`` JSON, which ``"slim"``, the default, leaves
NULL: :mod:`trimtab.explain` recomputes it from the metrics and the rules in meta), ``plans``
(the plan JSON), ``instructions`` (every step status change), ``fills`` (every position change
with its legs, price, source field and equity impact), ``ledger`` (attribution per tick, one
REAL column per category, share class units: :func:`read_ledger`), ``plan_hedge`` (each plan's
hedge gap while it ran: :class:`trimtab.engine.legrisk.PlanGap`) and ``quarantine`` (every tick
at which a series the strategy reads was quarantined by the data checks: the faulty field,
value and reason). Rows are buffered and written in batches; WAL mode so a reader can follow a
live run. Live runs also keep ``checkpoints`` (the engine state after the last tick, written in
the same transaction as that tick's rows), ``series`` (equity, NAV per tick), ``control``
(requests such as ``stop`` from another process) and, with a live market feed,
``observations`` (every collected market row) and ``feed_errors`` (failed fetches). Runs that
execute on real venues keep an ``outbox``: every chain transaction of a step, written and
committed *before* it is sent (write-ahead), then updated as it is sent and mined
(:meth:`Journal.outbox_put`).
"""
from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable
from functools import partial
from itertools import compress, repeat
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..runs import RunError
from ..secrets import scrubbing, secrets_loaded
from .journal_writer import WriterConnection as _Remote
from .sqlrows import PARAMS_PER_STATEMENT, insert_rows, span_rows  # noqa: F401 (PARAMS_PER_STATEMENT: re-exported)

#: Journal modes: "slim" (the default) writes no per-tick rule trace (``decisions.rules`` is
#: NULL; :mod:`trimtab.explain` recomputes it exactly); "full" writes it as JSON every tick.
MODES = ("slim", "full")
#: The first columns of ``metrics``: the tick, its time and the machine state after it, then the
#: tick's decision (``decisions`` is a view of these; ``dest`` is NULL when it is ``state``) and
#: ``seen`` (:meth:`Journal._decision_cols`); every other column is one metric (REAL), added
#: when first seen.
METRIC_KEYS = ("tick", "time", "state", "source", "dest", "trigger", "plan_id", "rules", "seen")
#: The first column of ``ledger``; every other is one attribution category (REAL), added when first seen.
LEDGER_KEYS = ("tick",)
#: Stored for a metric a tick did not compute (a column added by a later tick's metrics, or one
#: a later tick no longer has); NULL is a NaN. Read back as "not in that tick's metrics".
ABSENT = ""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS plans (plan_id TEXT PRIMARY KEY, tick INTEGER, time TEXT, state TEXT, action TEXT, trigger TEXT, expected_cost REAL, plan TEXT);
CREATE TABLE IF NOT EXISTS instructions (plan_id TEXT, step_id TEXT, tick INTEGER, time TEXT, status TEXT, venue TEXT, operation TEXT, bundle INTEGER, description TEXT, detail TEXT, instructions TEXT);
CREATE TABLE IF NOT EXISTS fills (fill_id INTEGER PRIMARY KEY, tick INTEGER, time TEXT, plan_id TEXT, step_id TEXT, venue TEXT, operation TEXT, category TEXT, price REAL, price_field TEXT, impact REAL, legs TEXT, note TEXT);
CREATE TABLE IF NOT EXISTS ledger (tick INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS metrics (tick INTEGER PRIMARY KEY, time TEXT, state TEXT, source TEXT, dest TEXT, trigger TEXT, plan_id TEXT, rules TEXT, seen TEXT);
CREATE VIEW IF NOT EXISTS decisions AS SELECT tick, time, source, coalesce(dest, state) AS dest, trigger, plan_id, rules FROM metrics;
CREATE TABLE IF NOT EXISTS series (tick INTEGER PRIMARY KEY, equity REAL, nav REAL, eeth REAL);
CREATE TABLE IF NOT EXISTS checkpoints (tick INTEGER PRIMARY KEY, state BLOB);
CREATE TABLE IF NOT EXISTS control (key TEXT PRIMARY KEY, value TEXT, time TEXT);
CREATE TABLE IF NOT EXISTS outbox (plan_id TEXT, step_id TEXT, idx INTEGER, venue TEXT, description TEXT, tx TEXT, raw TEXT, tx_hash TEXT, status TEXT, receipt TEXT, time TEXT, PRIMARY KEY (plan_id, step_id, idx));
CREATE TABLE IF NOT EXISTS observations (tick INTEGER, series TEXT, ts INTEGER, avail INTEGER, known INTEGER, data TEXT);
CREATE TABLE IF NOT EXISTS feed_errors (tick INTEGER, time TEXT, series TEXT, source TEXT, message TEXT);
CREATE TABLE IF NOT EXISTS analyses (tick INTEGER, time TEXT, trigger TEXT, plan_id TEXT, recommendation TEXT, analysis TEXT);
CREATE TABLE IF NOT EXISTS quarantine (tick INTEGER, time TEXT, series TEXT, field TEXT, value REAL, reason TEXT);
CREATE TABLE IF NOT EXISTS plan_hedge (plan_id TEXT PRIMARY KEY, tick INTEGER, max_unhedged_usd REAL, max_unhedged_tick INTEGER, max_drift REAL, unhedged_hours INTEGER, hours_in_flight INTEGER);
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


def _legs_text(legs: list[list]) -> str:
    """``dumps(legs)`` for a fill's ``[[key, delta, amount], ...]``: the same text, without the
    :func:`jsonable` copy when every number is finite (the usual fill), since that copy then
    changes nothing; anything else (inf, nan, a non-number) takes :func:`dumps` itself."""
    try:
        for _, d, a in legs:
            if not (d - d == 0.0 and a - a == 0.0):  # inf - inf and nan - nan are nan
                return dumps(legs)
    except TypeError:
        return dumps(legs)
    return json.dumps(legs, separators=(",", ":"), default=str)


def _instructions_text(step) -> str:
    """The ``instructions`` column of a step's row: JSON of its instructions' fields (``params`` left out)."""
    return dumps([dict(venue=i.venue, operation=i.operation, instrument=i.instrument, amount=i.amount, asset=i.asset,
                       price_field=i.price_field, expected_cost=i.expected_cost) for i in step.instructions])


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and (math.isinf(x) or math.isnan(x))) else x


def seen_diff(saw: dict[str, float], m: dict[str, float]) -> str | None:
    """JSON of the metrics in ``saw`` that ``m`` does not hold with the same value (NaN equal to
    NaN; inf/nan as strings), None when there are none; ``saw`` whole, under the key ``"="``,
    when a name of ``m`` is missing from it. Read back with :func:`seen_metrics`."""
    if not m.keys() <= saw.keys():
        return dumps({"=": saw})
    diff = {k: v for k, v in saw.items() if k not in m or not (m[k] == v or (v != v and m[k] != m[k]))}
    return dumps(diff) if diff else None


def seen_metrics(stored: dict[str, float], seen: str | None) -> dict[str, float]:
    """The metrics a tick's rules saw: its stored metrics with the ``seen`` column applied
    (:func:`seen_diff`; inf/nan strings back to floats)."""
    if not seen:
        return stored
    d = json.loads(seen)
    if "=" in d:
        return {k: float(v) for k, v in d["="].items()}
    return {**stored, **{k: float(v) for k, v in d.items()}}


def _floats(v, n: int) -> list:
    """A quiet span's metric as ``n`` Python values (the ones a per-tick dict holds): an array's
    elements, or one value repeated."""
    x = v.tolist() if hasattr(v, "tolist") else v
    return x if isinstance(x, list) else [x] * n


def _getter(names: tuple[str, ...]):
    """``m -> tuple(m[k] for k in names)`` in C (``itemgetter`` of one name returns the bare value)."""
    if len(names) > 1:
        return itemgetter(*names)
    if names:
        k = names[0]
        return lambda m: (m[k],)
    return lambda m: ()


def quote(name: str) -> str:
    """``name`` as an SQL identifier (metric names hold dots: ``"margin_ratio.binance"``)."""
    return '"' + name.replace('"', '""') + '"'


class Journal:
    """Buffered writer of one run's journal. ``flush_every`` rows per table between writes.

    ``fresh=True`` starts a new journal and raises :class:`trimtab.runs.RunError` if one (or its
    WAL files) is already at ``path``: nothing is ever deleted here (replacing a finished
    backtest is :func:`trimtab.runs.claim`'s ``overwrite``); ``fresh=False`` opens an existing one.
    ``mode``: "slim" or "full" (:data:`MODES`; ValueError otherwise), recorded in meta
    ``journal``; an existing journal keeps the mode it was started with. ``writer=True``: a new
    journal's statements run in a writer process (:mod:`trimtab.engine.journal_writer`: the
    same rows, in the same order; commits where the writer is idle rather than every
    ``flush_every`` rows, as a quiet span's metrics go to the writer without filling a buffer;
    a failed statement raises at the next read or :meth:`close`); ignored for an existing
    journal or with ``TRIMTAB_*`` secrets loaded.
    ``synced=False``: commits are not synced to the disk (SQLite ``PRAGMA synchronous=OFF``): a
    crashed or killed process loses nothing committed, a power loss or OS crash may; for a
    backtest's journal, which running the backtest again rewrites. A live run keeps the default.
    """

    def __init__(self, path: Path, flush_every: int = 5000, fresh: bool = True, mode: str = "slim", writer: bool = False,
                 synced: bool = True):
        if mode not in MODES:
            raise ValueError(f"journal mode {mode!r}: use one of {', '.join(MODES)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:  # a new run never mixes with, nor deletes, an old journal (or its WAL files)
            for old in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                if old.exists():
                    raise RunError(f"{old} already exists: a new run never replaces another run's journal")
        self.path = path
        if writer and fresh and not secrets_loaded():
            # A new backtest journal: its statements run in a writer process, on another core
            # (trimtab.engine.journal_writer); the rows and answers are the in-process ones.
            self.db = self._writer = _Remote(path)
            self._insert = self.db.insert_rows
        else:
            # Every string written is redacted of loaded TRIMTAB_* secrets; with none loaded (a
            # backtest) this is the bare connection and costs nothing per tick.
            self.db = scrubbing(sqlite3.connect(path))
            self._writer = None
            self._insert = partial(insert_rows, self.db)
        self.db.execute("PRAGMA journal_mode=WAL")
        if not synced:  # a flagship backtest's last commit took ~20 ms, ~11 of them its fsync
            self.db.execute("PRAGMA synchronous=OFF")
        # One transaction: each CREATE on its own was a commit (and a sync) of its own.
        self.db.executescript("BEGIN;\n" + SCHEMA + "COMMIT;\n")
        self.buf: dict[str, list[tuple]] = {t: [] for t in ("decisions", "plans", "instructions", "fills", "ledger", "metrics", "analyses", "series", "observations", "feed_errors", "quarantine", "plan_hedge")}
        self.flush_every = flush_every
        # A writer process gets a table's rows every POST_EVERY (uncommitted, as a flush writes
        # them), so it keeps pace with the run instead of holding a batch back until the end,
        # and decodes small batches (its memory adds to the run's).
        self._post_every = min(flush_every, self.POST_EVERY) if self._writer is not None else flush_every
        self._fill_id = 0
        self._sql = dict(self._SQL)  # the metrics and ledger statements grow with their columns
        if fresh:
            self.meta("journal", {"mode": mode})
        else:  # a resumed run goes on as it started (a journal from before the modes had full traces)
            row = self.db.execute("SELECT value FROM meta WHERE key='journal'").fetchone()
            mode = json.loads(row[0]).get("mode", "full") if row else "full"
        self.mode = mode
        self._full = mode == "full"
        # A journal from before the decisions view (a resumed live run) keeps its decisions table;
        # a new one has SCHEMA's tables as created above (nothing to ask: a writer process
        # would make every new run wait for it to start).
        self._legacy = not fresh and self.db.execute("SELECT type FROM sqlite_master WHERE name='decisions'").fetchone()[0] == "table"
        self._mkeys = ("tick", "time", "state") if self._legacy else METRIC_KEYS
        self._decision = None  # the tick's decision, written with its metrics (one row per tick)
        # The wide tables (metrics, ledger): the columns the table has (a resumed run's), and
        # the order a tick's row is built in (the first dict's names, new names appended).
        self._have = ({"metrics": set(METRIC_KEYS), "ledger": set(LEDGER_KEYS)} if fresh else
                      {t: {r[1] for r in self.db.execute(f"PRAGMA table_info({t})")} for t in ("metrics", "ledger")})
        self._mcols: tuple[str, ...] = ()
        self._mget = None
        self._mlen = 0
        self._ins_last: dict[tuple[str, str], tuple] = {}  # (plan, step id) -> (the Step, its instructions JSON) last journaled
        # Metrics that have been 0.0 on every tick so far get no column until they change (or
        # the journal commits a checkpoint or closes): SQLite then adds it with DEFAULT 0.0, and
        # the rows written before cost nothing for it, not even a header byte. A new journal only.
        self._zcols: tuple[str, ...] = ()
        self._zget = _getter(())
        self._zeros: tuple[float, ...] = ()
        self._zok = fresh and not self._legacy
        self._lcols: tuple[str, ...] = ()
        self._lset: frozenset[str] = frozenset()
        self._lnarrow = "amount" in self._have["ledger"]
        if self._lnarrow:
            self._sql["ledger"] = "INSERT INTO ledger (tick, category, amount, time) VALUES (?,?,?,?)"

    _SQL = {
        "decisions": "INSERT INTO decisions VALUES (?,?,?,?,?,?,?)",
        "plans": "INSERT OR REPLACE INTO plans VALUES (?,?,?,?,?,?,?,?)",
        "instructions": "INSERT INTO instructions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        "fills": "INSERT INTO fills VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        "ledger": "INSERT OR REPLACE INTO ledger (tick) VALUES (?)",  # widened by _widen
        "metrics": "INSERT OR REPLACE INTO metrics (tick, time, state) VALUES (?,?,?)",  # widened by _widen
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
        if len(b) >= self._post_every:
            self._grown(table)

    #: Rows per table handed to a writer process at a time (:class:`WriterConnection`).
    POST_EVERY = 500

    def _grown(self, table: str) -> None:
        """``table``'s buffer has grown: all buffered rows written and committed (:meth:`flush`)
        at ``flush_every`` rows, this table's handed to the writer process at :data:`POST_EVERY`."""
        n = len(self.buf[table])
        if n >= self.flush_every:
            self.flush()
        elif n >= self._post_every:
            self._write(table)

    def _write(self, table: str) -> None:
        """Write ``table``'s buffered rows (:func:`insert_rows`), not committed, and empty its buffer."""
        rows = self.buf[table]
        self._insert(self._sql[table], rows)
        rows.clear()

    def meta(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, dumps(value)))

    def decision(self, d) -> None:
        """One machine step (:class:`trimtab.engine.machine.Decision`), written in the row of
        its tick's :meth:`metrics` (the ``decisions`` view reads it back)."""
        if self._legacy:  # journals before the view were full: the trace as JSON, every tick
            self._add("decisions", (d.tick, d.time, d.source, d.dest, d.trigger, d.plan_id, json.dumps(d.rules, separators=(",", ":"))))
        else:
            self._decision = d

    def _decision_cols(self, tick: int, state: str, m: dict[str, float]) -> tuple:
        """(source, dest or NULL when it is ``state``, trigger, plan_id, rules, seen) of the
        decision of ``tick`` (all NULL if none was journaled).

        Full mode: ``rules`` is the trace JSON. Slim mode: ``rules`` is NULL and the trace is
        recomputed from the metrics; but the kernel runs the monitors again after a
        transition's plan starts (or a liquidation, a compensation), so on those few ticks the
        journaled metrics ``m`` are not the ones the rules saw: ``seen`` then holds the
        metrics the rules saw that differ from ``m`` (:func:`seen_diff`). Every other tick
        passes the very dict the machine saw (an identity check), and slim never reads
        ``d.rules`` there, so a lazy trace is never computed. A decision whose trace was
        already built (its metrics no longer known) stores the trace in ``rules``."""
        d, self._decision = self._decision, None
        if d is None or d.tick != tick:
            return (None, None, None, None, None, None)
        rules = seen = None
        if self._full:
            rules = json.dumps(d.rules, separators=(",", ":"))  # already JSON-safe (machine._num)
        else:
            saw = d.metrics  # the dict the rules saw; None when the decision came with its trace (halted)
            if saw is None:
                rules = json.dumps(d.rules, separators=(",", ":"))
            elif saw is not m:
                seen = seen_diff(saw, m)
        return (d.source, None if d.dest == state else d.dest, d.trigger, d.plan_id, rules, seen)

    def analysis(self, tick: int, time: str, trigger: str, plan_id: str, a: dict) -> None:
        """A yield-impact analysis (trimtab.planner.yield_impact.analyse) and its recommendation."""
        self._add("analyses", (tick, time, trigger, plan_id, a["recommendation"], dumps(a)))

    def plan(self, plan, tick: int) -> None:
        """A plan's row: its JSON is :meth:`Plan.json_text` (the text ``dumps(plan.to_dict())`` gives)."""
        self._add("plans", (plan.id, tick, plan.time, plan.state, plan.action, plan.trigger, plan.expected_cost, plan.json_text()))

    def plan_gap(self, g) -> None:
        """A plan's hedge-gap record (:class:`trimtab.engine.legrisk.PlanGap`), replacing the last."""
        self._add("plan_hedge", (g.plan_id, g.tick, g.max_unhedged_usd, g.max_unhedged_tick, g.max_drift, g.unhedged_hours,
                                 g.hours_in_flight))

    def step(self, plan_id: str, step, status: str, tick: int, time: str, detail: str) -> None:
        """A step's status change; its ``instructions`` JSON is NULL when it is the same as the
        step's previous row's (a step changes status several times, its instructions rarely)."""
        key = (plan_id, step.id)
        last = self._ins_last.get(key)
        if last is not None and last[0] is step:  # Steps are frozen: the same object has the same text
            text = None
        else:
            text = _instructions_text(step)
            self._ins_last[key] = (step, text)
            if last is not None and last[1] == text:
                text = None
        self._add("instructions", (plan_id, step.id, tick, time, status, step.venue or step.instructions[0].venue,
                                   step.operation or step.instructions[0].operation, int(step.bundle), step.description, detail, text))

    def fill(self, f, time: str) -> int:
        """One fill row (:class:`trimtab.accounting.book.Fill`, applied: ``impact`` set) at ISO
        ``time``; gives it the journal's next fill id (``f.id``) and returns it."""
        self._fill_id += 1
        f.id = self._fill_id
        try:
            enc = self._legs_json
        except AttributeError:  # the first fill of this journal
            from .legs_json import legs_json as enc
            self._legs_json = enc
        # A backtest journals thousands of funding fills: their legs text is built directly
        # (the same characters as _legs_text); anything unusual goes through _legs_text.
        text = enc(f.legs)
        if text is None:
            text = _legs_text([[l.key, l.delta, l.amount] for l in f.legs])
        self._add("fills", (f.id, f.tick, time, f.plan_id, f.step_id, f.venue, f.operation, f.category, _num(f.price), f.price_field, f.impact, text, f.note))
        return f.id

    def funding_fills(self, rows: list[tuple], impacts: list[float], iso: list[str]) -> None:
        """The fill rows of funding settlements worked out column-wise
        (:meth:`trimtab.venues.sim.SimVenues.funding_block`'s ``rows``, booked with their
        ``impacts``, :meth:`trimtab.engine.executor.Executor.apply_settlements`), ``iso`` the
        time of each tick: the rows :meth:`fill` writes for the same fills, with the next ids."""
        from .legs_json import one_leg_json

        add, fid = self._add, self._fill_id
        for (t, _key, venue, margin, pay, rate, field, note, _stale, _proxy), impact in zip(rows, impacts):
            fid += 1
            add("fills", (fid, t, iso[t], None, None, venue, "funding", "funding", rate, field, impact,
                          one_leg_json(margin, pay), note))
        self._fill_id = fid

    def ledger(self, tick: int, time: str, amounts: dict[str, float]) -> None:
        """The tick's attribution by category: one row per tick with one REAL column per
        category (added when first seen), NULL where the category has nothing; no row when
        every amount is zero. ``time`` is not stored (the tick says it). Read with
        :func:`read_ledger` / :func:`ledger_total`."""
        if self._lnarrow:  # a journal from before the wide ledger (a resumed live run) goes on narrow
            for cat, amt in amounts.items():
                if amt:
                    self._add("ledger", (tick, cat, amt, time))
            return
        if not amounts.keys() <= self._lset:
            self._lcols, self._lset = self._widen("ledger", LEDGER_KEYS, self._lcols, [k for k in amounts if k not in self._lset])
        row = tuple(map(amounts.get, self._lcols))
        if any(row):
            self._add("ledger", (tick, *row))

    def ledger_covers(self, categories: set[str]) -> bool:
        """Whether :meth:`ledger_span` can write rows of these categories (each has its column)."""
        return not self._lnarrow and categories <= self._lset

    def ledger_span(self, first: int, amounts: dict[str, list]) -> bool:
        """The ledger rows of ticks ``first, first + 1, ...`` given as columns (category -> one
        amount per tick, None where the tick has none; :meth:`Attribution.add_span`): the rows
        :meth:`ledger` writes tick by tick. Returns False, writing nothing, when a category
        has no column yet or the ledger is the old narrow one (the caller goes tick by tick)."""
        if not self.ledger_covers(amounts.keys()):
            return False
        k = len(next(iter(amounts.values()))) if amounts else 0
        none = [None] * k
        cols = [amounts.get(c) or none for c in self._lcols]  # lists: each is read twice below
        rows = self.buf["ledger"]
        # no row for a tick whose every amount is zero or None, as ledger() does
        rows.extend(compress(zip(range(first, first + k), *cols), map(any, zip(*cols))))
        self._grown("ledger")
        return True

    def keep_columns(self, names: list[str], n: int) -> None:
        """Also keep the metrics ``names`` of ticks ``0 .. n - 1`` as float64 arrays as they
        are journaled (:meth:`kept_columns`), so the run's ``equity.csv`` need not read the
        journal back."""
        self._kept = {k: np.full(n, np.nan) for k in names}
        self._kept_seen = np.zeros(n, dtype=bool)

    def kept_columns(self, n: int) -> dict[str, np.ndarray] | None:
        """The kept metrics (:meth:`keep_columns`) of ticks ``0 .. n - 1`` as :func:`read_metrics`
        would read them back from the closed journal (NaN where the tick lacks the metric;
        -0.0 as SQLite stores it, 0.0), or None unless every one of those ticks was journaled
        here exactly as it was computed (a resumed run's ticks were not)."""
        kept = self._kept
        if kept is None or n > self._kept_seen.shape[0] or not self._kept_seen[:n].all():
            return None
        return {k: v[:n] + 0.0 for k, v in kept.items()}  # -0.0 + 0.0 is 0.0

    def _keep(self, tick: int, m: dict[str, float]) -> None:
        kept = self._kept
        if tick >= self._kept_seen.shape[0]:  # a live run grew its window: read the journal
            self._kept = None
            return
        nan = math.nan
        for k, col in kept.items():
            v = m.get(k, nan)
            col[tick] = nan if v is None or v == ABSENT else v
        self._kept_seen[tick] = True

    _kept: dict[str, np.ndarray] | None = None

    def metrics(self, tick: int, time: str, state: str, m: dict[str, float]) -> None:
        """The tick's metrics, one REAL column each (read back with :func:`metrics_at`).

        The row is a tuple in the column order fixed by the first dict: one C-level
        ``itemgetter`` call per tick. A dict with the same number of names and every column's
        name holds exactly the columns; anything else (a new name: ALTER TABLE ADD COLUMN; a
        missing one: :data:`ABSENT`) takes :meth:`_metrics_slow`. SQLite stores NaN as NULL.
        The row also holds the tick's :meth:`decision`."""
        head = (tick, time, state) if self._legacy else (tick, time, state, *self._decision_cols(tick, state, m))
        if self._kept is not None:
            self._keep(tick, m)
        get = self._mget
        if get is not None and len(m) == self._mlen:
            try:
                row = get(m)
                if self._zget(m) == self._zeros:  # () == () without zero columns
                    self._add("metrics", (*head, *row))
                    return
            except KeyError:
                pass
        self._metrics_slow(head, m)

    @property
    def spans_ok(self) -> bool:
        """Whether :meth:`quiet_span` can write here: slim mode, a journal with the decisions view."""
        return not (self._legacy or self._full)

    def quiet_span(self, first: int, times: list[str], state: str, cols: dict[str, object], series: list[tuple]) -> None:
        """The rows of a quiet span (:mod:`trimtab.engine.quiet`), ticks ``first, first + 1, ...``
        (``times``: their ISO times): at each, the machine stayed in ``state`` and took nothing
        (the decision columns of a :meth:`decision` without a transition whose rules saw the
        journaled metrics), ``cols`` the metrics (name -> a float64 array over the ticks, or one
        float for all) and ``series`` the (tick, equity, NAV, eETH) rows. The same rows as
        :meth:`decision` + :meth:`metrics` + :meth:`series_row` tick by tick: through the row
        order of the columns the journal has when the names are exactly those, else one
        :meth:`metrics` row at a time.

        Raises:
            ValueError: a legacy journal (its own decisions table) or full mode: tick by tick only.
        """
        if not self.spans_ok:
            raise ValueError("a quiet span is journaled in slim mode only")
        n = len(times)
        head = (state, None, None, None, None, None)
        kept = self._kept
        if kept is not None:
            if first + n > self._kept_seen.shape[0]:
                self._kept = None
            else:
                for k, col in kept.items():
                    col[first:first + n] = cols.get(k, math.nan)
                self._kept_seen[first:first + n] = True
        # every metric still without a column is 0.0 at every tick (as arrays: one C loop each)
        zero = all(k in cols and bool(np.all(np.asarray(cols[k]) == 0.0)) for k in self._zcols)
        if self._mget is not None and len(cols) == self._mlen and zero and all(k in cols for k in self._mcols):
            columns = [cols[k] for k in self._mcols]
            if self._writer is not None:
                # the writer process builds the rows, from a float64 array's bytes (the same floats)
                if self.buf["metrics"]:
                    self._write("metrics")  # the rows before these, first
                self._writer.insert_span(self._sql["metrics"], first, times, state, head,
                                         [v.tobytes() if isinstance(v, np.ndarray) and v.dtype == np.float64 else _floats(v, n)
                                          for v in columns])
            else:
                self.buf["metrics"].extend(span_rows(first, times, state, head, [_floats(v, n) for v in columns]))
        else:
            lists = {k: _floats(v, n) for k, v in cols.items()}
            for j, (t, time) in enumerate(zip(range(first, first + n), times)):
                self._metrics_slow((t, time, state, *head), {k: v[j] for k, v in lists.items()})
        self.buf["series"].extend(series)
        self._grown("metrics")
        self._grown("series")

    def _metrics_slow(self, head: tuple, m: dict[str, float]) -> None:
        first = self._mget is None
        new = [k for k in m if k not in self._mcols and k not in self._zcols]
        if first and self._zok:
            self._zcols = tuple(k for k in new if m[k] == 0.0)
            new = [k for k in new if k not in self._zcols]
            self.meta("metrics_zero", list(self._zcols))
        moved = [k for k in self._zcols if m.get(k) != 0.0]  # no longer zero, or missing: a column now
        if moved:
            self._zcols = tuple(k for k in self._zcols if k not in moved)
            self._mcols = self._widen("metrics", self._mkeys, self._mcols, moved, " DEFAULT 0.0")[0]
            self.meta("metrics_zero", list(self._zcols))
        if new or first:
            # Earlier rows of a metric column read as ABSENT (the ticks did not have it), not NULL (NaN).
            self._mcols = self._widen("metrics", self._mkeys, self._mcols, new, " DEFAULT ''")[0]
        self._mget, self._mlen = _getter(self._mcols), len(self._mcols) + len(self._zcols)
        self._zget, self._zeros = _getter(self._zcols), (0.0,) * len(self._zcols)
        self._add("metrics", (*head, *(m.get(k, ABSENT) for k in self._mcols)))

    def _materialize_zeros(self) -> None:
        """Give the metrics that were 0.0 on every tick so far their columns (DEFAULT 0.0), so
        committed journals answer ``SELECT name FROM metrics`` for every metric."""
        if self._zcols:
            self._mcols = self._widen("metrics", self._mkeys, self._mcols, list(self._zcols), " DEFAULT 0.0")[0]
            self._zcols, self._zget, self._zeros = (), _getter(()), ()
            self._mget = _getter(self._mcols)
            self.db.execute("DELETE FROM meta WHERE key='metrics_zero'")

    def _widen(self, table: str, keys: tuple[str, ...], cols: tuple[str, ...], new: list[str],
               default: str = "") -> tuple[tuple[str, ...], frozenset[str]]:
        """Append ``new`` names to ``table``'s row order ``cols`` (after its ``keys`` columns),
        adding the columns the table lacks (REAL, with ``default``: the value the rows written
        before read), and rebuild its INSERT. Rows buffered in the old order are written first,
        not committed (a live tick stays one transaction). Returns the new order and its set."""
        if self.buf[table]:
            self._write(table)
        have = self._have[table]
        for k in new:
            if k not in have:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {quote(k)} REAL{default}")
                have.add(k)
        cols = cols + tuple(new)
        names = ", ".join(quote(k) for k in keys + cols)
        self._sql[table] = f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({', '.join('?' * (len(keys) + len(cols)))})"
        return cols, frozenset(cols)

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
            self._materialize_zeros()
            for table, rows in self.buf.items():
                if rows:
                    self._write(table)
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

    def flush(self, commit: bool = True) -> None:
        """Write the buffered rows and commit them (``commit=False``: written, not committed, so
        this connection's queries read them and the next commit or :meth:`close` makes them
        durable: the end of a run reads its fills before the one final commit)."""
        for table, rows in self.buf.items():
            if rows:
                self._write(table)
        if commit:
            self.db.commit()

    def seal(self) -> None:
        """Every row written and committed, zero metrics given their columns; the journal stays
        open until :meth:`close`, and a later row (a ``meta`` key) is committed by sealing again.
        With a writer process the commit is posted: it runs while the caller writes its other
        files, and :meth:`close` waits for it."""
        self._materialize_zeros()
        self.flush()

    def close(self) -> None:
        """:meth:`seal` and close (a journal sealed already commits nothing more: the commit
        finds no transaction); again, a no-op. Raises a failed write's ``sqlite3`` error (with
        a writer process, the first one it met)."""
        if self._closed:
            return
        self.seal()
        self._closed = True
        self.db.close()

    _closed = False


# --------------------------------------------------------------------------- reading metrics
class MetricsRow(NamedTuple):
    """One tick of the ``metrics`` table: ``metrics`` maps metric name -> float as the engine computed it."""

    tick: int
    time: str
    state: str
    metrics: dict[str, float]


def metric_names(db: sqlite3.Connection) -> list[str]:
    """The metric columns of a journal's ``metrics`` table, in table order (a journal from before
    the columns has its JSON ``data`` column and a few fixed ones: see :func:`read_metrics`)."""
    return [r[1] for r in db.execute("PRAGMA table_info(metrics)") if r[1] not in METRIC_KEYS and r[1] != "data"]


def _legacy(data: str) -> dict[str, float]:
    # Journals before the metric columns: a JSON object, inf/-inf/nan as strings.
    return {k: float(v) for k, v in json.loads(data).items()}


def read_metrics(db: sqlite3.Connection, first: int = 0, last: int | None = None,
                 names: Iterable[str] | None = None) -> list[MetricsRow]:
    """The ``metrics`` rows of ticks ``first..last`` (default: all), by tick, each value a float
    exactly as the engine computed it: REAL columns round-trip doubles, inf stays inf, NULL
    (SQLite's NaN) reads back as nan, and a metric the tick did not have (:data:`ABSENT`) is
    left out. One caveat of SQLite: -0.0 is stored as 0.0 (equal in every comparison).
    Reads journals of either layout (metric columns, or the older JSON ``data`` column, whose
    rows a resumed live run continued with columns). ``names``: only these metrics (the others
    are not read; a name the journal lacks is left out)."""
    cur = db.cursor()
    cur.row_factory = None  # callers may set sqlite3.Row on the connection
    legacy = "data" in {r[1] for r in db.execute("PRAGMA table_info(metrics)")}
    wanted = None if names is None else set(names)
    names = [n for n in metric_names(db) if wanted is None or n in wanted]
    hi = (1 << 62) if last is None else last
    sel = ", ".join(quote(c) for c in ("tick", "time", "state", *(("data",) if legacy else ()), *names))
    row = cur.execute("SELECT value FROM meta WHERE key='metrics_zero'").fetchone()
    zeros = [k for k in json.loads(row[0]) if k not in names and (wanted is None or k in wanted)] if row else []  # a run still writing: 0.0 so far
    nan = math.nan
    skip = 4 if legacy else 3
    out = []
    for r in cur.execute(f"SELECT {sel} FROM metrics WHERE tick >= ? AND tick <= ? ORDER BY tick", (first, hi)):
        if legacy and r[3] is not None:
            m = _legacy(r[3])
            out.append(MetricsRow(r[0], r[1], r[2], m if wanted is None else {k: v for k, v in m.items() if k in wanted}))
            continue
        m = {k: nan if v is None else float(v) for k, v in zip(names, r[skip:]) if v != ABSENT}
        for k in zeros:
            m[k] = 0.0
        out.append(MetricsRow(r[0], r[1], r[2], m))
    return out


def metrics_at(db: sqlite3.Connection, tick: int) -> dict[str, float] | None:
    """The metrics of ``tick`` (:func:`read_metrics`), None when the journal has no such tick."""
    rows = read_metrics(db, tick, tick)
    return rows[0].metrics if rows else None


# --------------------------------------------------------------------------- reading the ledger
def ledger_categories(db: sqlite3.Connection) -> list[str]:
    """The attribution categories of a journal's wide ``ledger`` table, in table order (empty
    for an older journal's narrow one: tick, time, category, amount)."""
    cols = [r[1] for r in db.execute("PRAGMA table_info(ledger)")]
    return [] if "amount" in cols else [c for c in cols if c not in LEDGER_KEYS]


def read_ledger(db: sqlite3.Connection, last: int | None = None) -> dict[int, dict[str, float]]:
    """tick -> {category: amount} of the ticks up to ``last`` (default: all) with any
    attribution, categories without an amount left out. Reads either ledger layout."""
    cur = db.cursor()
    cur.row_factory = None
    hi = (1 << 62) if last is None else last
    cats = ledger_categories(db)
    out: dict[int, dict[str, float]] = {}
    if not cats:
        if "amount" in {r[1] for r in db.execute("PRAGMA table_info(ledger)")}:
            for t, c, a in cur.execute("SELECT tick, category, amount FROM ledger WHERE tick <= ? ORDER BY rowid", (hi,)):
                out.setdefault(t, {})[c] = a
        return out
    sel = ", ".join(quote(c) for c in LEDGER_KEYS + tuple(cats))
    for r in cur.execute(f"SELECT {sel} FROM ledger WHERE tick <= ? ORDER BY tick", (hi,)):
        out[r[0]] = {c: a for c, a in zip(cats, r[1:]) if a is not None}
    return out


def ledger_total(db: sqlite3.Connection, last: int) -> float:
    """The sum of every ledger amount of ticks up to ``last`` (0.0 for none): SQLite's sum per
    category, then ``math.fsum`` across them. Raises TypeError if an amount is not a number."""
    cats = ledger_categories(db)
    if not cats:
        if "amount" in {r[1] for r in db.execute("PRAGMA table_info(ledger)")}:
            return db.execute("SELECT coalesce(sum(amount), 0.0) FROM ledger WHERE tick <= ?", (last,)).fetchone()[0]
        return 0.0
    sums = db.execute(f"SELECT {', '.join(f'total({quote(c)})' for c in cats)} FROM ledger WHERE tick <= ?", (last,)).fetchone()
    if any(type(x) is not float for x in sums):
        raise TypeError(f"ledger sums {sums!r} are not numbers")
    return math.fsum(sums)


def rule_inputs_at(db: sqlite3.Connection, tick: int) -> dict[str, float] | None:
    """The metrics the rules of ``tick`` were evaluated on: :func:`metrics_at` with the row's
    ``seen`` column applied (:func:`seen_metrics`); None when the journal has no such tick."""
    m = metrics_at(db, tick)
    if m is None or "seen" not in {r[1] for r in db.execute("PRAGMA table_info(metrics)")}:
        return m
    row = db.execute("SELECT seen FROM metrics WHERE tick = ?", (tick,)).fetchone()
    return seen_metrics(m, row[0])
