"""OKX live adapter: v5 perpetual swaps and transfers (no spot, no resting stops yet).

Facts (ccxt id and options, ``clOrdId``, error codes, passphrase, transfer settings) are the
``live:`` block of ``venues/okx.yaml`` (:mod:`.config`); OKX's own code is the raw balance
layout (:mod:`.data`). Orders need nothing OKX-specific: ``fetch_order`` filters by
``clOrdId`` and the missing cancel-all endpoint is handled by the shared
:class:`~trimtab.live.adapters.exchange.ExchangeAdapter` (cancel by id).
"""
from __future__ import annotations

from trimtab.live.adapters.exchange import ExchangeAdapter
from trimtab.live.adapters.okx.data import OkxData


class OkxAdapter(OkxData, ExchangeAdapter):
    """The OKX exchange adapter (see the package doc)."""


#: The class :mod:`trimtab.live.adapters.registry` builds for a venue with ``adapter: okx``.
ADAPTER = OkxAdapter
