"""Shared fixtures: the real bundled data, loaded once, and one flagship run reused by the
integration tests (running it costs seconds; every test reads its journal)."""
from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"
MODES = ["pure_lending_usdt", "btc_basis", "eth_basis", "eth_staking_only", "eth_leveraged",
         "usdt_eth_staking_hedged_simple", "usdt_eth_staking_hedged_leveraged",
         "ml_btc_directional_usdt_margin", "ml_usdt_directional_usdt_margin"]


def rows(db_path, q: str) -> list[tuple]:
    """Every row of query ``q`` on the SQLite file ``db_path`` (a run's journal), connection closed after."""
    db = sqlite3.connect(db_path)
    try:
        return db.execute(q).fetchall()
    finally:
        db.close()


@pytest.fixture(scope="session")
def market():
    from trimtab.data.feed import load_market_data

    return load_market_data()


@pytest.fixture(scope="session")
def mode_runs(market, tmp_path_factory):
    """Each seed mode over the longest window its data allows (the default window); shared by
    the mode tests and the golden-results test."""
    from trimtab.config.load import load_strategy
    from trimtab.engine.backtest import run_backtest

    out = tmp_path_factory.mktemp("modes")
    return {m: run_backtest(load_strategy(ROOT / "configs" / f"{m}.yaml"), out=out, run_id=m, data=market) for m in MODES}


@pytest.fixture(scope="session")
def flagship():
    from trimtab.config.load import load_strategy

    return load_strategy(FLAGSHIP)


@pytest.fixture(scope="session")
def flagship_run(flagship, market, tmp_path_factory):
    """The issue's acceptance window: 2024-06-01 -> 2025-09-01, shipped parameters."""
    from trimtab.engine.backtest import run_backtest

    out = tmp_path_factory.mktemp("runs")
    return run_backtest(flagship, start="2024-06-01", end="2025-09-01", out=out, run_id="flagship", data=market)


@pytest.fixture(scope="session")
def journal(flagship_run):
    db = sqlite3.connect(flagship_run.run_dir / "journal.sqlite")
    db.row_factory = sqlite3.Row
    yield db
    db.close()


class Stages:
    """The engine's stages over a real-data window, without the loop: for unit tests."""

    def __init__(self, strategy, market, start, end):
        from trimtab.accounting.attribution import Attribution
        from trimtab.accounting.book import Book
        from trimtab.engine.executor import Executor
        from trimtab.data.market import MarketView
        from trimtab.engine.monitors import Monitors
        from trimtab.planner.compile import Planner
        from trimtab.venues.pricing import Pricing
        from trimtab.venues.sim import SimVenues

        self.strategy = strategy
        self.data = market.slice(start, end)
        self.view = MarketView(self.data, set())
        self.px = Pricing(strategy, self.view)
        self.sim = SimVenues(strategy, self.px, self.data.static)
        self.view.add_fields(self.px.fields() | self.sim.fields())
        self.book = Book()
        self.attr = Attribution()
        self.fills = []
        self.steps = []
        self.ex = Executor(self.px, self.sim, self.book, self.attr, on_fill=self.fills.append,
                           on_step=lambda *a: self.steps.append(a))
        self.planner = Planner(strategy, self.px, self.sim)
        self.monitors = Monitors(strategy, self.px, self.sim, self.book)

    def fund(self, amount, key="wallet:BaseToken:USDT"):
        from trimtab.accounting.book import Fill, Leg

        self.book.apply(Fill(0, "wallet", "deposit_capital", "capital", [Leg(key, amount, amount)]))

    def equity(self):
        return self.monitors.equity()


@pytest.fixture
def no_secrets(monkeypatch):
    """No ``TRIMTAB_*`` secret loaded for the test: a journal runs in a writer process only
    without one (trimtab.engine.journal.Journal), and earlier tests in the process may have
    registered some (trimtab.secrets keeps them for the process's life)."""
    from trimtab import secrets

    monkeypatch.setattr(secrets, "_registered", set())
    for name in [k for k in os.environ if k.startswith("TRIMTAB_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def stages(flagship, market):
    return lambda start, end, strategy=None: Stages(strategy or flagship, market, start, end)


def copy_project(tmp_path: Path) -> Path:
    """A copy of the project's YAML folders (configs, machines, rules, venues) under ``tmp_path``,
    for tests that change one venue fact and see the code follow it."""
    for d in ("configs", "machines", "rules", "venues"):
        shutil.copytree(ROOT / d, tmp_path / d)
    return tmp_path


def edit_venue(root: Path, venue: str, old: str, new: str) -> None:
    """Replace ``old`` (which must occur exactly once) by ``new`` in ``root/venues/<venue>.yaml``."""
    f = root / "venues" / f"{venue}.yaml"
    text = f.read_text()
    assert text.count(old) == 1, f"{old!r} not once in {f}"
    f.write_text(text.replace(old, new))
