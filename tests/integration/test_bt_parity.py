"""Parity with the `bt` backtesting library (issue 6): the same calendar and threshold
rebalancing of ETH / BTC / cash on the bundled hourly data gives the same trades and the same
final equity as bt, to 1e-6 relative.

Both sides run without costs: trimtab's basket trades on ``frictionless_dex``
(tests/fixtures/parity/venues), which fills at the very series the wallet values each token at,
with no pool fee, no spread/slippage and no gas; bt runs with a zero commission and fractional
positions. Cash is a security priced 1.0 in bt (USDT), so both measure drift on all three
holdings. bt's semantics, read from bt 1.4.1 (bt/algos.py, bt/core.py) and mirrored here:

* ``RunMonthly`` / ``RunWeekly`` fire on the first date of the data and on the first date whose
  month / ISO week differs from the previous date's -- trimtab's ``calendar_due``;
* ``RunIfOutOfBounds(t)`` fires when any (weight - target) / target is outside [-t, t] (strictly)
  -- trimtab's ``max_drift > drift_threshold``;
* ``Rebalance`` trades every child by (target - weight) x value at the current price, all
  sizes computed before any trade -- trimtab's matched trades back to target (the ETH -> BTC
  legs through USDT net out to the same per-token changes at zero cost).

With costs on (the shipped ``configs/portfolio_drift.yaml``), trimtab's run differs from this
by design: every swap pays its pool's fee tier (0.05% WETH/USDT, 0.3% WBTC/USDT) plus the execution-cost table's spread and
slippage for its size, an ETH <-> BTC trade is two swaps (two fees, two gas charges), gas is
paid in ETH out of the basket, ETH fills at the Uniswap pool price while equity is valued at
the Bybit close, trades outside [trade_min_usd, trade_max_usd] are skipped or cut, the
slippage guard can hold a trade back, and a token with a stale price is not traded. bt's
commission function sees one security at a time, so it cannot express the two-leg path or gas.

Trades compared: per rebalance time and token, the net change in units (trimtab: the swap
fills of the rebalance, journal table ``rebalances``; bt: ``get_transactions()``, where bt's
cash and its USDT security together are trimtab's wallet USDT); amounts worth under 1e-6 USD
are rounding, not trades (bt trades anything above 1e-16).
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

bt = pytest.importorskip("bt")

# bt's statistics package (ffn) asks pandas for an inferred frequency in a deprecated way.
pytestmark = pytest.mark.filterwarnings("ignore:A future version of pandas will return a BaseOffset")

from trimtab.config.load import load_strategy  # noqa: E402
from trimtab.portfolio.drift import run_drift  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "parity"
WEIGHTS = {"ETH": 0.4, "BTC": 0.4, "USDT": 0.2}
FIELDS = {"ETH": "spot.bybit.ETHUSDT.close", "BTC": "spot.binance.BTCUSDT.close"}
REL = 1e-6


def _config(tmp_path: Path, calendar: str, threshold: float) -> Path:
    """A project root in tmp_path (machines/rules shipped, venues from the fixture) holding a
    variant of the parity config."""
    root = tmp_path / "proj"
    (root / "configs").mkdir(parents=True)
    for d, target in (("machines", ROOT / "machines"), ("rules", ROOT / "rules"), ("venues", FIXTURE / "venues")):
        os.symlink(target, root / d)
    text = (FIXTURE / "configs" / "parity.yaml").read_text()
    text = text.replace("drift_threshold: 0.05", f"drift_threshold: {threshold!r}").replace("calendar: none", f"calendar: {calendar}")
    path = root / "configs" / "parity.yaml"
    path.write_text(text)
    return path


def _trimtab(tmp_path, market, calendar, threshold, start, end):
    s = load_strategy(_config(tmp_path, calendar, threshold))
    r = run_drift(s, start=start, end=end, out=tmp_path / "runs", run_id="parity", data=market)
    db = sqlite3.connect(r.run_dir / "journal.sqlite")
    trades = {}
    for t, status, amounts in db.execute("SELECT time, status, amounts FROM rebalances ORDER BY tick"):
        assert status in ("SUCCESS", "NOOP"), (t, status)
        trades[pd.Timestamp(t.replace("Z", "")).tz_localize(None)] = {k.split(":")[-1]: v for k, v in json.loads(amounts).items()}
    db.close()
    return r, trades


def _bt(market, start, end, algos):
    w = market.slice(start, end)
    prices = pd.DataFrame({k: w.field(f) for k, f in FIELDS.items()}, index=w.index.tz_localize(None))
    prices["USDT"] = 1.0
    assert not prices.isna().any().any()
    s = bt.Strategy("s", algos + [bt.algos.Rebalance()])
    res = bt.run(bt.Backtest(s, prices, initial_capital=100000.0, integer_positions=False, commissions=lambda q, p: 0.0,
                             progress_bar=False))
    tx = res.get_transactions()
    trades: dict = {}
    for (date, sec), row in tx.iterrows():
        d = trades.setdefault(pd.Timestamp(date), {})
        d[sec] = d.get(sec, 0.0) + float(row["quantity"])
    # bt keeps cash apart from the USDT security; trimtab's wallet USDT is both. At zero cost the
    # cash pays for every trade, so the wallet's USDT change is -(ETH and BTC bought x price).
    for date, d in trades.items():
        d["USDT"] = -sum(q * prices.loc[date, k] for k, q in d.items() if k != "USDT")
    return res.backtests["s"].strategy.values.iloc[-1], trades, prices


def _compare(trim, bt_trades, prices, final_trim, final_bt):
    def real(tr, when):
        return {k: q for k, q in tr.items() if abs(q * prices.loc[when, k]) > 1e-6}

    a = {t: real(v, t) for t, v in trim.items() if real(v, t)}
    b = {t: real(v, t) for t, v in bt_trades.items() if real(v, t)}
    assert sorted(a) == sorted(b), (sorted(set(a) ^ set(b)))[:5]
    for t in a:
        assert set(a[t]) == set(b[t]), (t, a[t], b[t])
        for k, q in a[t].items():
            assert q == pytest.approx(b[t][k], rel=REL, abs=1e-9), (t, k, q, b[t][k])
    assert final_trim == pytest.approx(final_bt, rel=REL)
    return len(a)


def test_monthly_calendar_matches_bt(tmp_path, market):
    """Monthly calendar rebalancing over the whole bundled window (Jan 2024 - Sep 2025)."""
    start, end = "2024-01-01T01:00", "2025-09-26T00:00"
    r, trim = _trimtab(tmp_path, market, "monthly", 1.0e9, start, end)
    final_bt, bt_trades, prices = _bt(market, start, end, [bt.algos.RunMonthly(), bt.algos.SelectAll(),
                                                            bt.algos.WeighSpecified(**WEIGHTS)])
    n = _compare(trim, bt_trades, prices, r.summary["final_equity"], final_bt)
    assert n == 21  # the first tick and the first tick of each of the 20 following months
    assert r.summary["reconciliation_error"] < 1e-6 and r.summary["positions_match_fills"]


def test_weekly_calendar_matches_bt(tmp_path, market):
    # bt's calendar algos never run on the data's last date (run_on_last_date=False); trimtab
    # would rebalance a last tick that starts a week, so the window ends on a Sunday.
    start, end = "2024-01-01T01:00", "2024-06-30T23:00"
    r, trim = _trimtab(tmp_path, market, "weekly", 1.0e9, start, end)
    final_bt, bt_trades, prices = _bt(market, start, end, [bt.algos.RunWeekly(), bt.algos.SelectAll(),
                                                            bt.algos.WeighSpecified(**WEIGHTS)])
    assert _compare(trim, bt_trades, prices, r.summary["final_equity"], final_bt) >= 26


def test_threshold_matches_bt(tmp_path, market):
    """5% drift threshold, checked every hour, through the August 2024 crash (a window without
    BTC data gaps: bt trades through a gap at the held price, trimtab's health gate would not)."""
    start, end = "2024-07-25T00:00", "2024-09-01T00:00"
    r, trim = _trimtab(tmp_path, market, "none", 0.05, start, end)
    final_bt, bt_trades, prices = _bt(market, start, end, [bt.algos.SelectAll(), bt.algos.WeighSpecified(**WEIGHTS),
                                                            bt.algos.RunIfOutOfBounds(0.05)])
    assert _compare(trim, bt_trades, prices, r.summary["final_equity"], final_bt) >= 3


def test_calendar_or_threshold_matches_bt(tmp_path, market):
    """Both triggers at once: bt's Or([RunWeekly, RunIfOutOfBounds]) = the drift machine's two transitions."""
    start, end = "2024-07-25T00:00", "2024-09-01T00:00"
    r, trim = _trimtab(tmp_path, market, "weekly", 0.05, start, end)
    final_bt, bt_trades, prices = _bt(market, start, end, [bt.algos.SelectAll(), bt.algos.WeighSpecified(**WEIGHTS),
                                                            bt.algos.Or([bt.algos.RunWeekly(), bt.algos.RunIfOutOfBounds(0.05)])])
    n = _compare(trim, bt_trades, prices, r.summary["final_equity"], final_bt)
    assert n >= 8
