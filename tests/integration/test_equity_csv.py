"""equity.csv (issue 15): time, equity, nav as the run computed them, then the per-tick health
factor, LTV, margin ratios and delta exactly as the journal's metrics hold them."""
from __future__ import annotations

import math
import sqlite3
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pandas_reference import equity_table  # noqa: E402

from trimtab.engine.journal import MetricsRow, read_metrics  # noqa: E402
from trimtab.engine.results import equity_columns  # noqa: E402

START, END = "2024-06-01", "2024-07-15"


def same(a: float, b: float) -> bool:
    """Exactly equal, NaN equal to NaN."""
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.fixture(scope="module")
def short_run(flagship, market, tmp_path_factory):
    from trimtab.engine.backtest import run_backtest

    out = tmp_path_factory.mktemp("equity_csv")
    return run_backtest(flagship, start=START, end=END, out=out, run_id="short", data=market)


def test_columns_equal_the_journal_tick_by_tick(short_run):
    csv = pd.read_csv(short_run.run_dir / "equity.csv", index_col=0)
    venues = ["binance", "bybit", "okx"]  # the flagship's perp venues, in config order
    assert list(csv.columns) == ["equity", "nav", *equity_columns(venues)]
    assert list(csv.columns[2:]) == ["health_factor", "ltv", "margin_ratio_min", "margin_ratio.binance",
                                     "margin_ratio.bybit", "margin_ratio.okx", "net_delta", "delta_drift"]
    # time and equity are the run's own series; nav is the journal's series (what resume reads).
    assert list(pd.DatetimeIndex(csv.index)) == list(short_run.equity.index)
    assert csv["equity"].tolist() == short_run.equity.tolist()
    db = sqlite3.connect(short_run.run_dir / "journal.sqlite")
    try:
        nav = [r[0] for r in db.execute("SELECT nav FROM series ORDER BY tick")]
        rows = read_metrics(db)
    finally:
        db.close()
    assert csv["nav"].tolist() == nav
    assert [r.tick for r in rows] == list(range(len(csv)))
    for name in csv.columns[2:]:
        got = csv[name].tolist()
        want = [r.metrics[name] for r in rows]
        bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if not same(g, w)]
        assert not bad, (name, bad[:3])


def test_inf_where_there_is_no_debt_or_position(short_run):
    text = (short_run.run_dir / "equity.csv").read_text().splitlines()
    head = text[0].split(",")
    first = dict(zip(head, text[1].split(",")))
    # Tick 0: nothing borrowed, no perp open yet -- written as "inf", read back as inf.
    assert first["health_factor"] == "inf" and first["margin_ratio_min"] == "inf"
    csv = pd.read_csv(short_run.run_dir / "equity.csv", index_col=0)
    hf, ltv = csv["health_factor"], csv["ltv"]
    assert math.isinf(hf.iloc[0]) and hf.iloc[0] > 0
    assert (ltv > 0).any() and (ltv == 0).any()  # the window has ticks with and without debt
    assert (hf.apply(math.isinf) == (ltv == 0)).all()  # inf exactly where there is no debt
    assert csv["margin_ratio.okx"].apply(math.isinf).all()  # okx holds no hedge in this window
    assert not csv[["equity", "nav", "net_delta", "delta_drift"]].isna().any().any()


def test_missing_metric_or_tick_is_an_empty_field(tmp_path):
    idx = pd.DatetimeIndex(["2024-06-01T00:00Z", "2024-06-01T01:00Z", "2024-06-01T02:00Z"])
    equity = pd.Series([100.0, 101.5, 99.25], index=idx)
    nav = pd.Series([1.0, 1.015, 0.9925], index=idx)
    full = {k: 0.5 for k in equity_columns(["okx"])}
    rows = [MetricsRow(0, "2024-06-01T00:00Z", "s", {**full, "health_factor": math.inf}),
            MetricsRow(2, "2024-06-01T02:00Z", "s", {k: v for k, v in full.items() if k != "ltv"}),
            MetricsRow(7, "2024-06-01T07:00Z", "s", full)]  # beyond the series: ignored
    path = tmp_path / "equity.csv"
    equity_table(equity, nav, rows, ["okx"]).to_csv(path, index_label="time")
    lines = path.read_text().splitlines()
    assert lines[0] == "time,equity,nav,health_factor,ltv,margin_ratio_min,margin_ratio.okx,net_delta,delta_drift"
    assert lines[1].split(",")[3:5] == ["inf", "0.5"]
    assert lines[2].split(",")[3:] == [""] * 6  # tick 1 has no journal row
    assert lines[3].split(",")[3:5] == ["0.5", ""]  # tick 2 lacks ltv
    back = pd.read_csv(path, index_col=0)
    assert back["health_factor"].iloc[0] == math.inf and math.isnan(back["ltv"].iloc[2])


def test_written_by_the_loaders_child_or_here_when_it_fails(tmp_path):
    """`trimtab run` hands equity.csv to the child that loaded the bundle
    (trimtab.data.background, trimtab.engine.results.equity_csv_job): the same bytes as written
    in-process; a child whose job fails leaves it to the run, which writes it itself. In a fresh
    interpreter (a loader is only forked from a process of one thread), on the flagship's short
    window, without the journal writer (so no other process is running)."""
    import subprocess

    code = """
import sys
from pathlib import Path
from trimtab.config.load import load_strategy
from trimtab.data.background import BackgroundLoad
from trimtab.engine.backtest import run_backtest
from trimtab.engine.results import equity_csv_job, prepare_equity_csv_job
out, start, end = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
strategy = load_strategy(Path("configs/usdt_eth_staking_hedged_leveraged.yaml"))
def broken(spec, arrays):
    raise OSError("disk full (on purpose)")
for name, job in (("child", equity_csv_job), ("broken", broken), ("here", None)):
    loading = BackgroundLoad(job=job, prepare=prepare_equity_csv_job if job else None)
    assert loading.how == "process", loading.how
    data = loading.result()
    helper = loading if job else None
    run_backtest(strategy, start=start, end=end, out=out, run_id=name, data=data, csv_helper=helper).settle()
    print(name, loading._helper is None)
"""
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path), START, END], cwd=Path(__file__).resolve().parents[2],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["child", "True", "broken", "True", "here", "True"]  # the job taken (or none to take)
    here = (tmp_path / "here" / "equity.csv").read_bytes()
    assert here.count(b"\n") > 1000
    assert (tmp_path / "child" / "equity.csv").read_bytes() == here
    assert (tmp_path / "broken" / "equity.csv").read_bytes() == here
