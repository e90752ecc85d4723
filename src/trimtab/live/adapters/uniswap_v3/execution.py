"""Uniswap v3 swaps: SwapRouter02 ``exactInputSingle`` on the pool tier the venue file names.

:meth:`UniswapExecution.build_swap` sells ``amount_in`` of one asset for at least ``min_out``
of another (asset units; the transaction reverts below it). Selling ETH sends it as ``value``
(the router wraps it: tokenIn WETH). Selling a token first approves the router when the
allowance is short. Buying ETH is one
``multicall([exactInputSingle(recipient = router), unwrapWETH9(min_out, account)])``: the
router receives WETH and pays the account native ETH (so the WETH *received* is the router's:
:meth:`UniswapExecution.swap_payee`). No deadline (SwapRouter02's struct has none):
``amountOutMinimum`` is the price guarantee. The pool fee tier is the venue file's
``live.fee_tiers`` entry for the pair of ERC-20s (either order).

Sources: Uniswap swap-router-contracts (IV3SwapRouter, IPeripheryPaymentsWithFeeExtended,
IMulticallExtended; Constants.ADDRESS_THIS); docs.uniswap.org.
Units: asset units in, base units (``x 10**decimals``, rounded down) in calldata.
"""
from __future__ import annotations

from trimtab.live.adapters.base import AdapterError
from trimtab.live.adapters.bundle import to_base_units
from trimtab.live.adapters.contracts import ROUTER_ADDRESS_THIS, TOKENS


class UniswapExecution:
    """Mixin of :class:`~trimtab.live.adapters.uniswap_v3.UniswapV3Adapter` (the swap hooks of
    :class:`~trimtab.live.adapters.chain_venue.ChainVenue`)."""

    def builds(self, operation: str) -> bool:
        """False: a swap is not built from its instruction alone (its minimum output comes from
        the simulated fill), but by :meth:`build_swap`."""
        return False

    def _tiers(self) -> dict[frozenset, int]:
        return {frozenset(pair.split("/")): tier for pair, tier in self.facts.fee_tiers.items()}

    def fee_tier(self, sell_symbol: str, buy_symbol: str) -> int | None:
        """The pool fee tier (hundredths of a bip) of the ERC-20 pair, None when not listed."""
        return self._tiers().get(frozenset({sell_symbol, buy_symbol}))

    def can_swap(self, sell_symbol: str, buy_symbol: str) -> bool:
        return "swap" in self.facts.operations and sell_symbol in TOKENS and buy_symbol in TOKENS and \
            self.fee_tier(sell_symbol, buy_symbol) is not None

    def swap_payee(self, chain, buy: str) -> str:
        """Who receives the output token on chain: the router when buying ETH (it unwraps), else the account."""
        router, _, _ = self.contract("router")
        return router if buy == "ETH" else chain.account

    def build_swap(self, chain, sell: str, buy: str, amount_in: float, min_out: float) -> list:
        s_sym, s_addr, s_dec = chain.chain_token(sell)
        b_sym, b_addr, b_dec = chain.chain_token(buy)
        amt, mo = to_base_units(amount_in, s_dec), to_base_units(min_out, b_dec)
        if amt <= 0 or mo <= 0:
            raise AdapterError("chain", "build", f"swap of {amount_in} {sell} for at least {min_out} {buy} rounds to zero")
        fee = self.fee_tier(s_sym, b_sym)
        if fee is None:
            raise AdapterError("chain", "build", f"no Uniswap v3 pool fee tier known for {sell}/{buy}")
        router, abi, _ = self.contract("router")
        txs = [] if sell == "ETH" else chain.approve_if_needed(s_sym, router, amt)
        value = amt if sell == "ETH" else 0
        d = f"uniswap_v3 swap {amount_in} {sell} -> >= {min_out} {buy} (fee tier {fee})"
        if buy == "ETH":
            c = chain.contract(router, abi)
            calls = [c.encode_abi("exactInputSingle", args=[(s_addr, b_addr, fee, ROUTER_ADDRESS_THIS, amt, mo, 0)]),
                     c.encode_abi("unwrapWETH9", args=[mo, chain.account])]
            txs.append(chain.tx(router, abi, "multicall", [[bytes.fromhex(x[2:]) for x in calls]], value, desc=d))
        else:
            txs.append(chain.tx(router, abi, "exactInputSingle", [(s_addr, b_addr, fee, chain.account, amt, mo, 0)], value, desc=d))
        return txs
