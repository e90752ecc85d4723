"""Binance order specifics: Algo Order API stops and spot commissions.

- Resting stops go to the Algo Order API (``POST /fapi/v1/algoOrder``, ``algoType=CONDITIONAL``,
  ``clientAlgoId``, ``triggerPrice``, type ``TAKE_PROFIT_MARKET`` / ``STOP_MARKET``; ccxt sends
  them there for ``takeProfitPrice``/``stopLossPrice`` with ``trigger``). Once triggered the
  algo order names the market order it placed (``actualOrderId``), whose fill is read.
- Spot orders (``GET /api/v3/order``) carry no commission: it is summed from the order's
  trades (``GET /api/v3/myTrades?orderId=``), when they are all in one currency.

Sources: Binance USD-M futures REST docs (Algo Order API), Binance spot REST docs; ccxt unified
API (fetchOrder, fetchMyTrades).
"""
from __future__ import annotations


class BinanceExecution:
    """Mixin of :class:`~trimtab.live.adapters.binance.BinanceAdapter` (overrides hooks of
    :class:`~trimtab.live.adapters.exchange_stops.StopOrders` and
    :class:`~trimtab.live.adapters.exchange_spot.SpotOrders`)."""

    def _fetch_stop_order(self, cid: str, sym: str) -> dict | None:
        """The algo order with ``clientAlgoId`` ``cid``; once triggered and closed, the market
        order it placed (``actualOrderId``) carrying our client id."""
        spec = self.stops_spec()
        o = self.exchange.fetch_order(None, sym, {spec.client_id_param: cid, **spec.lookup_params})
        actual = (o.get("info") or {}).get("actualOrderId")
        if o.get("status") == "closed" and actual not in (None, "", "0", 0):
            fill = self.exchange.fetch_order(str(actual), sym)
            o = {**fill, "clientOrderId": cid}
        return o

    def _spot_fee(self, order: dict, sym: str) -> dict:
        """The order's fee, else the sum of its trades' fees when they share one currency."""
        fee = order.get("fee") or {}
        if fee.get("cost") is not None or float(order.get("filled") or 0) <= 0:
            return fee
        costs: dict[str, float] = {}
        for t in self.spot.fetch_my_trades(sym, None, None, {"orderId": order["id"]}):
            tf = t.get("fee") or {}
            if tf.get("cost") is not None:
                costs[tf.get("currency")] = costs.get(tf.get("currency"), 0.0) + float(tf["cost"])
        if len(costs) == 1:
            (cur, cost), = costs.items()
            return {"cost": cost, "currency": cur}
        return fee
