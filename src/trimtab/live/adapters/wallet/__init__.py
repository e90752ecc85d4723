"""Wallet chain adapter: the account's own balances, for reconciliation.

Facts are the ``live:`` block of ``venues/wallet.yaml`` (:mod:`.config`): the position types
it reads. ``<venue>:BaseToken:ETH`` is native ETH (``eth_getBalance``);
``<venue>:BaseToken:<X>`` is the ERC-20 ``balanceOf`` of the token carrying ``X`` on chain
(``contracts.CHAIN_SYMBOL``: the wallet's BTC is WBTC), for the tokens of
``contracts.TOKENS``; anything else is not read. Each value is summed over the strategy's
on-chain holders (the account and, when configured, its DSA). The wallet builds no
transaction through :meth:`~trimtab.live.adapters.chain_venue.ChainVenue.build` (its ERC-20
transfers are :meth:`~trimtab.live.adapters.chain.ChainAdapter.build_transfer`).
"""
from __future__ import annotations

from trimtab.live.adapters.chain_venue import ChainVenue
from trimtab.live.adapters.contracts import CHAIN_SYMBOL, TOKENS


class WalletAdapter(ChainVenue):
    """The wallet chain venue adapter (see the package doc)."""

    def read(self, chain, position_type: str, symbol: str, holders: list[str]):
        if position_type not in self.facts.positions:
            return None
        if symbol == "ETH":
            v = sum(chain.eth_balance(h) for h in holders)
        elif CHAIN_SYMBOL.get(symbol, symbol) in TOKENS:
            v = sum(chain.token_balance(CHAIN_SYMBOL.get(symbol, symbol), h) for h in holders)
        else:
            return None
        return v, "wallet", f"{self.venue} {symbol} balance ({len(holders)} address(es))"


#: The class :mod:`trimtab.live.adapters.registry` builds for a venue with ``adapter: wallet``.
ADAPTER = WalletAdapter
