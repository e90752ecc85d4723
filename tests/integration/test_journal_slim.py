"""Issue 14, the slim journal: no per-tick rule trace by default, yet `trimtab explain` is exact.

Each case runs the same real backtest twice, ``journal="full"`` (the trace stored every tick)
and ``journal="slim"`` (the default), and checks for EVERY tick that the trace rebuilt from the
slim journal (stored metrics + the run's rules and parameters in meta) is the stored full trace,
value for value and as JSON text, and that ``explain_at`` / ``list_transitions`` say the same.
"""
from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from trimtab.config.load import load_strategy
from trimtab.engine.backtest import run_backtest
from trimtab.engine.journal import Journal, ledger_total, metrics_at, read_ledger, read_metrics
from trimtab.engine.kernel import Engine
from trimtab.engine.machine import trace_rules
from trimtab.engine.window import default_window
from trimtab.explain import explain_at, list_transitions, rule_triples, run_traces

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"
SIGNALS = ROOT / "configs" / "ml_usdt_directional_usdt_margin.yaml"
THIN_MARGIN = ROOT / "tests" / "cases" / "stress" / "configs" / "thin_margin.yaml"


def _pair(config: Path, start, end, market, out: Path) -> tuple[Path, Path]:
    s = load_strategy(config)
    full = run_backtest(s, start=start, end=end, out=out, run_id="full", data=market, journal="full")
    slim = run_backtest(s, start=start, end=end, out=out, run_id="slim", data=market)  # the default
    assert full.summary["final_equity"] == slim.summary["final_equity"]
    return full.run_dir / "journal.sqlite", slim.run_dir / "journal.sqlite"


def _q(path: Path, sql: str, args=()) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def _assert_exact(full: Path, slim: Path) -> None:
    assert json.loads(_q(full, "SELECT value FROM meta WHERE key='journal'")[0][0]) == {"mode": "full"}
    assert json.loads(_q(slim, "SELECT value FROM meta WHERE key='journal'")[0][0]) == {"mode": "slim"}
    stored = dict(_q(full, "SELECT tick, rules FROM decisions"))
    assert stored and all(stored.values())
    assert _q(slim, "SELECT count(*) FROM decisions WHERE rules IS NOT NULL") == [(0,)]
    # Everything but the trace is the same in both, row for row (the decisions view included).
    cols = "tick, time, source, dest, trigger, plan_id"
    assert _q(full, f"SELECT {cols} FROM decisions ORDER BY tick") == _q(slim, f"SELECT {cols} FROM decisions ORDER BY tick")
    for table in ("fills", "plans", "instructions", "ledger", "series"):
        assert _q(full, f"SELECT * FROM {table} ORDER BY rowid") == _q(slim, f"SELECT * FROM {table} ORDER BY rowid"), table
    rebuilt = run_traces(slim)
    assert rebuilt.keys() == stored.keys()
    for tick, text in stored.items():
        assert rebuilt[tick] == json.loads(text), tick
        assert json.dumps(rebuilt[tick], separators=(",", ":")) == text, tick
    times = [t for (t,) in _q(full, "SELECT time FROM decisions ORDER BY tick")]
    for t in times:
        a, b = explain_at(full, t), explain_at(slim, t)
        assert a.pop("run") != b.pop("run")
        # explain shows the metrics the rules saw: a slim journal keeps all of them (`seen`), a
        # full one the trace, so the two agree on every metric a rule compared.
        ma, mb = a.pop("metrics"), b.pop("metrics")
        assert a == b, t
        compared = {c["left"] for r in a["rules"] for c in r["comparisons"]} & ma.keys()
        assert compared and {k: ma[k] for k in compared} == {k: mb[k] for k in compared}, t
    a, b = list_transitions(full), list_transitions(slim)
    a.pop("run"), b.pop("run")
    assert a == b and a["transitions"]


@pytest.fixture(scope="module")
def flagship_pair(market, tmp_path_factory) -> tuple[Path, Path]:
    # Entry, rebalances and the August 2024 crash in ten days.
    return _pair(FLAGSHIP, "2024-08-01", "2024-08-10", market, tmp_path_factory.mktemp("slim_flagship"))


def test_the_slim_journal_rebuilds_every_ticks_trace_and_explanation_of_the_flagship(flagship_pair):
    full, slim = flagship_pair
    assert {"enter_full", "complete"} < {t for (t,) in _q(full, "SELECT trigger FROM decisions WHERE trigger IS NOT NULL")}
    _assert_exact(full, slim)


def test_the_slim_journal_is_exact_through_an_emergency(market, tmp_path):
    """The May 2025 rally on thin margin: the emergency protocol's critical rules (NaN-aware) fire."""
    full, slim = _pair(THIN_MARGIN, "2025-05-01", "2025-05-15", market, tmp_path)
    triggers = [t for (t,) in _q(full, "SELECT trigger FROM decisions WHERE trigger IS NOT NULL")]
    assert "enter_emergency" in triggers and "leave_emergency" in triggers
    _assert_exact(full, slim)


