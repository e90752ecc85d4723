"""`trimtab report` and `trimtab run --report` on real runs (issue 15, item 4).

Real backtests of January 2025 on the bundled data (the flagship, pure lending, the drift basket
and the portfolio of strategies), a real walk-forward of a 2x2 grid through `trimtab sweep` (its in-sample fold is a sweep), all
as subprocesses of the installed `trimtab`. Each report must be one self-contained file (no
http(s) script or stylesheet; plotly's JavaScript once), have a chart in every section the run
has data for and a note where it has none, and its waterfall must add up to the equity change.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trimtab.engine.journal import read_ledger
from trimtab.reports import charts
from trimtab.reports import ReportError
from trimtab.reports.rundata import load_journal_run, load_run
from trimtab.reports.thresholds import run_thresholds

ROOT = Path(__file__).resolve().parents[2]
TRIMTAB = Path(sys.executable).with_name("trimtab")
WINDOW = ("--start", "2025-01-01", "--end", "2025-02-01")
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"
STRATEGY_CHARTS = {"equity", "drawdown", "health_factor", "ltv", "margin", "delta", "funding", "attribution", "timeline"}


def trimtab(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(TRIMTAB), *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def sections(html: str) -> dict[str, str]:
    """data-chart key -> the HTML of that chart's section."""
    return {m.group(1): m.group(2) for m in re.finditer(r'<section[^>]*data-chart="([^"]+)"[^>]*>(.*?)</section>', html, re.S)}


def notes(html: str) -> dict[str, str]:
    """data-section key -> the HTML of that section (tables and notes)."""
    return {m.group(1): m.group(2) for m in re.finditer(r'<section[^>]*data-section="([^"]+)"[^>]*>(.*?)</section>', html, re.S)}


