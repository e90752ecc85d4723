"""Bybit account data: where the v5 wallet-balance payload keeps each coin.

``GET /v5/account/wallet-balance`` (ccxt ``fetch_balance()["info"]``): ``result.list[]``
accounts, each with ``coin[]`` rows holding ``coin`` and ``walletBalance`` (the field name is
the venue file's ``live.wallet_field``). Markets, marks and funding need nothing
Bybit-specific.
"""
from __future__ import annotations


class BybitData:
    """Mixin of :class:`~trimtab.live.adapters.bybit.BybitAdapter`."""

    def wallet_rows(self, info: dict) -> list[tuple[str | None, dict]]:
        """``(coin, row)`` per coin row of every account in ``info["result"]["list"]``."""
        accounts = (info.get("result") or {}).get("list") or []
        return [(c.get("coin"), c) for a in accounts for c in a.get("coin", [])]
