"""Aave v3 Pool calls for ``supply``/``withdraw``/``borrow``/``repay`` outside bundles.

Each is one IPool call on behalf of the account (aave.com/docs/aave-v3/smart-contracts/pool):
``supply(asset, amount, onBehalfOf, referralCode)``, ``withdraw(asset, amount, to)``,
``borrow(asset, amount, interestRateMode, referralCode, onBehalfOf)``,
``repay(asset, amount, interestRateMode, onBehalfOf)``, with the rate mode and referral code
of the venue file's ``live.call_args``. ``supply`` and ``repay`` are preceded by an ERC-20
``approve`` of the Pool when the current allowance (read with ``eth_call``) is short.

Units: instruction amounts are asset units; calldata is base units, rounded down.
"""
from __future__ import annotations

from trimtab.live.adapters.base import AdapterError
from trimtab.live.adapters.bundle import to_base_units


class AaveExecution:
    """Mixin of :class:`~trimtab.live.adapters.aave_v3.AaveV3Adapter` (the ``build`` hook of
    :class:`~trimtab.live.adapters.chain_venue.ChainVenue`)."""

    def build(self, chain, instruction) -> list:
        ins = instruction
        if not self.builds(ins.operation):
            return super().build(chain, ins)
        token, decimals = chain.token(ins.asset)
        amt = to_base_units(ins.amount, decimals)
        if amt <= 0:
            raise AdapterError("chain", "build", f"{self.venue} {ins.operation} of {ins.amount} {ins.asset} rounds to zero")
        pool, abi, _ = self.contract("pool")
        me, rate, ref = chain.account, self.arg("interest_rate_mode"), self.arg("referral_code")
        d = f"{self.venue} {ins.operation} {ins.amount} {ins.asset}"
        args = {"supply": [token, amt, me, ref], "withdraw": [token, amt, me], "borrow": [token, amt, rate, ref, me],
                "repay": [token, amt, rate, me]}
        if ins.operation not in args:
            return super().build(chain, ins)
        approve = chain.approve_if_needed(ins.asset, pool, amt) if ins.operation in ("supply", "repay") else []
        return approve + [chain.tx(pool, abi, ins.operation, args[ins.operation], desc=d)]
