"""Every run kind is first-class (issue 16, item 5): `status`, `explain`, `compare` and `--json`
work on portfolio and drift-basket runs as on strategies, by run id or by path, and what they
print matches the run's own journal. Real runs over short windows, through `.venv/bin/trimtab`."""
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from trimtab.portfolio.runner import run_portfolio

ROOT = Path(__file__).resolve().parents[2]
PORTFOLIO, DRIFT = "configs/portfolio_strategies.yaml", "configs/portfolio_drift.yaml"
WINDOW = ("--start", "2025-01-01", "--end", "2025-02-03")  # the portfolio reallocates on 2025-02-01


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "trimtab"), *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def _rows(db: Path, sql: str, *args) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("kinds")
    for config, rid in ((PORTFOLIO, "p"), (DRIFT, "d")):
        p = cli("run", config, *WINDOW, "--out", str(out), "--run-id", rid, "--json")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout) == json.loads((out / rid / "summary.json").read_text())
    return out


def test_json_summaries_name_their_kind(runs):
    assert json.loads((runs / "p" / "summary.json").read_text())["kind"] == "portfolio"
    assert json.loads((runs / "d" / "summary.json").read_text())["kind"] == "drift_basket"


@pytest.mark.parametrize("how", ["id", "path", "relative"])
def test_status_of_a_portfolio_matches_its_journal(runs, how):
    # a path relative to the working directory is used as given (it was once joined to --runs: runs/runs/...)
    args = {"id": ("p", "--runs", str(runs)), "path": (str(runs / "p"),),
            "relative": (os.path.relpath(runs / "p", ROOT), "--runs", os.path.relpath(runs, ROOT))}[how]
    p = cli("status", *args, "--json")
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    tick, time, equity, cash, state = _rows(runs / "p" / "portfolio.sqlite",
                                            "SELECT tick, time, equity, cash, state FROM series ORDER BY tick DESC LIMIT 1")[0]
    assert (st["kind"], st["tick"], st["time"], st["state"]) == ("portfolio", tick, time, state)
    assert st["equity"] == equity and st["cash"] == cash and st["finished"] and not st["running"]
    s = json.loads((runs / "p" / "summary.json").read_text())
    assert set(st["sleeves"]) == set(s["sleeves"])
    for sid, sl in st["sleeves"].items():
        sleeve = json.loads((runs / "p" / "sleeves" / sid / "summary.json").read_text())
        assert sl["positions"] == pytest.approx(sleeve["final_positions"], rel=1e-9, abs=1e-9)
        assert sl["equity"] == pytest.approx(sleeve["final_equity"], rel=1e-12)
    text = cli("status", *args).stdout
    assert "runs/runs" not in text and f"state {state} at {time}" in text
    assert all(f"sleeve {sid}" in text for sid in st["sleeves"])


