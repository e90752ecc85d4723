"""Exchange adapter over ccxt: Binance USDT-M, Bybit linear and OKX swap perpetuals.

One :class:`ExchangeAdapter` per venue maps between the venue and trimtab's names and units:

- instruments: ``binance:Perp:ETHUSDT`` <-> ccxt unified ``ETH/USDT:USDT`` (linear perpetual
  settled in the quote); ``binance:Margin:USDT`` for collateral balances.
- sizes: trimtab trades and holds perps in signed *asset units* (ETH), venues in *contracts*.
  ``asset units = contracts x contractSize`` with the contract size from the venue's own
  market data (OKX ETH-USDT-SWAP: ``ctVal`` 0.1 ETH; Binance and Bybit linear: 1).
- orders: market orders; ``reduceOnly`` when the trade only shrinks the current position; the
  client order id travels in the venue's own parameter (:data:`VENUES` ``client_id_param``:
  Binance ``newClientOrderId``, Bybit ``orderLinkId``, OKX ``clOrdId``). Before sending, the
  adapter looks the id up (:meth:`ExchangeAdapter.fetch_order_by_client_id`): an order that
  already exists is reported with ``already_placed=True`` and not sent again, so a retry after
  a crash cannot double an order. A timeout while sending is resolved the same way.

Spot (``spot_trade`` of ``spot`` targets, :meth:`ExchangeAdapter.place_spot_order`): a
second ccxt client per venue for its spot market (:data:`SPOT_VENUES`: Binance ``binance``
spot API, Bybit ``bybit`` v5 ``category=spot``), same keys, built on first use.
``binance:BaseToken:BTC`` <-> ``BTC/USDT``; market orders in base units (BTC) with the same
lookup-before-send by client order id. Binance spot trades from the Spot wallet while trimtab
keeps the venue's USDT in the USD-M account (``binance:Margin:USDT``): the gateway moves it
(ccxt ``transfer``, USD-M <-> Spot, :attr:`SpotSpec.needs_transfer`). Bybit's Unified Trading
Account holds spot and perps in one wallet: no transfer.

Resting take-profit / stop-loss (:meth:`ExchangeAdapter.place_stop`): reduce-only conditional
*market* orders through ccxt's unified ``takeProfitPrice`` / ``stopLossPrice`` params. Binance
USD-M sends them to the Algo Order API (``POST /fapi/v1/algoOrder``, ``algoType=CONDITIONAL``,
``clientAlgoId``, ``triggerPrice``, type ``TAKE_PROFIT_MARKET`` / ``STOP_MARKET``); once
triggered the algo order names the market order it placed (``actualOrderId``), whose fill is
read. Bybit v5: one ``/v5/order/create`` with ``triggerPrice``/``triggerDirection``,
``reduceOnly`` and ``orderLinkId``; the same order fills once triggered. OKX stops are not
implemented (no shipped strategy needs them).

Balances (``Margin``) are wallet balances *excluding* unrealised PnL, because trimtab carries
the perp's unrealised PnL on the ``Perp`` position itself (DESIGN.md "Accounting"); counting it
in both places would double it. Funding is the venue's current rate for the next settlement
(per interval, signed, positive = longs pay) and that settlement's time.

Errors: every failure is an :class:`~trimtab.live.adapters.base.AdapterError` with a redacted
message; ``retryable`` marks network failures (the outcome is unknown, look the order up).

Sources: ccxt unified API (https://docs.ccxt.com/), Binance USD-M futures REST docs, Bybit v5
REST docs, OKX v5 REST docs (pages cited in ``tests/fixtures/live/*.json``).
"""
from __future__ import annotations

import math
import re
from decimal import Decimal
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple

from trimtab.keys import key as make_key
from trimtab.keys import parse_key
from trimtab.live.adapters.base import AdapterError, OrderResult, wrap_errors
from trimtab.live.secrets import ExchangeCredentials, exchange_credentials

#: Quotes a trimtab perp symbol may end in, longest first (``ETHUSDT`` -> ``ETH`` + ``USDT``).
QUOTES = ("USDT", "USDC")
#: Relative tolerance when comparing a trade with the position it may close.
_EPS = 1e-9


@dataclass(frozen=True)
class VenueSpec:
    """How one trimtab venue maps onto ccxt.

    ``ccxt_id``: ccxt class; ``market_types``: ``options['fetchMarkets']['types']`` so only the
    perpetual markets load; ``client_id_param``: the venue's client-order-id field;
    ``wallet_field``: the raw balance field holding the wallet balance without unrealised PnL;
    ``duplicate_codes``: venue error codes meaning "this client order id was already used".
    """

    ccxt_id: str
    market_types: tuple[str, ...]
    client_id_param: str
    wallet_field: str
    duplicate_codes: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)


