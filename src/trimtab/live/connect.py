"""Build the real-execution gateway for a strategy from the environment (``--execute``).

:func:`venue_gateway` is the one call a runner makes: it works out which venues the strategy
uses, checks that every credential they need is set (one error listing every missing
variable, never a value), builds the adapters and returns a
:class:`~trimtab.live.execution.VenueGateway`. Tests and replays pass pre-built adapters
(recorded transports) through ``exchanges=`` / ``chain=`` instead.

Environment (see :mod:`trimtab.secrets`): ``TRIMTAB_<VENUE>_KEY``/``_SECRET`` (and
``_PASSPHRASE`` when the venue file's ``live.passphrase`` says so: OKX) per exchange; ``TRIMTAB_ETH_PRIVATE_KEY`` and
``TRIMTAB_ETH_RPC_URL`` for chain operations; ``TRIMTAB_ETH_DSA`` (not a secret: the
account's Instadapp DSA address) when the strategy runs flash-loan bundles. The sending
account is the private key's address.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import TrimtabError
from ..secrets import PREFIX, MissingCredentials, eth_private_key
from .adapters.chain import ChainAdapter
from .adapters.registry import exchange_from_env, strategy_chain_venues
from .execution import VenueGateway, unsupported_operations
from .reconcile import reconcile_engine

CHAIN_MODELS = ("aave_v3", "lst", "bundler", "flash_loan")


class ExecutionSetupError(TrimtabError):
    """Real execution cannot start for this strategy; the message says why (never a secret)."""


def needs(strategy) -> tuple[list[str], bool, bool]:
    """(exchange venues, needs a chain adapter, needs a DSA) for ``strategy``'s venues."""
    exchanges = sorted(n for n, v in strategy.venues.items() if v.model == "cex_perp")
    # DEX swaps are chain transactions; CEX deposits are ERC-20 transfers and withdrawals pay
    # out to the chain account: both need the chain adapter too.
    chain = any(v.model in CHAIN_MODELS or (v.model == "dex" and "swap" in v.operations)
                or (v.model == "cex_perp" and ({"deposit", "withdraw"} & set(v.operations))) for v in strategy.venues.values())
    dsa = any(v.model == "bundler" for v in strategy.venues.values())
    return exchanges, chain, dsa


def required_env(strategy) -> list[str]:
    """Every environment variable real execution of ``strategy`` needs (an exchange's
    passphrase when its venue file's ``live.passphrase`` is set)."""
    exchanges, chain, dsa = needs(strategy)
    out = []
    for v in exchanges:
        live = strategy.venues[v].live
        out += [f"{PREFIX}{v.upper()}_KEY", f"{PREFIX}{v.upper()}_SECRET"] + \
            ([f"{PREFIX}{v.upper()}_PASSPHRASE"] if live is not None and live.passphrase else [])
    if chain:
        out += [f"{PREFIX}ETH_PRIVATE_KEY", f"{PREFIX}ETH_RPC_URL"] + ([f"{PREFIX}ETH_DSA"] if dsa else [])
    return out


def check_execution(strategy, *, exchanges: dict | None = None, chain=None, allow_unsupported: bool = False,
                    **_gateway_options) -> None:
    """Check, without contacting any venue, that ``strategy`` can be executed for real: every
    operation its plans emit is one the gateway carries out, every exchange has an adapter and
    every credential is set. Arguments as :func:`venue_gateway` (other options are ignored).

    Raises:
        ExecutionSetupError: unsupported operations (named), an exchange without an adapter,
            missing environment variables (every one named, values never shown).
    """
    env = os.environ
    names, _, _ = needs(strategy)
    if not allow_unsupported:
        missing_ops = unsupported_operations(strategy)
        if missing_ops:
            raise ExecutionSetupError(f"{strategy.name}: real execution cannot yet carry out {', '.join(missing_ops)}; "
                                      "refusing to start rather than paper-trade them")
    unknown = [n for n in names if strategy.venues[n].live is None and n not in (exchanges or {})]
    if unknown:
        files = ", ".join(str(Path(strategy.root) / "venues" / f"{n}.yaml") for n in unknown)
        raise ExecutionSetupError(f"{strategy.name}: no exchange adapter for {', '.join(unknown)}: no 'live:' block in {files}")
    todo = [v for v in required_env(strategy) if not env.get(v)]
    if exchanges is not None:
        todo = [v for v in todo if not any(v.startswith(f"{PREFIX}{n.upper()}_") for n in exchanges)]
    if chain is not None:
        todo = [v for v in todo if not v.startswith(f"{PREFIX}ETH_") or v == f"{PREFIX}ETH_PRIVATE_KEY"]
    if todo:
        raise ExecutionSetupError(f"{strategy.name}: real execution needs these environment variables: {', '.join(todo)}")


