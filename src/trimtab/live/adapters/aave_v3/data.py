"""Aave v3 reads for reconciliation: a reserve's aToken and variable debt token balances.

The reserve's token addresses come from ``Pool.getReserveData(asset)`` (read once per asset);
their ``balanceOf`` is Aave's scaled balance x the current index: asset units with interest to
the latest block (Aave v3 docs, "Scaled balances"). Book keys: ``<venue>:aToken:a<X>`` and
``<venue>:debtToken:debt<X>`` for a token ``X`` of ``contracts.TOKENS``.
"""
from __future__ import annotations

from eth_abi import decode as abi_decode
from eth_utils import keccak
from web3 import Web3

from trimtab.live.adapters.base import wrap_errors
from trimtab.live.adapters.contracts import TOKENS

#: Aave v3 DataTypes.ReserveData as returned by ``Pool.getReserveData(address)`` (aave-v3-core
#: contracts/protocol/libraries/types/DataTypes.sol; v3.1+ returns ReserveDataLegacy, same
#: layout): all fields are static, so the return data is 15 words.
RESERVE_DATA_TYPES = ["uint256", "uint128", "uint128", "uint128", "uint128", "uint128", "uint40", "uint16",
                      "address", "address", "address", "address", "uint128", "uint128", "uint128"]
A_TOKEN_WORD, VARIABLE_DEBT_TOKEN_WORD = 8, 10
_PREFIX = {"aToken": "a", "debtToken": "debt"}


def reserve_asset(symbol: str, position_type: str) -> str | None:
    """The token of an Aave position symbol (``aWETH`` -> ``WETH``), None when not a known token."""
    prefix = _PREFIX.get(position_type)
    if prefix is None or not symbol.startswith(prefix):
        return None
    asset = symbol[len(prefix):]
    return asset if asset in TOKENS else None


class AaveData:
    """Mixin of :class:`~trimtab.live.adapters.aave_v3.AaveV3Adapter` (the ``read`` hook)."""

    def reserve_tokens(self, chain, asset: str) -> tuple[str, str]:
        """(aToken, variable debt token) addresses of ``asset``'s reserve, read once per chain
        adapter from ``Pool.getReserveData(asset)``."""
        key = ("reserve", self.venue, asset)
        cache = chain.cache
        if key not in cache:
            token, _ = chain.token(asset)
            pool, _, _ = self.contract("pool")
            data = "0x" + keccak(text="getReserveData(address)")[:4].hex() + "00" * 12 + token[2:].lower()
            with wrap_errors("chain", "aave_reserve", (ConnectionError, TimeoutError, OSError)):
                out = bytes(chain.w3.eth.call({"to": pool, "data": data}))
                words = abi_decode(RESERVE_DATA_TYPES, out)
            cache[key] = (Web3.to_checksum_address(words[A_TOKEN_WORD]), Web3.to_checksum_address(words[VARIABLE_DEBT_TOKEN_WORD]))
        return cache[key]

    def balances(self, chain, asset: str, holder: str | None = None) -> tuple[float, float]:
        """(supplied, variable debt) of ``holder`` (default: the account) in ``asset``'s
        reserve, asset units with interest to the latest block."""
        a_token, debt_token = self.reserve_tokens(chain, asset)
        _, decimals = chain.token(asset)
        h = holder or chain.account
        return chain.balance_of(a_token, decimals, h), chain.balance_of(debt_token, decimals, h)

    def read(self, chain, position_type: str, symbol: str, holders: list[str]):
        if position_type not in self.facts.positions:
            return None
        asset = reserve_asset(symbol, position_type)
        if asset is None:
            return None
        which = 0 if position_type == "aToken" else 1
        v = sum(self.balances(chain, asset, h)[which] for h in holders)
        return v, "aave", f"{self.venue} {position_type} balanceOf ({len(holders)} address(es))"
