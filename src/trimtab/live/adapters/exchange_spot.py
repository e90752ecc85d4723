"""Spot orders of an exchange: market buys and sells of a ``spot`` target's base asset.

Spot (``spot_trade`` of ``spot`` targets, :meth:`SpotOrders.place_spot_order`): a
second ccxt client per venue for its spot market (:data:`SPOT_VENUES`: Binance ``binance``
spot API, Bybit ``bybit`` v5 ``category=spot``), same keys, built on first use.
``binance:BaseToken:BTC`` <-> ``BTC/USDT``; market orders in base units (BTC) with the same
lookup-before-send by client order id. Binance spot trades from the Spot wallet while trimtab
keeps the venue's USDT in the USD-M account (``binance:Margin:USDT``): the gateway moves it
(ccxt ``transfer``, USD-M <-> Spot, :attr:`SpotSpec.needs_transfer`). Bybit's Unified Trading
Account holds spot and perps in one wallet: no transfer.

Sources: ccxt unified API (docs.ccxt.com: createOrder, fetchOrder, fetchMyTrades), Binance spot
and Bybit v5 REST docs (endpoints at :data:`SPOT_VENUES`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from trimtab.keys import parse_key
from trimtab.live.adapters.base import AdapterError, OrderResult, ccxt_retryable, wrap_errors


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


class SpotOrders:
    """Spot market orders of one exchange through a second ccxt client (mixin of
    :class:`~trimtab.live.adapters.exchange.ExchangeAdapter`: uses its ``venue``, ``exchange``
    (keys, rate limiting) and the ``_spot``/``_spot_loaded`` state its constructor sets)."""

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
            with wrap_errors(self.venue, "load_spot_markets", ccxt_retryable()):
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
            with wrap_errors(self.venue, "spot_order", ccxt_retryable()):
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
        with wrap_errors(self.venue, "fetch_spot_order", ccxt_retryable()):
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
