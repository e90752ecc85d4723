"""Golden results: every shipped config's fills, transitions and final equity, pinned.

Structure and speed work (issues 12 and 14) must not change what a strategy does. Each shipped
config runs over its default window on the bundled data and is compared with
``tests/golden/<config>.json``: the final equity (to 1e-9 relative), the number of fills and a
digest of every fill (tick, venue, operation, category, price, legs; floats to 10 significant
digits so a reordered sum is not a change), and the full list of transitions (tick, from, to,
trigger). Plan ids are left out: they are content hashes that issue 14 may make cheaper.

A deliberate behaviour change regenerates the files with
``TRIMTAB_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/integration/test_golden.py`` and the
commit says why the numbers moved.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from conftest import MODES as STRATEGIES
from trimtab.config.load import load_strategy

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("TRIMTAB_UPDATE_GOLDEN") == "1"
PORTFOLIOS = ("portfolio_drift", "portfolio_strategies")
# Every other shipped config (e.g. a template added after the seed modes), so a new config in
# configs/ is pinned without editing this file.
OTHERS = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml") if p.stem not in set(STRATEGIES) | set(PORTFOLIOS))


def _r(x):
    """Floats to 10 significant digits (None/str/int unchanged), recursively."""
    if isinstance(x, float):
        return float(f"{x:.10g}")
    if isinstance(x, (list, tuple)):
        return [_r(v) for v in x]
    return x


def fingerprint(run_dir: Path, final_equity: float) -> dict:
    """The golden record of one run directory: every ``journal.sqlite`` below it (a portfolio
    has one per sleeve), in path order."""
    journals = sorted(run_dir.rglob("journal.sqlite"))
    assert journals, f"no journal under {run_dir}"
    digest = hashlib.sha256()
    n_fills, transitions = 0, []
    for path in journals:
        rel = str(path.relative_to(run_dir))
        db = sqlite3.connect(path)
        try:
            for row in db.execute("SELECT tick, venue, operation, category, price, legs FROM fills ORDER BY fill_id"):
                tick, venue, op, cat, price, legs = row
                digest.update(json.dumps([rel, tick, venue, op, cat, _r(price), _r(json.loads(legs))]).encode())
                n_fills += 1
            transitions += [[rel, *r] for r in db.execute(
                "SELECT tick, source, dest, trigger FROM decisions WHERE trigger IS NOT NULL ORDER BY rowid")]
        finally:
            db.close()
    return {"final_equity": final_equity, "fills": n_fills, "fills_sha256": digest.hexdigest(), "transitions": transitions}


def check(name: str, got: dict) -> None:
    path = GOLDEN / f"{name}.json"
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"{path} is missing: create it with TRIMTAB_UPDATE_GOLDEN=1")
        path.write_text(json.dumps(got, indent=1) + "\n")
        return
    want = json.loads(path.read_text())
    assert got["final_equity"] == pytest.approx(want["final_equity"], rel=1e-9), name
    assert got["fills"] == want["fills"], name
    assert got["transitions"] == want["transitions"], name
    assert got["fills_sha256"] == want["fills_sha256"], f"{name}: the fills changed (same count, different content)"


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_matches_golden(name, mode_runs):
    run = mode_runs[name]
    check(name, fingerprint(run.run_dir, run.summary["final_equity"]))


@pytest.mark.parametrize("name", OTHERS)
def test_other_config_matches_golden(name, market, tmp_path):
    from trimtab.engine.backtest import run_backtest

    run = run_backtest(load_strategy(ROOT / "configs" / f"{name}.yaml"), out=tmp_path, run_id=name, data=market)
    check(name, fingerprint(run.run_dir, run.summary["final_equity"]))


def test_every_shipped_config_is_pinned():
    """Each configs/*.yaml has a golden file (a new config cannot slip past the pin)."""
    shipped = {p.stem for p in (ROOT / "configs").glob("*.yaml")}
    missing = sorted(n for n in shipped if not (GOLDEN / f"{n}.json").exists())
    assert not missing, f"no golden file for {missing}: create it with TRIMTAB_UPDATE_GOLDEN=1"


def test_drift_basket_matches_golden(market, tmp_path):
    from trimtab.portfolio.drift import run_drift

    run = run_drift(load_strategy(ROOT / "configs" / "portfolio_drift.yaml"), out=tmp_path, run_id="drift", data=market)
    check("portfolio_drift", fingerprint(run.run_dir, run.summary["final_equity"]))


def test_portfolio_of_strategies_matches_golden(market, tmp_path):
    from trimtab.portfolio.runner import run_portfolio

    res = run_portfolio(ROOT / "configs" / "portfolio_strategies.yaml", out=tmp_path, run_id="portfolio", data=market)
    check("portfolio_strategies", fingerprint(tmp_path / "portfolio", res.summary["final_equity"]))
