"""The per-venue half of the chain adapter: what one on-chain venue builds and reads.

:class:`ChainVenue` is the base every chain venue package (``trimtab.live.adapters.<venue>``,
named by the venue file's ``live.adapter``) extends with its ``ADAPTER`` class. It is built
from the venue's facts (:class:`~trimtab.config.models.LiveChainSpec`: contracts, ABI names,
tokens, fixed call arguments) and answers three questions for the shared
:class:`~trimtab.live.adapters.chain.ChainAdapter`, which holds the web3 connection, the
account, signing and sending:

- :meth:`ChainVenue.build`: the transactions of one plan instruction (``operations``);
- :meth:`ChainVenue.read`: the on-chain value of one book position (``positions``), for
  reconciliation;
- :meth:`ChainVenue.stake_connectors`: the Instadapp spells a flash-loan bundle casts for a
  staking venue (``bundle_connectors``);
- :meth:`ChainVenue.can_swap`, :meth:`ChainVenue.build_swap`, :meth:`ChainVenue.swap_payee`: a
  DEX's swaps (``fee_tiers``).

A venue's code calls the chain adapter's public helpers (``tx``, ``approve_if_needed``,
``token``, ``balance_of``, ``eth_balance``, ``token_balance``); it never imports it.

Errors: :class:`~trimtab.live.adapters.base.AdapterError` (operation ``build`` or ``init``).
"""
from __future__ import annotations

from trimtab.config.models import LiveChainSpec, LiveContractSpec
from trimtab.live.adapters.base import AdapterError
from trimtab.live.adapters.contracts import ABIS

__all__ = ["ChainVenue", "Reading"]

#: One reconciliation read: (value in asset units, tolerance kind of
#: :class:`~trimtab.live.reconcile.Tolerances`, where the value came from).
Reading = tuple[float, str, str]


class ChainVenue:
    """One on-chain venue's adapter: ``venue`` (its name) and ``facts`` (its ``live:`` block).

    Subclasses override the hooks below as the venue needs; the base builds and reads nothing.
    Raises AdapterError (``init``) when a contract names an ABI that
    :data:`~trimtab.live.adapters.contracts.ABIS` does not hold."""

    def __init__(self, venue: str, facts: LiveChainSpec) -> None:
        self.venue = venue
        self.facts = facts
        for role, spec in facts.contracts.items():  # refused when built, not when first called
            if spec.abi not in ABIS:
                raise AdapterError(venue, "init", f"live.contracts.{role}.abi {spec.abi!r} is not one of {', '.join(sorted(ABIS))}")

    # -- facts --------------------------------------------------------------------------
    def builds(self, operation: str) -> bool:
        """True when :meth:`build` carries out ``operation`` (the facts' ``operations``)."""
        return operation in self.facts.operations

    def contract(self, role: str) -> tuple[str, list[dict], str | None]:
        """(address, ABI fragment, method) of the contract the facts name for ``role``.

        Raises AdapterError when the venue file names no such contract."""
        spec: LiveContractSpec | None = self.facts.contracts.get(role)
        if spec is None:
            raise AdapterError(self.venue, "init", f"the venue file's live.contracts has no {role!r} contract")
        return spec.address, ABIS[spec.abi], spec.method

    def arg(self, name: str) -> int:
        """A fixed call argument of the facts' ``call_args``; AdapterError when absent."""
        if name not in self.facts.call_args:
            raise AdapterError(self.venue, "init", f"the venue file's live.call_args has no {name!r}")
        return self.facts.call_args[name]

    def token_role(self, role: str) -> str:
        """The ERC-20 symbol the facts' ``tokens`` name for ``role``; AdapterError when absent."""
        if role not in self.facts.tokens:
            raise AdapterError(self.venue, "init", f"the venue file's live.tokens has no {role!r} token")
        return self.facts.tokens[role]

    # -- hooks --------------------------------------------------------------------------
    def build(self, chain, instruction) -> list:
        """The transactions (:class:`~trimtab.live.adapters.chain.TxRequest`, in order) that
        carry out ``instruction`` on this venue, through ``chain`` (the ChainAdapter)."""
        raise AdapterError("chain", "build", f"no transaction builder for {self.venue} {instruction.operation} "
                                             f"(instrument {instruction.instrument})")

    def read(self, chain, position_type: str, symbol: str, holders: list[str]) -> Reading | None:
        """The on-chain value of this venue's ``position_type``/``symbol`` summed over
        ``holders`` (addresses), or None when the venue cannot read it."""
        return None

    def stake_connectors(self) -> tuple[str, str, str] | None:
        """(stake connector, wrap connector, wrapped token) of a bundle's stake on this venue,
        None when the venue does not stake in bundles."""
        return None

    def can_swap(self, sell_symbol: str, buy_symbol: str) -> bool:
        """True when :meth:`build_swap` swaps the ERC-20 pair (base: no swaps)."""
        return False

    def build_swap(self, chain, sell: str, buy: str, amount_in: float, min_out: float) -> list:
        """The transactions of a swap of ``amount_in`` ``sell`` for at least ``min_out`` ``buy``
        (asset units), through ``chain``."""
        raise AdapterError("chain", "build", f"no swap builder for {self.venue} ({sell} -> {buy})")

    def swap_payee(self, chain, buy: str) -> str:
        """The address the swap's output token is paid to (where its Transfer log points)."""
        raise AdapterError("chain", "build", f"no swap builder for {self.venue} ({buy})")
