"""Resting take-profit / stop-loss orders of an exchange's perps (:class:`StopOrders`).

:meth:`StopOrders.place_stop` sends reduce-only conditional *market* orders through ccxt's
unified ``takeProfitPrice`` / ``stopLossPrice`` params. Binance USD-M sends them to the Algo
Order API (``POST /fapi/v1/algoOrder``, ``algoType=CONDITIONAL``, ``clientAlgoId``,
``triggerPrice``, type ``TAKE_PROFIT_MARKET`` / ``STOP_MARKET``); once triggered the algo order
names the market order it placed (``actualOrderId``), whose fill is read. Bybit v5: one
``/v5/order/create`` with ``triggerPrice``/``triggerDirection``, ``reduceOnly`` and
``orderLinkId``; the same order fills once triggered. OKX stops are not implemented (no shipped
strategy needs them).

Sources: ccxt unified API (docs.ccxt.com: createOrder ``takeProfitPrice``/``stopLossPrice``),
Binance USD-M futures REST docs (Algo Order API), Bybit v5 REST docs.
"""
from __future__ import annotations

import math
from decimal import Decimal

from trimtab.live.adapters.base import AdapterError, OrderRequest, OrderResult, ccxt_retryable, wrap_errors

#: Stop kinds -> ccxt unified order param (createOrder ``params``).
STOP_PARAMS = {"take_profit": "takeProfitPrice", "stop_loss": "stopLossPrice"}


class StopOrders:
    """Reduce-only conditional orders protecting a perp position (mixin of
    :class:`~trimtab.live.adapters.exchange.ExchangeAdapter`: uses its ``venue``, ``spec``,
    ``exchange``, ``symbol_for``, ``contract_size`` and its order lookup and mapping,
    ``_fetch_by_client_id`` / ``_to_result``)."""

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
        with wrap_errors(self.venue, "cancel_stop", ccxt_retryable()):
            try:
                self.exchange.cancel_order(None, sym, params)
            except (ccxt.OrderNotFound, ccxt.InvalidOrder):
                pass  # filled or cancelled meanwhile: the read below says which
        return self.fetch_stop(client_order_id, instrument)
