"""OKX account data: where the v5 balance payload keeps each currency.

``GET /api/v5/account/balance`` (ccxt ``fetch_balance()["info"]``): ``data[]`` accounts, each
with ``details[]`` rows holding ``ccy`` and ``cashBal`` (the field name is the venue file's
``live.wallet_field``). Markets, marks and funding need nothing OKX-specific (contract sizes
come from the market data: ``ctVal``).
"""
from __future__ import annotations


class OkxData:
    """Mixin of :class:`~trimtab.live.adapters.okx.OkxAdapter`."""

    def wallet_rows(self, info: dict) -> list[tuple[str | None, dict]]:
        """``(ccy, row)`` per details row of every account in ``info["data"]``."""
        return [(d.get("ccy"), d) for a in info.get("data", []) for d in a.get("details", [])]
