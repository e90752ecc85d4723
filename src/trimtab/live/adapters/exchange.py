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

Other jobs of the adapter live in sibling modules as mixins :class:`ExchangeAdapter` inherits:
USDT deposits, withdrawals and internal transfers (:mod:`.exchange_transfers`), spot orders
(:mod:`.exchange_spot`) and resting take-profit / stop-loss orders (:mod:`.exchange_stops`).
Their settings (:data:`TRANSFERS`, :data:`SPOT_VENUES`, :data:`STOP_PARAMS`) are re-exported
here.

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
from trimtab.live.adapters.base import AdapterError, OrderRequest, OrderResult, ccxt_retryable, wrap_errors
from trimtab.live.adapters.exchange_spot import SPOT_VENUES, SpotOrders, SpotSpec
from trimtab.live.adapters.exchange_stops import STOP_PARAMS, StopOrders
from trimtab.live.adapters.exchange_transfers import TRANSFERS, ExchangeTransfers, TransferSpec
from trimtab.live.secrets import ExchangeCredentials, exchange_credentials

__all__ = ["QUOTES", "VENUES", "TRANSFERS", "SPOT_VENUES", "STOP_PARAMS", "VenueSpec", "TransferSpec", "SpotSpec",
           "Funding", "OrderRequest", "ExchangeAdapter", "make_exchange"]

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


class Funding(NamedTuple):
    """Current funding of one perp: ``rate`` per interval (positive = longs pay) and the UTC
    time of the settlement it applies to (None if the venue does not say)."""

    rate: float
    next_time: datetime | None


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


class ExchangeAdapter(ExchangeTransfers, SpotOrders, StopOrders):
    """Balances, positions, funding and orders of one exchange, in trimtab's keys and units
    (transfers, spot orders and resting stops from the mixins, see the module doc).

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
        with wrap_errors(self.venue, "load_markets", ccxt_retryable()):
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
        with wrap_errors(self.venue, "balances", ccxt_retryable()):
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
        with wrap_errors(self.venue, "positions", ccxt_retryable()):
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
        with wrap_errors(self.venue, "funding", ccxt_retryable()):
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
            with wrap_errors(self.venue, "place_order", ccxt_retryable()):
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
        with wrap_errors(self.venue, "fetch_order", ccxt_retryable()):
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

    # -- kill switch ---------------------------------------------------------------------
    def cancel_all(self, instruments: list[str] | None = None) -> list[str]:
        """Cancel every open order in ``instruments`` (default: every perp market that has an
        open order now). Returns the instruments cleared. This is the kill switch's first step."""
        self.load_markets()
        if instruments is None:
            with wrap_errors(self.venue, "cancel_all", ccxt_retryable()):
                open_orders = self.exchange.fetch_open_orders()
            instruments = sorted({self.instrument_for(o["symbol"]) for o in open_orders
                                  if o.get("symbol") in self.exchange.markets})
        for k in instruments:
            sym = self.symbol_for(k)
            with wrap_errors(self.venue, "cancel_all", ccxt_retryable()):
                if self.exchange.has.get("cancelAllOrders") is True:
                    self.exchange.cancel_all_orders(sym)
                else:  # OKX: no cancel-all endpoint for regular orders; cancel by id
                    ids = [o["id"] for o in self.exchange.fetch_open_orders(sym)]
                    if ids:
                        self.exchange.cancel_orders(ids, sym)
        return list(instruments)