def test_explain_a_portfolio_matches_its_decisions(runs):
    db = runs / "p" / "portfolio.sqlite"
    tick, time, dest, metrics = _rows(db, "SELECT tick, time, dest, metrics FROM decisions WHERE time = ?", "2025-02-01T02:00Z")[0]
    p = cli("explain", "p", "--runs", str(runs), "--at", time, "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    e = r["at"]
    assert (e["kind"], e["tick"], e["state"]) == ("portfolio", tick, dest)
    assert e["metrics"] == json.loads(metrics)
    assert e["reallocation"]["id"] == _rows(db, "SELECT max(realloc_id) FROM reallocations WHERE start_tick <= ?", tick)[0][0]
    fired = _rows(db, "SELECT tick, trigger FROM decisions WHERE trigger IS NOT NULL ORDER BY tick")
    tr = json.loads(cli("explain", str(runs / "p"), "--transitions", "--json").stdout)["transitions"]
    assert [(t["tick"], t["trigger"]) for t in tr["transitions"]] == fired and fired
    # a sleeve is a strategy run: the text names each sleeve's directory to explain it with
    text = cli("explain", str(runs / "p"), "--at", time).stdout
    assert "reallocation in force" in text and "metrics the rules saw" in text
    for sid in ("lending", "hedged", "basket"):
        assert str(runs / "p" / "sleeves" / sid) in text
    sleeve = cli("explain", str(runs / "p" / "sleeves" / "lending"), "--at", time, "--json")
    assert sleeve.returncode == 0, sleeve.stderr
    assert json.loads(sleeve.stdout)["at"]["strategy"] == "pure_lending_usdt"


def test_status_and_explain_of_a_drift_basket(runs):
    st = json.loads(cli("status", "d", "--runs", str(runs), "--json").stdout)
    s = json.loads((runs / "d" / "summary.json").read_text())
    assert st["positions"] == pytest.approx(s["final_positions"], rel=1e-9) and st["state"] == s["final_state"]
    assert st["kind"] == "drift_basket"
    (time, max_drift) = _rows(runs / "d" / "journal.sqlite", 'SELECT time, max_drift FROM metrics WHERE time = ?', "2025-01-20T05:00Z")[0]
    e = json.loads(cli("explain", "d", "--runs", str(runs), "--at", time, "--json").stdout)["at"]
    assert e["metrics"]["max_drift"] == pytest.approx(max_drift, rel=1e-12)
    text = cli("explain", "d", "--runs", str(runs), "--at", time).stdout
    assert "max_drift" in text.split("metrics the rules saw")[1].splitlines()[0]


def test_compare_runs_every_kind(tmp_path):
    p = cli("compare", PORTFOLIO, DRIFT, "configs/pure_lending_usdt.yaml", "--start", "2025-01-01", "--end", "2025-01-10",
            "--out", str(tmp_path), "--json", "--jobs", "1")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert [x["kind"] for x in r["rows"]] == ["portfolio", "drift_basket", "strategy"] and not r["skipped"]
    for x in r["rows"]:
        s = json.loads((Path(x["run_dir"]) / "summary.json").read_text())
        assert (s["kind"], s["final_equity"], s["apy"]) == (x["kind"], x["final_equity"], x["apy"])
    # the compare folder is not a run: status names the runs inside it
    bad = cli("status", r["dir"])
    assert bad.returncode == 1 and "holds runs, it is not one" in bad.stderr
    assert all(x["run_dir"] in bad.stderr for x in r["rows"])


def test_a_resumed_portfolio_says_from_which_tick(tmp_path):
    assert run_portfolio(PORTFOLIO, start="2025-01-01", end="2025-01-08", out=tmp_path, run_id="r", stop_at=60) is None
    (tick,) = _rows(tmp_path / "r" / "portfolio.sqlite", "SELECT max(tick) FROM checkpoints")[0]
    (time,) = _rows(tmp_path / "r" / "portfolio.sqlite", "SELECT time FROM series WHERE tick = ?", tick)[0]
    st = cli("status", str(tmp_path / "r"))
    assert "not finished: continue it with" in st.stdout and f"last checkpoint: tick {tick} ({time})" in st.stdout
    p = cli("run", PORTFOLIO, "--run-id", "r", "--out", str(tmp_path), "--resume")
    assert p.returncode == 0, p.stderr
    assert f"resuming r after tick {tick} ({time}), its last checkpoint" in p.stderr


def test_stop_on_a_portfolio_says_what_to_do(runs):
    p = cli("stop", str(runs / "p"))
    assert p.returncode == 1 and "is a portfolio run" in p.stderr and "--resume" in p.stderr


def test_a_resumed_live_run_says_from_which_tick(tmp_path):
    import signal
    import time

    args = ["run", "configs/pure_lending_usdt.yaml", "--live", "--replay", "--start", "2025-01-01T00:00", "--end",
            "2025-01-01T12:00", "--out", str(tmp_path), "--run-id", "L", "--json"]
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "trimtab"), *args, "--speed", "3600"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "L" / "journal.sqlite"
    deadline = time.monotonic() + 120
    tick = None
    while time.monotonic() < deadline and not tick:
        try:
            tick = _rows(db, "SELECT max(tick) FROM checkpoints")[0][0] if db.exists() else None
        except sqlite3.OperationalError:
            tick = None
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert tick, "the live run checkpointed a tick before it was killed"
    (tick,) = _rows(db, "SELECT max(tick) FROM checkpoints")[0]
    (when,) = _rows(db, "SELECT time FROM metrics WHERE tick = ?", tick)[0]
    p = cli(*args, "--speed", "1e9", "--resume")
    assert p.returncode == 0, p.stderr
    assert f"resuming L after tick {tick} ({when}), its last checkpoint" in p.stderr
    assert json.loads(p.stdout)["end"] == "2025-01-01T12:00Z"