VENUES: dict[str, VenueSpec] = {
    # Binance USD-M: account v3 assets[].walletBalance; -4116 "ClientOrderId is duplicated".
    "binance": VenueSpec("binanceusdm", ("linear",), "newClientOrderId", "walletBalance", ("-4116",)),
    # Bybit v5 unified account: coin[].walletBalance; 110072 "OrderLinkedID is duplicate".
    "bybit": VenueSpec("bybit", ("linear",), "orderLinkId", "walletBalance", ("110072",),
                       {"defaultType": "swap", "defaultSubType": "linear"}),
    # OKX v5: details[].cashBal; 51016 "Duplicated clOrdId".
    "okx": VenueSpec("okx", ("swap",), "clOrdId", "cashBal", ("51016",), {"defaultType": "swap"}),
}


@dataclass(frozen=True)
class TransferSpec:
    """How USDT moves between the chain and one exchange (ccxt unified names).

    ``network``: ccxt unified network code of ERC-20 USDT (ccxt maps it to the venue's own id:
    Binance ``ETH``, Bybit ``ETH``, OKX chain ``USDT-ERC20``). ``funding``/``trading``: the ccxt
    account names deposits land in / withdrawals leave from, and the one perps trade from
    (Binance: deposits land in Spot, perps trade from USD-M Futures; Bybit: deposits land in
    Funding, the Unified Trading Account trades; OKX: Funding (6) and Trading (18)).
    ``withdraw_id``: the venue's client withdrawal id parameter (Binance ``withdrawOrderId``,
    Bybit ``requestId`` -- idempotent on the venue side --, OKX ``clientId``); ``transfer_id``:
    the internal transfer's client id parameter (Bybit ``transferId`` must be a UUID; OKX
    ``clientId``; Binance has none). ``withdraw_lookup``: the history query parameter that
    filters withdrawals by our id (None: match on the returned record instead).
    """

    network: str
    funding: str
    trading: str
    withdraw_id: str
    transfer_id: str | None
    withdraw_lookup: str | None


TRANSFERS: dict[str, TransferSpec] = {
    # Binance: POST /sapi/v1/capital/withdraw/apply (withdrawOrderId), GET
    # /sapi/v1/capital/withdraw/history?withdrawOrderId=; POST /sapi/v1/asset/transfer MAIN_UMFUTURE.
    "binance": TransferSpec("ERC20", "spot", "linear", "withdrawOrderId", None, "withdrawOrderId"),
    # Bybit v5: POST /v5/asset/withdraw/create (requestId: "used for idempotent verification"),
    # POST /v5/asset/transfer/inter-transfer (transferId UUID), FUND -> UNIFIED.
    "bybit": TransferSpec("ERC20", "funding", "unified", "requestId", "transferId", None),
    # OKX v5: POST /api/v5/asset/withdrawal (clientId), GET /api/v5/asset/withdrawal-history?clientId=;
    # POST /api/v5/asset/transfer (clientId), 6 = funding, 18 = trading.
    "okx": TransferSpec("ERC20", "funding", "trading", "clientId", "clientId", "clientId"),
}


@dataclass(frozen=True)
class SpotSpec:
    """How one venue's spot market maps onto ccxt: ``ccxt_id`` (class), ``client_id_param``
    (Binance spot ``newClientOrderId``, Bybit ``orderLinkId``), ``needs_transfer``: spot
    trades from another wallet than perps (Binance: Spot vs USD-M) so USDT must be moved."""

    ccxt_id: str
    client_id_param: str
    needs_transfer: bool
    options: dict = field(default_factory=dict)


SPOT_VENUES: dict[str, SpotSpec] = {
    # Binance spot: POST /api/v3/order (newClientOrderId), GET /api/v3/order?origClientOrderId=,
    # GET /api/v3/myTrades?orderId= (commission per fill).
    "binance": SpotSpec("binance", "newClientOrderId", True, {"defaultType": "spot", "fetchMargins": False}),
    # Bybit v5 UTA: POST /v5/order/create category=spot, marketUnit=baseCoin (qty in base units).
    "bybit": SpotSpec("bybit", "orderLinkId", False, {"defaultType": "spot"}),
}

#: Stop kinds -> ccxt unified order param (createOrder ``params``).
STOP_PARAMS = {"take_profit": "takeProfitPrice", "stop_loss": "stopLossPrice"}


class Funding(NamedTuple):
    """Current funding of one perp: ``rate`` per interval (positive = longs pay) and the UTC
    time of the settlement it applies to (None if the venue does not say)."""

    rate: float
    next_time: datetime | None


@dataclass(frozen=True)
class OrderRequest:
    """The order an instruction becomes, before it is sent (pure data, for tests and journal)."""

    instrument: str
    symbol: str
    side: str
    contracts: float
    amount: float
    reduce_only: bool
    params: dict


def make_exchange(venue: str, credentials: ExchangeCredentials | None):
    """A ccxt exchange for ``venue`` (no network call is made here)."""
    import ccxt

    spec = _spec(venue)
    cfg = {"enableRateLimit": True, "options": dict(spec.options)}
    if credentials is not None:
        cfg.update(credentials.ccxt_config())
    ex = getattr(ccxt, spec.ccxt_id)(cfg)
    ex.options.setdefault("fetchMarkets", {})
    if isinstance(ex.options["fetchMarkets"], dict):
        ex.options["fetchMarkets"]["types"] = list(spec.market_types)
    return ex


