"""Recorded venue responses built FROM THE BUNDLED REAL DATA, for live-feed tests (no network).

:func:`record` returns, for a window of hours, what each venue would have answered:

* ccxt HTTP routes (for :class:`~trimtab.live.adapters.recorded.RecordedSession`) in the
  venues' documented shapes -- Binance USD-M ``/fapi/v1/klines`` and ``/fapi/v1/fundingRate``
  and spot ``/api/v3/klines`` (developers.binance.com "Kline/Candlestick Data", "Get Funding
  Rate History"), Bybit ``/v5/market/kline`` and ``/v5/market/funding/history`` (newest first;
  bybit-exchange.github.io/docs/v5/market/kline, .../market/history-fund-rate), OKX
  ``/api/v5/market/(history-)candles`` and ``/api/v5/public/funding-rate-history`` (newest
  first; okx.com/docs-v5 "Get candlesticks", "Get funding rate history") -- one route per
  ``since`` the collector can ask (matched on the venue's own start parameter), with the
  bundle's bars (stamped at the open; the bar in progress at the tick is included, as the
  venues do, and must be dropped by the collector) and funding events. Market lists reuse
  tests/fixtures/live/*.json; spot ones follow Binance "Exchange Information" and Bybit
  "Get Instruments Info" (category=spot).
* JSON-RPC routes (for :class:`~trimtab.live.adapters.recorded.RecordedProvider`): per tick
  one ``eth_getBlockByNumber('latest')`` and one ``eth_gasPrice`` (served once, in tick order:
  "latest" moves with the wall clock) and the ``eth_call`` s at that block, ABI-encoded with
  eth_abi: Aave ``getReserveNormalizedIncome``/``getReserveNormalizedVariableDebt``/
  ``getReserveData``, AaveOracle ``getAssetPrice``, weETH ``getRate``, wstETH
  ``stEthPerToken``, Uniswap v3 ``slot0``.

Chain values: the bundle samples Aave, the oracle and the LST rates once a day (the loader
interpolates indices geometrically and holds the rest as-of; gas is available up to 11 min
after its label), while a live run reads them every hour. So the recorded chain answers are
what the backtest's view shows at each hour -- the on-chain value the bundle reconstructs --
encoded exactly (integers chosen so ``int / 10**k`` gives back the very float). Block numbers
follow 12 s slots from an arbitrary anchor; only their uniqueness matters.
"""
from __future__ import annotations

import json
import math
from fractions import Fraction
from math import isqrt
from pathlib import Path

from eth_abi import encode

from trimtab.data.feed import MarketData
from trimtab.live.collect import RESERVE_DATA, SLOT0, ChainJob, univ3_price
from trimtab.live.sources import AaveOracle, AaveReserve, Funding, Gas, LiveSources, Ohlcv, RateCall, UniV3

FIX = Path(__file__).resolve().parent / "fixtures" / "live"
HOUR = 3600
BODY_HOURS = 4  # bars per hourly answer: from `since` to the bar in progress and a little beyond


def _fixture(name: str) -> list[dict]:
    return json.loads((FIX / name).read_text())["responses"]


def _markets(path: str, fixture: str) -> list[dict]:
    return [r for r in _fixture(fixture) if r.get("path") == path]


