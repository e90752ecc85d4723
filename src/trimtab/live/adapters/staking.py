"""Liquid staking on chain, shared by the staking venues (EtherFi, Lido): stake ETH, wrap the shares.

A ``stake`` of ``amount`` ETH is three transactions, all named by the venue's facts
(``live.contracts``, ``live.tokens``, ``live.call_args`` of ``venues/<venue>.yaml``):

1. ``contracts.stake.method`` on ``contracts.stake`` with the ETH as ``value`` (mints the
   ``tokens.share`` token: eETH, stETH);
2. ``approve`` of the share token for ``contracts.wrap``;
3. ``contracts.wrap.method`` (``wrap``) of the staked amount less ``call_args.share_rounding_wei``:
   eETH and stETH are share tokens and mint up to 1-2 wei less than deposited (Lido
   integration guide, "1-2 wei corner case").

The stake call's arguments are the venue package's :meth:`LiquidStaking.stake_args` (EtherFi:
none; Lido: the referral address). In a flash-loan bundle the same stake is two Instadapp
spells, ``bundle_connectors.stake`` and ``bundle_connectors.wrap``.

Units: ``amount`` is ETH; calldata and ``value`` are wei (18 decimals, rounded down).
Errors: :class:`~trimtab.live.adapters.base.AdapterError`.
"""
from __future__ import annotations

from trimtab.live.adapters.base import AdapterError
from trimtab.live.adapters.bundle import to_base_units
from trimtab.live.adapters.chain_venue import ChainVenue
from trimtab.live.adapters.contracts import ERC20_ABI, ETH_DECIMALS

__all__ = ["LiquidStaking"]


class LiquidStaking(ChainVenue):
    """A staking venue's adapter (see the module doc); packages override :meth:`stake_args`."""

    def stake_args(self) -> list:
        """Arguments of the stake call (base: none)."""
        return []

    def build(self, chain, instruction) -> list:
        if not self.builds(instruction.operation):
            return super().build(chain, instruction)
        ins = instruction
        if ins.asset != "ETH":
            raise AdapterError("chain", "build", f"{self.venue} stake takes ETH, got {ins.asset}")
        rounding = self.arg("share_rounding_wei")
        wei = to_base_units(ins.amount, ETH_DECIMALS)
        if wei <= rounding:
            raise AdapterError("chain", "build", f"{self.venue} stake of {ins.amount} ETH is too small")
        wrap_amt = wei - rounding
        share, wrapped = self.token_role("share"), self.token_role("wrapped")
        pool, pool_abi, deposit = self.contract("stake")
        wrapper, wrap_abi, wrap = self.contract("wrap")
        share_addr, _ = chain.token(share)
        d = f"{self.venue} stake {ins.amount} ETH"
        return [chain.tx(pool, pool_abi, deposit, self.stake_args(), value=wei, desc=f"{d} -> {share}"),
                chain.tx(share_addr, ERC20_ABI, "approve", [wrapper, wrap_amt], desc=f"approve {share} for {wrapped}"),
                chain.tx(wrapper, wrap_abi, wrap, [wrap_amt], desc=f"wrap {share} -> {wrapped}")]

    def stake_connectors(self) -> tuple[str, str, str] | None:
        c = self.facts.bundle_connectors
        if "stake" not in c or "wrap" not in c:
            return None
        return c["stake"], c["wrap"], self.token_role("wrapped")
