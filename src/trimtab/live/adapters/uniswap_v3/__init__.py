"""Uniswap v3 chain adapter: DEX swaps outside bundles through SwapRouter02.

Facts (the router's address and ABI name, the pool fee tier per token pair) are the ``live:``
block of the DEX venue's file (``venues/uniswap_v3.yaml``, ``venues/uniswap_v3_router.yaml``;
:mod:`.config`); Uniswap's own code is the swap call (:mod:`.execution`).
"""
from __future__ import annotations

from trimtab.live.adapters.chain_venue import ChainVenue
from trimtab.live.adapters.uniswap_v3.execution import UniswapExecution


class UniswapV3Adapter(UniswapExecution, ChainVenue):
    """The Uniswap v3 chain venue adapter (see the package doc)."""


#: The class :mod:`trimtab.live.adapters.registry` builds for a venue with ``adapter: uniswap_v3``.
ADAPTER = UniswapV3Adapter
