"""Aave v3 chain adapter: Pool calls outside bundles and the aToken / debt token reads.

Facts (the Pool's address and ABI name, the fixed interest rate mode and referral code, the
operations and position types) are the ``live:`` block of ``venues/aave_v3.yaml``
(:mod:`.config`); Aave's own code is the Pool calls (:mod:`.execution`) and the reserve reads
(:mod:`.data`). Signing and sending is the shared
:class:`~trimtab.live.adapters.chain.ChainAdapter`.
"""
from __future__ import annotations

from trimtab.live.adapters.aave_v3.data import AaveData
from trimtab.live.adapters.aave_v3.execution import AaveExecution
from trimtab.live.adapters.chain_venue import ChainVenue


class AaveV3Adapter(AaveData, AaveExecution, ChainVenue):
    """The Aave v3 chain venue adapter (see the package doc)."""


#: The class :mod:`trimtab.live.adapters.registry` builds for a venue with ``adapter: aave_v3``.
ADAPTER = AaveV3Adapter
