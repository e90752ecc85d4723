"""The hourly loader on the committed real-data bundle (data/): clock, as-of, events, gaps."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
try:
    import trimtab  # noqa: F401
except ImportError:  # not installed: run from the source tree
    sys.path.insert(0, str(REPO / "src"))

from trimtab.data.clock import daily_to_hourly_geometric  # noqa: E402
from trimtab.data.feed import (  # noqa: E402
    DEFAULT_DATA_DIR, DataError, Gap, MarketData, load_market_data,
)

DATA = REPO / "data"
UTC = "UTC"


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz=UTC)


@pytest.fixture(scope="module")
def md() -> MarketData:
    return load_market_data(DATA)


def rows(name: str) -> pd.DataFrame:
    """The stored observations of one series, straight from its parquet file."""
    return pq.read_table(DATA / "series" / f"{name}.parquet").to_pandas()


# -- bundle ---------------------------------------------------------------------
def test_bundle_exists_and_is_compact():
    assert (DATA / "manifest.json").is_file() and (DATA / "static.json").is_file()
    assert (DATA / "README.md").is_file()
    size = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert size < 20e6, f"bundle is {size / 1e6:.1f} MB"
    if "TRIMTAB_DATA" not in os.environ:
        assert DEFAULT_DATA_DIR.resolve() == DATA.resolve()


def test_all_contract_series_load(md):
    expected = {
        "perp.binance.ETHUSDT", "perp.bybit.ETHUSDT", "perp.okx.ETHUSDT", "perp.binance.BTCUSDT",
        "perp.bybit.BTCUSDT", "spot.binance.BTCUSDT", "spot.bybit.BTCUSDT", "spot.bybit.ETHUSDT",
        "dex.uniswapv3.WETHUSDT", "dex.uniswapv3.EIGENWETH", "dex.uniswapv3.ETHFIWETH",
        "funding.binance.ETHUSDT", "funding.bybit.ETHUSDT", "funding.okx.ETHUSDT",
        "funding.binance.BTCUSDT", "funding.bybit.BTCUSDT", "funding.okx.BTCUSDT",
        "oracle.WETH_USD", "oracle.weETH_USD", "oracle.wstETH_USD", "oracle.USDT_USD",
        "oracle.weETH_ETH", "oracle.wstETH_ETH", "aave.USDT", "aave.WETH", "aave.weETH", "aave.wstETH",
        "gas.ethereum", "staking.weETH", "staking.wstETH", "benchmark.susde",
    }
    assert set(md.series_names()) == expected
    assert md.fields("perp.okx.ETHUSDT") == ["open", "high", "low", "close", "volume"]
    assert md.fields("funding.okx.BTCUSDT") == ["rate"]
    assert md.fields("aave.weETH") == ["liquidity_index", "variable_borrow_index", "liquidity_rate",
                                       "variable_borrow_rate"]
    assert md.fields("gas.ethereum") == ["gas_price_gwei", "base_fee_gwei"]
    assert md.fields("benchmark.susde") == ["apy", "apr"]
    assert md.index.tz is not None and str(md.index.tz) == UTC
    assert (np.diff(md.epoch) == 3600).all() and md.epoch.dtype == np.int64
    assert set(md.static) >= {"aave_risk_params", "cex_margin", "gas_units", "execution_costs_bps",
                              "etherfi_rewards"}
    for name in md.series_names():
        for f in md.fields(name):
            v = md.field(f"{name}.{f}")
            assert v.shape == md.index.shape and v.dtype == np.float64
            assert not (v == 0).all()


# -- known facts (shared/data/README.md) -----------------------------------------
def test_weeth_eth_oracle_known_values(md):
    r = md.field("oracle.weETH_ETH.price")
    # first midnight sample (the 2024-05-12 hourly rows interpolate towards it) and the last one
    assert r[md.position("2024-05-13 00:00")] == pytest.approx(1.0382, abs=1e-4)
    assert np.isnan(r[md.position("2024-05-12 12:00")])
    assert r[md.position("2025-09-29 00:00")] == pytest.approx(1.0779, abs=1e-4)
    assert md.coverage("oracle.weETH_ETH") == (ts("2024-05-13"), ts("2025-09-29"))


def test_eth_crash_2024_08_05_is_visible(md):
    w = md.field("oracle.WETH_USD.price")
    before = w[md.position("2024-08-04 00:00")]
    # the oracle is daily: the sample taken at the end of 2024-08-05 is > 15% down
    assert w[md.position("2024-08-06 00:00")] / before - 1 < -0.15
    # intraday, the market bars show the crash during 2024-08-05
    day = slice(md.position("2024-08-05 01:00"), md.position("2024-08-06 00:00") + 1)
    for s in ("perp.binance.ETHUSDT", "perp.bybit.ETHUSDT", "spot.bybit.ETHUSDT", "dex.uniswapv3.WETHUSDT"):
        assert np.nanmin(md.field(f"{s}.low")[day]) / before - 1 < -0.15, s


# -- gaps -------------------------------------------------------------------------
def test_okx_perp_outages_are_reported_gaps(md):
    gaps = md.gaps("perp.okx.ETHUSDT")
    # last bar before each hole opens 15:00 (known 16:00); the first after opens 16:00 (known 17:00)
    assert gaps == [
        Gap("perp.okx.ETHUSDT", ts("2024-08-31 16:00"), ts("2024-09-30 17:00"), 721.0),
        Gap("perp.okx.ETHUSDT", ts("2025-03-31 16:00"), ts("2025-04-30 17:00"), 721.0),
    ]
    close, age = md.field("perp.okx.ETHUSDT.close"), md.age_hours("perp.okx.ETHUSDT")
    inside = slice(md.position("2024-08-31 16:00"), md.position("2024-09-30 17:00"))
    assert (close[inside] == close[md.position("2024-08-31 16:00")]).all()      # held, never zero
    assert age[md.position("2024-09-30 16:00")] == 720.0
    assert age[md.position("2024-09-30 17:00")] == 0.0
    assert np.isnan(close[: md.position("2024-08-01 01:00")]).all()             # before coverage: NaN
    assert age[md.position("2024-08-01 00:00")] == np.inf
    # clipped to a window, and a window without holes has none
    assert md.gaps("perp.okx.ETHUSDT", "2024-09-10", "2024-09-20") == [
        Gap("perp.okx.ETHUSDT", ts("2024-09-10"), ts("2024-09-20"), 240.0)]
    assert md.gaps("perp.okx.ETHUSDT", "2024-10-01", "2025-03-01") == []
    # a larger factor hides nothing here, a huge one hides both
    assert len(md.gaps("perp.okx.ETHUSDT", factor=100)) == 2
    assert md.gaps("perp.okx.ETHUSDT", factor=1000) == []


def test_binance_missing_days_and_okx_funding_conflicts_are_gaps(md):
    g = md.gaps("perp.binance.ETHUSDT")
    assert len(g) == 15 and all(x.hours == 24.0 for x in g)
    assert md.gaps("perp.bybit.ETHUSDT") == []
    f = md.gaps("funding.okx.ETHUSDT")
    assert Gap("funding.okx.ETHUSDT", ts("2024-07-31 16:00"), ts("2024-09-01 00:00"), 752.0) in f
    # 2025-03-29 .. 2025-06-09: every event had two different rates -> dropped -> a gap, not a guess
    assert Gap("funding.okx.ETHUSDT", ts("2025-03-28 16:00"), ts("2025-06-10 00:00"), 1760.0) in f
    assert np.isnan(md.field("funding.okx.ETHUSDT.rate")[
        md.position("2025-03-29 00:00"):md.position("2025-06-10 00:00")]).all()


# -- no look-ahead -----------------------------------------------------------------
def test_bar_close_appears_at_open_plus_1h_not_before(md):
    bars = rows("perp.binance.ETHUSDT")
    close = md.field("perp.binance.ETHUSDT.close")
    opens = pd.DatetimeIndex(bars["ts"]).as_unit("s").asi8
    at_close = (opens + 3600 - md.epoch[0]) // 3600
    ok = at_close < len(md.epoch)
    assert np.array_equal(close[at_close[ok]], bars["close"].to_numpy()[ok])
    assert (md.age_hours("perp.binance.ETHUSDT")[at_close[ok]] == 0).all()
    # at the open tick the bar is unknown: the value is the previous bar's close
    prev = np.r_[False, np.diff(opens) == 3600]
    at_open = at_close - 1
    assert np.array_equal(close[at_open[prev]], bars["close"].to_numpy()[np.nonzero(prev)[0] - 1])
    # the crash bar opened 2024-08-05 00:00 (close 2526.04) shows at 01:00, not at 00:00
    assert close[md.position("2024-08-05 01:00")] == 2526.04
    assert close[md.position("2024-08-05 00:00")] == 2687.60


def test_funding_only_at_settlement_ticks(md):
    for s in ("funding.binance.ETHUSDT", "funding.bybit.BTCUSDT", "funding.okx.ETHUSDT"):
        f = md.field(f"{s}.rate")
        hours = md.index[~np.isnan(f)].hour
        assert set(hours) == {0, 8, 16}, s
        assert (~np.isnan(f)).sum() == len(rows(s))
    f = md.field("funding.binance.ETHUSDT.rate")
    assert f[md.position("2024-01-01 00:00")] == 0.00027858
    assert np.isnan(f[md.position("2024-01-01 01:00")])
    assert md.age_hours("funding.binance.ETHUSDT")[md.position("2024-01-01 07:00")] == 7.0


def test_oracle_is_daily_samples_without_interpolated_hours(md):
    w = md.field("oracle.WETH_USD.price")
    day = slice(md.position("2024-08-05 00:00"), md.position("2024-08-06 00:00"))
    assert (w[day] == w[md.position("2024-08-05 00:00")]).all()          # no glide towards 08-06
    assert list(md.age_hours("oracle.WETH_USD")[day]) == [float(h) for h in range(24)]
    assert (pd.DatetimeIndex(rows("oracle.WETH_USD")["ts"]).hour == 0).all()


def test_daily_aggregates_available_next_midnight(md):
    a = md.field("staking.weETH.apr")
    r = rows("staking.weETH")
    first = r.iloc[0]
    assert pd.Timestamp(first["ts"]) == ts("2024-05-12")
    assert np.isnan(a[md.position("2024-05-12 23:00")])
    assert a[md.position("2024-05-13 00:00")] == first["apr"]
    w = rows("staking.wstETH")
    assert w["ts"].is_monotonic_increasing and not w["ts"].duplicated().any()
    last_of_day = w[pd.DatetimeIndex(w["ts"]).normalize() == ts("2024-06-01")].iloc[-1]
    assert md.field("staking.wstETH.apr")[md.position("2024-06-02 00:00")] == last_of_day["apr"]


def test_gas_available_at_block_time(md):
    g = rows("gas.ethereum")
    assert (g["avail"] >= g["ts"]).all()
    k = int(np.nonzero((g["avail"] > g["ts"]).to_numpy())[0][0])     # a row whose block is after its label
    late, prev = g.iloc[k], g.iloc[k - 1]
    i = md.position(late["ts"])
    gas = md.field("gas.ethereum.gas_price_gwei")
    assert gas[i] == prev["gas_price_gwei"]                           # not yet known at its label
    assert md.age_hours("gas.ethereum")[i] == (pd.Timestamp(late["ts"]) - pd.Timestamp(prev["avail"])) / pd.Timedelta("1h")


# -- geometric interpolation ---------------------------------------------------------
def test_daily_to_hourly_geometric_on_hand_made_samples():
    times = pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-03"], tz=UTC)
    vals = np.array([1.0, 1.21, 1.331])
    hourly = pd.date_range("2023-12-31 23:00", "2024-01-03 02:00", freq="h", tz=UTC)
    out = daily_to_hourly_geometric(times, vals, hourly)
    pos = {t: i for i, t in enumerate(hourly)}
    assert np.isnan(out[pos[ts("2023-12-31 23:00")]])
    for t, v in zip(times, vals):
        assert out[pos[t]] == v                                       # exact at samples
    assert out[pos[ts("2024-01-01 12:00")]] == pytest.approx(1.1, rel=1e-15)   # sqrt(1 * 1.21)
    day1 = out[pos[ts("2024-01-01 00:00")]:pos[ts("2024-01-02 00:00")] + 1]
    assert np.allclose(np.diff(np.log(day1)), np.log(1.21) / 24, rtol=1e-12, atol=0)   # constant growth
    assert out[pos[ts("2024-01-03 02:00")]] == 1.331                  # held after the last sample
    with pytest.raises(ValueError):
        daily_to_hourly_geometric(times, np.array([1.0, -1.0, 2.0]), hourly)
    with pytest.raises(ValueError):
        daily_to_hourly_geometric(times[::-1], vals, hourly)


def test_aave_daily_index_accrues_from_the_last_sample_at_its_rate(md):
    # Issue 13: an Aave index between daily samples is the last sample accrued at the rate in
    # force then (MathUtils: liquidity linear, borrow compounded), never the next day's sample.
    r = rows("aave.WETH")
    li = md.field("aave.WETH.liquidity_index")
    bi = md.field("aave.WETH.variable_borrow_index")
    mid = [md.position(t) for t in r["avail"]]
    assert np.array_equal(li[mid], r["liquidity_index"].to_numpy())
    assert np.array_equal(bi[mid], r["variable_borrow_index"].to_numpy())
    a, b = md.position("2024-03-01 00:00"), md.position("2024-03-02 00:00")
    lr = md.field("aave.WETH.liquidity_rate")[a]
    br = md.field("aave.WETH.variable_borrow_rate")[a]
    assert li[a + 6] == pytest.approx(li[a] * (1 + lr * 6 * 3600 / (365 * 86400)), rel=1e-15)
    n, x = 6 * 3600, br / (365 * 86400)
    assert bi[a + 6] == pytest.approx(bi[a] * (1 + n * x + n * (n - 1) * x * x / 2 + n * (n - 1) * (n - 2) * x ** 3 / 6), rel=1e-15)
    assert li[a + 6] != pytest.approx(li[a] ** 0.75 * li[b] ** 0.25, rel=1e-12)   # not the interpolation toward day b
    assert md.age_hours("aave.WETH")[a + 6] == 6.0
    # rates are as-of (step), not interpolated
    rate = md.field("aave.WETH.variable_borrow_rate")
    assert (rate[a:b] == rate[a]).all()
    # after the last sample: still accruing at the last rate, and stale
    end = md.position(md.index[-1])
    assert li[end] >= r["liquidity_index"].iloc[-1]
    assert md.age_hours("aave.WETH")[end] > 0
    # weETH/wstETH come from the hourly files, reduced to their midnight samples: same convention
    assert md.age_hours("aave.weETH")[md.position("2024-06-01 05:00")] == 5.0


# -- API behaviour ------------------------------------------------------------------
def test_errors_name_the_key_and_close_matches(md):
    with pytest.raises(DataError, match=r"unknown series 'perp\.binance\.ETHUSD'.*perp\.binance\.ETHUSDT"):
        md.field("perp.binance.ETHUSD.close")
    with pytest.raises(DataError, match=r"no field 'clse'.*did you mean: close"):
        md.field("perp.binance.ETHUSDT.clse")
    with pytest.raises(DataError, match="must be '<series>.<column>'"):
        md.field("close")
    with pytest.raises(DataError, match="oracle.weETH_ETH"):
        md.age_hours("oracle.weETH_EHT")
    with pytest.raises(DataError, match=r"unknown series 'aave\.USDC'"):
        load_market_data(DATA, series=["aave.USDC"])
    with pytest.raises(DataError, match="manifest.json missing"):
        load_market_data(DATA / "no_such_dir")
    small = load_market_data(DATA, series=["gas.ethereum"])
    with pytest.raises(DataError, match="in the bundle but was not loaded"):
        small.field("perp.okx.ETHUSDT.close")


def test_position_slice_and_cache(md):
    assert md.position(md.index[0]) == 0
    assert md.position("2024-08-05T03:00Z") == md.index.get_loc(ts("2024-08-05 03:00"))
    with pytest.raises(DataError, match="not on an hourly tick"):
        md.position("2024-08-05 03:30")
    with pytest.raises(DataError, match="outside the clock"):
        md.position("2023-01-01")
    sub = md.slice("2024-08-01", "2024-08-10 12:00")
    assert sub.index[0] == ts("2024-08-01") and sub.index[-1] == ts("2024-08-10 12:00")
    i = md.position("2024-08-01")
    for f in ("perp.okx.ETHUSDT.close", "aave.USDT.variable_borrow_index", "funding.okx.BTCUSDT.rate"):
        assert np.array_equal(sub.field(f), md.field(f)[i:i + len(sub.index)], equal_nan=True)
    a = md.field("perp.binance.ETHUSDT.close")
    assert md.field("perp.binance.ETHUSDT.close") is a and not a.flags.writeable
    w = load_market_data(DATA, start="2024-09-01", end=pd.Timestamp("2024-09-02", tz=UTC),
                         series=["perp.okx.ETHUSDT", "oracle.WETH_USD"])
    assert len(w.index) == 25 and w.series_names() == ["oracle.WETH_USD", "perp.okx.ETHUSDT"]
    assert w.gaps("perp.okx.ETHUSDT")[0].hours == 24.0
    default = load_market_data(DATA, series=["perp.okx.ETHUSDT"])
    assert default.index[0] == ts("2024-08-01 01:00") and default.index[-1] == ts("2025-09-01 00:00")
