"""The series catalog: every market series trimtab bundles, and how it is read.

One :class:`SeriesSpec` per series. The names are the contract with the engine
(``perp.binance.ETHUSDT``, ``oracle.WETH_USD``, ...); a field is addressed as
``<series>.<column>`` (``perp.binance.ETHUSDT.close``).

Raw input: the files under ``shared/data`` described in its README.md (public
exchange / protocol data, Jan 2024 - Sep 2025). ``build.py`` turns them into
``data/series/<name>.parquet``; ``feed.py`` puts them on one hourly UTC clock.

Availability rules (when a row may first be used, no look-ahead):

``bar_close``
    OHLCV bars are stamped with their OPEN time; a bar is known at its close,
    ``timestamp + interval`` (1 h).
``at_timestamp``
    Point-in-time samples and events (funding at ``funding_timestamp``, Aave
    daily snapshots at ``targetDate``, oracle samples at their timestamp).
``end_of_day``
    Daily aggregates computed from the whole UTC day (staking APRs, sUSDe APY):
    known at the next midnight, ``date + 24 h``.
``block_time``
    Gas: the fee sample is read at ``block_timestamp``, which is up to ~11 min
    after the hourly label for some rows; available at ``max(label, block)``.

Sampling rule ``daily_samples``: the Aave oracle and the Aave ``*_hourly.csv``
files are NOT hourly observations. Between midnight samples the source filled
the hours by linear interpolation (checked by the build), so an hourly row
carries the NEXT day's value.
Only the midnight rows are kept as observations; the others are dropped with
reason ``interpolated_between_daily_samples``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SeriesSpec", "CATALOG", "BY_NAME", "spec"]

OHLCV = {c: c for c in ("open", "high", "low", "close", "volume")}
AAVE_RESERVE = {
    "liquidity_index": "liquidityIndex",
    "variable_borrow_index": "variableBorrowIndex",
    "liquidity_rate": "currentLiquidityRate",
    "variable_borrow_rate": "currentVariableBorrowRate",
}
AAVE_INDICES = ("liquidity_index", "variable_borrow_index")


@dataclass(frozen=True)
class SeriesSpec:
    """How one series is found, cleaned and put on the hourly clock.

    Attributes:
        name: series name, the engine's key.
        glob: raw file glob relative to the raw data dir; must match exactly one file.
        kind: ``bar`` (OHLCV), ``point`` (sampled level), ``event`` (funding),
            ``daily`` (daily point samples), ``rate`` (yield/APR level).
        columns: output column -> raw column (values are float64).
        interval_h: native interval in hours (gap threshold is a multiple of it).
        time_col: raw time column (ISO text or epoch seconds, auto-detected).
        availability: ``bar_close`` | ``at_timestamp`` | ``end_of_day`` | ``block_time``.
        fill: ``asof`` (forward fill of the latest available row) or ``event``
            (value only at the tick of the event, NaN elsewhere).
        geometric: columns put on the hourly clock by geometric interpolation
            between samples (accruing indices only), the rest as-of.
        sampling: ``all`` or ``daily_samples`` (keep midnight rows only).
        interp_check: ``linear`` | ``geometric`` | None: how the build verifies that
            the dropped non-midnight rows are interpolations of the kept ones.
        positive: columns that must be > 0 (rows failing it are dropped).
        note: where the data comes from and anything a user must know.
    """

    name: str
    glob: str
    kind: str
    columns: dict[str, str]
    interval_h: float
    time_col: str = "timestamp"
    availability: str = "at_timestamp"
    fill: str = "asof"
    geometric: tuple[str, ...] = ()
    sampling: str = "all"
    interp_check: str | None = None
    positive: tuple[str, ...] = ()
    note: str = ""


def _bar(name: str, glob: str, note: str) -> SeriesSpec:
    return SeriesSpec(name, glob, "bar", OHLCV, 1.0, availability="bar_close",
                      positive=("open", "high", "low", "close"), note=note)


def _funding(venue: str, sym: str) -> SeriesSpec:
    return SeriesSpec(
        f"funding.{venue}.{sym}", f"market_data/derivatives/funding_rates/{venue}_{sym}_funding_rates_*.csv",
        "event", {"rate": "funding_rate"}, 8.0, time_col="funding_timestamp", fill="event",
        note=f"{venue} {sym} perpetual funding rate per 8h interval, signed, positive = longs pay shorts; "
             "settles at 00/08/16 UTC.")


def _oracle(name: str, file_stem: str, raw_col: str, check: str | None, note: str) -> SeriesSpec:
    return SeriesSpec(
        f"oracle.{name}", f"protocol_data/aave/oracle/{file_stem}_oracle_*.csv", "daily",
        {"price": raw_col}, 24.0, sampling="daily_samples", interp_check=check, positive=("price",),
        note=note)


def _aave(asset: str, hourly: bool) -> SeriesSpec:
    if hourly:
        return SeriesSpec(
            f"aave.{asset}", f"protocol_data/aave/rates/aave_v3_aave-v3-ethereum_{asset}_rates_*_hourly.csv",
            "daily", AAVE_RESERVE, 24.0, geometric=AAVE_INDICES, sampling="daily_samples",
            interp_check="linear", positive=AAVE_INDICES,
            note=f"Aave v3 Ethereum {asset} reserve, from the *_hourly.csv file (source "
                 "'aave_hourly_interpolated'): the source interpolated daily snapshots linearly, so only its "
                 "midnight rows are kept (they equal the daily file); the first day (2024-05-12) has no midnight "
                 "row in the hourly file. Indices geometric between samples, rates as-of.")
    return SeriesSpec(
        f"aave.{asset}", f"protocol_data/aave/rates/aave_v3_aave-v3-ethereum_{asset}_rates_2024-01-01_*.csv",
        "daily", AAVE_RESERVE, 24.0, time_col="targetDate", geometric=AAVE_INDICES, positive=AAVE_INDICES,
        note=f"Aave v3 Ethereum {asset} reserve, daily snapshot at targetDate 00:00 UTC. Indices are "
             "ray-free (~1.0 scale); rates are annual, as decimals. Indices geometric between samples, rates as-of.")


_USD_ORACLE_NOTE = ("Aave v3 oracle price in USD. The raw file is hourly but the hours between midnight samples are a "
                    "straight line to the NEXT midnight (look-ahead); only the midnight samples are kept, as-of.")
_LST_ORACLE_NOTE = ("LST/ETH exchange rate used for the health factor, derived by the source as asset_usd / eth_usd "
                    "of the Aave oracle (every raw row equals the ratio of the two USD files, so the hourly rows are "
                    "ratios of interpolations); only midnight samples are kept, as-of.")

CATALOG: tuple[SeriesSpec, ...] = (
    _bar("perp.binance.ETHUSDT", "market_data/derivatives/futures_ohlcv/binance_ETHUSDT_perp_1h_*.csv",
         "Binance USD-M ETHUSDT perpetual, 1h bars; close used as mark price."),
    _bar("perp.bybit.ETHUSDT", "market_data/derivatives/futures_ohlcv/bybit_ETHUSDT_perp_1h_*.csv",
         "Bybit linear ETHUSDT perpetual, 1h bars."),
    _bar("perp.okx.ETHUSDT", "market_data/derivatives/futures_ohlcv/okx_ETHUSDT_perp_1h_*.csv",
         "OKX ETH-USDT swap, 1h bars, 2024-08-01 -> 2025-08-31, with two month-long source outages; "
         "volume in OKX units as given."),
    _bar("perp.binance.BTCUSDT", "market_data/derivatives/futures_ohlcv/binance_BTCUSDT_perp_1h_*.csv",
         "Binance USD-M BTCUSDT perpetual, 1h bars."),
    _bar("perp.bybit.BTCUSDT", "market_data/derivatives/futures_ohlcv/bybit_BTCUSDT_perp_1h_*.csv",
         "Bybit linear BTCUSDT perpetual, 1h bars."),
    _bar("spot.binance.BTCUSDT", "market_data/spot_prices/btc_usd/binance_BTCUSDT_1h_*.csv",
         "Binance BTC/USDT spot, 1h bars."),
    _bar("spot.bybit.BTCUSDT", "market_data/spot_prices/btc_usd/bybit_BTCUSDT_spot_1h_*.csv",
         "Bybit BTC/USDT spot, 1h bars."),
    _bar("spot.bybit.ETHUSDT", "market_data/spot_prices/eth_usd/bybit_ETHUSDT_spot_1h_*.csv",
         "Bybit ETH/USDT spot, 1h bars."),
    _bar("dex.uniswapv3.WETHUSDT", "market_data/spot_prices/eth_usd/uniswapv3_WETHUSDT_1h_*.csv",
         "Uniswap v3 WETH/USDT 0.3% pool (GeckoTerminal), 1h bars, price in USDT; epoch `timestamp` used."),
    _bar("dex.uniswapv3.EIGENWETH", "market_data/spot_prices/protocol_tokens/uniswapv3_EIGENWETH_1h_*.csv",
         "Uniswap v3 EIGEN/WETH 0.3% pool (GeckoTerminal), 1h bars, price in WETH per EIGEN."),
    _bar("dex.uniswapv3.ETHFIWETH", "market_data/spot_prices/protocol_tokens/uniswapv3_ETHFIWETH_1h_*.csv",
         "Uniswap v3 ETHFI/WETH 0.3% pool (GeckoTerminal), 1h bars, price in WETH per ETHFI."),
    _funding("binance", "ETHUSDT"), _funding("bybit", "ETHUSDT"), _funding("okx", "ETHUSDT"),
    _funding("binance", "BTCUSDT"), _funding("bybit", "BTCUSDT"), _funding("okx", "BTCUSDT"),
    _oracle("WETH_USD", "WETH_USD", "oracle_price_usd", "linear", _USD_ORACLE_NOTE),
    _oracle("weETH_USD", "weETH_USD", "oracle_price_usd", "linear", _USD_ORACLE_NOTE),
    _oracle("wstETH_USD", "wstETH_USD", "oracle_price_usd", "linear", _USD_ORACLE_NOTE),
    SeriesSpec("oracle.USDT_USD", "protocol_data/aave/oracle/USDT_USD_oracle_*.csv", "daily",
               {"price": "oracle_price_usd"}, 24.0, positive=("price",),
               note="Aave v3 oracle USDT/USD, daily sample at 00:00 UTC (epoch timestamps), as-of."),
    _oracle("weETH_ETH", "weETH_ETH", "oracle_price_eth", None, _LST_ORACLE_NOTE),
    _oracle("wstETH_ETH", "wstETH_ETH", "oracle_price_eth", None, _LST_ORACLE_NOTE),
    _aave("USDT", hourly=False), _aave("WETH", hourly=False),
    _aave("weETH", hourly=True), _aave("wstETH", hourly=True),
    SeriesSpec("gas.ethereum", "blockchain_data/gas_prices/ethereum_gas_prices_*.csv", "point",
               {"gas_price_gwei": "gas_price_gwei", "base_fee_gwei": "base_fee_gwei"}, 1.0,
               availability="block_time", positive=("gas_price_gwei",),
               note="Ethereum gas price and base fee in gwei, hourly via eth_feeHistory (Alchemy RPC); "
                    "available at max(hour label, block_timestamp)."),
    SeriesSpec("staking.weETH", "protocol_data/staking/base_yields/weeth_oracle_yields_*.csv", "rate",
               {"apr": "base_staking_apr"}, 24.0, time_col="date", availability="end_of_day",
               note="EtherFi weETH base staking APR (decimal) derived by the source from the day's weETH/ETH "
                    "oracle ratio change; uses the whole UTC day, so available at the next midnight."),
    SeriesSpec("staking.wstETH", "protocol_data/staking/base_yields/wsteth_oracle_yields_*.csv", "rate",
               {"apr": "base_staking_apr"}, 24.0, availability="end_of_day",
               note="Lido wstETH 'base staking APR' as given by the source, hourly rows out of order (sorted here). "
                    "Each row uses the day's average ETH price and interpolated oracle hours, so it is available "
                    "only at the next midnight; the APR was computed between rows in FILE order and is noise "
                    "(range -1..10). Use oracle.wstETH_ETH for staking accrual."),
    SeriesSpec("benchmark.susde", "protocol_data/staking/benchmark_yields/ethena_susde_apr_benchmark_*.csv", "rate",
               {"apy": "apy_decimal", "apr": "apr_decimal"}, 24.0, time_col="date", availability="end_of_day",
               note="Ethena sUSDe APY/APR (decimal), daily from DefiLlama; conservatively available at the "
                    "end of its UTC day."),
)

BY_NAME: dict[str, SeriesSpec] = {s.name: s for s in CATALOG}


def spec(name: str) -> SeriesSpec:
    """Catalog entry for ``name``; ``KeyError`` if unknown."""
    return BY_NAME[name]
