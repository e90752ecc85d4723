"""Bybit live adapter: v5 Unified Trading Account linear perpetuals, spot, transfers.

Facts (ccxt id and options, client-id fields, error codes, spot, stops, transfer settings) are
the ``live:`` block of ``venues/bybit.yaml`` (:mod:`.config`); Bybit's own code is the raw
balance layout (:mod:`.data`) and the order lookup by ``orderLinkId`` (:mod:`.execution`).
Everything else is the shared ccxt :class:`~trimtab.live.adapters.exchange.ExchangeAdapter`.
"""
from __future__ import annotations

from trimtab.live.adapters.bybit.data import BybitData
from trimtab.live.adapters.bybit.execution import BybitExecution
from trimtab.live.adapters.exchange import ExchangeAdapter


class BybitAdapter(BybitData, BybitExecution, ExchangeAdapter):
    """The Bybit exchange adapter (see the package doc)."""


#: The class :mod:`trimtab.live.adapters.registry` builds for a venue with ``adapter: bybit``.
ADAPTER = BybitAdapter
