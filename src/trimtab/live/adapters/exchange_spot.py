"""Spot orders of an exchange: market buys and sells of a ``spot`` target's base asset.

Spot (``spot_trade`` of ``spot`` targets, :meth:`SpotOrders.place_spot_order`): a second ccxt
client per venue for its spot market, built on first use with the same keys, from the
``live.spot`` facts of the venue file (:class:`~trimtab.config.models.LiveSpotSpec`: ccxt id
and options, client-id fields, quote, error codes; a venue without them has no spot adapter).
``binance:BaseToken:BTC`` <-> ``BTC/USDT``; market orders in base units (BTC) with the same
lookup-before-send by client order id. ``needs_transfer``: spot trades from another wallet than
perps (Binance: Spot vs USD-M, where trimtab keeps the venue's USDT as
``binance:Margin:USDT``), so the gateway moves USDT around the order (ccxt ``transfer``);
Bybit's Unified Trading Account holds both: no transfer.

Hooks a venue package overrides: :meth:`SpotOrders._fetch_spot_by_client_id` (a venue whose
order query cannot filter by client id: Bybit) and :meth:`SpotOrders._spot_fee` (a venue whose
order carries no commission: Binance).

Sources: ccxt unified API (docs.ccxt.com: createOrder, fetchOrder, fetchMyTrades); the venues'
REST pages are cited beside the facts in ``venues/*.yaml``.
"""
from __future__ import annotations

import math

from trimtab.config.models import LiveSpotSpec
from trimtab.keys import parse_key
from trimtab.live.adapters.base import AdapterError, OrderResult, ccxt_retryable, wrap_errors

#: Rejection texts meaning "client order id already used" on any venue, besides its own codes.
_DUPLICATE_WORDS = ("Duplicate", "duplicate")


class SpotOrders:
    """Spot market orders of one exchange through a second ccxt client (mixin of
    :class:`~trimtab.live.adapters.exchange.ExchangeAdapter`: uses its ``venue``, ``facts``,
    ``exchange`` (keys, rate limiting) and the ``_spot``/``_spot_loaded`` state its constructor
    sets)."""

    def spot_spec(self) -> LiveSpotSpec:
        """The venue's ``live.spot`` facts; AdapterError if the venue file has none."""
        if self.facts.spot is None:
            raise AdapterError(self.venue, "spot", f"no spot market adapter for {self.venue} (its venue file has no live.spot block)")
        return self.facts.spot

    @property
    def spot(self):
        """The venue's ccxt spot client (built on first use with the perp client's keys)."""
        if self._spot is None:
            import ccxt

            spec = self.spot_spec()
            cfg = {"enableRateLimit": self.exchange.enableRateLimit, "options": dict(spec.ccxt_options)}
            for k in ("apiKey", "secret", "password"):
                if getattr(self.exchange, k, None):
                    cfg[k] = getattr(self.exchange, k)
            ex = getattr(ccxt, spec.ccxt_id)(cfg)
            ex.options["fetchMarkets"] = {"types": ["spot"]}
            self._spot = ex
        return self._spot

    def spot_symbol_for(self, instrument: str) -> str:
        """``binance:BaseToken:BTC`` -> ``BTC/USDT`` (quote ``live.spot.quote``; must be a loaded
        spot market)."""
        k = parse_key(instrument)
        if k.venue != self.venue or k.position_type != "BaseToken":
            raise AdapterError(self.venue, "spot_symbol", f"{instrument} is not a {self.venue} spot holding")
        if not self._spot_loaded:
            with wrap_errors(self.venue, "load_spot_markets", ccxt_retryable()):
                self.spot.set_markets(self.spot.fetch_markets())
            self._spot_loaded = True
        sym = f"{k.symbol}/{self.spot_spec().quote}"
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
                    if not any(c in str(e) for c in (*self.spot_spec().duplicate_codes, *_DUPLICATE_WORDS)):
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
        """The spot order with this client id (base units, cost in the quote), or None."""
        import ccxt

        sym = self.spot_symbol_for(instrument)
        with wrap_errors(self.venue, "fetch_spot_order", ccxt_retryable()):
            try:
                o = self._fetch_spot_by_client_id(client_order_id, sym)
            except ccxt.OrderNotFound:
                return None
            if o is None:
                return None
            fee = self._spot_fee(o, sym)
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

    def _fetch_spot_by_client_id(self, cid: str, sym: str) -> dict | None:
        """The raw ccxt spot order with client id ``cid`` (None or ccxt ``OrderNotFound`` if
        none): ``fetch_order`` filtered by ``live.spot.client_id_lookup_param``; a venue without
        that filter overrides this."""
        param = self.spot_spec().client_id_lookup_param
        if param is None:
            raise AdapterError(self.venue, "fetch_spot_order", "no spot client-id lookup for this venue (no live.spot.client_id_lookup_param)")
        return self.spot.fetch_order(None, sym, {param: cid})

    def _spot_fee(self, order: dict, sym: str) -> dict:
        """The fee of a spot order as ccxt ``{"cost", "currency"}`` (empty if unknown): the
        order's own; a venue whose order query carries none overrides this."""
        return order.get("fee") or {}
