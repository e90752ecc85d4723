"""``trimtab sweep`` (issue 15, item 2) as real ``trimtab`` subprocesses on real Dask clusters.

* a 2x2 sweep on the default local cluster gives, row for row, what four ``trimtab run --set``
  give (final equity, APY, attribution: exactly);
* the same sweep on a real ``dask scheduler`` + two ``dask worker`` processes on 127.0.0.1
  gives the same rows;
* a sweep interrupted with Ctrl-C (SIGINT) keeps its finished rows and resumes: finished
  variant directories are not rewritten, the others run; a resume with another grid is
  refused, naming what differs;
* a variant that fails (an override the audit refuses) is reported, the others finish; a sweep
  where none finishes exits 1.

The flagship on one or two weeks of the bundled data (a backtest takes under a second). The external
cluster is started once for the module and torn down in its finalizer.
"""
from __future__ import annotations

import json
import math
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FLAGSHIP = "configs/usdt_eth_staking_hedged_leveraged.yaml"
WINDOW = ["--start", "2025-01-01", "--end", "2025-01-15"]
GRID = ["--grid", "target_ltv=0.85:0.9:0.05", "--grid", "max_delta_drift=0.01,0.05"]
NUMBERS = ["apy", "max_drawdown", "sharpe", "worst_health_factor", "worst_margin_ratio", "liquidations", "fees_usd",
           "final_equity"]