def _spec(venue: str) -> VenueSpec:
    try:
        return VENUES[venue]
    except KeyError:
        raise AdapterError(venue, "init", f"no exchange adapter for venue {venue!r} (known: {', '.join(VENUES)})") from None


def _units(contracts: float, contract_size: float) -> float:
    """Contracts x contract size in asset units, without binary noise (12 x 0.1 = 1.2)."""
    return float(Decimal(repr(float(contracts))) * Decimal(repr(float(contract_size))))


def _retryable():
    import ccxt

    return (ccxt.NetworkError,)


class ExchangeAdapter:
    """Balances, positions, funding and orders of one exchange, in trimtab's keys and units.

    Build with :meth:`from_env` (credentials from ``TRIMTAB_<VENUE>_*``) or pass a configured
    ccxt ``exchange`` (tests pass one whose HTTP session replays recorded responses).
    """

    def __init__(self, venue: str, exchange=None, credentials: ExchangeCredentials | None = None, spot_exchange=None) -> None:
        self.venue = venue
        self.spec = _spec(venue)
        self.exchange = exchange if exchange is not None else make_exchange(venue, credentials)
        self._spot = spot_exchange
        self._spot_loaded = False
        # cancel_all lists open orders across markets in one call (Binance warns otherwise).
        foo = self.exchange.options.setdefault("fetchOpenOrders", {})
        if isinstance(foo, dict):
            foo["warnWithoutSymbol"] = False
        self._loaded = False

    @classmethod
    def from_env(cls, venue: str) -> "ExchangeAdapter":
        return cls(venue, credentials=exchange_credentials(venue))

    # -- markets and names -------------------------------------------------------------
    def load_markets(self, reload: bool = False) -> dict:
        """Load the venue's perpetual markets (only ``spec.market_types``; no currency calls)."""
        if self._loaded and not reload:
            return self.exchange.markets
        with wrap_errors(self.venue, "load_markets", _retryable()):
            markets = self.exchange.fetch_markets()
            self.exchange.set_markets(markets)
        self._loaded = True
        return self.exchange.markets

    def symbol_for(self, instrument: str) -> str:
        """``binance:Perp:ETHUSDT`` -> ``ETH/USDT:USDT`` (must be a loaded linear perpetual)."""
        k = parse_key(instrument)
        if k.venue != self.venue or k.position_type != "Perp":
            raise AdapterError(self.venue, "symbol", f"{instrument} is not a {self.venue} Perp instrument")
        self.load_markets()
        for q in QUOTES:
            if k.symbol.endswith(q) and len(k.symbol) > len(q):
                sym = f"{k.symbol[:-len(q)]}/{q}:{q}"
                m = self.exchange.markets.get(sym)
                if m is not None and m.get("swap") and m.get("linear"):
                    return sym
        raise AdapterError(self.venue, "symbol", f"no linear perpetual market for {instrument} on {self.venue}")

    def instrument_for(self, symbol: str) -> str:
        """``ETH/USDT:USDT`` -> ``binance:Perp:ETHUSDT``."""
        self.load_markets()
        m = self.exchange.market(symbol)
        return make_key(self.venue, "Perp", f"{m['base']}{m['quote']}")

    def contract_size(self, symbol: str) -> float:
        """Asset units per contract, from the venue's market data (1 when the venue omits it)."""
        self.load_markets()
        cs = self.exchange.market(symbol).get("contractSize")
        return float(cs) if cs else 1.0

    # -- account state -----------------------------------------------------------------
    def balances(self) -> dict[str, float]:
        """``{"binance:Margin:USDT": 24613.91, ...}``: wallet balance per asset (asset units,
        unrealised PnL excluded), non-zero assets only."""
        self.load_markets()
        with wrap_errors(self.venue, "balances", _retryable()):
            bal = self.exchange.fetch_balance()
        out: dict[str, float] = {}
        for code, amount in self._wallet_balances(bal).items():
            if amount and math.isfinite(amount):
                out[make_key(self.venue, "Margin", code)] = amount
        return out

    def _wallet_balances(self, bal: dict) -> dict[str, float]:
        info = bal.get("info")
        rows: list[tuple[str | None, dict]] = []
        if self.venue == "binance" and isinstance(info, dict):
            rows = [(r.get("asset"), r) for r in info.get("assets", [])]
        elif self.venue == "bybit" and isinstance(info, dict):
            accounts = (info.get("result") or {}).get("list") or []
            rows = [(c.get("coin"), c) for a in accounts for c in a.get("coin", [])]
        elif self.venue == "okx" and isinstance(info, dict):
            rows = [(d.get("ccy"), d) for a in info.get("data", []) for d in a.get("details", [])]
        out: dict[str, float] = {}
        for raw_code, row in rows:
            v = row.get(self.spec.wallet_field)
            if raw_code and v not in (None, ""):
                code = self.exchange.safe_currency_code(raw_code)
                out[code] = out.get(code, 0.0) + float(v)
        if not rows:  # unknown raw shape: fall back to ccxt's unified totals
            out = {c: float(v) for c, v in (bal.get("total") or {}).items() if v is not None}
        return out

    def positions(self) -> dict[str, tuple[float, float]]:
        """``{"binance:Perp:ETHUSDT": (-2.5, 3110.42)}``: signed size in asset units (negative =
        short) and entry price (quote per asset unit). Flat positions are left out.

        Raises AdapterError for a hedge-mode account holding both a long and a short in one
        market: trimtab keeps one net position per instrument (one-way mode)."""
        self.load_markets()
        with wrap_errors(self.venue, "positions", _retryable()):
            raw = self.exchange.fetch_positions()
        out: dict[str, tuple[float, float]] = {}
        for p in raw:
            sym = p.get("symbol")
            if sym not in self.exchange.markets or not p.get("contracts"):
                continue
            m = self.exchange.market(sym)
            if not (m.get("swap") and m.get("linear")):
                continue
            contracts = float(p["contracts"])
            cs = float(p.get("contractSize") or m.get("contractSize") or 1.0)
            side = p.get("side")
            if side not in ("long", "short"):
                raise AdapterError(self.venue, "positions", f"position in {sym} has no side: {side!r}")
            size = _units(contracts, cs) * (1.0 if side == "long" else -1.0)
            entry = float(p.get("entryPrice") or 0.0)
            k = self.instrument_for(sym)
            if k in out and out[k][0] * size < 0:
                raise AdapterError(self.venue, "positions", f"{k}: long and short open at once (hedge mode); trimtab needs one-way mode")
            if k in out:
                s0, e0 = out[k]
                size_t = s0 + size
                entry = (abs(s0) * e0 + abs(size) * entry) / abs(size_t)
                size = size_t
            out[k] = (size, entry)
        return out

    def funding(self, instrument: str) -> Funding:
        """Current funding rate of ``instrument`` for its next settlement, and that time (UTC)."""
        sym = self.symbol_for(instrument)
        with wrap_errors(self.venue, "funding", _retryable()):
            fr = self.exchange.fetch_funding_rate(sym)
        rate = fr.get("fundingRate")
        if rate is None:
            raise AdapterError(self.venue, "funding", f"{instrument}: venue returned no funding rate")
        ts = fr.get("fundingTimestamp") or fr.get("nextFundingTimestamp")
        when = datetime.fromtimestamp(ts / 1000, tz=timezone.utc) if ts else None
        return Funding(float(rate), when)

    # -- orders ------------------------------------------------------------------------
    def order_request(self, instruction, client_order_id: str, current_size: float) -> OrderRequest:
        """The market order for a ``trade`` instruction (signed asset units in ``amount``).

        ``reduce_only`` is set when the trade moves the position toward zero without crossing
        it (``|amount| <= |current_size|`` and opposite signs); a trade that flips the position
        is sent without it. Contracts are ``|amount| / contractSize`` rounded to the venue's
        amount precision; a size that rounds to zero raises AdapterError.
        """
        if instruction.operation != "trade":
            raise AdapterError(self.venue, "place_order", f"operation {instruction.operation!r} is not a perp trade")
        if instruction.venue != self.venue:
            raise AdapterError(self.venue, "place_order", f"instruction is for venue {instruction.venue!r}")
        amount = float(instruction.amount)
        if not math.isfinite(amount) or amount == 0:
            raise AdapterError(self.venue, "place_order", f"{instruction.instrument}: trade amount must be non-zero, got {amount}")
        sym = self.symbol_for(instruction.instrument)
        cs = self.contract_size(sym)
        raw = Decimal(repr(abs(amount))) / Decimal(repr(cs))  # exact: 1.2 / 0.1 = 12, not 11.999...
        try:
            contracts = float(self.exchange.amount_to_precision(sym, str(raw)))
        except Exception:  # ccxt raises InvalidOrder when the size truncates to zero
            contracts = 0.0
        if contracts <= 0:
            raise AdapterError(self.venue, "place_order", f"{instruction.instrument}: {amount} is below the venue's size step")
        reduce = current_size * amount < 0 and abs(amount) <= abs(current_size) * (1 + _EPS)
        if "reduce_only" in instruction.params:
            reduce = bool(instruction.params["reduce_only"])
        params = {self.spec.client_id_param: client_order_id}
        if reduce:
            params["reduceOnly"] = True
        return OrderRequest(instruction.instrument, sym, "buy" if amount > 0 else "sell", contracts,
                            amount, reduce, params)

    def place_order(self, instruction, client_order_id: str, current_size: float | None = None) -> OrderResult:
        """Send ``instruction`` as a market order, unless ``client_order_id`` already exists.

        ``current_size`` is the signed position in asset units (looked up if None). The order
        is looked up by client id first; if found it is returned with ``already_placed=True``.
        A network failure while sending, or the venue's "duplicate client id" error, is
        resolved by looking the id up again. After sending, the order is re-read once to report
        fills (market orders usually fill at once; the acknowledgement is returned otherwise).

        Not handled here: ``take_profit``/``stop_loss``/``clear_stops`` in ``instruction.params``
        (resting protective orders of signal-driven perps): the gateway places and cancels them
        with :meth:`place_stop` / :meth:`cancel_stop`.
        """
        sym = self.symbol_for(instruction.instrument)
        existing = self.fetch_order_by_client_id(client_order_id, instruction.instrument)
        if existing is not None:
            return existing
        if current_size is None:
            current_size = self.positions().get(instruction.instrument, (0.0, 0.0))[0]
        req = self.order_request(instruction, client_order_id, current_size)
        import ccxt

        try:
            with wrap_errors(self.venue, "place_order", _retryable()):
                try:
                    ack = self.exchange.create_order(sym, "market", req.side, req.contracts, None, dict(req.params))
                except ccxt.BaseError as e:
                    if not self._is_duplicate(e):
                        raise
                    ack = None
        except AdapterError as e:
            if not e.retryable:
                raise
            ack = None  # outcome unknown: the lookup below decides
        if ack is None:
            found = self.fetch_order_by_client_id(client_order_id, instruction.instrument)
            if found is None:
                raise AdapterError(self.venue, "place_order", f"{instruction.instrument}: send failed and no order {client_order_id} exists; safe to retry", retryable=True)
            return found
        result = self._to_result(ack, instruction.instrument, client_order_id, req)
        try:
            refreshed = self.fetch_order_by_client_id(client_order_id, instruction.instrument)
        except AdapterError:
            refreshed = None
        if refreshed is not None:
            return OrderResult(**{**refreshed.to_dict(), "already_placed": False, "reduce_only": req.reduce_only})
        return result

    def _is_duplicate(self, e: Exception) -> bool:
        """True for the venue's "client order id already used" rejection (an InvalidOrder in
        ccxt whose message carries the venue's error code)."""
        import ccxt

        if not isinstance(e, ccxt.InvalidOrder):
            return False
        text = str(e)
        return any(re.search(rf"(?<![\w-]){re.escape(c)}(?!\d)", text) for c in self.spec.duplicate_codes)

    def fetch_order_by_client_id(self, client_order_id: str, instrument: str) -> OrderResult | None:
        """The order with this client id in ``instrument``'s market, or None if the venue has none."""
        import ccxt

        sym = self.symbol_for(instrument)
        with wrap_errors(self.venue, "fetch_order", _retryable()):
            try:
                order = self._fetch_by_client_id(client_order_id, sym)
            except ccxt.OrderNotFound:
                return None
        if order is None:
            return None
        return self._to_result(order, instrument, client_order_id, None, already_placed=True)

    def _fetch_by_client_id(self, cid: str, sym: str) -> dict | None:
        ex = self.exchange
        if self.venue == "binance":
            return ex.fetch_order(None, sym, {"origClientOrderId": cid})
        if self.venue == "okx":
            return ex.fetch_order(None, sym, {"clOrdId": cid})
        if self.venue == "bybit":
            # v5 /order/realtime finds open and recently closed orders by orderLinkId;
            # /order/history holds the rest (Bybit v5 docs, "Get Open & Closed Orders").
            m = ex.market(sym)
            for call in (ex.privateGetV5OrderRealtime, ex.privateGetV5OrderHistory):
                res = call({"category": "linear", "symbol": m["id"], "orderLinkId": cid})
                rows = ((res or {}).get("result") or {}).get("list") or []
                if rows:
                    return ex.parse_order(rows[0], m)
            return None
        raise AdapterError(self.venue, "fetch_order", "no client-id lookup for this venue")

    def _to_result(self, o: dict, instrument: str, cid: str, req: OrderRequest | None, already_placed: bool = False) -> OrderResult:
        sym = o.get("symbol") or self.symbol_for(instrument)
        cs = self.contract_size(sym)
        side = o.get("side") or (req.side if req else None)
        sign = 1.0 if side == "buy" else -1.0
        contracts = float(o.get("amount") or (req.contracts if req else 0.0))
        filled = float(o.get("filled") or 0.0)
        fee = o.get("fee") or {}
        info = o.get("info") or {}
        ro = o.get("reduceOnly")
        if ro is None and req is not None:
            ro = req.reduce_only
        return OrderResult(
            venue=self.venue, instrument=instrument, symbol=sym,
            client_order_id=o.get("clientOrderId") or info.get(self.spec.client_id_param) or cid,
            order_id=str(o["id"]) if o.get("id") is not None else None, side=side,
            amount=sign * _units(contracts, cs), contracts=contracts, filled=sign * _units(filled, cs),
            average_price=float(o["average"]) if o.get("average") else None,
            status=o.get("status"), reduce_only=bool(ro), already_placed=already_placed,
            fee=float(fee["cost"]) if fee.get("cost") is not None else None, fee_currency=fee.get("currency"),
            cost=float(o["cost"]) if o.get("cost") is not None else None,
        )

    # -- USDT transfers (deposits, withdrawals, internal moves) --------------------------
    def _transfer_spec(self) -> TransferSpec:
        try:
            return TRANSFERS[self.venue]
        except KeyError:
            raise AdapterError(self.venue, "transfer", "no transfer settings for this venue") from None

    def deposit_address(self, code: str = "USDT") -> str:
        """The account's ERC-20 deposit address for ``code`` (ccxt ``fetch_deposit_address``
        with the venue's network). Raises AdapterError if the venue gives none or a tag/memo
        (an ERC-20 deposit never needs one; a memo would mean the wrong network)."""
        spec = self._transfer_spec()
        self.load_markets()
        with wrap_errors(self.venue, "deposit_address", _retryable()):
            a = self.exchange.fetch_deposit_address(code, {"network": spec.network})
        addr = (a or {}).get("address")
        if not addr or not re.fullmatch(r"0x[0-9a-fA-F]{40}", addr) or a.get("tag"):
            raise AdapterError(self.venue, "deposit_address", f"no plain ERC-20 {code} deposit address returned")
        return addr

    def find_deposit(self, txid: str, code: str = "USDT") -> dict | None:
        """The venue's record of the deposit made by on-chain transaction ``txid`` (ccxt
        transaction structure: ``status`` ok/pending/failed, ``amount``), or None if not seen yet."""
        self.load_markets()
        with wrap_errors(self.venue, "fetch_deposits", _retryable()):
            rows = self.exchange.fetch_deposits(code)
        t = txid.lower().removeprefix("0x")
        return next((r for r in rows if (r.get("txid") or "").lower().removeprefix("0x") == t), None)

    def find_withdrawal(self, client_id: str, code: str = "USDT", address: str | None = None,
                        amount: float | None = None) -> dict | None:
        """Our withdrawal with client id ``client_id`` (ccxt transaction structure), or None.
        Venues that cannot filter by it (Bybit) are matched on address and amount."""
        spec = self._transfer_spec()
        self.load_markets()
        params = {spec.withdraw_lookup: client_id} if spec.withdraw_lookup else {}
        with wrap_errors(self.venue, "fetch_withdrawals", _retryable()):
            rows = self.exchange.fetch_withdrawals(code, None, None, params)
        for r in rows:
            info = r.get("info") or {}
            if info.get(spec.withdraw_id) == client_id:
                return r
            if spec.withdraw_lookup is None and address and amount is not None and \
                    (r.get("address") or "").lower() == address.lower() and abs(float(r.get("amount") or 0) - amount) < 1e-6:
                return r
        return None

    def withdraw(self, amount: float, address: str, client_id: str, code: str = "USDT") -> tuple[dict, bool]:
        """Withdraw ``amount`` ``code`` over ERC-20 to ``address`` with client id ``client_id``,
        unless a withdrawal with that id exists. Returns (record, already_sent)."""
        spec = self._transfer_spec()
        found = self.find_withdrawal(client_id, code, address, amount)
        if found is not None:
            return found, True
        with wrap_errors(self.venue, "withdraw", _retryable()):
            r = self.exchange.withdraw(code, amount, address, {"network": spec.network, spec.withdraw_id: client_id})
        return r, False

    def internal_transfer(self, amount: float, to_trading: bool, client_id: str, code: str = "USDT") -> dict:
        """Move ``amount`` ``code`` between the funding and trading accounts (ccxt ``transfer``),
        with the venue's client transfer id when it has one (Bybit: a UUID derived from
        ``client_id``, so a resend is recognised by the venue)."""
        import uuid

        spec = self._transfer_spec()
        self.load_markets()
        src, dst = (spec.funding, spec.trading) if to_trading else (spec.trading, spec.funding)
        params = {}
        if spec.transfer_id == "transferId":
            params["transferId"] = str(uuid.uuid5(uuid.NAMESPACE_OID, client_id))
        elif spec.transfer_id:
            params[spec.transfer_id] = client_id
        with wrap_errors(self.venue, "transfer", _retryable()):
            return self.exchange.transfer(code, amount, src, dst, params)

    # -- spot ----------------------------------------------------------------------------
    def spot_spec(self) -> SpotSpec:
        try:
            return SPOT_VENUES[self.venue]
        except KeyError:
            raise AdapterError(self.venue, "spot", f"no spot market adapter for {self.venue} (known: {', '.join(SPOT_VENUES)})") from None

    @property
    def spot(self):
        """The venue's ccxt spot client (built on first use with the perp client's keys)."""
        if self._spot is None:
            import ccxt

            spec = self.spot_spec()
            cfg = {"enableRateLimit": self.exchange.enableRateLimit, "options": dict(spec.options)}
            for k in ("apiKey", "secret", "password"):
                if getattr(self.exchange, k, None):
                    cfg[k] = getattr(self.exchange, k)
            ex = getattr(ccxt, spec.ccxt_id)(cfg)
            ex.options["fetchMarkets"] = {"types": ["spot"]}
            self._spot = ex
        return self._spot

    def spot_symbol_for(self, instrument: str) -> str:
        """``binance:BaseToken:BTC`` -> ``BTC/USDT`` (must be a loaded spot market)."""
        k = parse_key(instrument)
        if k.venue != self.venue or k.position_type != "BaseToken":
            raise AdapterError(self.venue, "spot_symbol", f"{instrument} is not a {self.venue} spot holding")
        if not self._spot_loaded:
            with wrap_errors(self.venue, "load_spot_markets", _retryable()):
                self.spot.set_markets(self.spot.fetch_markets())
            self._spot_loaded = True
        sym = f"{k.symbol}/USDT"
        m = self.spot.markets.get(sym)
        if m is None or not m.get("spot"):
            raise AdapterError(self.venue, "spot_symbol", f"no {sym} spot market on {self.venue}")
        return sym

    def place_spot_order(self, instruction, client_order_id: str) -> OrderResult:
        """Market-buy (amount > 0) or sell ``instruction.amount`` base units (BTC) of the spot
        holding ``instruction.instrument`` against USDT, unless ``client_order_id`` exists
        (then that order, ``already_placed=True``). Amounts are rounded to the market's step.
        A network failure or the venue's duplicate-id error is resolved by looking the id up."""
        import ccxt

        if instruction.operation != "spot_trade" or instruction.venue != self.venue:
            raise AdapterError(self.venue, "spot_order", f"{instruction.venue}.{instruction.operation} is not a {self.venue} spot trade")
        sym = self.spot_symbol_for(instruction.instrument)
        existing = self.fetch_spot_order(client_order_id, instruction.instrument)
        if existing is not None:
            return existing
        amount = float(instruction.amount)
        try:
            qty = float(self.spot.amount_to_precision(sym, repr(abs(amount))))
        except Exception:  # ccxt raises when the size truncates to zero
            qty = 0.0
        if not math.isfinite(amount) or qty <= 0:
            raise AdapterError(self.venue, "spot_order", f"{instruction.instrument}: {amount} is below the venue's size step")
        side = "buy" if amount > 0 else "sell"
        params = {self.spot_spec().client_id_param: client_order_id}
        try:
            with wrap_errors(self.venue, "spot_order", _retryable()):
                try:
                    self.spot.create_order(sym, "market", side, qty, None, params)
                except ccxt.InvalidOrder as e:
                    if not any(c in str(e) for c in ("-2010", "-2026", "170141", "Duplicate", "duplicate")):
                        raise
        except AdapterError as e:
            if not e.retryable:
                raise
        found = self.fetch_spot_order(client_order_id, instruction.instrument)
        if found is None:
            raise AdapterError(self.venue, "spot_order", f"{instruction.instrument}: send failed and no order {client_order_id} exists; safe to retry",
                               retryable=True)
        return OrderResult(**{**found.to_dict(), "already_placed": False})

    def fetch_spot_order(self, client_order_id: str, instrument: str) -> OrderResult | None:
        """The spot order with this client id (base units, cost in USDT), or None. Binance's
        order query carries no commission: it is summed from the order's trades (``myTrades``)."""
        import ccxt

        sym = self.spot_symbol_for(instrument)
        ex = self.spot
        with wrap_errors(self.venue, "fetch_spot_order", _retryable()):
            try:
                if self.venue == "binance":
                    o = ex.fetch_order(None, sym, {"origClientOrderId": client_order_id})
                else:
                    m = ex.market(sym)
                    o = None
                    for call in (ex.privateGetV5OrderRealtime, ex.privateGetV5OrderHistory):
                        res = call({"category": "spot", "symbol": m["id"], "orderLinkId": client_order_id})
                        rows = ((res or {}).get("result") or {}).get("list") or []
                        if rows:
                            o = ex.parse_order(rows[0], m)
                            break
            except ccxt.OrderNotFound:
                return None
            if o is None:
                return None
            fee = o.get("fee") or {}
            if fee.get("cost") is None and self.venue == "binance" and float(o.get("filled") or 0) > 0:
                trades = ex.fetch_my_trades(sym, None, None, {"orderId": o["id"]})
                costs: dict[str, float] = {}
                for t in trades:
                    tf = t.get("fee") or {}
                    if tf.get("cost") is not None:
                        costs[tf.get("currency")] = costs.get(tf.get("currency"), 0.0) + float(tf["cost"])
                if len(costs) == 1:
                    (cur, cost), = costs.items()
                    fee = {"cost": cost, "currency": cur}
        side = o.get("side")
        sign = 1.0 if side == "buy" else -1.0
        filled = float(o.get("filled") or 0.0)
        amount = float(o.get("amount") or filled)
        return OrderResult(
            venue=self.venue, instrument=instrument, symbol=sym, client_order_id=o.get("clientOrderId") or client_order_id,
            order_id=str(o["id"]) if o.get("id") is not None else None, side=side, amount=sign * amount, contracts=amount,
            filled=sign * filled, average_price=float(o["average"]) if o.get("average") else None, status=o.get("status"),
            reduce_only=False, already_placed=True, fee=float(fee["cost"]) if fee.get("cost") is not None else None,
            fee_currency=fee.get("currency"), cost=float(o["cost"]) if o.get("cost") is not None else None)

    # -- resting take-profit / stop-loss --------------------------------------------------
    def place_stop(self, instrument: str, kind: str, position: float, trigger: float, client_order_id: str) -> OrderResult:
        """A reduce-only conditional market order closing ``position`` (signed asset units: the
        whole position it protects) when the mark crosses ``trigger`` (quote per asset unit).
        ``kind``: ``take_profit`` or ``stop_loss``. Looked up by client id first (never twice)."""
        if kind not in STOP_PARAMS:
            raise AdapterError(self.venue, "place_stop", f"unknown stop kind {kind!r}")
        if self.venue not in ("binance", "bybit"):
            raise AdapterError(self.venue, "place_stop", "resting stops are implemented for binance and bybit only")
        existing = self.fetch_stop(client_order_id, instrument)
        if existing is not None:
            return existing
        sym = self.symbol_for(instrument)
        cs = self.contract_size(sym)
        contracts = float(self.exchange.amount_to_precision(sym, str(Decimal(repr(abs(position))) / Decimal(repr(cs)))))
        if contracts <= 0 or not math.isfinite(trigger) or trigger <= 0:
            raise AdapterError(self.venue, "place_stop", f"{instrument}: bad stop size {position} or trigger {trigger}")
        cid_param = "clientAlgoId" if self.venue == "binance" else self.spec.client_id_param
        params = {STOP_PARAMS[kind]: self.exchange.price_to_precision(sym, trigger), "reduceOnly": True, cid_param: client_order_id}
        side = "sell" if position > 0 else "buy"
        with wrap_errors(self.venue, "place_stop", _retryable()):
            ack = self.exchange.create_order(sym, "market", side, contracts, None, params)
        req = OrderRequest(instrument, sym, side, contracts, -position, True, params)
        return self._to_result(ack, instrument, client_order_id, req)

    def fetch_stop(self, client_order_id: str, instrument: str) -> OrderResult | None:
        """The conditional order with this client id, or None. ``status`` closed means it
        triggered and its market order filled: ``filled``/``average_price``/``fee`` are that
        fill's (Binance: the algo order's ``actualOrderId`` is read)."""
        import ccxt

        sym = self.symbol_for(instrument)
        with wrap_errors(self.venue, "fetch_stop", _retryable()):
            try:
                if self.venue == "binance":
                    o = self.exchange.fetch_order(None, sym, {"clientAlgoId": client_order_id, "trigger": True})
                    actual = (o.get("info") or {}).get("actualOrderId")
                    if o.get("status") == "closed" and actual not in (None, "", "0", 0):
                        fill = self.exchange.fetch_order(str(actual), sym)
                        o = {**fill, "clientOrderId": client_order_id}
                else:
                    o = self._fetch_by_client_id(client_order_id, sym)
            except ccxt.OrderNotFound:
                return None
        if o is None:
            return None
        return self._to_result(o, instrument, client_order_id, None, already_placed=True)

    def cancel_stop(self, client_order_id: str, instrument: str) -> OrderResult | None:
        """Cancel the conditional order with this client id; returns its state afterwards
        (``canceled``; or ``closed`` when it had filled first), None if the venue has none."""
        import ccxt

        found = self.fetch_stop(client_order_id, instrument)
        if found is None or found.status not in ("open", None):
            return found
        sym = self.symbol_for(instrument)
        params = {"clientAlgoId": client_order_id, "trigger": True} if self.venue == "binance" else {self.spec.client_id_param: client_order_id}
        with wrap_errors(self.venue, "cancel_stop", _retryable()):
            try:
                self.exchange.cancel_order(None, sym, params)
            except (ccxt.OrderNotFound, ccxt.InvalidOrder):
                pass  # filled or cancelled meanwhile: the read below says which
        return self.fetch_stop(client_order_id, instrument)

    def cancel_all(self, instruments: list[str] | None = None) -> list[str]:
        """Cancel every open order in ``instruments`` (default: every perp market that has an
        open order now). Returns the instruments cleared. This is the kill switch's first step."""
        self.load_markets()
        if instruments is None:
            with wrap_errors(self.venue, "cancel_all", _retryable()):
                open_orders = self.exchange.fetch_open_orders()
            instruments = sorted({self.instrument_for(o["symbol"]) for o in open_orders
                                  if o.get("symbol") in self.exchange.markets})
        for k in instruments:
            sym = self.symbol_for(k)
            with wrap_errors(self.venue, "cancel_all", _retryable()):
                if self.exchange.has.get("cancelAllOrders") is True:
                    self.exchange.cancel_all_orders(sym)
                else:  # OKX: no cancel-all endpoint for regular orders; cancel by id
                    ids = [o["id"] for o in self.exchange.fetch_open_orders(sym)]
                    if ids:
                        self.exchange.cancel_orders(ids, sym)
        return list(instruments)
