"""The portfolio's pandas-free statistics and equity.csv give pandas' very floats and bytes.

One real run of the shipped 3-sleeve portfolio over six weeks of the bundled data gives real
sleeve NAV and equity; each function of :mod:`trimtab.portfolio.daily` (and the portfolio's
``equity.csv``) is compared with the pandas operation it replaces, bit for bit -- also with
holes (NaN, a whole day missing, inf) punched into the real NAV, where pandas' skipping rules
matter.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trimtab.portfolio import daily
from trimtab.portfolio.allocation import constrain, correlation, daily_returns, erc_weights, method_targets, sleeve_stats
from trimtab.portfolio.equity_csv import write_portfolio_csv
from trimtab.portfolio.runner import PortfolioRunner

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pf(market, tmp_path_factory):
    """The finished runner of portfolio_strategies over 2025-01-01..2025-02-15."""
    out = tmp_path_factory.mktemp("pf_nopandas")
    runner = PortfolioRunner.start(ROOT / "configs" / "portfolio_strategies.yaml", out, "pf", "2025-01-01", "2025-02-15",
                                   data=market)
    runner.result = runner.run()
    return runner


def index_of(pf) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(pf.epoch, dtype=np.int64), unit="s", utc=True))


def holed(pf) -> dict[str, list[float]]:
    """The sleeves' real NAV with holes: single NaNs, one sleeve missing a whole day, every sleeve
    missing another whole day, a NaN at a day's first tick, and an inf at another."""
    navs = {k: list(v) for k, v in pf.nav.items()}
    a, b, c = navs
    for i in (5, 30, 31, 200):
        navs[a][i] = math.nan
    for i in range(24 * 3, 24 * 4):
        navs[b][i] = math.nan
    for k in navs:
        for i in range(24 * 10, 24 * 11):
            navs[k][i] = math.nan
    navs[c][24 * 12] = math.nan
    navs[c][24 * 15] = math.inf
    return navs


def same(x, y) -> bool:
    """Bit for bit (NaN matching NaN): float arrays of one shape."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return x.shape == y.shape and bool(np.all((x.view(np.int64) == y.view(np.int64)) | (np.isnan(x) & np.isnan(y))))


def frame_of(pf, navs) -> pd.DataFrame:
    return pd.DataFrame(navs, index=index_of(pf))


@pytest.mark.parametrize("holes", [False, True])
def test_daily_first_and_pct_change_are_pandas_resample_first_and_pct_change(pf, holes):
    navs = holed(pf) if holes else pf.nav
    n = len(pf.epoch)
    ref = frame_of(pf, navs).resample("1D").first().dropna(how="all")
    got = daily.daily_first(pf.epoch, navs, 0, n - 1)
    assert got.keys == tuple(ref.columns) and len(got) == len(ref) > 40
    assert list(got.day * daily.DAY) == list(ref.index.as_unit("s").asi8)
    assert same(got.values, ref.to_numpy().T)
    ret = daily.pct_change(got)
    assert same(ret.values, ref.pct_change().iloc[1:].to_numpy().T)
    if holes:   # the holes reach the result: a missing day, a NaN return, an inf return
        assert len(got) < n // 24 + 1 and np.isnan(ret.values).any() and np.isinf(ret.values).any()


def pandas_daily_returns(pf, navs, upto: int, lookback: int | None) -> pd.DataFrame:
    """The pandas formulation allocation.daily_returns had: resample, pct_change, the lookback's tail."""
    first = 0
    times = index_of(pf)
    if lookback:
        first = max(0, upto - (lookback + 2) * 24)
        while first > 0 and times[first].hour != 0:
            first -= 1
    df = pd.DataFrame({k: v[first: upto + 1] for k, v in navs.items()}, index=times[first: upto + 1])
    r = df.resample("1D").first().dropna(how="all").pct_change().iloc[1:]
    return r.tail(lookback) if lookback else r


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")   # inf - inf in the holes, pandas and numpy alike
@pytest.mark.parametrize("holes", [False, True])
def test_daily_returns_stats_cov_and_corr_are_pandas(pf, holes):
    navs = holed(pf) if holes else pf.nav
    n = len(pf.epoch)
    cases = 0
    for upto, lookback in ((n - 1, None), (n - 1, 30), (n - 1 - 24 * 5 - 13, 30), (24 * 20 + 5, 14)):
        ref = pandas_daily_returns(pf, navs, upto, lookback)
        got = daily_returns(pf.epoch, navs, upto, lookback)
        assert len(got) == len(ref) > 2 and same(got.values, ref.to_numpy().T)
        stats = sleeve_stats(got)
        for k in ref.columns:
            r = ref[k].dropna()
            assert same(stats[k]["vol"], r.std()) and same(stats[k]["mean"], r.mean()) and stats[k]["days"] == len(r)
        assert same(daily.corr(got), ref.corr().to_numpy())
        assert same(daily.cov(got), ref.cov().to_numpy())           # NaN rows: pandas' pairwise path
        clean = got.dropna()
        assert same(daily.cov(clean), ref.dropna().cov().to_numpy())  # none: np.cov
        c = correlation(got)
        for a in ref.columns:
            for b in ref.columns:
                v = ref.corr().loc[a, b]
                assert (c[a][b] is None) if pd.isna(v) else same(c[a][b], v)
        cases += 1
    assert cases == 4


