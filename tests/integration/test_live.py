"""Live runs through the same entrypoint (issue 7): the replay feed, crash safety with a real
SIGKILL, the kill switch and status -- all with real subprocesses on the bundled data."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from trimtab.engine.backtest import run_backtest
from trimtab.engine.journal import read_metrics
from trimtab.live.runner import run_live
from conftest import rows  # noqa: E402  (one SQLite read helper for the tests)

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = "configs/usdt_eth_staking_hedged_leveraged.yaml"


def cli(*args, timeout=600, **kw):
    return subprocess.run([sys.executable, "-m", "trimtab.cli.main", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kw)


DECISIONS = "SELECT tick, source, dest, trigger, plan_id, rules FROM decisions ORDER BY tick"
PLANS = "SELECT plan_id, tick, plan FROM plans ORDER BY tick, plan_id"
FILLS = "SELECT fill_id, tick, plan_id, step_id, operation, category, price, legs FROM fills ORDER BY fill_id"


def test_paper_replay_makes_the_backtests_decisions_and_plans(flagship, market, tmp_path):
    # Full journals: the rule trace of every tick is compared too.
    live = run_live(flagship, out=tmp_path, run_id="live", start="2024-07-28", end="2024-08-08", speed=float("inf"), data=market,
                    journal="full")
    bt = run_backtest(flagship, out=tmp_path, run_id="bt", start="2024-07-28", end="2024-08-08", data=market, journal="full")
    a, b = live.run_dir / "journal.sqlite", bt.run_dir / "journal.sqlite"
    assert rows(a, DECISIONS) == rows(b, DECISIONS) and len(rows(a, DECISIONS)) == 11 * 24 + 1
    assert all(r[-1] for r in rows(a, DECISIONS))
    assert rows(a, PLANS) == rows(b, PLANS) and rows(a, PLANS)
    assert rows(a, FILLS) == rows(b, FILLS)
    assert live.summary["final_equity"] == bt.summary["final_equity"]


def _wait_for(pred, timeout=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def _checkpoint(db_path):
    if not db_path.exists():
        return None
    try:
        r = rows(db_path, "SELECT tick FROM checkpoints")
    except sqlite3.OperationalError:
        return None
    return r[0][0] if r else None


def test_sigkill_mid_plan_then_resume_sends_nothing_twice(tmp_path):
    args = ["run", FLAGSHIP, "--live", "--replay", "--start", "2024-06-01T00:00", "--end", "2024-06-01T08:00",
            "--out", str(tmp_path), "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "trimtab.cli.main", *args, "--run-id", "killed", "--speed", "3600"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = tmp_path / "killed" / "journal.sqlite"
    # Tick 0 enters the position: its deposits are in transit until tick 1, so the plan is in flight.
    _wait_for(lambda: _checkpoint(db) == 0)
    in_flight = rows(db, "SELECT count(*) FROM instructions WHERE status='in_transit'")[0][0]
    assert in_flight >= 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    st = json.loads(cli("status", str(tmp_path / "killed"), "--json").stdout)
    assert not st["running"] and not st["finished"] and st["open_steps"]
    resumed = cli(*args, "--run-id", "killed", "--speed", "1e9", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    reference = cli(*args, "--run-id", "whole", "--speed", "1e9")
    assert reference.returncode == 0, reference.stderr
    a, b = tmp_path / "killed" / "journal.sqlite", tmp_path / "whole" / "journal.sqlite"
    # No instruction ran twice: each step reached 'done' exactly once, and the fills are the
    # uninterrupted run's, one for one.
    done = rows(a, "SELECT plan_id, step_id, count(*) FROM instructions WHERE status='done' GROUP BY plan_id, step_id")
    assert done and all(n == 1 for *_, n in done)
    assert rows(a, FILLS) == rows(b, FILLS)
    assert rows(a, DECISIONS) == rows(b, DECISIONS)
    # Slim journals: the metrics (and what rebuilds each tick's rule trace) match too.
    def metrics(path):  # every tick's metrics by name (repr: NaN equals NaN)
        db = sqlite3.connect(path)
        try:
            return [(r.tick, r.state, repr(sorted(r.metrics.items()))) for r in read_metrics(db)]
        finally:
            db.close()

    assert metrics(a) == metrics(b)
    assert rows(a, "SELECT tick, seen FROM metrics ORDER BY tick") == rows(b, "SELECT tick, seen FROM metrics ORDER BY tick")
    sa, sb = json.loads(resumed.stdout), json.loads(reference.stdout)
    assert sa["final_equity"] == sb["final_equity"] and sa["final_positions"] == sb["final_positions"]
    assert sa["reconciliation_error"] <= 1e-6 * sa["initial_equity"]


def test_stop_with_flatten_is_the_kill_switch(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "trimtab.cli.main", "run", FLAGSHIP, "--live", "--replay",
                             "--start", "2024-06-01", "--end", "2024-06-20", "--out", str(tmp_path), "--run-id", "s",
                             "--speed", "7200", "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = tmp_path / "s" / "journal.sqlite"
    _wait_for(lambda: (_checkpoint(db) or 0) >= 3)
    st = json.loads(cli("status", str(tmp_path / "s"), "--json").stdout)
    assert st["running"] and st["pid"] == proc.pid and st["positions"].get("binance:Perp:ETHUSDT", 0) < 0
    p = cli("stop", str(tmp_path / "s"), "--flatten")
    assert p.returncode == 0 and "stop requested" in p.stdout
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["end"] < "2024-06-19"  # it stopped long before the window's end
    perps = {k: v for k, v in summary["final_positions"].items() if ":Perp:" in k or k.startswith("aave_v3:")}
    assert all(abs(v) < 1e-9 for v in perps.values()), perps
    st = json.loads(cli("status", str(tmp_path / "s"), "--json").stdout)
    assert not st["running"] and st["stopped"]["flatten"] is True and not st["open_steps"]


def test_live_without_replay_says_why(tmp_path):
    """The live feed with no RPC endpoint configured, then with nothing reachable (this machine
    has no network): a clear one-line failure naming what to set or what could not be reached,
    suggesting --replay, exit 1, no traceback, and no hang (requests time out)."""
    env = {k: v for k, v in os.environ.items() if k != "TRIMTAB_ETH_RPC_URL"}
    p = cli("run", FLAGSHIP, "--live", "--out", str(tmp_path), env=env)
    assert p.returncode == 1 and "TRIMTAB_ETH_RPC_URL" in p.stderr and "--replay" in p.stderr
    assert "Traceback" not in p.stderr
    p = cli("run", FLAGSHIP, "--live", "--out", str(tmp_path), env={**env, "TRIMTAB_ETH_RPC_URL": "http://127.0.0.1:9"}, timeout=120)
    assert p.returncode == 1 and "network" in p.stderr and "--replay" in p.stderr and "Traceback" not in p.stderr
    assert "cannot reach" in p.stderr
    p = cli("run", FLAGSHIP, "--live", "--replay", "--resume", "--run-id", "nope", "--out", str(tmp_path))
    assert p.returncode == 1 and "no run at" in p.stderr


def test_resume_with_other_parameters_is_refused(tmp_path):
    args = ["run", FLAGSHIP, "--live", "--replay", "--start", "2024-06-01T00:00", "--end", "2024-06-01T06:00",
            "--out", str(tmp_path), "--run-id", "p", "--speed", "1e9"]
    first = cli(*args, "--set", "max_delta_drift=0.03")
    assert first.returncode == 0, first.stderr
    before = rows(tmp_path / "p" / "journal.sqlite", "SELECT count(*) FROM metrics")
    # Another threshold on resume: refused by name, old -> new, with the flags the run started with.
    p = cli(*args, "--resume", "--set", "max_delta_drift=0.05")
    assert p.returncode == 1, p.stderr
    assert "ran with other parameters: max_delta_drift 0.03 -> 0.05" in p.stderr and "--set max_delta_drift=0.03" in p.stderr
    assert "Traceback" not in p.stderr and "resuming" not in p.stderr
    assert rows(tmp_path / "p" / "journal.sqlite", "SELECT count(*) FROM metrics") == before  # nothing written
    # The same flags pass this check (whatever else a resume of a finished run then says).
    same = cli(*args, "--resume", "--set", "max_delta_drift=0.03")
    assert "other parameters" not in same.stderr, same.stderr
