"""Bybit order lookup by client id (``orderLinkId``), for perps and spot.

Bybit's order query has no single "by client id" call ccxt maps: v5 ``/order/realtime`` finds
open and recently closed orders by ``orderLinkId`` and ``/order/history`` holds the rest (Bybit
v5 docs, "Get Open & Closed Orders"), queried per ``category`` (``linear`` perps, ``spot``).
Resting stops are plain orders with a trigger on Bybit, so they are found the same way.
"""
from __future__ import annotations


def find_by_link_id(ex, category: str, sym: str, cid: str) -> dict | None:
    """The ccxt order with ``orderLinkId`` ``cid`` in market ``sym`` of ccxt client ``ex``
    (``category`` ``linear`` or ``spot``): realtime first, then history; None if neither has it."""
    m = ex.market(sym)
    for call in (ex.privateGetV5OrderRealtime, ex.privateGetV5OrderHistory):
        res = call({"category": category, "symbol": m["id"], "orderLinkId": cid})
        rows = ((res or {}).get("result") or {}).get("list") or []
        if rows:
            return ex.parse_order(rows[0], m)
    return None


class BybitExecution:
    """Mixin of :class:`~trimtab.live.adapters.bybit.BybitAdapter` (overrides the client-id
    lookups of :class:`~trimtab.live.adapters.exchange.ExchangeAdapter` and
    :class:`~trimtab.live.adapters.exchange_spot.SpotOrders`)."""

    def _fetch_by_client_id(self, cid: str, sym: str) -> dict | None:
        return find_by_link_id(self.exchange, "linear", sym, cid)

    def _fetch_spot_by_client_id(self, cid: str, sym: str) -> dict | None:
        return find_by_link_id(self.spot, "spot", sym, cid)