def test_risk_parity_targets_match_the_pandas_inputs(pf):
    """method_targets on the numpy table equals the same call fed pandas' own cov and stats:
    the ERC weights are computed from bit-identical inputs."""
    n = len(pf.epoch)
    got = daily_returns(pf.epoch, pf.nav, n - 1, 30)
    ref = pandas_daily_returns(pf, pf.nav, n - 1, 30).dropna()
    base = {k: 1 / 3 for k in pf.nav}
    targets, info = method_targets("risk_parity", base, got, "equal_risk_contribution", 14)
    assert info["basis"] == "equal risk contribution"
    w = erc_weights(ref[list(base)].cov().to_numpy())
    assert [targets[k] for k in base] == [float(x) for x in w]
    inv, info = method_targets("risk_parity", base, got, "inverse_volatility", 14)
    vols = {k: max(float(ref[k].std()), 1e-8) for k in base}
    tot = sum(1 / v for v in vols.values())
    assert inv == {k: (1 / vols[k]) / tot for k in base}


def test_targets_are_recomputed_when_their_inputs_change(pf):
    """The runner keeps its constrained targets between ticks; they must follow the method's raw
    targets and the drawdown cuts, and each call hands out its own dict."""
    def fresh():
        return constrain(pf.method_raw, pf.lo, pf.hi, {k: pf.lo[k] for k in pf.cut})

    raw, cut = pf.method_raw, pf.cut
    keys = list(pf.base)
    try:
        t = pf.targets()
        assert t == fresh() and t is not pf.targets()
        t[keys[0]] = 99.0                      # a caller's copy: the next call is unaffected
        assert pf.targets() == fresh()
        pf.method_raw = dict(zip(keys, [0.7, 0.2, 0.1]))
        moved = pf.targets()
        assert moved == fresh() and moved != t
        pf.cut = [keys[2]]
        cut_one = pf.targets()
        assert cut_one == fresh() and cut_one[keys[2]] == pytest.approx(pf.lo[keys[2]]) and cut_one != moved
    finally:
        pf.method_raw, pf.cut = raw, cut


def test_equity_csv_is_what_pandas_to_csv_wrote(pf, tmp_path):
    last = pf.next_tick
    idx = pd.DatetimeIndex(pf.times[:last])
    # As the run has it, and with a NaN and an inf in a sleeve (pandas' sum skips the NaN).
    for eq in (pf.eq, {**pf.eq, "hedged": [math.nan, math.inf] + list(pf.eq["hedged"][2:])}):
        equity = pd.Series(pf.port_eq[:last], index=idx)
        frame = pd.DataFrame({"equity": equity, "cash": None, **{f"sleeve.{k}": eq[k][:last] for k in eq}}, index=idx)
        frame["cash"] = equity - frame[[f"sleeve.{k}" for k in eq]].sum(axis=1)
        frame.to_csv(tmp_path / "pandas.csv", index_label="time")
        write_portfolio_csv(tmp_path / "numpy.csv", [int(e) for e in pf.epoch[:last]], pf.port_eq[:last],
                            {k: v[:last] for k, v in eq.items()})
        assert (tmp_path / "numpy.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    assert (pf.run_dir / "equity.csv").read_bytes().count(b"\n") == last + 1
    text = (pf.run_dir / "equity.csv").read_text()
    assert text.splitlines()[0] == "time,equity,cash,sleeve.lending,sleeve.hedged,sleeve.basket"


def test_result_equity_is_the_hourly_portfolio_equity(pf):
    res = pf.result
    assert res.values == pf.port_eq[:pf.next_tick] and res.summary["final_equity"] == res.values[-1]
    eq = res.equity   # built with pandas on demand
    assert eq.dtype == np.float64 and eq.tolist() == res.values
    assert list(eq.index) == list(pd.DatetimeIndex(pf.times[:pf.next_tick]))


def test_write_portfolio_csv_refuses_ragged_columns(tmp_path):
    with pytest.raises(ValueError, match="differ in length"):
        write_portfolio_csv(tmp_path / "x.csv", [0, 3600], [1.0, 2.0], {"a": [1.0]})
