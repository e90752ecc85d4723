"""The metric registry against what runs publish: every shipped config, a short real run.

Each shipped config (strategies, the drift basket, the portfolio of strategies and its sleeves)
runs three days at the start of its data window on the bundled data. The metric names in its
journal -- ``metrics.data`` of every ``journal.sqlite``, ``decisions.metrics`` of a portfolio's
``portfolio.sqlite`` -- must be exactly the names :mod:`trimtab.metrics` declares for that
config (nothing computed undeclared), and over all shipped configs every declaration, single
metric or family, must have been published (nothing declared never computed).
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from conftest import rows
from trimtab.config.load import load_strategy, metric_members
from trimtab.engine.backtest import run_backtest
from trimtab.engine.journal import read_metrics
from trimtab.engine.window import default_window
from trimtab.metrics import REGISTRY, Family, Scope, expand, lookup
from trimtab.portfolio.config import is_basket_file, is_portfolio_file, load_portfolio
from trimtab.portfolio.drift import run_drift
from trimtab.portfolio.runner import run_portfolio
from trimtab.portfolio.window import portfolio_window

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
DAYS = pd.Timedelta(days=3)


def declared_for(strategy) -> set[str]:
    """What the registry says this strategy publishes: the names its config checks accept in
    rules (perp venues and basket tokens as family members)."""
    return set(expand(Scope.STRATEGY, metric_members(strategy.config, strategy.venues)))


def journal_names(db: Path, sql: str) -> set[str]:
    """Every metric name of every row of ``sql`` (one JSON object per row) on ``db``."""
    got: set[str] = set()
    for (data,) in rows(db, sql):
        got |= set(json.loads(data))
    assert got, f"{db}: no metrics rows"
    return got


def strategy_metric_names(db: Path) -> set[str]:
    """Every metric name any tick of a strategy journal holds (its metric columns, read back)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        got = set().union(*(r.metrics.keys() for r in read_metrics(con)))
    finally:
        con.close()
    assert got, f"{db}: no metrics rows"
    return got


@pytest.fixture(scope="module")
def published(market, tmp_path_factory) -> dict[str, tuple[Scope, set[str], set[str]]]:
    """``{journal: (scope, names published, names declared)}`` over every shipped config."""
    out = tmp_path_factory.mktemp("metric_runs")
    found = {}
    for name in CONFIGS:
        path = ROOT / "configs" / name
        if is_portfolio_file(path):
            p = load_portfolio(path)
            t0, _ = portfolio_window(p, market)
            run_portfolio(path, start=t0, end=t0 + DAYS, out=out, run_id=path.stem, data=market)
            run_dir = out / path.stem
            found[f"{name}:portfolio"] = (Scope.PORTFOLIO, journal_names(run_dir / "portfolio.sqlite", "SELECT metrics FROM decisions"),
                                          set(expand(Scope.PORTFOLIO, {})))
            for spec, s in p.sleeves:
                j = run_dir / "sleeves" / spec.id / "journal.sqlite"
                found[f"{name}:{spec.id}"] = (Scope.STRATEGY, strategy_metric_names(j), declared_for(s))
            continue
        s = load_strategy(path)
        t0, _ = default_window(s, market)
        run = run_drift if is_basket_file(path) else run_backtest
        res = run(s, start=t0, end=t0 + DAYS, out=out, run_id=path.stem, data=market)
        found[name] = (Scope.STRATEGY, strategy_metric_names(res.run_dir / "journal.sqlite"), declared_for(s))
    return found


def test_every_shipped_config_ran():
    assert len(CONFIGS) >= 10, CONFIGS  # the shipped strategies, the basket and the portfolio


@pytest.mark.parametrize("name", CONFIGS)
def test_a_run_publishes_exactly_the_declared_metrics(name, published):
    mine = {k: v for k, v in published.items() if k == name or k.startswith(name + ":")}
    assert mine, f"{name} was not run"
    for journal, (scope, got, want) in mine.items():
        assert got - want == set(), f"{journal}: published but not declared in trimtab.metrics"
        assert want - got == set(), f"{journal}: declared but not published"
        assert all(lookup(n, scope) is not None for n in got), journal


def test_every_declaration_is_published_by_some_shipped_config(published):
    seen = {(scope, lookup(n, scope)) for scope, got, _ in published.values() for n in got}
    never = [f"{d.scope.value}:{d.name}" for d in REGISTRY if (d.scope, d) not in seen]
    assert never == [], f"declared in trimtab.metrics, published by no shipped config: {never}"
    # the families are exercised with real members
    members = {n for scope, got, _ in published.values() for n in got if isinstance(lookup(n, scope), Family)}
    assert any(n.startswith("margin_ratio.") for n in members) and any(n.startswith("drift.") for n in members), members
