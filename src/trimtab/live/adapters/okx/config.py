"""OKX's live facts: the ``live:`` block of ``venues/okx.yaml``.

The facts are YAML, not Python, so a venue setting changes without a code change; this module
only names the venue and reads them (:func:`trimtab.live.adapters.registry.live_facts`).
Credentials: ``TRIMTAB_OKX_KEY`` / ``TRIMTAB_OKX_SECRET`` / ``TRIMTAB_OKX_PASSPHRASE``
(``passphrase: true`` in the facts).
"""
from __future__ import annotations

from pathlib import Path

from trimtab.config.models import LiveExchangeSpec
from trimtab.live.adapters.registry import live_facts

VENUE = "okx"


def facts(root: str | Path | None = None) -> LiveExchangeSpec:
    """``<root>/venues/okx.yaml`` ``live:`` (default root: the checkout); AdapterError if absent."""
    return live_facts(VENUE, root)
