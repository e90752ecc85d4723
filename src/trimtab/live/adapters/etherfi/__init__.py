"""EtherFi chain adapter: stake ETH for eETH, wrap it into weETH.

Facts (the LiquidityPool and weETH contracts with their ABI names, the share and wrapped
tokens, the bundle's Instadapp connectors, the share rounding) are the ``live:`` block of
``venues/etherfi.yaml`` (:mod:`.config`). The stake itself is the shared
:class:`~trimtab.live.adapters.staking.LiquidStaking`; EtherFi's own code is the stake call's
arguments: ``LiquidityPool.deposit()`` takes none (etherfi-protocol ILiquidityPool).
"""
from __future__ import annotations

from trimtab.live.adapters.staking import LiquidStaking


class EtherFiAdapter(LiquidStaking):
    """The EtherFi chain venue adapter (see the package doc)."""

    def stake_args(self) -> list:
        """``deposit()`` is payable and takes no argument: the ETH sent is the stake."""
        return []


#: The class :mod:`trimtab.live.adapters.registry` builds for a venue with ``adapter: etherfi``.
ADAPTER = EtherFiAdapter
