"""Lido chain adapter: stake ETH for stETH, wrap it into wstETH.

Facts (the stETH and wstETH contracts with their ABI names, the share and wrapped tokens,
the bundle's Instadapp connectors, the share rounding) are the ``live:`` block of
``venues/lido.yaml`` (:mod:`.config`). The stake itself is the shared
:class:`~trimtab.live.adapters.staking.LiquidStaking`; Lido's own code is the stake call's
argument: ``stETH.submit(address _referral)`` with no referral, the zero address
(docs.lido.fi, "Lido tokens integration guide").
"""
from __future__ import annotations

from trimtab.live.adapters.contracts import ZERO
from trimtab.live.adapters.staking import LiquidStaking


class LidoAdapter(LiquidStaking):
    """The Lido chain venue adapter (see the package doc)."""

    def stake_args(self) -> list:
        """``submit(_referral)``: the zero address, no referral."""
        return [ZERO]


#: The class :mod:`trimtab.live.adapters.registry` builds for a venue with ``adapter: lido``.
ADAPTER = LidoAdapter