def venue_gateway(strategy, journal, *, exchanges: dict | None = None, chain=None,
                  allow_unsupported: bool = False, **gateway_options) -> VenueGateway:
    """The :class:`VenueGateway` that executes ``strategy`` for real, journaling into ``journal``.

    Args:
        exchanges, chain: pre-built adapters (tests, replays); what is given is not built from
            the environment.
        allow_unsupported: start even when the strategy's catalog has operations the gateway
            cannot execute (e.g. OKX resting stops): such a step then FAILS when reached
            (ExecutionError, journaled), it is never paper-traded. Default: refuse at start-up.
        gateway_options: passed to :class:`VenueGateway` (poll intervals, sleep, slippage).

    Raises:
        ExecutionSetupError: unsupported operations (named), missing environment variables
            (every one named, values never shown), an exchange without an adapter.
    """
    env = os.environ
    check_execution(strategy, exchanges=exchanges, chain=chain, allow_unsupported=allow_unsupported)
    names, need_chain, need_dsa = needs(strategy)
    built = dict(exchanges or {})
    try:
        for n in names:
            if n not in built:
                built[n] = exchange_from_env(n, strategy.venues[n].live)
        if need_chain and chain is None:
            chain = _chain_from_env(env, env.get(f"{PREFIX}ETH_DSA") if need_dsa else None, strategy)
    except MissingCredentials as e:
        raise ExecutionSetupError(f"{strategy.name}: {e}") from None
    return VenueGateway(journal, built, chain, **gateway_options)


def _chain_from_env(env, dsa: str | None, strategy):
    from eth_account import Account

    try:
        account = Account.from_key(eth_private_key().reveal()).address
    except MissingCredentials:
        raise
    except Exception:  # noqa: BLE001 - the library's message may quote the value
        raise ExecutionSetupError(f"{PREFIX}ETH_PRIVATE_KEY is not a valid private key") from None
    return ChainAdapter.from_env(account, dsa, venues=strategy_chain_venues(strategy.venues))


def enable_execution(engine, *, resume: bool = False, **options):
    """Put ``engine`` on the real venues: build :func:`venue_gateway` over the engine's journal,
    install it as the executor's venue side, and reconcile the book with the venues before any
    tick runs (:func:`trimtab.live.reconcile.reconcile_engine`: the result is journaled as
    meta ``reconciliation``, and any mismatch beyond tolerance halts the engine). At the start
    of a run the book is the config's capital in the wallet and nothing else, so the account
    must hold exactly that (a dedicated account); on ``resume`` it is the checkpointed book.
    Returns ``(gateway, mismatches)``; ``options`` go to :func:`venue_gateway`.

    Raises ExecutionSetupError (see :func:`venue_gateway`) or AdapterError from the reads.
    """
    gateway = venue_gateway(engine.strategy, engine.journal, **options)
    engine.executor.gateway = gateway
    engine.journal.meta("execution", {"mode": "venues", "exchanges": sorted(gateway.exchanges), "resumed": resume,
                                      "chain_account": gateway.chain.account if gateway.chain else None})
    # Before the first tick too: a run must not trade an account that already holds other positions.
    mismatches = reconcile_engine(engine, gateway)
    return gateway, mismatches
