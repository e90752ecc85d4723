"""Wallet's live facts: the ``live:`` block of ``venues/wallet.yaml``.

The facts are YAML, not Python, so a position type it reads changes without a
code change; this module only names the venue and reads them
(:func:`trimtab.live.adapters.registry.chain_facts`).
"""
from __future__ import annotations

from pathlib import Path

from trimtab.config.models import LiveChainSpec
from trimtab.live.adapters.registry import chain_facts

VENUE = "wallet"


def facts(root: str | Path | None = None) -> LiveChainSpec:
    """``<root>/venues/wallet.yaml`` ``live:`` (default root: the checkout); AdapterError if absent."""
    return chain_facts(VENUE, root)
