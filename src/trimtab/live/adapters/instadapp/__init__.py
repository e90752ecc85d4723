"""Instadapp chain adapter: the bundler that runs a flash-loan bundle as one DSA ``cast``.

Facts (``call_args``: ``flash_route``, the INSTAPOOL-C flash-loan route, and
``unwind_swap_fee_tier``, the unwind swap's pool fee tier) are the ``live:`` block of
``venues/instadapp.yaml`` (:mod:`.config`); the spells themselves are
:mod:`trimtab.live.adapters.bundle` (the staking spells come from the staking venue's own
``bundle_connectors``), cast by the shared
:meth:`~trimtab.live.adapters.chain.ChainAdapter.build_bundle`. Instadapp builds no
transaction outside a bundle and reads no position.
"""
from __future__ import annotations

from trimtab.live.adapters.chain_venue import ChainVenue


class InstadappAdapter(ChainVenue):
    """The Instadapp chain venue adapter (see the package doc): facts only, no hook of its own."""


#: The class :mod:`trimtab.live.adapters.registry` builds for a venue with ``adapter: instadapp``.
ADAPTER = InstadappAdapter