def test_ticks_whose_metrics_changed_after_the_decision_keep_what_the_rules_saw(flagship_pair):
    """After a transition the monitors run again (a plan started), so the journaled metrics are
    not what the rules saw: the slim journal keeps the difference (``seen``), without which the
    rebuilt trace would be wrong."""
    full, slim = flagship_pair
    seen = _q(slim, "SELECT tick, seen FROM metrics WHERE seen IS NOT NULL")
    assert seen and len(seen) < 20
    db = sqlite3.connect(slim)
    try:
        triples = rule_triples({k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")})
        stored = dict(_q(full, "SELECT tick, rules FROM decisions"))
        wrong = [t for t, _ in seen if trace_rules(triples, metrics_at(db, t)) != json.loads(stored[t])]
    finally:
        db.close()
    assert wrong


def test_the_slim_journal_is_exact_for_a_signal_strategy(market, tmp_path):
    s = load_strategy(SIGNALS)
    t0, _ = default_window(s, market)
    # The signal starts trading on its 18th day.
    full, slim = _pair(SIGNALS, t0 + pd.Timedelta(days=16), t0 + pd.Timedelta(days=24), market, tmp_path)
    assert "follow_signal" in {t for (t,) in _q(full, "SELECT trigger FROM decisions WHERE trigger IS NOT NULL")}
    _assert_exact(full, slim)


def test_stored_metrics_read_back_as_the_engine_computed_them(market, flagship, tmp_path):
    """Every value of every tick: the dicts the engine returned against read_metrics."""
    window = market.slice("2024-08-03", "2024-08-07")
    engine = Engine(flagship, window, tmp_path / "run")
    computed = [dict(engine.step(i)) for i in range(engine.view.n)]
    engine.finish()
    db = sqlite3.connect(tmp_path / "run" / "journal.sqlite")
    try:
        rows = read_metrics(db)
        assert [r.tick for r in rows] == list(range(len(computed)))
        for r, m in zip(rows, computed):
            assert r.metrics.keys() == m.keys()
            for k, v in m.items():
                got = r.metrics[k]
                assert got == v or (math.isnan(got) and math.isnan(v)), (r.tick, k, got, v)
        # The ledger's wide rows sum to the change in equity, as the checkpoint checks rely on.
        ledger = read_ledger(db)
        assert ledger and all(a for cats in ledger.values() for a in cats.values())
        equity = db.execute("SELECT equity FROM series ORDER BY tick DESC LIMIT 1").fetchone()[0]
        assert ledger_total(db, 10**9) == pytest.approx(equity - engine.capital, abs=1e-6 * engine.capital)
    finally:
        db.close()


def test_metric_columns_keep_inf_nan_new_and_missing_names(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.metrics(0, "2024-01-01T00:00Z", "idle", {"a.b": 1.5, 'q"uote': -0.25, "hf": math.inf})
    j.metrics(1, "2024-01-01T01:00Z", "idle", {"a.b": math.nan, 'q"uote': 0.0, "hf": -math.inf})
    j.metrics(2, "2024-01-01T02:00Z", "busy", {"a.b": 2.0, "hf": 3.0, "new": 7.25})  # one missing, one new
    j.metrics(3, "2024-01-01T03:00Z", "busy", {"new": 1.0, "a.b": 0.1, 'q"uote': 1e-300, "hf": 1.0})  # another order
    j.close()
    db = sqlite3.connect(tmp_path / "j.sqlite")
    try:
        got = [(r.tick, r.time, r.state, r.metrics) for r in read_metrics(db)]
        assert db.execute("SELECT hf FROM metrics ORDER BY tick").fetchall() == [(math.inf,), (-math.inf,), (3.0,), (1.0,)]
        assert db.execute('SELECT "a.b" FROM metrics WHERE tick = 1').fetchone() == (None,)  # NaN is stored as NULL
    finally:
        db.close()
    assert got[0][:3] == (0, "2024-01-01T00:00Z", "idle")
    assert got[0][3] == {"a.b": 1.5, 'q"uote': -0.25, "hf": math.inf}  # "new" did not exist yet: absent, not NaN
    assert math.isnan(got[1][3]["a.b"]) and got[1][3]['q"uote'] == 0.0 and got[1][3]["hf"] == -math.inf
    assert got[2][3] == {"a.b": 2.0, "hf": 3.0, "new": 7.25} and got[2][2] == "busy"
    assert got[3][3] == {"new": 1.0, "a.b": 0.1, 'q"uote': 1e-300, "hf": 1.0}


def test_journal_modes_are_checked_and_the_cli_writes_a_full_journal(tmp_path):
    with pytest.raises(ValueError, match="journal mode 'tiny'"):
        Journal(tmp_path / "x.sqlite", mode="tiny")
    run = [sys.executable, "-m", "trimtab.cli.main", "run", str(FLAGSHIP), "--start", "2024-08-04", "--end", "2024-08-05",
           "--out", str(tmp_path), "--json"]
    bad = subprocess.run([*run, "--journal", "tiny", "--run-id", "bad"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and "journal mode" in bad.stderr and not (tmp_path / "bad").exists()
    ok = subprocess.run([*run, "--journal", "full", "--run-id", "full"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert ok.returncode == 0, ok.stderr
    j = tmp_path / "full" / "journal.sqlite"
    assert json.loads(_q(j, "SELECT value FROM meta WHERE key='journal'")[0][0]) == {"mode": "full"}
    assert _q(j, "SELECT count(*), count(rules) FROM decisions") == [(25, 25)]


def test_metrics_zero_so_far_cost_nothing_until_they_change(tmp_path):
    """A metric 0.0 on every tick gets its column only when it changes (earlier rows read 0.0 for
    free) or when the journal commits: readers see it as 0.0 all along, before and after."""
    j = Journal(tmp_path / "z.sqlite")
    zero = {"eq": 1.0, "later": 0.0, "never": 0.0, "gone": 0.0}
    for t in range(3):
        j.metrics(t, f"T{t}", "idle", zero)
    j.metrics(3, "T3", "idle", {"eq": 2.0, "later": 5.0, "never": 0.0, "gone": 0.0})
    j.metrics(4, "T4", "idle", {"eq": 3.0, "later": 0.0, "never": 0.0})
    j.flush()  # a backtest's periodic commit: "never" has no column yet
    db = sqlite3.connect(tmp_path / "z.sqlite")
    try:
        cols = {r[1] for r in db.execute("PRAGMA table_info(metrics)")}
        assert "never" not in cols and {"eq", "later", "gone"} <= cols
        mid = [r.metrics for r in read_metrics(db)]
    finally:
        db.close()
    j.close()
    db = sqlite3.connect(tmp_path / "z.sqlite")
    try:
        after = [r.metrics for r in read_metrics(db)]
        assert db.execute("SELECT later, never FROM metrics ORDER BY tick").fetchall() == [(0.0, 0.0)] * 3 + [(5.0, 0.0), (0.0, 0.0)]
        assert db.execute("SELECT count(*) FROM meta WHERE key='metrics_zero'").fetchone() == (0,)
    finally:
        db.close()
    want = [zero] * 3 + [{"eq": 2.0, "later": 5.0, "never": 0.0, "gone": 0.0}, {"eq": 3.0, "later": 0.0, "never": 0.0}]
    assert mid == want and after == want  # "gone" is absent from tick 4, not 0.0 nor NaN


OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE decisions (tick INTEGER, time TEXT, source TEXT, dest TEXT, trigger TEXT, plan_id TEXT, rules TEXT);
CREATE TABLE ledger (tick INTEGER, time TEXT, category TEXT, amount REAL);
CREATE TABLE metrics (tick INTEGER PRIMARY KEY, time TEXT, state TEXT, equity REAL, health_factor REAL, ltv REAL,
    margin_ratio_min REAL, net_delta REAL, delta_drift REAL, equity_deviation REAL, hedge_allocation_drift REAL, data TEXT);
"""


class _Decision:
    def __init__(self, tick):
        self.tick, self.time, self.source, self.dest, self.trigger, self.plan_id = tick, f"T{tick}", "idle", "idle", None, None
        self.rules = [{"rule": "r", "result": False, "comparisons": []}]


def test_a_journal_from_before_the_columns_is_read_and_continued(tmp_path):
    """A live run started before the slim journal resumes in its own layout: full traces in its
    decisions table, a narrow ledger, and metrics rows that readers take from either form."""
    p = tmp_path / "old.sqlite"
    db = sqlite3.connect(p)
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO metrics (tick, time, state, equity, health_factor, data) VALUES (0, 'T0', 'idle', 1.0, NULL, ?)",
               ('{"equity":1.0,"health_factor":"inf","x":"nan"}',))
    db.execute("INSERT INTO ledger VALUES (0, 'T0', 'funding', 2.5)")
    db.commit()
    db.close()
    j = Journal(p, fresh=False)
    assert j.mode == "full"
    j.decision(_Decision(1))
    fixed = dict.fromkeys(("ltv", "margin_ratio_min", "net_delta", "delta_drift", "equity_deviation", "hedge_allocation_drift"), 0.25)
    new = {"equity": 2.0, "health_factor": math.inf, "x": 0.5, **fixed}  # the engine always had the old columns' metrics
    j.metrics(1, "T1", "idle", new)
    j.ledger(1, "T1", {"funding": 1.0, "basis": 0.0})
    j.close()
    db = sqlite3.connect(p)
    try:
        rows = read_metrics(db)
        assert [r.metrics["equity"] for r in rows] == [1.0, 2.0] and rows[0].metrics["health_factor"] == math.inf
        assert math.isnan(rows[0].metrics["x"]) and rows[1].metrics == new
        assert read_ledger(db) == {0: {"funding": 2.5}, 1: {"funding": 1.0}} and ledger_total(db, 1) == 3.5
        assert db.execute("SELECT tick, rules FROM decisions").fetchall() == [(1, '[{"rule":"r","result":false,"comparisons":[]}]')]
    finally:
        db.close()
