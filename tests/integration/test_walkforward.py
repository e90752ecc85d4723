"""``trimtab sweep --walk-forward IS:OOS`` (issue 15, item 3) as a real ``trimtab`` subprocess.

One walk-forward of the flagship over seven weeks of the bundled data, 2 weeks in-sample and
2 weeks out-of-sample, two variants, on the default local Dask cluster. Checked from the files it
writes: the folds do not overlap and tile the period after the first in-sample window, each
choice is the argmax of that fold's in-sample rows (recomputed here), the in-sample runs end no
later than their out-of-sample window starts, each out-of-sample run starts from the previous
one's final equity, and the stitched equity and the overfitting gap follow from those runs.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FLAGSHIP = "configs/usdt_eth_staking_hedged_leveraged.yaml"
START, END = pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2025-02-20", tz="UTC")


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    out = tmp_path_factory.mktemp("wf")
    r = subprocess.run([str(BIN / "trimtab"), "sweep", FLAGSHIP, "--grid", "target_ltv=0.85,0.9", "--start", "2025-01-01",
                        "--end", "2025-02-20", "--walk-forward", "2w:2w", "--metric", "apy", "--out", str(out), "--json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    return report, Path(report["sweep_dir"]), pd.read_parquet(report["walk_forward"]["parquet"])


def _t(s: str) -> pd.Timestamp:
    return pd.Timestamp(s)


def test_folds_tile_the_period_after_the_first_in_sample_window(walk):
    _, _, folds = walk
    assert list(folds["fold"]) == list(range(len(folds))) and len(folds) == 3
    # The last OOS window is what is left (8 days), not dropped and not run past the window.
    assert _t(folds["oos_end"].iloc[-1]) - _t(folds["oos_start"].iloc[-1]) == pd.Timedelta(days=8)
    two_weeks = pd.Timedelta(weeks=2)
    assert _t(folds["oos_start"].iloc[0]) == START + two_weeks  # after the first IS window
    assert _t(folds["oos_end"].iloc[-1]) == END
    for k, f in folds.iterrows():
        assert _t(f["is_end"]) == _t(f["oos_start"]) and _t(f["is_start"]) < _t(f["is_end"]) < _t(f["oos_end"])
        assert _t(f["is_end"]) - _t(f["is_start"]) == two_weeks
        if k:
            assert _t(f["oos_start"]) == _t(folds["oos_end"].iloc[k - 1])  # no gap, no overlap


def test_choice_is_the_in_sample_argmax_and_sees_no_oos_data(walk):
    _, root, folds = walk
    for _, f in folds.iterrows():
        is_rows = pd.read_parquet(root / "folds" / f"fold-{f['fold']}" / "sweep.parquet")
        assert len(is_rows) == 2 and set(is_rows["status"]) == {"ok"}
        assert is_rows["apy"].nunique() == 2  # a real choice
        best = is_rows.loc[is_rows["apy"].idxmax()]
        assert f["variant"] == best["variant"] and f["is_apy"] == best["apy"] and f["param.target_ltv"] == best["param.target_ltv"]
        for _, r in is_rows.iterrows():  # the IS runs stop where the OOS window starts
            assert _t(r["start"]) == _t(f["is_start"]) and _t(r["end"]) <= _t(f["oos_start"])
            s = json.loads((Path(r["run_dir"]) / "summary.json").read_text())
            assert _t(s["end"]) <= _t(f["oos_start"])
            assert pd.read_csv(Path(r["run_dir"]) / "equity.csv", usecols=["time"])["time"].map(_t).max() <= _t(f["oos_start"])


def test_oos_runs_chain_and_stitch(walk):
    report, root, folds = walk
    previous = None
    for _, f in folds.iterrows():
        s = json.loads((Path(f["run_dir"]) / "summary.json").read_text())
        assert (_t(s["start"]), _t(s["end"])) == (_t(f["oos_start"]), _t(f["oos_end"]))
        assert s["final_equity"] == f["oos_final_equity"] and s["apy"] == f["oos_apy"]
        if previous is not None:
            assert s["initial_equity"] == previous  # starts from the previous fold's final equity
        previous = s["final_equity"]
    eq = pd.read_csv(root / "walkforward_equity.csv")
    times = eq["time"].map(_t)
    assert list(eq.columns) == ["time", "equity"]
    assert times.is_monotonic_increasing and times.is_unique
    assert times.iloc[0] == _t(folds["oos_start"].iloc[0]) and times.iloc[-1] == END
    assert eq["equity"].iloc[-1] == folds["oos_final_equity"].iloc[-1]
    wf = report["walk_forward"]
    first = json.loads((Path(folds["run_dir"].iloc[0]) / "summary.json").read_text())["initial_equity"]
    days = (END - _t(folds["oos_start"].iloc[0])).total_seconds() / 86400
    assert math.isclose(wf["oos_apy"], (folds["oos_final_equity"].iloc[-1] / first) ** (365 / days) - 1, rel_tol=1e-12)
    assert math.isclose(wf["mean_is_apy"], folds["is_apy"].mean(), rel_tol=1e-12)
    assert math.isclose(wf["gap"], wf["mean_is_apy"] - wf["oos_apy"], rel_tol=1e-12)
