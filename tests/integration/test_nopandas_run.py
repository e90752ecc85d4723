"""`trimtab run` never imports pandas (a strategy, a strategy with a signal file, a drift basket),
and what it writes without pandas is what the pandas formulation gives: equity.csv byte for byte
(DataFrame.to_csv of the journal's series and metrics) and the summary's performance figures
float for float (the pandas resample / pct_change / mean / std formulation on the NAV)."""
from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pandas_reference import equity_table, pandas_performance  # noqa: E402

from trimtab.engine.journal import read_metrics  # noqa: E402
from trimtab.engine.results import equity_columns  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# Runs `trimtab run ...` with a finder that refuses pandas (and records the attempt, in case some
# caller catches the ImportError), then reports on stderr whether pandas was ever asked for.
GUARD = """
import sys
asked = []
class NoPandas:
    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            asked.append(name)
            raise ImportError("pandas imported during trimtab run")
        return None
sys.meta_path.insert(0, NoPandas())
sys.argv = ["trimtab"] + sys.argv[1:]
from trimtab.cli.main import app
try:
    app()
finally:
    sys.stderr.write(f"\\nPANDAS-ASKED {asked!r} LOADED {'pandas' in sys.modules}\\n")
"""


def run_without_pandas(config: str, out: Path) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, "-c", GUARD, "run", f"configs/{config}.yaml", "--start", "2025-01-01",
                           "--end", "2025-02-01", "--out", str(out), "--run-id", config, "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), proc.stderr


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("config", ["usdt_eth_staking_hedged_leveraged", "ml_btc_directional_usdt_margin", "portfolio_drift"])
def test_run_never_imports_pandas_and_writes_what_pandas_would(tmp_path, config):
    summary, stderr = run_without_pandas(config, tmp_path)
    assert "PANDAS-ASKED [] LOADED False" in stderr
    run_dir = tmp_path / config
    db = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        series = db.execute("SELECT tick, equity, nav FROM series ORDER BY tick").fetchall()
        times = dict(db.execute("SELECT tick, time FROM metrics"))
        header = (run_dir / "equity.csv").read_text().split("\n", 1)[0].split(",")
        venues = [c.split(".", 1)[1] for c in header if c.startswith("margin_ratio.")]
        rows = read_metrics(db, names=equity_columns(venues))
    finally:
        db.close()
    assert [t for t, _, _ in series] == list(range(len(series))) and len(series) > 24 * 28
    index = pd.DatetimeIndex(pd.to_datetime([times[t] for t, _, _ in series], utc=True))
    equity = pd.Series([e for _, e, _ in series], index=index)
    nav = pd.Series([n for _, _, n in series], index=index)

    reference = tmp_path / "reference.csv"
    equity_table(equity, nav, rows, venues).to_csv(reference, index_label="time")
    assert (run_dir / "equity.csv").read_bytes() == reference.read_bytes()

    perf = pandas_performance(nav)
    for k in ("apy", "apr", "max_drawdown", "sharpe"):
        assert same(summary[k], perf[k]), (k, summary[k], perf[k])
    assert summary["final_equity"] == equity.iloc[-1] and summary["final_nav"] == nav.iloc[-1]


def test_portfolio_run_never_imports_pandas_and_writes_what_pandas_would(tmp_path):
    """A portfolio of strategies (three sleeves, one a basket): no pandas in the process; its
    equity.csv is byte for byte the pandas frame of its journal's series and its summary's
    performance the pandas formulation on its equity."""
    summary, stderr = run_without_pandas("portfolio_strategies", tmp_path)
    assert "PANDAS-ASKED [] LOADED False" in stderr
    run_dir = tmp_path / "portfolio_strategies"
    db = sqlite3.connect(run_dir / "portfolio.sqlite")
    try:
        series = db.execute("SELECT tick, time, equity FROM series ORDER BY tick").fetchall()
        sleeve_rows = db.execute("SELECT tick, sleeve, equity FROM sleeve_series ORDER BY tick").fetchall()
    finally:
        db.close()
    assert [t for t, _, _ in series] == list(range(len(series))) and len(series) > 24 * 28
    index = pd.DatetimeIndex(pd.to_datetime([t for _, t, _ in series], utc=True))
    equity = pd.Series([e for _, _, e in series], index=index)
    sleeves = list(summary["sleeves"])
    eq = {k: [math.nan] * len(series) for k in sleeves}
    for t, k, e in sleeve_rows:
        eq[k][t] = e
    frame = pd.DataFrame({"equity": equity, "cash": None, **{f"sleeve.{k}": eq[k] for k in sleeves}}, index=index)
    frame["cash"] = equity - frame[[f"sleeve.{k}" for k in sleeves]].sum(axis=1)
    reference = tmp_path / "reference.csv"
    frame.to_csv(reference, index_label="time")
    assert (run_dir / "equity.csv").read_bytes() == reference.read_bytes()

    perf = pandas_performance(equity)
    for k in ("apy", "apr", "max_drawdown", "sharpe"):
        assert same(summary[k], perf[k]), (k, summary[k], perf[k])
    assert summary["final_equity"] == equity.iloc[-1]
    for k in sleeves:   # each sleeve's own run folder: its equity.csv and summary, written without pandas too
        assert (run_dir / "sleeves" / k / "equity.csv").is_file() and summary["sleeves"][k]["run_dir"].endswith(k)