BINANCE_SPOT_INFO = {
    "timezone": "UTC", "serverTime": 1722729600000, "rateLimits": [], "exchangeFilters": [],
    "symbols": [{
        "symbol": s, "status": "TRADING", "baseAsset": b, "baseAssetPrecision": 8, "quoteAsset": "USDT",
        "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True,
        "cancelReplaceAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": True,
        "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
                    {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
                    {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                     "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5}],
        "permissions": [], "permissionSets": [["SPOT", "MARGIN"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]} for s, b in (("BTCUSDT", "BTC"), ("ETHUSDT", "ETH"))],
}
BYBIT_SPOT_INFO = {
    "retCode": 0, "retMsg": "OK", "retExtInfo": {}, "time": 1722729600000,
    "result": {"category": "spot", "list": [{
        "symbol": s, "baseCoin": b, "quoteCoin": "USDT", "innovation": "0", "status": "Trading", "marginTrading": "both",
        "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.00000001", "minOrderQty": "0.000048",
                          "maxOrderQty": "71.73956243", "minOrderAmt": "1", "maxOrderAmt": "2000000"},
        "priceFilter": {"tickSize": "0.01"}, "riskParameters": {"limitParameter": "0.03", "marketParameter": "0.03"}}
        for s, b in (("BTCUSDT", "BTC"), ("ETHUSDT", "ETH"))]},
}


def _num(v: float) -> str:
    return repr(float(v))


def _rows(md: MarketData, series: str):
    s = md._series[series]
    return s.avail, s.values


def _bars(md: MarketData, series: str, lo: int, hi: int) -> list[tuple]:
    """Bundle bars with open in [lo, hi): (open, o, h, l, c, v)."""
    avail, v = _rows(md, series)
    out = []
    for k, a in enumerate(avail):
        t = int(a) - HOUR
        if lo <= t < hi:
            out.append((t, *(float(v[c][k]) for c in ("open", "high", "low", "close", "volume"))))
    return out


def _events(md: MarketData, series: str, lo: int, hi: int) -> list[tuple[int, float]]:
    avail, v = _rows(md, series)
    return [(int(a), float(v["rate"][k])) for k, a in enumerate(avail) if lo <= int(a) < hi]


def _venue_id(symbol: str, exchange: str) -> str:
    base = symbol.split("/")[0]
    return f"{base}-USDT-SWAP" if exchange == "okx" else f"{base}USDT"


def _ohlcv_route(exchange: str, market: str, symbol: str, since: int, bars: list[tuple]) -> list[dict]:
    vid = _venue_id(symbol, exchange)
    if exchange in ("binanceusdm", "binance"):
        path = "/fapi/v1/klines" if exchange == "binanceusdm" else "/api/v3/klines"
        body = [[t * 1000, _num(o), _num(h), _num(l), _num(c), _num(v), (t + HOUR) * 1000 - 1, _num(v * c), 1000,
                 _num(v / 2), _num(v * c / 2), "0"] for t, o, h, l, c, v in bars]
        return [{"method": "GET", "path": path, "match": {"symbol": vid, "startTime": str(since * 1000)}, "body": body}]
    if exchange == "bybit":
        body = {"retCode": 0, "retMsg": "OK", "retExtInfo": {}, "time": (since + HOUR) * 1000,
                "result": {"category": market, "symbol": vid,
                           "list": [[str(t * 1000), _num(o), _num(h), _num(l), _num(c), _num(v), _num(v * c)]
                                    for t, o, h, l, c, v in reversed(bars)]}}
        return [{"method": "GET", "path": "/v5/market/kline", "match": {"symbol": vid, "category": market, "start": str(since * 1000)},
                 "body": body}]
    body = {"code": "0", "msg": "", "data": [[str(t * 1000), _num(o), _num(h), _num(l), _num(c), _num(v), _num(v / 10),
                                              _num(v / 10 * c), "1"] for t, o, h, l, c, v in reversed(bars)]}
    return [{"method": "GET", "path": p, "match": {"instId": vid, "before": str(since * 1000 - 1)}, "body": body}
            for p in ("/api/v5/market/candles", "/api/v5/market/history-candles")]


def _funding_route(exchange: str, market: str, symbol: str, since_ms: int, events: list[tuple[int, float]]) -> dict:
    vid = _venue_id(symbol, exchange)
    if exchange == "binanceusdm":
        return {"method": "GET", "path": "/fapi/v1/fundingRate", "match": {"symbol": vid, "startTime": str(since_ms)},
                "body": [{"symbol": vid, "fundingTime": t * 1000, "fundingRate": _num(r), "markPrice": "0"} for t, r in events]}
    if exchange == "bybit":
        return {"method": "GET", "path": "/v5/market/funding/history", "match": {"symbol": vid, "startTime": str(since_ms)},
                "body": {"retCode": 0, "retMsg": "OK", "retExtInfo": {}, "time": since_ms,
                         "result": {"category": market, "list": [{"symbol": vid, "fundingRate": _num(r),
                                                                  "fundingRateTimestamp": str(t * 1000)} for t, r in reversed(events)]}}}
    return {"method": "GET", "path": "/api/v5/public/funding-rate-history", "match": {"instId": vid, "before": str(since_ms - 1)},
            "body": {"code": "0", "msg": "", "data": [{"instType": "SWAP", "instId": vid, "fundingRate": _num(r), "realizedRate": _num(r),
                                                      "fundingTime": str(t * 1000), "method": "current_period"}
                                                     for t, r in reversed(events)]}}


def exact_int(v: float, k: int) -> int:
    """The integer I with I / 10**k == v exactly (Python's correctly rounded int division)."""
    i = round(Fraction(v) * 10**k)
    assert i / 10**k == v, (v, k)
    return i


def sqrt_price_x96(price: float, base0: bool, d0: int, d1: int) -> int:
    """slot0 sqrtPriceX96 that :func:`univ3_price` turns back into exactly ``price``."""
    target = Fraction(price) if base0 else 1 / Fraction(price)  # token0 in token1
    s = isqrt(int(target * 2**192 * 10**d1 / 10**d0))
    for d in (0, 1, -1, 2, -2, 3, -3):
        if univ3_price(s + d, base0, d0, d1) == price:
            return s + d
    raise AssertionError(f"no sqrtPriceX96 for {price}")


def _word(types, values) -> str:
    return "0x" + encode(list(types), list(values)).hex()


def block_of(t: int) -> int:
    return 20_000_000 + (t - 1_717_200_000) // 12


def record(md: MarketData, sources: LiveSources, series: set[str], t0: int, t1: int, warmup_hours: int,
           chain_from: int | None = None) -> tuple[dict[str, list[dict]], list[dict]]:
    """(ccxt routes by ``"exchange:market"``, JSON-RPC routes) for ticks ``t0..t1`` (epoch s).

    ``md`` is the whole bundle; chain answers reproduce ``md`` 's view at each tick.
    ``chain_from``: first tick whose 'latest' answers are served (a resumed process asks
    from there on).
    """
    http: dict[str, list[dict]] = {}
    view = md.slice(md.index[0], md.index[-1])
    first = t0 - warmup_hours * HOUR
    for name in sorted(series):
        src = sources.series.get(name)
        if not isinstance(src, (Ohlcv, Funding)) or name not in md.series_names():
            continue
        ex, market = sources.exchange_of(src)
        key = f"{ex}:{market}"
        if key not in http:
            if ex == "binanceusdm":
                http[key] = _markets("/fapi/v1/exchangeInfo", "binance_usdm.json")
            elif ex == "okx":
                http[key] = _markets("/api/v5/public/instruments", "okx_swap.json")
            elif ex == "bybit" and market == "linear":
                http[key] = _markets("/v5/market/instruments-info", "bybit_linear.json")
            elif ex == "bybit":
                http[key] = [{"method": "GET", "path": "/v5/market/instruments-info", "match": {"category": "spot"}, "body": BYBIT_SPOT_INFO}]
            else:
                http[key] = [{"method": "GET", "path": "/api/v3/exchangeInfo", "body": BINANCE_SPOT_INFO}]
        if isinstance(src, Ohlcv):
            for since in range(first - HOUR, t1 + HOUR, HOUR):
                hi = since + (warmup_hours + BODY_HOURS) * HOUR if since == first - HOUR else since + BODY_HOURS * HOUR
                http[key] += _ohlcv_route(ex, market, src.symbol, since, _bars(md, name, since, hi))
        else:
            evs = _events(md, name, first - 30 * 24 * HOUR, t1 + 24 * HOUR)
            # A series with no row yet asks from tick - warmup (one `since` per tick); after
            # that, from its last event + 1 ms.
            starts = sorted({since * 1000 for since in range(first, t1 + HOUR, HOUR)} | {(t + 1) * 1000 for t, _ in evs})
            for since_ms in starts:
                http[key].append(_funding_route(ex, market, src.symbol, since_ms,
                                                [e for e in evs if e[0] * 1000 >= since_ms][:100]))
    rpc: list[dict] = [{"rpc": "eth_chainId", "result": "0x1"}]
    chain = {n: s for n, s in sources.series.items() if n in series and not isinstance(s, (Ohlcv, Funding))}
    if not chain:
        return http, rpc
    job = ChainJob(None, sources, chain)
    block = next(r for r in json.loads((FIX / "chain_mainnet.json").read_text())["responses"] if r["rpc"] == "eth_getBlockByNumber")
    k0 = int((t0 - int(view.epoch[0])) // HOUR)
    for t in range(chain_from or t0, t1 + 1, HOUR):
        k = k0 + (t - t0) // HOUR
        n = block_of(t)
        hexn = hex(n)
        f = lambda field: float(view.field(field)[k])  # noqa: E731
        gas = f("gas.ethereum.gas_price_gwei")
        base = f("gas.ethereum.base_fee_gwei")
        rpc.append({"rpc": "eth_getBlockByNumber", "once": True,
                    "result": {**block["result"], "number": hexn, "timestamp": hex(t + 5),
                               "baseFeePerGas": hex(exact_int(base, 9)) if not math.isnan(base) else "0x0"}})
        if "gas.ethereum" in chain and not math.isnan(gas):
            rpc.append({"rpc": "eth_gasPrice", "once": True, "result": hex(exact_int(gas, 9))})
        for name, spec in chain.items():
            calls = job.calls.get(name, [])
            if isinstance(spec, AaveReserve):
                li, vi = f(f"{name}.liquidity_index"), f(f"{name}.variable_borrow_index")
                lr, vr = f(f"{name}.liquidity_rate"), f(f"{name}.variable_borrow_rate")
                if any(math.isnan(x) for x in (li, vi, lr, vr)):
                    continue
                LI, VI, LR, VR = (exact_int(x, 27) for x in (li, vi, lr, vr))
                zero = "0x" + "00" * 20
                rd = (0, LI, LR, VI, VR, 0, t, 1, zero, zero, zero, zero, 0, 0, 0)
                results = [_word(["uint256"], [LI]), _word(["uint256"], [VI]), _word(RESERVE_DATA, rd)]
            elif isinstance(spec, AaveOracle):
                v = f(f"{name}.price")
                if math.isnan(v) or round(v, 8) != v:
                    continue  # a derived value with more than 8 decimals cannot be an oracle answer
                results = [_word(["uint256"], [exact_int(v, 8)])]
            elif isinstance(spec, RateCall):
                v = f(f"{name}.price")
                if math.isnan(v):
                    continue
                results = [_word(["uint256"], [exact_int(v, spec.decimals)])]
            elif isinstance(spec, UniV3):
                v = f(f"{name}.close")
                if math.isnan(v):  # no pool yet (EIGEN before Oct 2024): a call to no code returns "0x"
                    rpc.append({"rpc": "eth_call", "match": {"to": calls[0][0], "data": calls[0][1], "block": hexn}, "result": "0x"})
                    continue
                tok = sources.tokens
                b, q = tok[spec.base], tok[spec.quote]
                base0 = int(b.address, 16) < int(q.address, 16)
                d0, d1 = (b.decimals, q.decimals) if base0 else (q.decimals, b.decimals)
                results = [_word(SLOT0, (sqrt_price_x96(v, base0, d0, d1), 0, 0, 1, 1, 0, True))]
            else:
                assert isinstance(spec, Gas)
                continue
            for (to, data, _), res in zip(calls, results):
                rpc.append({"rpc": "eth_call", "match": {"to": to, "data": data, "block": hexn}, "result": res})
    return http, rpc


class FakeClock:
    """Wall clock for tests: ``sleep`` advances it, nothing really waits."""

    def __init__(self, now: float):
        self.now = float(now)
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, dt: float) -> None:
        self.now += max(dt, 0.0)
        self.slept += max(dt, 0.0)
