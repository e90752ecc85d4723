"""Binance's live facts: the ``live:`` block of ``venues/binance.yaml``.

The facts are YAML, not Python, so a venue setting changes without a code change; this module
only names the venue and reads them (:func:`trimtab.live.adapters.registry.live_facts`).
Credentials: ``TRIMTAB_BINANCE_KEY`` / ``TRIMTAB_BINANCE_SECRET`` (no passphrase).
"""
from __future__ import annotations

from pathlib import Path

from trimtab.config.models import LiveExchangeSpec
from trimtab.live.adapters.registry import live_facts

VENUE = "binance"


def facts(root: str | Path | None = None) -> LiveExchangeSpec:
    """``<root>/venues/binance.yaml`` ``live:`` (default root: the checkout); AdapterError if absent."""
    return live_facts(VENUE, root)