def _trimtab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "trimtab"), *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scheduler():
    """A real Dask cluster: ``dask scheduler`` and two ``dask worker`` processes (one thread
    each) on 127.0.0.1, on a free port; yields the scheduler's address."""
    from dask.distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)]
    try:
        for _ in range(2):
            # --no-nanny: one process per worker, so the finalizer's SIGTERM ends it at once.
            procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard",
                                           "--no-nanny", "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT))
        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout="5s") as c:
                    c.wait_for_workers(2, timeout=60)
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:  # no nanny: each is one process, so a kill leaves nothing behind
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def default_sweep(tmp_path_factory):
    """The 2x2 sweep on the default local cluster: (its --json report, its sweep.parquet)."""
    out = tmp_path_factory.mktemp("sweep-default")
    r = _trimtab("sweep", FLAGSHIP, *GRID, *WINDOW, "--out", str(out), "--sweep-id", "grid", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    return report, pd.read_parquet(report["parquet"])


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    """The rows without where they were written, by variant."""
    return df.drop(columns=["run_dir"]).set_index("variant").sort_index()


def test_grid_rows_equal_single_runs(default_sweep, tmp_path):
    report, df = default_sweep
    assert report["variants"] == 4 and report["ok"] == 4 and report["failed"] == 0
    assert list(df.columns[:5]) == ["variant", "status", "error", "param.target_ltv", "param.max_delta_drift"]
    assert sorted(zip(df["param.target_ltv"], df["param.max_delta_drift"])) == [(0.85, 0.01), (0.85, 0.05), (0.9, 0.01), (0.9, 0.05)]
    assert df["final_equity"].nunique() > 1  # the grid changes the result, so equality below means something
    # The four single runs, as a user types them, side by side (each its own process).
    singles = {}
    for _, r_df in df.iterrows():
        sets = ["--set", f"target_ltv={r_df['param.target_ltv']:g}", "--set", f"max_delta_drift={r_df['param.max_delta_drift']:g}"]
        singles[r_df["variant"]] = subprocess.Popen([str(BIN / "trimtab"), "run", FLAGSHIP, *sets, *WINDOW, "--out", str(tmp_path),
                                                     "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for _, r_df in df.iterrows():
        stdout, stderr = singles[r_df["variant"]].communicate(timeout=300)
        assert singles[r_df["variant"]].returncode == 0, stderr
        s = json.loads(stdout)
        assert r_df["final_equity"] == s["final_equity"]
        assert r_df["apy"] == s["apy"] and r_df["sharpe"] == s["sharpe"] and r_df["max_drawdown"] == s["max_drawdown"]
        assert {c: r_df[f"attribution.{c}"] for c in s["attribution"]} == s["attribution"]
        assert (r_df["start"], r_df["end"]) == (s["start"], s["end"])
        equity = pd.read_csv(Path(s["run_dir"]) / "equity.csv")
        hf = equity["health_factor"][equity["health_factor"] < math.inf]
        assert r_df["worst_health_factor"] == hf.min()
    # The variants' journals are slim by default: per-tick metrics kept, fills and decisions not.
    import sqlite3

    db = sqlite3.connect(Path(df["run_dir"].iloc[0]) / "journal.sqlite")
    try:
        assert db.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] > 14 * 24
        assert db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] == 0
    finally:
        db.close()


def test_external_cluster_gives_the_same_rows(default_sweep, scheduler, tmp_path):
    _, local = default_sweep
    r = _trimtab("sweep", FLAGSHIP, *GRID, *WINDOW, "--out", str(tmp_path), "--scheduler", scheduler, "--json")
    assert r.returncode == 0, r.stderr
    remote = pd.read_parquet(json.loads(r.stdout)["parquet"])
    pd.testing.assert_frame_equal(_comparable(remote), _comparable(local), check_exact=True)
    # Written by the external workers (other processes), under this sweep's folder.
    assert all(Path(p).parent.parent == tmp_path / json.loads(r.stdout)["sweep_id"] for p in remote["run_dir"])


def _stats(d: Path) -> dict:
    return {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in d.iterdir() if f.is_file()}


def _rows(parquet: Path) -> int:
    try:
        return len(pd.read_parquet(parquet))
    except (OSError, ValueError):  # not written yet
        return 0


def test_interrupted_sweep_resumes_without_rerunning(scheduler, tmp_path):
    grid = "target_ltv=0.8:0.9:0.02"  # six variants
    args = ["sweep", FLAGSHIP, "--grid", grid, "--start", "2025-01-01", "--end", "2025-01-08", "--out", str(tmp_path),
            "--sweep-id", "s1", "--scheduler", scheduler]
    # Ctrl-C once two variants have finished (SIGINT back to its default: a background job's is ignored).
    proc = subprocess.Popen([str(BIN / "trimtab"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    parquet = tmp_path / "s1" / "sweep.parquet"
    deadline = time.monotonic() + 240
    while _rows(parquet) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and f"--resume --sweep-id s1 --out {tmp_path}" in err, err
    df = pd.read_parquet(parquet)
    assert 2 <= len(df) < 6 and set(df["status"]) == {"ok"}  # the finished rows survived the interrupt
    # One of them is made a run killed between its journal and its summary: it must run again.
    redo, *kept = [Path(p) for p in df["run_dir"]]
    (redo / "summary.json").unlink()
    before = {d: _stats(d) for d in kept}

    # Another grid on the same sweep is refused, naming what differs; nothing runs.
    other = _trimtab(*[a if a != grid else "target_ltv=0.8,0.9" for a in args], "--resume")
    assert other.returncode == 2 and "grid" in other.stderr and "target_ltv=0.8,0.9" in other.stderr, other.stderr
    assert not (redo / "summary.json").exists()

    # `--resume --sweep-id` alone continues with the flags recorded in sweep.json.
    again = _trimtab("sweep", FLAGSHIP, "--out", str(tmp_path), "--sweep-id", "s1", "--scheduler", scheduler, "--json", "--resume")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["ok"] == 6 and report["reused"] >= len(kept) and report["reused"] < 6
    assert {d: _stats(d) for d in kept} == before  # read back, not rerun
    assert (redo / "summary.json").is_file()
    resumed = pd.read_parquet(parquet).set_index("variant")
    assert len(resumed) == 6 and set(resumed["status"]) == {"ok"}
    first = df.set_index("variant")
    assert (resumed.loc[first.index, "final_equity"] == first["final_equity"]).all()  # the rerun gives the same result
    # A new sweep on the same id is refused (never replaced).
    dup = _trimtab(*args)
    assert dup.returncode == 2 and "--resume" in dup.stderr


def test_failed_variant_is_reported_and_others_finish(scheduler, tmp_path):
    # capital=1 loads (a valid number) but the audit refuses it (trades under the venues'
    # minimum notional), as `trimtab run --set capital=1` refuses it.
    r = _trimtab("sweep", FLAGSHIP, "--grid", "capital=100000,1", "--start", "2025-01-01", "--end", "2025-01-08",
                 "--out", str(tmp_path), "--scheduler", scheduler, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] == 1 and report["failed"] == 1
    df = pd.read_parquet(report["parquet"]).set_index("param.capital")
    assert df.loc[100000.0, "status"] == "ok" and math.isfinite(df.loc[100000.0, "final_equity"])
    bad = df.loc[1.0]
    assert bad["status"] == "failed" and "trade-below-minimum" in bad["error"] and math.isnan(bad["apy"])
    assert f"failed: {bad['variant']}" in r.stderr
    single = _trimtab("run", FLAGSHIP, "--set", "capital=1", "--start", "2025-01-01", "--end", "2025-01-08", "--out", str(tmp_path))
    assert single.returncode != 0  # the single run refuses it too

    none = _trimtab("sweep", FLAGSHIP, "--grid", "capital=1,2", "--start", "2025-01-01", "--end", "2025-01-08",
                    "--out", str(tmp_path), "--scheduler", scheduler)
    assert none.returncode == 1 and "no variant finished" in none.stderr


@pytest.mark.parametrize("args, flag, words", [
    (["--grid", "target_ltv=abc"], "--grid", "refused"),
    (["--grid", "target_lvt=0.8"], "--grid", "target_ltv"),
    (["--grid", "target_ltv=0.8", "--sweep-id", "../x"], "--sweep-id", "path separator"),
])
def test_bad_flags_name_the_flag(args, flag, words, tmp_path):
    """One line naming the flag, exit 2, nothing written (the parsing itself: tests/unit/test_sweep_grid.py)."""
    r = _trimtab("sweep", FLAGSHIP, *args, "--out", str(tmp_path))
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: Invalid value for '{flag}'") and words in line, line
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_parameter_that_changes_nothing_is_named(tmp_path):
    # Pure lending reads no target_ltv (no loop, no rule on LTV); capital changes every result.
    r = _trimtab("sweep", "configs/pure_lending_usdt.yaml", "--grid", "target_ltv=0.5,0.6", "--grid", "capital=100000,200000",
                 "--start", "2025-01-01", "--end", "2025-01-08", "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    df = pd.read_parquet(report["parquet"])
    assert report["ok"] == 4 and report["inert"] == ["target_ltv"]
    # the finding is what the rows say: equal equity within each capital, different across capitals
    assert (df.groupby("param.capital")["final_equity"].nunique() == 1).all() and df["final_equity"].nunique() == 2
    assert "note: target_ltv changed nothing" in r.stderr and "note: capital" not in r.stderr
