"""Live market data: venue responses -> rows in the bundle's units -> the hourly clock.

:class:`Collector` runs one job per source module each tick -- :class:`ExchangeJob` per ccxt
exchange (bars and funding), :class:`ChainJob` for everything read from Ethereum -- and returns
:class:`Observation` rows ``(series, ts, avail, {column: value})`` plus :class:`FetchError` s.
:class:`LiveStore` keeps the rows per series exactly like the bundle's parquet rows (each row
also remembers the tick epoch it became ``known`` at) and builds a
:class:`~trimtab.data.feed.MarketData` for any tick from the rows known by then, so the
loader's own code puts live rows on the clock (as-of fill, event fill, ages, geometric
indices): a live tick and a backtest tick are computed by the same functions.

Units and availability, as :mod:`trimtab.data.build` writes the bundle:

=================  ===========================================  ==============================
series             value                                        ``ts`` / ``avail``
=================  ===========================================  ==============================
perp/spot (ohlcv)  ccxt OHLCV floats (quote ccy; volume as the   ts = bar open, avail = open+1h;
                   venue gives it: OKX in contracts)             unclosed bars are dropped
funding.*          ``rate`` = fundingRate per interval, signed   ts = avail = settlement time
aave.*             indices / 1e27 (ray, Aave WadRayMath), rates  ts = avail = the tick (a point
                   (APR, ray) / 1e27                             sample of the latest block)
oracle.*_USD       getAssetPrice / 1e8 (AaveOracle              same
                   BASE_CURRENCY_UNIT)
oracle.*_ETH       getRate() / stEthPerToken() / 1e18           same
gas.ethereum       eth_gasPrice / 1e9, baseFeePerGas / 1e9      same
dex.uniswapv3.*    slot0 price, o = h = l = c, volume NaN        same (a point sample)
=================  ===========================================  ==============================

Integer-to-float conversions are ``int / 10**k`` (Python's correctly rounded division), so a
value recorded from a float is read back as exactly that float. A fetch that fails leaves no
row: the series keeps its previous value with a growing age, or NaN -- never a zero.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.accrual import ACCRUAL
from ..data.catalog import BY_NAME, CATALOG
from ..data.feed import MarketData, Series
from ..data.quality import Bands, assess
from ..errors import TrimtabError
from ..secrets import redact
from .adapters.registry import market_data_clients
from .checks import RollingChecks, Rows, _series
from .sources import AaveOracle, AaveReserve, Funding, Gas, LiveSources, Ohlcv, RateCall, UniV3

HOUR = 3600
RAY = 10**27  # Aave WadRayMath: indices and rates are rays
ORACLE_UNIT = 10**8  # AaveOracle BASE_CURRENCY_UNIT (USD, 8 decimals)
GWEI = 10**9
OHLCV_LIMIT = 100  # bars per request (Binance max 1500, Bybit 1000, OKX history-candles 100)
FUNDING_LIMIT = 100
#: Uniswap v3 PoolAddress.POOL_INIT_CODE_HASH (v3-periphery contracts/libraries/PoolAddress.sol).
UNIV3_INIT_CODE_HASH = "e34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"


class FeedUnavailable(TrimtabError):
    """The live feed cannot start: a venue or the RPC endpoint is unreachable or not configured."""


@dataclass(frozen=True)
class Observation:
    """One row of one series: ``ts`` (observation time) and ``avail`` (when it could first be
    known), epoch seconds; ``values`` by catalog column."""

    series: str
    ts: int
    avail: int
    values: dict


@dataclass(frozen=True)
class FetchError:
    """A failed fetch: the series left without a new row, the source and the reason."""

    series: str
    source: str
    message: str


# ---------------------------------------------------------------------------- the store
class LiveStore:
    """Collected rows per catalog series, in arrival order, with the bundle's clock policy.

    Every catalog series exists here (with no rows when it has no live source, so it reads
    NaN with an infinite age, like a series before its first observation); ``absent`` lists
    those. ``static`` is the bundle's static.json (risk parameters, gas units, rewards).

    Three ways to read it, all giving what :meth:`_build` gives from the rows known by a tick:
    :meth:`tick` for the live loop's newest hour (cost independent of the rows stored),
    :meth:`replay` for a resumed run's past ticks in stretches, :meth:`market` for any clock.
    """

    def __init__(self, static: dict, sourced: set[str]):
        self.static = static
        self.rows: dict[str, tuple[list[int], list[int], list[int], dict[str, list[float]]]] = {
            s.name: ([], [], [], {c: [] for c in s.columns}) for s in CATALOG}
        self.absent = sorted(set(self.rows) - set(sourced))
        self._added = 0        # rows accepted so far: the version the span below was built at
        self._cols = {s.name: Rows(s.columns) for s in CATALOG}    # the same rows as numpy columns
        self._known = None     # the latest tick any row was known at
        self._checks: dict[Bands, RollingChecks] = {}              # verdicts kept up to date, per Bands
        # (rows accepted, first tick, last tick, MarketData, late tick intervals, checked copies by Bands)
        self._span: tuple[int, int, int, MarketData, list[tuple[int, int]], dict] | None = None

    def last_ts(self, series: str) -> int | None:
        ts = self.rows[series][0]
        return ts[-1] if ts else None

    def add(self, obs: Observation, known: int) -> bool:
        """Append a row known at tick epoch ``known``; False (ignored) unless it is newer than
        the series' last row (a venue re-sending a bar or event already stored)."""
        ts, avail, kn, vals = self.rows[obs.series]
        if ts and obs.ts <= ts[-1]:
            return False
        ts.append(int(obs.ts))
        avail.append(int(obs.avail))
        kn.append(int(known))
        row = {c: float(obs.values.get(c, math.nan)) for c in vals}
        for c, col in vals.items():
            col.append(row[c])
        self._cols[obs.series].append(int(obs.avail), row)
        self._known = int(known) if self._known is None else max(self._known, int(known))
        self._added += 1
        return True

    def tick(self, t: int, bands=None) -> MarketData:
        """Tick ``t`` as a one-tick MarketData, exactly :meth:`market` ``(t, t)``: the live loop's
        newest hour, checked with ``bands`` (default :class:`~trimtab.data.quality.Bands`).

        When no row was known after ``t`` (the live loop's case), its cost does not grow with the
        rows stored: the data checks are kept up to date by :class:`RollingChecks` (which
        re-judges only what new rows can change), and the MarketData holds each series' rows
        from the last good one available at ``t`` on (:meth:`_tail`): every value, age and
        quarantine flag at ``t`` reads only those. Otherwise it is :meth:`market`."""
        if self._known is not None and t < self._known:
            return self.market(t, t).with_checks(bands)
        b = Bands.of(bands)
        checks = self._checks.get(b)
        if checks is None:
            checks = self._checks[b] = RollingChecks(b, BY_NAME)
        checks.update(self._cols)
        series, quality = {}, {}
        for name, rows in self._cols.items():
            lo = self._tail(name, rows, checks, t)
            series[name] = _series(name, rows, BY_NAME[name], lo, copy=True)
            if name in checks.n:
                quality[name] = checks.quality(name, lo, rows.n)
            else:
                quality[name] = assess({name: series[name]}, b)[name]     # no rows yet: nothing to judge
        index = pd.date_range(pd.Timestamp(t, unit="s", tz="UTC"), periods=1, freq="h")
        return _LiveTick(index, series, self.static, list(self.rows), b, quality, store=self, t=t)

    @staticmethod
    def _tail(name: str, rows: Rows, checks: RollingChecks, t: int) -> int:
        """The first row tick ``t`` reads: the last good row available at or before ``t``, the
        latest row at or before ``t`` (its verdict is the quarantine flag) and every row
        available within the hour before ``t`` (event series: each event of the hour counts),
        whichever comes first. A column interpolated toward the next sample (never in the live
        catalog) reads every row."""
        spec = BY_NAME[name]
        if rows.n == 0 or any(not (c in ACCRUAL and ACCRUAL[c][0] in spec.columns) for c in spec.geometric):
            return 0
        latest = int(np.searchsorted(rows.avail, t, side="right")) - 1
        hour = int(np.searchsorted(rows.avail, t - HOUR, side="right"))
        good = checks.last_good(name, latest + 1) if latest >= 0 else -1
        return min(hour, latest if latest >= 0 else rows.n, good if good >= 0 else rows.n)

    def market(self, start: int, end: int, known: int | None = None) -> MarketData:
        """The rows known at or before ``known`` (default ``end``) on the hourly clock
        ``[start, end]`` (epoch seconds), as a MarketData (the loader's rules apply).

        A one-tick request for a tick before the latest known one (a resumed run putting the
        ticks it had already seen back on its clock, one at a time) is a slice of one MarketData
        of every stored row (:meth:`_span_slice`): the data checks run once, not once a tick,
        so rebuilding N ticks costs O(N), not O(N^2)."""
        known = end if known is None else known
        if start == end == known:
            hit = self._span_slice(start)
            if hit is not None:
                return hit
        return self._build(start, end, known)

    def replay(self, start: int, end: int) -> Iterator[MarketData]:
        """Ticks ``start .. end`` (epoch s) as the live loop saw them, in consecutive MarketData
        (a resumed run putting its ticks back on its clock): what ``market(t, t)`` gives for each
        ``t``, with each stretch of ticks that no late row touched as one slice of the span
        (:meth:`_span_slice` says why a slice is exact; a tick no late row touched reads the same
        rows in a slice of any length), and each late tick on its own, from the rows known by then."""
        t = start
        while t <= end:
            span = self._span
            if span is None or span[0] != self._added or not span[1] <= t <= span[2]:
                span = self._new_span(t)
            if span is None:
                yield self.market(t, t)
                t += HOUR
                continue
            late = span[4]
            k = bisect.bisect_right(late, (t, math.inf)) - 1
            if k >= 0 and late[k][0] <= t <= late[k][1]:
                yield self._build(t, t, t)
                t += HOUR
                continue
            nxt = late[k + 1][0] if k + 1 < len(late) else math.inf
            last = min(end, span[2], nxt - HOUR)
            yield _SpanTick(span[3], (t - span[1]) // HOUR, span[5], (last - t) // HOUR + 1)
            t = last + HOUR

    def _span_slice(self, t: int) -> MarketData | None:
        """Tick ``t`` of the span ``[t, latest known tick]`` built from every stored row, or None
        where that would not be exactly ``_build(t, t, t)``.

        Why a slice is exact: every value at tick ``t`` (as-of, event, accrued index, age,
        quarantine) reads only rows available at or before ``t``, and the data checks judge a
        row only by rows available at or before the tick that first uses it
        (:mod:`trimtab.data.quality`: no look-ahead). So the rows known after ``t`` change
        nothing at ``t`` -- unless one of them was available at or before ``t`` (a row fetched
        late, after a failed fetch): such ticks are *late* and are built from the rows known
        by then, as the live loop built them. Interpolated columns (which read the next sample)
        would break this; the catalog's live series have none that are not accrued indices,
        and a series with one is never sliced."""
        span = self._span
        if span is None or span[0] != self._added or not span[1] <= t <= span[2]:
            span = self._new_span(t)
            if span is None:
                return None
        md, late = span[3], span[4]
        k = bisect.bisect_right(late, (t, math.inf)) - 1   # intervals are merged: one can hold t
        if k >= 0 and late[k][0] <= t <= late[k][1]:
            return None
        return _SpanTick(md, (t - span[1]) // HOUR, span[5])

    def _new_span(self, t: int):
        """Build (and keep) the span from ``t`` to the latest tick any row was known at, with the
        late tick intervals; None when there is nothing after ``t`` or a column interpolates."""
        last = max((kn[-1] for _, _, kn, _ in self.rows.values() if kn), default=None)
        if last is None or last <= t:
            self._span = None
            return None
        late: list[tuple[int, int]] = []
        for name, (ts, avail, kn, vals) in self.rows.items():
            spec = BY_NAME[name]
            if any(not (c in ACCRUAL and ACCRUAL[c][0] in vals) for c in spec.geometric):
                self._span = None
                return None
            if not kn:
                continue
            a = np.asarray(avail, dtype=np.int64)
            k = np.asarray(kn, dtype=np.int64)
            first_use = -(-a // HOUR) * HOUR          # the first tick at or after the row's availability
            for r in np.nonzero(k > first_use)[0].tolist():
                late.append((int(first_use[r]), int(k[r]) - HOUR))   # ticks that did not see it yet
        merged: list[tuple[int, int]] = []
        for a, b in sorted(late):
            if merged and a <= merged[-1][1] + HOUR:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        self._span = (self._added, t, last, self._build(t, last, last), merged, {})
        return self._span

    def _build(self, start: int, end: int, known: int) -> MarketData:
        series = {}
        for name, (ts, avail, kn, vals) in self.rows.items():
            m = bisect.bisect_right(kn, known)  # rows arrive in known order: a prefix
            spec = BY_NAME[name]
            series[name] = Series(name, np.asarray(avail[:m], dtype=np.int64),
                                   {c: np.asarray(v[:m], dtype=np.float64) for c, v in vals.items()},
                                   spec.interval_h, spec.fill, spec.geometric, {"live": True})
        index = pd.date_range(pd.Timestamp(start, unit="s", tz="UTC"), pd.Timestamp(end, unit="s", tz="UTC"), freq="h")
        return MarketData(index, series, self.static, bundle=list(self.rows))


class _LiveTick(MarketData):
    """A one-tick MarketData of :meth:`LiveStore.tick`: other checks are the store's too."""

    def __init__(self, *args, store: LiveStore, t: int):
        super().__init__(*args)
        self._store, self._t = store, t

    def with_checks(self, bands) -> MarketData:
        b = Bands.of(bands)
        return self if b == self.bands else self._store.tick(self._t, b)


class _SpanTick(MarketData):
    """Tick ``k`` of a span (:meth:`LiveStore._span_slice`) as a one-tick MarketData whose
    fields, ages and quarantine flags are the span's arrays at ``k``: a value at a tick does not
    depend on the clock's other ticks (as-of searches, events mapped to the first tick at or
    after them, accrual from the last sample), so the span computes each array once for all its
    ticks instead of once a tick. ``checked``: per Bands, the span checked with them and its
    arrays (held here: MarketData keeps an array only while someone holds it). ``n``: ticks
    ``k .. k+n-1`` as one MarketData (:meth:`LiveStore.replay`)."""

    def __init__(self, span: MarketData, k: int, checked: dict, n: int = 1):
        super().__init__(span.index[k:k + n], span._series, span.static, span._bundle, span.bands, span.quality(),
                         shared=span._shared)
        if span.bands not in checked:
            checked[span.bands] = (span, {})
        self._span, self._arrays = checked[span.bands]
        self._k, self._n, self._checked = k, n, checked

    def with_checks(self, bands) -> MarketData:
        b = Bands.of(bands)
        if b == self.bands:
            return self
        if b not in self._checked:
            self._checked[b] = (self._span.with_checks(b), {})
        return _SpanTick(self._checked[b][0], self._k, self._checked, self._n)

    def _array(self, kind: str, name: str):
        a = self._arrays.get((kind, name))
        if a is None:
            a = self._arrays[(kind, name)] = getattr(self._span, kind)(name)
        return a

    def field(self, name: str) -> np.ndarray:
        return self._array("field", name)[self._k:self._k + self._n]

    def age_hours(self, series: str) -> np.ndarray:
        return self._array("age_hours", series)[self._k:self._k + self._n]

    def quarantine(self, series: str) -> tuple[np.ndarray, np.ndarray]:
        codes, rows = self._array("quarantine", series)
        return codes[self._k:self._k + self._n], rows[self._k:self._k + self._n]


# ---------------------------------------------------------------------------- exchanges
def make_ccxt(exchange_id: str, market: str, timeout_s: float, session=None, options: dict | None = None):
    """A ccxt exchange for public market data: only ``market`` markets are loaded, requests
    time out after ``timeout_s``; ``options`` (the venue file's ``live.market_data`` entry,
    e.g. Bybit linear's ``defaultSubType``) are merged over the default type; ``session``
    replaces the HTTP transport (recorded tests)."""
    import ccxt

    opts = {"defaultType": {"linear": "swap", "swap": "swap", "spot": "spot"}[market], **(options or {})}
    ex = getattr(ccxt, exchange_id)({"enableRateLimit": session is None, "timeout": int(timeout_s * 1000), "options": opts})
    if isinstance(ex.options.get("fetchMarkets"), dict):
        ex.options["fetchMarkets"]["types"] = [market]
    if session is not None:
        ex.session = session
    return ex


class ExchangeJob:
    """Bars and funding of one ccxt exchange (one market type).

    Per series, each tick asks for everything after the last stored row (or, with nothing
    stored, from ``tick - warmup_hours``) and keeps only what is complete at the tick: bars
    whose close (open + 1h) is at or before it, funding events at or before it.
    """

    def __init__(self, exchange, name: str, series: dict[str, Ohlcv | Funding], warmup_hours: int):
        self.ex = exchange
        self.name = name
        self.series = series
        self.warmup = warmup_hours * HOUR

    def connect(self) -> None:
        """Load the venue's markets (the first request; it proves the venue is reachable).

        Raises:
            FeedUnavailable: naming the venue and URL.
        """
        try:
            self.ex.load_markets()
        except Exception as e:  # noqa: BLE001 - any failure to start is the same message
            # ccxt's message names the endpoint (e.g. "binanceusdm GET https://fapi.binance.com/fapi/v1/exchangeInfo").
            raise FeedUnavailable(f"cannot reach {self.name}: {type(e).__name__}: {_short(e)}") from None

    def fetch(self, tick: int, store: LiveStore) -> tuple[list[Observation], list[FetchError]]:
        obs, errs = [], []
        for name, src in self.series.items():
            last = store.last_ts(name)
            try:
                if isinstance(src, Ohlcv):
                    since = last + HOUR if last is not None else tick - self.warmup - HOUR
                    got = self.ex.fetch_ohlcv(src.symbol, "1h", since=since * 1000, limit=OHLCV_LIMIT)
                    obs += bars(name, got, since, tick)
                else:
                    since = last + 1 if last is not None else tick - self.warmup
                    got = self.ex.fetch_funding_rate_history(src.symbol, since=since * 1000, limit=FUNDING_LIMIT)
                    obs += funding(name, got, since, tick)
            except Exception as e:  # noqa: BLE001 - reported per series, the run goes on
                errs.append(FetchError(name, f"{self.name} {src.symbol}", f"{type(e).__name__}: {_short(e)}"))
        return obs, errs


def bars(series: str, ohlcv: list, since: int, tick: int) -> list[Observation]:
    """ccxt OHLCV rows ``[open_ms, o, h, l, c, v]`` -> bar rows stamped at the open, available at
    the close; rows before ``since`` or not closed by ``tick`` (epoch s) are dropped."""
    out = []
    for row in sorted(ohlcv, key=lambda r: r[0]):
        t = int(row[0]) // 1000
        if t < since or t + HOUR > tick or any(x is None for x in row[1:5]):
            continue
        vol = row[5] if len(row) > 5 and row[5] is not None else math.nan
        out.append(Observation(series, t, t + HOUR, {"open": float(row[1]), "high": float(row[2]), "low": float(row[3]),
                                                     "close": float(row[4]), "volume": float(vol)}))
    return out


def funding(series: str, history: list[dict], since: int, tick: int) -> list[Observation]:
    """ccxt funding history entries (``timestamp`` ms, ``fundingRate``) -> events at their
    settlement time; entries before ``since`` or after ``tick`` (epoch s) are dropped."""
    out = []
    for e in sorted(history, key=lambda e: e["timestamp"]):
        t = int(e["timestamp"]) // 1000
        if t < since or t > tick or e.get("fundingRate") is None:
            continue
        out.append(Observation(series, t, t, {"rate": float(e["fundingRate"])}))
    return out


# ---------------------------------------------------------------------------- chain
def selector(signature: str) -> str:
    from eth_utils import function_signature_to_4byte_selector

    return "0x" + function_signature_to_4byte_selector(signature).hex()


#: Aave v3 IPool.getReserveData(address) -> ReserveDataLegacy (aave-v3-origin IPool.sol; the
#: v3.0-3.2 ReserveData layout, kept for compatibility): 15 static words.
RESERVE_DATA = ("uint256", "uint128", "uint128", "uint128", "uint128", "uint128", "uint40", "uint16", "address", "address",
                "address", "address", "uint128", "uint128", "uint128")
#: Uniswap v3 IUniswapV3PoolState.slot0() outputs.
SLOT0 = ("uint160", "int24", "uint16", "uint16", "uint16", "uint8", "bool")


def univ3_pool(factory: str, token_a: str, token_b: str, fee: int) -> str:
    """The Uniswap v3 pool address, by CREATE2 (v3-periphery PoolAddress.computeAddress)."""
    from eth_abi import encode
    from eth_utils import keccak, to_checksum_address

    t0, t1 = sorted([token_a, token_b], key=lambda a: int(a, 16))
    salt = keccak(encode(["address", "address", "uint24"], [t0, t1, fee]))
    raw = keccak(b"\xff" + bytes.fromhex(factory[2:]) + salt + bytes.fromhex(UNIV3_INIT_CODE_HASH))
    return to_checksum_address(raw[12:])


def univ3_price(sqrt_price_x96: int, base_is_token0: bool, dec0: int, dec1: int) -> float:
    """Price of the base token in the quote token from slot0's ``sqrtPriceX96``
    (``token1/token0 = sqrtP**2 / 2**192`` in base units; Uniswap v3 whitepaper 6.1), exact
    integer arithmetic then one correctly rounded division."""
    num, den = sqrt_price_x96 * sqrt_price_x96 * 10**dec0, 2**192 * 10**dec1  # token0 in token1
    return num / den if base_is_token0 else den / num


class ChainJob:
    """Every chain series, read at the latest block once per tick through web3.

    The block header gives ``baseFeePerGas``; ``eth_gasPrice`` the gas price; each contract
    read is an ``eth_call`` at that block number, so one tick's chain values are consistent.
    """

    def __init__(self, w3, sources: LiveSources, series: dict, name: str = "ethereum"):
        self.w3 = w3
        self.src = sources
        self.series = series
        self.name = name
        tok = sources.tokens
        self.calls: dict[str, list[tuple[str, str, tuple]]] = {}
        for s, spec in series.items():
            if isinstance(spec, AaveReserve):
                a = tok[spec.asset].address
                pool = sources.contracts.aave_pool
                self.calls[s] = [(pool, _call("getReserveNormalizedIncome(address)", a), ("uint256",)),
                                 (pool, _call("getReserveNormalizedVariableDebt(address)", a), ("uint256",)),
                                 (pool, _call("getReserveData(address)", a), RESERVE_DATA)]
            elif isinstance(spec, AaveOracle):
                self.calls[s] = [(sources.contracts.aave_oracle, _call("getAssetPrice(address)", tok[spec.asset].address), ("uint256",))]
            elif isinstance(spec, RateCall):
                self.calls[s] = [(tok[spec.to].address, selector(spec.function), ("uint256",))]
            elif isinstance(spec, UniV3):
                pool = univ3_pool(sources.contracts.univ3_factory, tok[spec.base].address, tok[spec.quote].address, spec.fee)
                self.calls[s] = [(pool, selector("slot0()"), SLOT0)]

    def connect(self, endpoint: str) -> None:
        """One ``eth_chainId`` request to prove the endpoint answers (and is mainnet).

        Raises:
            FeedUnavailable: naming the endpoint.
        """
        try:
            cid = self.w3.eth.chain_id
        except Exception as e:  # noqa: BLE001
            raise FeedUnavailable(f"cannot reach the Ethereum RPC endpoint {endpoint}: {type(e).__name__}: {_short(e)}") from None
        if cid != 1:
            raise FeedUnavailable(f"the RPC endpoint {endpoint} is chain {cid}, not Ethereum mainnet (1)")

    def fetch(self, tick: int, store: LiveStore | None = None) -> tuple[list[Observation], list[FetchError]]:
        from eth_abi import decode

        try:
            block = self.w3.eth.get_block("latest")
            number = int(block["number"])
        except Exception as e:  # noqa: BLE001
            msg = f"latest block: {type(e).__name__}: {_short(e)}"
            return [], [FetchError(s, self.name, msg) for s in self.series]
        obs, errs = [], []
        for s, spec in self.series.items():
            try:
                if isinstance(spec, Gas):
                    gas_price = int(self.w3.eth.gas_price)
                    base = block.get("baseFeePerGas")
                    vals = {"gas_price_gwei": gas_price / GWEI, "base_fee_gwei": int(base) / GWEI if base is not None else math.nan}
                else:
                    out = [decode(types, bytes(self.w3.eth.call({"to": to, "data": data}, number)))
                           for to, data, types in self.calls[s]]
                    vals = self._values(spec, out)
                obs.append(Observation(s, tick, tick, vals))
            except Exception as e:  # noqa: BLE001
                errs.append(FetchError(s, f"{self.name} block {number}", f"{type(e).__name__}: {_short(e)}"))
        return obs, errs

    def _values(self, spec, out: list) -> dict:
        if isinstance(spec, AaveReserve):
            income, debt, rd = out[0][0], out[1][0], out[2]
            # ReserveDataLegacy: [2] currentLiquidityRate, [4] currentVariableBorrowRate (rays, APR)
            return {"liquidity_index": income / RAY, "variable_borrow_index": debt / RAY,
                    "liquidity_rate": rd[2] / RAY, "variable_borrow_rate": rd[4] / RAY}
        if isinstance(spec, AaveOracle):
            return {"price": out[0][0] / ORACLE_UNIT}
        if isinstance(spec, RateCall):
            return {"price": out[0][0] / 10**spec.decimals}
        if isinstance(spec, UniV3):
            tok = self.src.tokens
            base, quote = tok[spec.base], tok[spec.quote]
            base0 = int(base.address, 16) < int(quote.address, 16)
            d0, d1 = (base.decimals, quote.decimals) if base0 else (quote.decimals, base.decimals)
            p = univ3_price(int(out[0][0]), base0, d0, d1)
            return {"open": p, "high": p, "low": p, "close": p, "volume": math.nan}
        raise TypeError(spec)


def _call(signature: str, address: str) -> str:
    from eth_abi import encode

    return selector(signature) + encode(["address"], [address]).hex()


# ---------------------------------------------------------------------------- collector
class Collector:
    """Runs every job for a tick; rows and failures come back together, never an exception.

    ``chain`` is skipped (each of its series reported) when the tick is processed more than
    ``max_chain_lag_s`` after it: a "latest" read would be a value from after the tick.
    """

    def __init__(self, exchanges: list[ExchangeJob], chain: ChainJob | None, max_chain_lag_s: float = 900.0):
        self.exchanges = exchanges
        self.chain = chain
        self.max_chain_lag_s = max_chain_lag_s

    def collect(self, tick: int, now: float, store: LiveStore) -> tuple[list[Observation], list[FetchError]]:
        obs, errs = [], []
        for job in self.exchanges:
            o, e = job.fetch(tick, store)
            obs += o
            errs += e
        if self.chain is not None:
            if now - tick > self.max_chain_lag_s:
                errs += [FetchError(s, self.chain.name, f"tick processed {now - tick:.0f} s late; a latest-block read "
                                    "would be from after the tick (no value)") for s in self.chain.series]
            else:
                o, e = self.chain.fetch(tick, store)
                obs += o
                errs += e
        return obs, errs


def build_collector(sources: LiveSources, needed: set[str], sessions: dict | None = None, w3=None,
                    rpc_url: str | None = None) -> Collector:
    """Jobs for the ``needed`` series that have a source.

    Args:
        sessions: ``{ccxt_id or "ccxt_id:market": requests.Session}`` replacing ccxt's HTTP
            transport (tests pass :class:`~trimtab.live.adapters.recorded.RecordedSession`).
        w3: a Web3 (tests pass one over ``RecordedProvider``); else built from ``rpc_url``.

    Raises:
        FeedUnavailable: chain series are needed and there is neither ``w3`` nor an RPC URL.
    """
    sessions = sessions or {}
    groups: dict[tuple[str, str], dict] = {}
    chain: dict = {}
    for name in sorted(needed):
        src = sources.series.get(name)
        if src is None:
            continue
        if isinstance(src, (Ohlcv, Funding)):
            groups.setdefault(sources.exchange_of(src), {})[name] = src
        else:
            chain[name] = src
    jobs = []
    for (ex_id, market), series in groups.items():
        session = sessions.get(f"{ex_id}:{market}", sessions.get(ex_id))
        md = market_data_clients().get(ex_id, {}).get(market)
        jobs.append(ExchangeJob(make_ccxt(ex_id, market, sources.timeout_s, session, md.ccxt_options if md else None),
                                f"{ex_id} ({market})", series, sources.warmup_hours))
    cj = None
    if chain:
        if w3 is None:
            if not rpc_url:
                raise FeedUnavailable("the live feed reads Aave, oracles, gas and Uniswap from Ethereum: set TRIMTAB_ETH_RPC_URL "
                                      "to a mainnet JSON-RPC endpoint")
            from web3 import Web3
            w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": sources.timeout_s}))
        cj = ChainJob(w3, sources, chain)
    return Collector(jobs, cj, sources.max_chain_lag_s)


def _short(e: Exception, n: int = 200) -> str:
    s = redact(str(e)).replace("\n", " ")
    return s if len(s) <= n else s[:n] + "..."


__all__ = ["Observation", "FetchError", "LiveStore", "ExchangeJob", "ChainJob", "Collector", "build_collector",
           "FeedUnavailable", "bars", "funding", "univ3_pool", "univ3_price"]
