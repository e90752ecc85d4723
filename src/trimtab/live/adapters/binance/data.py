"""Binance account data: where USD-M's raw balance payload keeps each asset.

``GET /fapi/v3/account`` (ccxt ``fetch_balance()["info"]``): ``assets[]`` rows with ``asset``
and ``walletBalance`` (the wallet balance without unrealised PnL; the field name is the venue
file's ``live.wallet_field``). Markets, marks and funding need nothing Binance-specific.
"""
from __future__ import annotations


class BinanceData:
    """Mixin of :class:`~trimtab.live.adapters.binance.BinanceAdapter`."""

    def wallet_rows(self, info: dict) -> list[tuple[str | None, dict]]:
        """``(asset, row)`` per ``info["assets"]`` row."""
        return [(r.get("asset"), r) for r in info.get("assets", [])]
