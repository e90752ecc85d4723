"""Binance live adapter: USD-M perpetuals (``binanceusdm``), spot (``binance``), transfers.

Facts (ccxt ids, client-id fields, error codes, spot, stops, transfer settings) are the
``live:`` block of ``venues/binance.yaml`` (:mod:`.config`); Binance's own code is the raw
balance layout (:mod:`.data`) and the Algo Order API stops and spot commissions
(:mod:`.execution`). Everything else is the shared ccxt
:class:`~trimtab.live.adapters.exchange.ExchangeAdapter`.
"""
from __future__ import annotations

from trimtab.live.adapters.binance.data import BinanceData
from trimtab.live.adapters.binance.execution import BinanceExecution
from trimtab.live.adapters.exchange import ExchangeAdapter


class BinanceAdapter(BinanceData, BinanceExecution, ExchangeAdapter):
    """The Binance exchange adapter (see the package doc)."""


#: The class :mod:`trimtab.live.adapters.registry` builds for a venue with ``adapter: binance``.
ADAPTER = BinanceAdapter
