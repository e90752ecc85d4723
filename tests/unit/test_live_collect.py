"""The live collector's mapping from venue responses to bundle rows, through real ccxt and web3
over recorded answers (tests/live_recordings.py builds them from the bundled data)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from live_recordings import exact_int, record  # noqa: E402

from trimtab.errors import ConfigError  # noqa: E402
from trimtab.live.adapters.recorded import RecordedProvider, RecordedSession  # noqa: E402
from trimtab.live.collect import ChainJob, LiveStore, build_collector, univ3_pool  # noqa: E402
from trimtab.live.sources import load_sources  # noqa: E402

T0 = int(pd.Timestamp("2024-08-05T00:00", tz="UTC").timestamp())
SERIES = {"perp.binance.ETHUSDT", "perp.bybit.ETHUSDT", "perp.okx.ETHUSDT", "funding.binance.ETHUSDT", "funding.bybit.ETHUSDT",
          "funding.okx.BTCUSDT", "aave.WETH", "oracle.WETH_USD", "oracle.weETH_ETH", "gas.ethereum", "dex.uniswapv3.WETHUSDT"}


@pytest.fixture(scope="module")
def sources():
    return load_sources()


@pytest.fixture(scope="module")
def collected(market, sources):
    """One tick (00:00 Aug 5 2024) with a 24 h warm-up, every venue through ccxt / web3."""
    http, rpc = record(market, sources, SERIES, T0, T0 + 3600, 24)
    c = build_collector(sources, SERIES, sessions={k: RecordedSession(v) for k, v in http.items()}, w3=Web3(RecordedProvider(rpc)))
    store = LiveStore(market.static, set(sources.series))
    obs, errs = c.collect(T0, T0 + 30, store)
    for o in obs:
        store.add(o, T0)
    return obs, errs, store


def test_bars_are_stamped_at_the_open_and_available_at_the_close(collected, market):
    obs, errs, _ = collected
    assert not [e for e in errs if not e.series.startswith("dex.uniswapv3.E")]
    for venue in ("binance", "bybit", "okx"):
        bars = [o for o in obs if o.series == f"perp.{venue}.ETHUSDT"]
        assert bars[-1].ts == T0 - 3600 and bars[-1].avail == T0  # the bar in progress (open T0) is dropped
        s = market._series[f"perp.{venue}.ETHUSDT"]
        k = int(np.searchsorted(s.avail, T0))
        assert bars[-1].values["close"] == s.values["close"][k] and bars[-1].values["open"] == s.values["open"][k]


@pytest.mark.parametrize("name,day", [("funding.binance.ETHUSDT", "2024-08-05"), ("funding.bybit.ETHUSDT", "2024-08-05"),
                                      ("funding.okx.ETHUSDT", "2024-10-05")])  # OKX has no August 2024 events
def test_funding_fields_of_each_venue(market, sources, name, day):
    t = int(pd.Timestamp(day, tz="UTC").timestamp())
    http, _ = record(market, sources, {name}, t, t, 24)
    c = build_collector(sources, {name}, sessions={k: RecordedSession(v) for k, v in http.items()})
    obs, errs = c.collect(t, t + 30, LiveStore(market.static, set(sources.series)))
    got = [(o.ts, o.avail, o.values["rate"]) for o in obs]
    s = market._series[name]
    want = [(int(a), int(a), float(r)) for a, r in zip(s.avail, s.values["rate"]) if t - 86400 <= a <= t]
    assert not errs and got == want and len(got) >= 3  # Binance/Bybit/OKX fundingRate, at the settlement time


def test_chain_values_are_scaled_like_the_bundle(collected, market):
    _, _, store = collected
    md = store.market(T0, T0)
    view = market.slice("2024-08-05T00:00", "2024-08-05T00:00")
    for f in ("aave.WETH.liquidity_index", "aave.WETH.variable_borrow_index", "aave.WETH.liquidity_rate",
              "aave.WETH.variable_borrow_rate", "oracle.WETH_USD.price", "oracle.weETH_ETH.price", "gas.ethereum.gas_price_gwei",
              "dex.uniswapv3.WETHUSDT.close", "perp.okx.ETHUSDT.close"):
        assert md.field(f)[0] == view.field(f)[0], f
    assert 1.0 < md.field("aave.WETH.liquidity_index")[0] < 1.1  # ray / 1e27
    assert 0 < md.field("aave.WETH.variable_borrow_rate")[0] < 0.2  # APR as a decimal
    assert md.age_hours("perp.binance.ETHUSDT")[0] == 0.0  # the bar that closed at the tick
    assert exact_int(1.0286675090707793, 27) / 10**27 == 1.0286675090707793


def test_a_failed_fetch_leaves_nan_never_zero(market, sources):
    http, rpc = record(market, sources, {"perp.binance.ETHUSDT", "aave.WETH"}, T0, T0, 0)
    bad_http = {k: [r for r in v if r["path"] != "/fapi/v1/klines"] for k, v in http.items()}
    bad_rpc = [r for r in rpc if r["rpc"] != "eth_call"]
    c = build_collector(sources, {"perp.binance.ETHUSDT", "aave.WETH"},
                        sessions={k: RecordedSession(v) for k, v in bad_http.items()}, w3=Web3(RecordedProvider(bad_rpc)))
    store = LiveStore(market.static, set(sources.series))
    obs, errs = c.collect(T0, T0 + 30, store)
    assert obs == [] and {e.series for e in errs} == {"perp.binance.ETHUSDT", "aave.WETH"}
    md = store.market(T0, T0)
    assert math.isnan(md.field("perp.binance.ETHUSDT.close")[0]) and math.isinf(md.age_hours("perp.binance.ETHUSDT")[0])
    assert math.isnan(md.field("aave.WETH.liquidity_index")[0])
    assert "staking.weETH" in store.absent and math.isnan(md.field("staking.weETH.apr")[0])


def test_chain_reads_are_skipped_when_the_tick_is_processed_late(market, sources):
    _, rpc = record(market, sources, {"gas.ethereum"}, T0, T0, 0)
    c = build_collector(sources, {"gas.ethereum"}, w3=Web3(RecordedProvider(rpc)))
    obs, errs = c.collect(T0, T0 + 7200, LiveStore(market.static, set(sources.series)))
    assert obs == [] and "late" in errs[0].message


def test_pool_address_by_create2_and_sources_errors_at_file_line_col(tmp_path, sources):
    t = sources.tokens
    assert univ3_pool(sources.contracts.univ3_factory, t["WETH"].address, t["USDT"].address, 3000) == \
        "0x4e68Ccd3E89f51C3074ca5072bbAC773960dFa36"  # Uniswap info: ETH/USDT 0.3%
    bad = tmp_path / "live.yaml"
    bad.write_text('contracts: {aave_pool: "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2", '
                   'aave_oracle: "0x54586bE62E3c3580375aE3723C145253060Ca0C2", univ3_factory: "0x1F98431c8aD98523631AE4a59f267346ea31F984"}\n'
                   "series:\n  perp.binance.ETHUSD: {kind: ohlcv, exchange: binanceusdm, symbol: ETH/USDT:USDT}\n"
                   "  aave.WETH: {kind: aave_reserve, asset: WETH}\n")
    with pytest.raises(ConfigError) as e:
        load_sources(bad)
    msg = str(e.value)
    assert f"{bad}:3:3" in msg and "not a catalog series" in msg and "unknown token 'WETH'" in msg and ":4:" in msg


def test_chain_job_encodes_calls_at_the_latest_block(market, sources):
    _, rpc = record(market, sources, {"oracle.weETH_ETH"}, T0, T0, 0)
    w3 = Web3(RecordedProvider(rpc))
    job = ChainJob(w3, sources, {"oracle.weETH_ETH": sources.series["oracle.weETH_ETH"]})
    obs, errs = job.fetch(T0)
    assert not errs and obs[0].ts == obs[0].avail == T0
    (tx, block), = w3.provider.calls("eth_call")
    head = w3.provider.calls("eth_getBlockByNumber")[0]
    assert head[0] == "latest" and tx["data"] == "0x679aefce" and int(block, 16) > 20_000_000  # getRate() at that block
