"""Market-data checks (trimtab.data.quality) and quarantine on the clock (MarketData, MarketView),
on the real bundle and on small series built here."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from trimtab.data.feed import DataError, MarketData, Series, load_market_data
from trimtab.data.quality import REASONS, Bands, assess, price_group
from trimtab.data.market import MarketView

H = 3600
T0 = int(pd.Timestamp("2024-08-01", tz="UTC").value // 10**9)


@pytest.fixture(scope="module")
def bundle():
    return load_market_data()


def bar(name: str, closes, start: int = T0, **cols) -> Series:
    """Hourly bars (avail = open + 1h) with open = high = low = close unless given."""
    c = np.asarray(closes, dtype=float)
    avail = start + H * (1 + np.arange(c.size, dtype=np.int64))
    vals = {k: np.array(cols.get(k, c), dtype=float) for k in ("open", "high", "low", "close")}   # one array each
    vals["volume"] = np.ones(c.size)
    return Series(name, avail, vals, 1.0, "asof", (), {}, avail - H)


def daily(name: str, values, col: str = "price", fill: str = "asof", geometric=(), **more) -> Series:
    v = np.asarray(values, dtype=float)
    avail = T0 + 86400 * np.arange(v.size, dtype=np.int64)
    vals = {col: v, **{k: np.asarray(x, dtype=float) for k, x in more.items()}}
    return Series(name, avail, vals, 24.0, fill, tuple(geometric), {}, avail.copy())


def eth_group(spiked: dict[int, float] | None = None, n: int = 48) -> dict[str, Series]:
    rng = np.random.default_rng(7)
    base = 3000 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    out = {}
    for k, name in enumerate(("perp.binance.ETHUSDT", "perp.bybit.ETHUSDT", "spot.bybit.ETHUSDT", "dex.uniswapv3.WETHUSDT")):
        out[name] = bar(name, base * (1 + 0.001 * k))
        if k == 0 and spiked:                      # the close only: the bar's other columns are fine
            for i, f in spiked.items():
                out[name].values["close"][i] *= f
    return out


def codes(q, name):
    return [REASONS[c] for c in q[name].code if c]


def test_the_defaults_never_fire_on_the_bundled_data(bundle):
    q = bundle.quality()
    assert len(q) == len(bundle.series_names()) > 20
    assert {n: x.faulty for n, x in q.items() if x.faulty} == {}
    assert {n: x.duplicates for n, x in q.items() if x.duplicates} == {}


def test_tighter_bands_do_fire_on_the_bundled_data(bundle):
    # The checks look at the real data: the 2025-02-03 Uniswap low is 12% off the other venues.
    q = bundle.with_checks(Bands(max_cross_venue_deviation=0.1)).quality()
    assert codes(q, "dex.uniswapv3.WETHUSDT") == ["cross_venue"]


def test_price_groups():
    assert price_group("perp.okx.ETHUSDT") == price_group("dex.uniswapv3.WETHUSDT") == price_group("oracle.WETH_USD") == "ETH/USD"
    assert price_group("dex.uniswapv3.EIGENWETH") == "EIGEN/ETH"
    assert price_group("oracle.weETH_ETH") == "weETH/ETH"
    assert price_group("funding.bybit.BTCUSDT") == "funding:BTC"
    assert price_group("aave.WETH") is None and price_group("gas.ethereum") is None


def test_a_spike_on_one_venue_is_a_fault_and_a_shared_move_is_not():
    s = eth_group({10: 100.0, 20: 0.5})
    for name in list(s)[1:]:                     # every venue falls 30% at bar 30: the market moved
        for c in ("open", "high", "low", "close"):
            s[name].values[c][30:] *= 0.7
    s["perp.binance.ETHUSDT"].values["close"][30:] *= 0.7
    for c in ("open", "high", "low"):
        s["perp.binance.ETHUSDT"].values[c][30:] *= 0.7
    q = assess(s)
    bad = np.nonzero(q["perp.binance.ETHUSDT"].code)[0].tolist()
    assert bad == [10, 20]
    assert codes(q, "perp.binance.ETHUSDT") == ["cross_venue", "cross_venue"]
    assert all(q[n].faulty == 0 for n in list(s)[1:])
    ref = q["perp.binance.ETHUSDT"].ref[10]
    assert ref == pytest.approx(s["perp.bybit.ETHUSDT"].values["close"][10], rel=0.01)


def test_zero_nan_negative_are_faults():
    s = eth_group()
    c = s["spot.bybit.ETHUSDT"].values["close"]
    c[3], c[4], c[5], c[6] = 0.0, np.nan, -1.0, np.inf
    q = assess(s)
    assert codes(q, "spot.bybit.ETHUSDT") == ["zero", "nan", "negative", "inf"]


def test_a_price_no_venue_confirms_is_checked_against_its_last_good_value():
    rate = np.full(10, 1.05)
    rate[3] = 105.0
    rate[4] = 105.0                                # a fault that persists stays a fault
    rate[6] = 1.0501
    q = assess({"oracle.weETH_ETH": daily("oracle.weETH_ETH", rate)})
    assert np.nonzero(q["oracle.weETH_ETH"].code)[0].tolist() == [3, 4]
    assert codes(q, "oracle.weETH_ETH") == ["jump", "jump"]
    assert q["oracle.weETH_ETH"].ref[4] == 1.05


def test_aave_indices_never_fall_nor_leap():
    li = 1.0 * (1.0001 ** np.arange(10))
    vb = li.copy()
    li[2] = li[1] * 0.99                           # falls
    vb[5] = vb[4] * 100                            # leaps; the next rows are below it, and fine
    z = np.zeros(10)
    q = assess({"aave.WETH": daily("aave.WETH", li, col="liquidity_index", variable_borrow_index=vb, liquidity_rate=z + 0.02,
                                   variable_borrow_rate=z + 0.03)})
    assert np.nonzero(q["aave.WETH"].code)[0].tolist() == [2, 5]
    assert codes(q, "aave.WETH") == ["index_decrease", "index_jump"]


def test_funding_against_the_other_venues_or_its_own_last_rate():
    r = np.full(12, 1e-4)
    names = ("funding.binance.ETHUSDT", "funding.bybit.ETHUSDT", "funding.okx.ETHUSDT")
    s = {n: daily(n, r.copy(), col="rate", fill="event") for n in names}
    s[names[0]].values["rate"][3] = 0.01           # x100: two other venues settled 1e-4
    s[names[0]].values["rate"][4] = 0.0            # zero is an ordinary funding rate
    s[names[0]].values["rate"][5] = -2e-4          # so is a negative one
    q = assess(s)
    assert np.nonzero(q[names[0]].code)[0].tolist() == [3]
    alone = {names[0]: s[names[0]]}                # no other venue: its own last good rate
    assert np.nonzero(assess(alone)[names[0]].code)[0].tolist() == [3]


def test_duplicate_timestamps_keep_the_later_row_and_are_reported():
    s = eth_group()
    b = s["perp.bybit.ETHUSDT"]
    k = 7
    dup = {c: np.insert(v, k + 1, v[k] * 1.001) for c, v in b.values.items()}
    s["perp.bybit.ETHUSDT"] = Series(b.name, np.insert(b.avail, k + 1, b.avail[k]), dup, 1.0, "asof", (), {}, np.insert(b.ts, k + 1, b.ts[k]))
    md = MarketData(pd.date_range(pd.Timestamp(T0 + H, unit="s", tz="UTC"), periods=40, freq="h"), s, {})
    q = md.quality()["perp.bybit.ETHUSDT"]
    assert q.duplicates == [(int(b.ts[k]), 2, True)]
    assert q.faulty == 0
    tick = md.position(pd.Timestamp(int(b.avail[k]), unit="s", tz="UTC"))
    assert md.field("perp.bybit.ETHUSDT.close")[tick] == b.values["close"][k] * 1.001


def test_a_quarantined_tick_reads_the_last_good_value_and_is_not_fresh():
    s = eth_group({10: 100.0})
    md = MarketData(pd.date_range(pd.Timestamp(T0 + H, unit="s", tz="UTC"), periods=40, freq="h"), s, {})
    f = "perp.binance.ETHUSDT.close"
    raw = s["perp.binance.ETHUSDT"].values["close"]
    codes_, rows = md.quarantine("perp.binance.ETHUSDT")
    assert np.nonzero(codes_)[0].tolist() == [10] and rows[10] == 10
    assert md.field(f)[10] == raw[9]               # the last good close
    assert md.field(f)[11] == raw[11]
    assert md.age_hours("perp.binance.ETHUSDT")[10] == 1.0
    view = MarketView(md, {f, "perp.bybit.ETHUSDT.close"})
    assert [view.fresh(f, 3.0, i) for i in (9, 10, 11)] == [True, False, True]
    assert view.quarantined(f, 10) and not view.quarantined("perp.bybit.ETHUSDT.close", 10)
    [(series, field, value, reason)] = view.quarantined_at(10)
    assert (series, field, value) == ("perp.binance.ETHUSDT", f, raw[10])
    assert reason.startswith("cross_venue")
    assert view.quarantine_summary(40)["perp.binance.ETHUSDT"]["reasons"] == {"cross_venue": 1}


def test_a_zero_oracle_with_nothing_to_fall_back_on_is_a_data_error():
    rate = np.array([0.0, 1.05, 1.05])
    md = MarketData(pd.date_range(pd.Timestamp(T0, unit="s", tz="UTC"), periods=60, freq="h"),
                    {"oracle.weETH_ETH": daily("oracle.weETH_ETH", rate)}, {})
    view = MarketView(md, {"oracle.weETH_ETH.price"})
    with pytest.raises(DataError, match=r"oracle.weETH_ETH is quarantined at 2024-08-01 05:00Z: oracle.weETH_ETH.price = 0.0 \(zero\)"):
        view.i = 5
        view.require("oracle.weETH_ETH.price")
    view.i = 30
    assert view.require("oracle.weETH_ETH.price") == 1.05
    assert math.isnan(view.get("oracle.weETH_ETH.price", 5))


def test_an_aave_index_accrues_from_good_samples_only():
    li = 1.0 * (1.0001 ** np.arange(4))
    bad = li.copy()
    bad[1] = 0.0
    z, rate = np.zeros(4), np.full(4, 0.01)
    idx = pd.date_range(pd.Timestamp(T0, unit="s", tz="UTC"), periods=72, freq="h")
    md = MarketData(idx, {"aave.WETH": daily("aave.WETH", bad, col="liquidity_index", geometric=("liquidity_index",),
                                             variable_borrow_index=li, liquidity_rate=rate, variable_borrow_rate=z)}, {})
    got = md.field("aave.WETH.liquidity_index")
    assert np.all(got > 0) and np.all(np.diff(got) >= 0)
    # day 1's zero is skipped: day 0's sample accrued 36 h at its rate (trimtab.data.accrual)
    assert got[36] == pytest.approx(li[0] * (1 + 0.01 * 36 * 3600 / (365 * 86400)), rel=1e-15)
    codes_, _ = md.quarantine("aave.WETH")
    assert np.nonzero(codes_)[0].tolist() == list(range(24, 48))


def _bundle_copy(tmp_path):
    import shutil
    from pathlib import Path

    d = tmp_path / "data"
    shutil.copytree(Path(__file__).resolve().parents[2] / "data", d)
    return d


def test_a_damaged_data_directory_is_a_one_line_data_error(tmp_path):
    d = _bundle_copy(tmp_path)
    (d / "series" / "oracle.weETH_ETH.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataError, match=r"oracle.weETH_ETH.parquet: not a readable series file"):
        load_market_data(d)
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match=r"manifest.json: not a valid bundle manifest \(JSONDecodeError"):
        load_market_data(d)


def test_a_manifest_never_points_outside_the_data_directory(tmp_path):
    import json

    d = _bundle_copy(tmp_path)
    m = json.loads((d / "manifest.json").read_text())
    m["series"]["gas.ethereum"]["file"] = "../../etc/passwd"
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match=r"series 'gas.ethereum' file '../../etc/passwd' is outside the data directory"):
        load_market_data(d)