def assert_self_contained(html: str) -> None:
    from plotly.offline import get_plotlyjs

    # no script, stylesheet, image or frame fetched from the network (plotly's own bundle has URLs in strings)
    tags = re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", html, re.I)
    assert tags, "the page has no script tag at all"
    for tag in tags:
        assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", tag, re.I), tag
    assert html.count(get_plotlyjs()[:300]) == 1, "plotly.js is not embedded exactly once"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Run directories of real January 2025 runs: the flagship with --report (and --json), pure
    lending (also with a deposit and a withdrawal), the drift basket and the portfolio (that one
    with --report, no --run-id)."""
    out = tmp_path_factory.mktemp("runs")
    p = trimtab("run", FLAGSHIP, *WINDOW, "--out", out, "--run-id", "flagship", "--report", "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)  # --json: stdout is exactly the summary, the report's path on stderr
    assert f"report {out / 'flagship' / 'report.html'}" in p.stderr
    assert summary["run_dir"] == str(out / "flagship")
    for name, config in (("lending", "pure_lending_usdt.yaml"), ("basket", "portfolio_drift.yaml")):
        p = trimtab("run", ROOT / "configs" / config, *WINDOW, "--out", out, "--run-id", name)
        assert p.returncode == 0, p.stderr
    p = trimtab("run", ROOT / "configs" / "pure_lending_usdt.yaml", *WINDOW, "--out", out, "--run-id", "flows",
                "--flow", "2025-01-10:+50000", "--flow", "2025-01-20:-20000")
    assert p.returncode == 0, p.stderr
    p = trimtab("run", ROOT / "configs" / "portfolio_strategies.yaml", *WINDOW, "--out", out / "p", "--report")
    assert p.returncode == 0, p.stderr
    line = [x for x in p.stdout.splitlines() if x.startswith("report ")]
    assert len(line) == 1, p.stdout[-2000:]
    portfolio = Path(line[0][len("report "):]).parent
    assert (portfolio / "portfolio.sqlite").is_file()
    return {"flagship": out / "flagship", "lending": out / "lending", "basket": out / "basket", "portfolio": portfolio,
            "flows": out / "flows"}


def test_run_report_flag_writes_the_flagship_report(runs):
    html = (runs["flagship"] / "report.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    got = sections(html)
    assert set(got) == STRATEGY_CHARTS
    for key, body in got.items():
        assert body.count('class="plotly-graph-div"') == 1, key
    tables = notes(html)
    # every plan with each of its steps' statuses
    db = sqlite3.connect(runs["flagship"] / "journal.sqlite")
    plan_ids = [r[0] for r in db.execute("SELECT plan_id FROM plans")]
    steps = db.execute("SELECT count(DISTINCT plan_id || '/' || step_id) FROM instructions").fetchone()[0]
    db.close()
    assert plan_ids and all(pid in tables["plans"] for pid in plan_ids)
    assert tables["plans"].count('<tr class="sub">') == steps
    # the data notes name every gap the summary worked around
    summary = json.loads((runs["flagship"] / "summary.json").read_text())
    assert summary["data_gaps"]
    for g in summary["data_gaps"]:
        assert g["series"] in tables["data_notes"]


def test_report_command_rewrites_it_to_another_file(runs, tmp_path):
    out = tmp_path / "flagship.html"
    p = trimtab("report", runs["flagship"], "-o", out)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(out)
    assert set(sections(out.read_text(encoding="utf-8"))) == STRATEGY_CHARTS
    # a run id under --runs
    p = trimtab("report", "lending", "--runs", runs["lending"].parent, "-o", tmp_path / "by_id.html")
    assert p.returncode == 0, p.stderr
    assert "pure_lending_usdt: run report" in (tmp_path / "by_id.html").read_text(encoding="utf-8")


def test_waterfall_adds_up_to_the_equity_change(runs):
    for name in ("flagship", "lending", "basket", "portfolio", "flows"):
        run = load_run(runs[name])
        fig = charts.fig_waterfall(run)
        trace = fig.data[0]
        measures, ys, labels = list(trace.measure), list(trace.y), list(trace.x)
        assert measures[0] == "absolute" and measures[-1] == "total"
        assert "unreconciled" not in labels
        start, rel = ys[0], [y for y, m in zip(ys, measures) if m == "relative"]
        # the bars end at the equity the run's equity.csv ends at, within a millionth of a cent per dollar
        end = run.equity["equity"].iloc[-1]
        assert math.isclose(start + math.fsum(rel), end, rel_tol=0, abs_tol=1e-6 * start), name
        assert math.isclose(ys[-1], end, rel_tol=1e-12), name
        assert start == run.summary["initial_equity"]
        assert ("capital flows" in labels) == (name == "flows")
    # the category bars are the journal's own ledger totals (a second source than the summary)
    run = load_run(runs["flagship"])
    ledger: dict[str, float] = {}
    db = sqlite3.connect(runs["flagship"] / "journal.sqlite")
    for amounts in read_ledger(db).values():
        for cat, v in amounts.items():
            ledger[cat] = ledger.get(cat, 0.0) + v
    db.close()
    bars = {label: y for label, y, m in charts.waterfall_steps(run) if m == "relative"}
    assert set(bars) == {c for c, v in ledger.items() if abs(v) > 0}
    for cat, v in bars.items():
        assert math.isclose(v, ledger[cat], rel_tol=1e-9, abs_tol=1e-6), cat


def test_risk_charts_are_drawn_against_their_thresholds(runs):
    run = load_run(runs["flagship"])
    th = run_thresholds(run)
    hf = {t.name: t for t in charts.fig_health_factor(run, th).data}
    assert any(t.y[0] == 1.0 and "liquidation" in name for name, t in hf.items())
    params = json.loads(sqlite3.connect(runs["flagship"] / "journal.sqlite").execute(
        "SELECT value FROM meta WHERE key = 'parameters'").fetchone()[0])
    assert any(t.y[0] == params["hf_emergency_enter"] for t in hf.values())  # the rules' own threshold
    ltv = {t.name: t.y[0] for t in charts.fig_ltv(run, th).data if t.name != "ltv"}
    lt = [v for n, v in ltv.items() if n.startswith("liquidation threshold")]
    # the venue's liquidation threshold is what the run itself implies: HF x LTV (Aave v3)
    implied = (run.equity["health_factor"] * run.equity["ltv"]).replace(math.inf, math.nan).dropna()
    assert lt and math.isclose(lt[0], implied[run.equity.loc[implied.index, "ltv"] > 0].median(), rel_tol=1e-6)
    margin = [t.name for t in charts.fig_margin(run, th).data]
    venues = [c.split(".", 1)[1] for c in run.equity.columns if c.startswith("margin_ratio.")]
    assert venues and all(f"margin_ratio.{v}" in margin and any(n.startswith(f"{v} maintenance") for n in margin) for v in venues)
    # drawdown is the summary's max drawdown, funding per venue adds up to the funding attribution
    assert math.isclose(-charts.drawdown(run).min(), run.summary["max_drawdown"], rel_tol=1e-9)
    funding = charts.fig_funding(run)
    assert {t.name for t in funding.data} == set(venues)
    assert math.isclose(sum(t.y[-1] for t in funding.data), run.summary["attribution"]["funding"], rel_tol=1e-9)
    timeline = charts.fig_timeline(run)
    assert len(timeline.data[1].x) == run.summary["transitions"]


def test_lending_run_says_what_it_lacks(runs, tmp_path):
    p = trimtab("report", runs["lending"])
    assert p.returncode == 0, p.stderr
    html = (runs["lending"] / "report.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    assert set(sections(html)) == {"equity", "drawdown", "attribution", "timeline"}
    n = notes(html)
    assert "no perps in this run" in n["margin"]
    assert "no Aave debt" in n["health_factor"] and "no funding" in n["funding"]


def test_basket_and_portfolio_reports(runs):
    p = trimtab("report", runs["basket"])
    assert p.returncode == 0, p.stderr
    html = (runs["basket"] / "report.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    assert {"equity", "drawdown", "attribution", "timeline", "delta"} <= set(sections(html))
    assert "rebalances" in notes(html)
    html = (runs["portfolio"] / "report.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    assert set(sections(html)) == {"equity", "drawdown", "attribution", "timeline"}
    summary = json.loads((runs["portfolio"] / "summary.json").read_text())
    body = sections(html)["equity"]
    for sleeve in summary["sleeves"]:  # one equity line per sleeve
        assert f"sleeve.{sleeve}" in body
    tables = notes(html)
    assert all(s in tables["sleeves"] for s in summary["sleeves"])
    assert "gap in" in tables["data_notes"]  # the hedged sleeve's data gaps


def test_corrupt_or_missing_files_are_refused_by_name(runs, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(runs["lending"], bad)
    (bad / "summary.json").write_text("{not json")
    p = trimtab("report", bad)
    assert p.returncode == 1 and "summary.json: not valid JSON" in p.stderr and "Traceback" not in p.stderr
    shutil.copy(runs["lending"] / "summary.json", bad / "summary.json")
    eq = pd.read_csv(runs["lending"] / "equity.csv").drop(columns=["equity"])
    eq.to_csv(bad / "equity.csv", index=False)
    p = trimtab("report", bad)
    assert p.returncode == 1 and "equity.csv: no 'equity' column" in p.stderr
    eq = pd.read_csv(runs["lending"] / "equity.csv", dtype=str)
    eq.loc[5, "health_factor"] = "lots"
    eq.to_csv(bad / "equity.csv", index=False)
    p = trimtab("report", bad)
    assert p.returncode == 1 and "row 7: health_factor = 'lots' is not a number" in p.stderr
    shutil.copy(runs["lending"] / "equity.csv", bad / "equity.csv")
    (bad / "journal.sqlite").write_bytes(b"garbage" * 100)
    for extra in ("journal.sqlite-wal", "journal.sqlite-shm"):
        (bad / extra).unlink(missing_ok=True)
    p = trimtab("report", bad)
    assert p.returncode == 1 and "journal.sqlite" in p.stderr and "Traceback" not in p.stderr
    p = trimtab("report", tmp_path / "nowhere")
    assert p.returncode == 2 and "'RUN'" in p.stderr
    p = trimtab("report", runs["lending"], "--metric", "apy")
    assert p.returncode == 2 and "'--metric'" in p.stderr and "applies to a sweep" in p.stderr


def test_a_run_without_its_summary_loads_from_its_journal_as_the_finished_run(runs, tmp_path):
    """load_journal_run (the console's live run page) reads what load_run reads from equity.csv."""
    done = load_run(runs["flagship"])
    going = tmp_path / "going"
    shutil.copytree(runs["flagship"], going)
    (going / "summary.json").unlink()
    (going / "equity.csv").unlink()
    with pytest.raises(ReportError, match="summary.json: missing"):
        load_run(going)
    run = load_journal_run(going)
    assert list(run.equity.columns) == list(done.equity.columns)
    pd.testing.assert_frame_equal(run.equity, done.equity, check_freq=False, rtol=1e-12)
    pd.testing.assert_frame_equal(run.transitions, done.transitions)
    assert run.plans == done.plans and len(run.plans) > 0
    assert run.summary["final_equity"] == pytest.approx(done.summary["final_equity"], rel=1e-12)
    assert run.summary["share_class"] == done.summary["share_class"]


def test_a_plan_whose_json_is_damaged_is_refused_by_name(runs, tmp_path):
    bad = tmp_path / "bad_plan"
    shutil.copytree(runs["flagship"], bad)
    with sqlite3.connect(bad / "journal.sqlite") as db:
        plan_id = db.execute("SELECT plan_id FROM plans ORDER BY tick LIMIT 1").fetchone()[0]
        db.execute("UPDATE plans SET plan = '{\"steps\": [' WHERE plan_id = ?", (plan_id,))
    db.close()
    p = trimtab("report", bad)
    assert p.returncode == 1 and f"plan {plan_id} is not valid JSON" in p.stderr and "Traceback" not in p.stderr


def test_marks_are_layout_shapes_and_times_plain_datetimes(runs):
    """Flows and transitions are vertical lines set in one layout update (not one add_vline each),
    and the x values are datetime64 (tz-aware times are deep-copied point by point by plotly)."""
    flows = load_run(runs["flows"])
    fig = charts.fig_equity(flows)
    times = [pd.Timestamp(f["time"]) for f in flows.summary["flows"]]
    assert len(times) >= 2
    assert sorted(pd.Timestamp(sh.x0, tz="UTC") for sh in fig.layout.shapes) == sorted(times)
    run = load_run(runs["flagship"])
    hf = charts.fig_health_factor(run, run_thresholds(run))
    assert len(hf.layout.shapes) == 0
    charts.mark_transitions(hf, run.transitions)
    assert 0 < len(run.transitions) <= charts.MAX_MARKED
    assert sorted(pd.Timestamp(sh.x0, tz="UTC") for sh in hf.layout.shapes) == sorted(run.transitions["time"])
    assert np.asarray(hf.data[0].x).dtype.kind == "M"
    assert pd.Timestamp(np.asarray(hf.data[0].x)[0], tz="UTC") == run.equity.index[0]
    charts.mark_transitions(hf, run.transitions, limit=len(run.transitions) - 1)  # too many to draw: unchanged
    assert len(hf.layout.shapes) == len(run.transitions)


@pytest.fixture(scope="module")
def walk_forward_dir(tmp_path_factory) -> Path:
    """A real walk-forward of a 2x2 grid of the flagship through `trimtab sweep`: one fold, in-sample
    the first week of January 2025 (its own sweep: folds/fold-0/sweep.parquet), out-of-sample the second."""
    out = tmp_path_factory.mktemp("sweeps")
    p = trimtab("sweep", FLAGSHIP, "--grid", "target_ltv=0.8,0.85", "--grid", "max_delta_drift=0.01,0.05", "--start", "2025-01-01",
                "--end", "2025-01-15", "--walk-forward", "1w:1w", "--out", out, "--sweep-id", "wf", "--workers", "1")
    assert p.returncode == 0, p.stderr
    return out / "wf"


@pytest.fixture(scope="module")
def sweep_dir(walk_forward_dir) -> Path:
    """The walk-forward's in-sample sweep: a sweep directory of four real variants."""
    d = walk_forward_dir / "folds" / "fold-0"
    assert (d / "sweep.parquet").is_file()
    return d


def test_sweep_report_has_the_heatmap_and_best_variants(sweep_dir, tmp_path):
    p = trimtab("report", sweep_dir, "-o", tmp_path / "sweep.html")
    assert p.returncode == 0, p.stderr
    html = (tmp_path / "sweep.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    got = sections(html)
    assert {"heatmap-apy", "heatmap-max_drawdown", "heatmap-sharpe"} <= set(got)
    rows = pd.read_parquet(sweep_dir / "sweep.parquet")
    # the heatmap's cells are the four variants' APYs (default axes: the first two swept params)
    t = charts.heatmap_table(rows, "target_ltv", "max_delta_drift", "apy")
    assert t.shape == (2, 2)
    for _, r in rows.iterrows():
        assert t.loc[r["param.max_delta_drift"], r["param.target_ltv"]] == r["apy"]
    best = notes(html)["best"]
    listed = sorted(rows["variant"], key=best.index)  # the variants in the table's order: best APY first
    apys = [float(rows.loc[rows["variant"] == v, "apy"].iloc[0]) for v in listed]
    assert apys == sorted(apys, reverse=True) and apys[0] == rows["apy"].max()
    # axes and metric by flag; a name the sweep lacks is a usage error naming the flag
    p = trimtab("report", sweep_dir, "--x", "max_delta_drift", "--y", "target_ltv", "--metric", "sharpe", "-o", tmp_path / "s2.html")
    assert p.returncode == 0, p.stderr
    assert "sharpe over max_delta_drift × target_ltv" in (tmp_path / "s2.html").read_text(encoding="utf-8")
    for flags, hint in ((("--x", "nope"), "'--x'"), (("--metric", "nope"), "'--metric'"), (("--x", "target_ltv", "--y", "target_ltv"), "'--y'")):
        p = trimtab("report", sweep_dir, *flags, "-o", tmp_path / "s3.html")
        assert p.returncode == 2 and hint in p.stderr, p.stderr


def test_sweep_parquet_missing_a_column_is_refused(sweep_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.read_parquet(sweep_dir / "sweep.parquet").drop(columns=["max_drawdown"]).to_parquet(bad / "sweep.parquet")
    p = trimtab("report", bad)
    assert p.returncode == 1 and "sweep.parquet: no column 'max_drawdown'" in p.stderr


def test_walk_forward_report(walk_forward_dir):
    p = trimtab("report", walk_forward_dir)
    assert p.returncode == 0, p.stderr
    html = (walk_forward_dir / "report.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    got = sections(html)
    folds = pd.read_parquet(walk_forward_dir / "walkforward.parquet")
    assert {"walkforward-equity", "walkforward-folds-chart"} <= set(got)
    assert {f"heatmap-apy-fold{int(n)}" for n in folds["fold"]} <= set(got)
    assert all(v in notes(html)["walkforward"] for v in folds["variant"])
    # the per-fold bars are the folds' in-sample and out-of-sample APYs
    from trimtab.reports.sweepdata import load_sweep

    fig = charts.fig_is_vs_oos(load_sweep(walk_forward_dir), "apy")
    assert list(fig.data[0].y) == list(folds.sort_values("fold")["is_apy"])
    assert list(fig.data[1].y) == list(folds.sort_values("fold")["oos_apy"])
