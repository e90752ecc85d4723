"""One owner per run (issue 11 part 2): run ids, the run lock, no replacing an existing run,
stop on a dead run, resume after a stop -- with real subprocesses on the bundled data.

The cheap live run is ``pure_lending_usdt`` on the replay feed; ``--speed 3600`` plays one
market hour per wall second, slow enough to act on a run while it is running.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trimtab.config.load import load_strategy
from trimtab.engine.backtest import run_backtest
from trimtab.live.runner import run_live
from trimtab.portfolio.runner import PortfolioRunner
from trimtab.runs import RunError, check_run_id, claim_dir, holder
from conftest import rows  # noqa: E402  (one SQLite read helper for the tests)

ROOT = Path(__file__).resolve().parents[2]
LENDING = "configs/pure_lending_usdt.yaml"
WINDOW = ["--start", "2024-06-01", "--end", "2024-06-08"]
LAST_TICK = 7 * 24  # 2024-06-01T00:00 .. 2024-06-08T00:00, hourly


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "trimtab.cli.main", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def start_live(out: Path, run_id: str, *extra, speed="3600") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trimtab.cli.main", "run", LENDING, "--live", "--replay", *WINDOW,
                             "--out", str(out), "--run-id", run_id, "--speed", speed, "--json", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def checkpoint(run_dir: Path):
    try:
        r = rows(run_dir / "journal.sqlite", "SELECT tick FROM checkpoints") if (run_dir / "journal.sqlite").exists() else []
    except sqlite3.OperationalError:
        return None
    return r[0][0] if r else None


def wait_for(pred, timeout=300.0, proc: subprocess.Popen | None = None):
    """Poll ``pred`` until it is truthy; fail at once (with its stderr) if ``proc`` exits first."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run exited with {proc.returncode} first: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def status(run_dir: Path) -> dict:
    p = cli("status", run_dir, "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


# --------------------------------------------------------------------------- run ids
BAD_IDS = ["../x", "/tmp/x", "a/b", "", "..", ".", "a/../../x", "x\\..\\y"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_run_ids_are_refused_and_nothing_is_written_outside_out(tmp_path, bad):
    out = tmp_path / "deep" / "out"
    target = tmp_path / "abs-target"
    rid = str(target) if bad == "/tmp/x" else bad  # an absolute path we can check was not created
    before = files_under(tmp_path)
    p = cli("run", LENDING, *WINDOW, "--out", out, "--run-id", rid)
    assert p.returncode == 2, p.stderr
    assert "'--run-id'" in p.stderr and "is not a valid run id" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = cli("run", LENDING, "--live", "--replay", "--resume", "--out", out, "--run-id", rid)
    assert p.returncode == 2 and "--run-id" in p.stderr and "Traceback" not in p.stderr
    assert files_under(tmp_path) == before  # not even --out was created
    assert not target.exists()


def test_the_python_api_refuses_bad_run_ids_too(market, tmp_path):
    s = load_strategy(ROOT / LENDING)
    for bad in ("../x", str(tmp_path / "abs"), "a/b", "", ".."):
        with pytest.raises(RunError, match="is not a valid run id"):
            run_backtest(s, start="2024-06-01", end="2024-06-02", out=tmp_path / "out", run_id=bad, data=market)
        with pytest.raises(RunError, match="is not a valid run id"):
            run_live(s, out=tmp_path / "out", run_id=bad, start="2024-06-01", end="2024-06-02", speed=float("inf"), data=market)
        with pytest.raises(RunError, match="is not a valid run id"):
            PortfolioRunner.start(ROOT / "configs" / "portfolio_strategies.yaml", tmp_path / "out", bad, data=market)
    assert list(tmp_path.iterdir()) == []  # not even --out was created
    for good in ("a", "run-1.b_2", "x" * 128):
        assert check_run_id(good) == good
    with pytest.raises(RunError, match="129 characters"):
        check_run_id("x" * 129)


# --------------------------------------------------------------------------- no replacing a run
def test_run_id_reuse_keeps_the_old_journal_byte_for_byte_and_overwrite_replaces_it(tmp_path):
    first = cli("run", LENDING, *WINDOW, "--out", tmp_path, "--run-id", "bt", "--json")
    assert first.returncode == 0, first.stderr
    run = tmp_path / "bt"
    kept = {f: (run / f).read_bytes() for f in ("journal.sqlite", "summary.json", "equity.csv")}
    again = cli("run", LENDING, "--start", "2024-06-01", "--end", "2024-06-03", "--out", tmp_path, "--run-id", "bt")
    assert again.returncode == 1
    assert "run bt already exists" in again.stderr and "--overwrite" in again.stderr and "--resume" in again.stderr
    live = cli("run", LENDING, "--live", "--replay", *WINDOW, "--out", tmp_path, "--run-id", "bt", "--speed", "1e9")
    assert live.returncode == 1 and "run bt already exists" in live.stderr
    assert {f: (run / f).read_bytes() for f in kept} == kept
    assert not (run / "journal.sqlite-wal").exists() or (run / "journal.sqlite-wal").stat().st_size == 0

    # --overwrite replaces a finished backtest (here with a shorter window: a different journal).
    over = cli("run", LENDING, "--start", "2024-06-01", "--end", "2024-06-03", "--out", tmp_path, "--run-id", "bt", "--overwrite",
               "--json")
    assert over.returncode == 0, over.stderr
    assert json.loads(over.stdout)["end"] == "2024-06-03T00:00Z"
    assert (run / "journal.sqlite").read_bytes() != kept["journal.sqlite"]
    assert rows(run / "journal.sqlite", "SELECT count(*) FROM decisions") == [(2 * 24 + 1,)]

    # ... but never a run that some process owns (here: this test process holds its lock).
    with claim_dir(run, resume=True):
        owned = cli("run", LENDING, *WINDOW, "--out", tmp_path, "--run-id", "bt", "--overwrite")
        assert owned.returncode == 1 and f"run bt is owned by pid {os.getpid()} (since " in owned.stderr
    assert not (run / "owner.json").exists()


def test_overwrite_refuses_a_live_run(tmp_path):
    p = cli("run", LENDING, "--live", "--replay", "--start", "2024-06-01", "--end", "2024-06-02", "--out", tmp_path, "--run-id", "lv",
            "--speed", "1e9", "--json")
    assert p.returncode == 0, p.stderr
    kept = (tmp_path / "lv" / "journal.sqlite").read_bytes()
    q = cli("run", LENDING, "--start", "2024-06-01", "--end", "2024-06-02", "--out", tmp_path, "--run-id", "lv", "--overwrite")
    assert q.returncode == 1 and "run lv in" in q.stderr and "is not replaced: it is a live run" in q.stderr
    assert (tmp_path / "lv" / "journal.sqlite").read_bytes() == kept


# --------------------------------------------------------------------------- the lock
def test_two_concurrent_resumes_exactly_one_proceeds_and_status_reads_the_lock(tmp_path):
    run = tmp_path / "r"
    first = start_live(tmp_path, "r")
    wait_for(lambda: (checkpoint(run) or 0) >= 2, proc=first)
    st = status(run)
    assert st["running"] and st["pid"] == first.pid and st["since"]
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    # kill -9: the OS released the lock; the owner record it left behind is not believed.
    assert json.loads((run / "owner.json").read_text())["pid"] == first.pid
    st = status(run)
    assert not st["running"] and st["pid"] is None and not st["finished"]
    assert holder(run) is None

    resumes = [start_live(tmp_path, "r", "--resume") for _ in range(2)]
    try:
        loser = wait_for(lambda: next((p for p in resumes if p.poll() is not None), None), timeout=120)
        winner = next(p for p in resumes if p is not loser)
        err = loser.stderr.read()
        assert loser.returncode == 1 and f"run r is owned by pid {winner.pid} (since " in err, err
        assert "Traceback" not in err and winner.poll() is None
        st = status(run)
        assert st["running"] and st["pid"] == winner.pid
        stop = cli("stop", run)
        assert stop.returncode == 0 and f"(pid {winner.pid})" in stop.stdout
        out, err = winner.communicate(timeout=120)
        assert winner.returncode == 0, err
    finally:
        for p in resumes:
            if p.poll() is None:
                p.kill()
    summary = json.loads(out)
    assert summary["reconciliation_error"] <= 1e-9
    ticks = [t for (t,) in rows(run / "journal.sqlite", "SELECT tick FROM decisions ORDER BY tick")]
    assert ticks == list(range(len(ticks)))  # each tick decided once: nobody stepped it twice
    assert not status(run)["running"]


# --------------------------------------------------------------------------- stop and resume
def test_stop_on_a_dead_run_says_so_and_writes_nothing(tmp_path):
    run = tmp_path / "dead"
    proc = start_live(tmp_path, "dead")
    wait_for(lambda: (checkpoint(run) or 0) >= 1, proc=proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    tick = checkpoint(run)
    before = (run / "journal.sqlite").read_bytes()
    p = cli("stop", run, "--flatten")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert f"run dead is not running (last checkpoint tick {tick}); nothing to stop; resume it with" in p.stderr
    assert "--resume" in p.stderr and "--replay" in p.stderr
    assert rows(run / "journal.sqlite", "SELECT * FROM control") == []
    assert (run / "journal.sqlite").read_bytes() == before


@pytest.mark.parametrize("flatten", [False, True])
def test_resume_after_a_clean_stop_runs_to_the_end_and_reconciles(tmp_path, flatten):
    run = tmp_path / "s"
    proc = start_live(tmp_path, "s")
    wait_for(lambda: (checkpoint(run) or 0) >= 3, proc=proc)
    p = cli("stop", run, *(["--flatten"] if flatten else []))
    assert p.returncode == 0, p.stderr
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    stopped = json.loads(out)
    stop_tick = checkpoint(run)
    assert stopped["end"] < "2024-06-07" and stopped["reconciliation_error"] <= 1e-9
    if flatten:
        assert set(stopped["final_positions"]) <= {"wallet:BaseToken:USDT", "wallet:BaseToken:ETH"}  # the book is flat
    assert rows(run / "journal.sqlite", "SELECT * FROM control") == []  # the request was served and consumed
    st = status(run)
    assert not st["running"] and st["stopped"]["tick"] == stop_tick and st["stopped"]["flatten"] is flatten

    resumed = cli("run", LENDING, "--live", "--replay", "--out", tmp_path, "--run-id", "s", "--resume", "--speed", "1e9", "--json")
    assert resumed.returncode == 0, resumed.stderr
    s = json.loads(resumed.stdout)
    # It resumed to the end of the window (before the fix it ran one tick and stopped again).
    assert s["end"] == "2024-06-08T00:00Z" and s["reconciliation_error"] <= 1e-9 and s["positions_match_fills"]
    ticks = [t for (t,) in rows(run / "journal.sqlite", "SELECT tick FROM decisions ORDER BY tick")]
    assert ticks == list(range(LAST_TICK + 1))
    # The machine acts again after the stop: it left its halt, and after --flatten it enters
    # again from the flat book (a new entry after the stop tick).
    after = rows(run / "journal.sqlite", f"SELECT trigger FROM decisions WHERE tick > {stop_tick} AND trigger IS NOT NULL")
    if flatten:
        assert ("enter_full",) in after
        assert any(k.startswith("aave_v3:") for k in s["final_positions"])
    meta = dict(rows(run / "journal.sqlite", "SELECT key, value FROM meta"))
    assert "stopped" not in meta and json.loads(meta["resumed"])["after_stop"]["tick"] == stop_tick
    st = status(run)
    assert st["finished"] and not st["running"] and st["stopped"] is None


# --------------------------------------------------------------------------- every run kind holds the lock
def test_every_run_kind_holds_its_lock_for_the_run_and_releases_it(market, tmp_path):
    """A backtest, a drift basket and a live replay own their directory while they run (seen
    from their progress callbacks) and release it at the end; a portfolio run too, and its
    resume is refused while another process (here: this one, through a claim) owns it."""
    from trimtab.portfolio.drift import run_drift

    seen = {}

    def watcher(kind, run_dir):
        def progress(done, total):
            seen.setdefault(kind, holder(run_dir))
        return progress

    s = load_strategy(ROOT / LENDING)
    run_backtest(s, start="2024-06-01", end="2024-06-02", out=tmp_path, run_id="bt", data=market, progress=watcher("bt", tmp_path / "bt"))
    run_live(s, out=tmp_path, run_id="lv", start="2024-06-01", end="2024-06-02", speed=float("inf"), data=market,
             progress=watcher("lv", tmp_path / "lv"))
    basket = load_strategy(ROOT / "configs" / "portfolio_drift.yaml")
    run_drift(basket, start="2024-06-01", end="2024-06-02", out=tmp_path, run_id="dr", data=market, progress=watcher("dr", tmp_path / "dr"))
    assert {k: v["pid"] for k, v in seen.items()} == {"bt": os.getpid(), "lv": os.getpid(), "dr": os.getpid()}
    assert all(holder(tmp_path / k) is None and not (tmp_path / k / "owner.json").exists() for k in seen)
    with pytest.raises(RunError, match="run dr already exists"):
        run_drift(basket, start="2024-06-01", end="2024-06-02", out=tmp_path, run_id="dr", data=market)

    cfg = ROOT / "configs" / "portfolio_strategies.yaml"
    runner = PortfolioRunner.start(cfg, tmp_path, "pf", "2024-06-01", "2024-06-10", data=market)
    assert holder(tmp_path / "pf")["pid"] == os.getpid()
    with pytest.raises(RunError, match="run pf already exists"):
        PortfolioRunner.start(cfg, tmp_path, "pf", "2024-06-01", "2024-06-10", data=market)
    assert runner.run(stop_at=24) is None  # stopped and checkpointed: released
    assert holder(tmp_path / "pf") is None
    with claim_dir(tmp_path / "pf", resume=True):
        with pytest.raises(RunError, match=f"run pf is owned by pid {os.getpid()}"):
            PortfolioRunner.resume(tmp_path / "pf", market)
    result = PortfolioRunner.resume(tmp_path / "pf", market).run()
    assert result.summary["reconciliation"]["ok"] and holder(tmp_path / "pf") is None
