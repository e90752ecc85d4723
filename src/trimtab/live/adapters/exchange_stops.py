"""Resting take-profit / stop-loss orders of an exchange's perps (:class:`StopOrders`).

:meth:`StopOrders.place_stop` sends reduce-only conditional *market* orders through ccxt's
unified trigger params, named with the client-id field and lookup params in the venue file's
``live.stops`` facts (:class:`~trimtab.config.models.LiveStopsSpec`; a venue without them has
no resting stops). Bybit v5: one ``/v5/order/create`` with ``triggerPrice``/``triggerDirection``,
``reduceOnly`` and ``orderLinkId``; the same order fills once triggered, so it is looked up
like any order. Binance USD-M sends them to the Algo Order API, whose triggered order names the
market order it placed: :mod:`trimtab.live.adapters.binance.execution` overrides
:meth:`StopOrders._fetch_stop_order`. OKX stops are not implemented (no shipped strategy needs
them).

Sources: ccxt unified API (docs.ccxt.com: createOrder ``takeProfitPrice``/``stopLossPrice``),
Binance USD-M futures REST docs (Algo Order API), Bybit v5 REST docs.
"""
from __future__ import annotations

import math
from decimal import Decimal

from trimtab.config.models import LiveStopsSpec
from trimtab.live.adapters.base import AdapterError, OrderRequest, OrderResult, ccxt_retryable, wrap_errors

#: Stop kinds a trade's params may carry.
STOP_KINDS = ("take_profit", "stop_loss")


class StopOrders:
    """Reduce-only conditional orders protecting a perp position (mixin of
    :class:`~trimtab.live.adapters.exchange.ExchangeAdapter`: uses its ``venue``, ``facts``,
    ``exchange``, ``symbol_for``, ``contract_size`` and its order lookup and mapping,
    ``_fetch_by_client_id`` / ``_to_result``)."""

    def stops_spec(self) -> LiveStopsSpec:
        """The venue's ``live.stops`` facts; AdapterError if the venue file has none."""
        if self.facts.stops is None:
            raise AdapterError(self.venue, "place_stop", f"resting stops are not implemented for {self.venue} (its venue file has no live.stops block)")
        return self.facts.stops

    def place_stop(self, instrument: str, kind: str, position: float, trigger: float, client_order_id: str) -> OrderResult:
        """A reduce-only conditional market order closing ``position`` (signed asset units: the
        whole position it protects) when the mark crosses ``trigger`` (quote per asset unit).
        ``kind``: ``take_profit`` or ``stop_loss``. Looked up by client id first (never twice)."""
        if kind not in STOP_KINDS:
            raise AdapterError(self.venue, "place_stop", f"unknown stop kind {kind!r}")
        spec = self.stops_spec()
        existing = self.fetch_stop(client_order_id, instrument)
        if existing is not None:
            return existing
        sym = self.symbol_for(instrument)
        cs = self.contract_size(sym)
        contracts = float(self.exchange.amount_to_precision(sym, str(Decimal(repr(abs(position))) / Decimal(repr(cs)))))
        if contracts <= 0 or not math.isfinite(trigger) or trigger <= 0:
            raise AdapterError(self.venue, "place_stop", f"{instrument}: bad stop size {position} or trigger {trigger}")
        trigger_param = spec.take_profit_param if kind == "take_profit" else spec.stop_loss_param
        params = {trigger_param: self.exchange.price_to_precision(sym, trigger), "reduceOnly": True, spec.client_id_param: client_order_id}
        side = "sell" if position > 0 else "buy"
        with wrap_errors(self.venue, "place_stop", ccxt_retryable()):
            ack = self.exchange.create_order(sym, "market", side, contracts, None, params)
        req = OrderRequest(instrument, sym, side, contracts, -position, True, params)
        return self._to_result(ack, instrument, client_order_id, req)

    def fetch_stop(self, client_order_id: str, instrument: str) -> OrderResult | None:
        """The conditional order with this client id, or None. ``status`` closed means it
        triggered and its market order filled: ``filled``/``average_price``/``fee`` are that
        fill's (Binance: the algo order's ``actualOrderId`` is read)."""
        import ccxt

        sym = self.symbol_for(instrument)
        with wrap_errors(self.venue, "fetch_stop", ccxt_retryable()):
            try:
                o = self._fetch_stop_order(client_order_id, sym)
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
        spec = self.stops_spec()
        params = {spec.client_id_param: client_order_id, **spec.lookup_params}
        with wrap_errors(self.venue, "cancel_stop", ccxt_retryable()):
            try:
                self.exchange.cancel_order(None, sym, params)
            except (ccxt.OrderNotFound, ccxt.InvalidOrder):
                pass  # filled or cancelled meanwhile: the read below says which
        return self.fetch_stop(client_order_id, instrument)

    def _fetch_stop_order(self, cid: str, sym: str) -> dict | None:
        """The raw ccxt order of the conditional order with client id ``cid``, or None; once
        triggered and filled, the fill's. The base reads it as a plain order (Bybit: the
        conditional order is the order that fills); Binance overrides it."""
        return self._fetch_by_client_id(cid, sym)
