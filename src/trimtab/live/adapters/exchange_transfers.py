"""USDT transfers of an exchange: deposit address and deposits, withdrawals, internal moves.

:class:`ExchangeTransfers` is the part of :class:`~trimtab.live.adapters.exchange.ExchangeAdapter`
behind the gateway's CEX ``deposit``/``withdraw`` steps and the Binance USD-M <-> Spot moves
around spot orders (:mod:`trimtab.live.execution.transfers`). :data:`TRANSFERS` maps each venue
onto ccxt's unified transfer API: the ERC-20 network, the accounts deposits land in and perps
trade from, and the venue's client ids for withdrawals and internal transfers.

Sources: ccxt unified API (docs.ccxt.com: fetchDepositAddress, fetchDeposits, withdraw,
fetchWithdrawals, transfer), Binance, Bybit v5 and OKX v5 REST docs (endpoints at
:data:`TRANSFERS`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from trimtab.live.adapters.base import AdapterError, ccxt_retryable, wrap_errors


@dataclass(frozen=True)
class TransferSpec:
    """How USDT moves between the chain and one exchange (ccxt unified names).

    ``network``: ccxt unified network code of ERC-20 USDT (ccxt maps it to the venue's own id:
    Binance ``ETH``, Bybit ``ETH``, OKX chain ``USDT-ERC20``). ``funding``/``trading``: the ccxt
    account names deposits land in / withdrawals leave from, and the one perps trade from
    (Binance: deposits land in Spot, perps trade from USD-M Futures; Bybit: deposits land in
    Funding, the Unified Trading Account trades; OKX: Funding (6) and Trading (18)).
    ``withdraw_id``: the venue's client withdrawal id parameter (Binance ``withdrawOrderId``,
    Bybit ``requestId`` -- idempotent on the venue side --, OKX ``clientId``); ``transfer_id``:
    the internal transfer's client id parameter (Bybit ``transferId`` must be a UUID; OKX
    ``clientId``; Binance has none). ``withdraw_lookup``: the history query parameter that
    filters withdrawals by our id (None: match on the returned record instead).
    """

    network: str
    funding: str
    trading: str
    withdraw_id: str
    transfer_id: str | None
    withdraw_lookup: str | None


TRANSFERS: dict[str, TransferSpec] = {
    # Binance: POST /sapi/v1/capital/withdraw/apply (withdrawOrderId), GET
    # /sapi/v1/capital/withdraw/history?withdrawOrderId=; POST /sapi/v1/asset/transfer MAIN_UMFUTURE.
    "binance": TransferSpec("ERC20", "spot", "linear", "withdrawOrderId", None, "withdrawOrderId"),
    # Bybit v5: POST /v5/asset/withdraw/create (requestId: "used for idempotent verification"),
    # POST /v5/asset/transfer/inter-transfer (transferId UUID), FUND -> UNIFIED.
    "bybit": TransferSpec("ERC20", "funding", "unified", "requestId", "transferId", None),
    # OKX v5: POST /api/v5/asset/withdrawal (clientId), GET /api/v5/asset/withdrawal-history?clientId=;
    # POST /api/v5/asset/transfer (clientId), 6 = funding, 18 = trading.
    "okx": TransferSpec("ERC20", "funding", "trading", "clientId", "clientId", "clientId"),
}


class ExchangeTransfers:
    """Deposits, withdrawals and internal transfers of one exchange (mixin of
    :class:`~trimtab.live.adapters.exchange.ExchangeAdapter`: uses its ``venue``, ``exchange``
    and ``load_markets``)."""

    def _transfer_spec(self) -> TransferSpec:
        try:
            return TRANSFERS[self.venue]
        except KeyError:
            raise AdapterError(self.venue, "transfer", "no transfer settings for this venue") from None

    def deposit_address(self, code: str = "USDT") -> str:
        """The account's ERC-20 deposit address for ``code`` (ccxt ``fetch_deposit_address``
        with the venue's network). Raises AdapterError if the venue gives none or a tag/memo
        (an ERC-20 deposit never needs one; a memo would mean the wrong network)."""
        spec = self._transfer_spec()
        self.load_markets()
        with wrap_errors(self.venue, "deposit_address", ccxt_retryable()):
            a = self.exchange.fetch_deposit_address(code, {"network": spec.network})
        addr = (a or {}).get("address")
        if not addr or not re.fullmatch(r"0x[0-9a-fA-F]{40}", addr) or a.get("tag"):
            raise AdapterError(self.venue, "deposit_address", f"no plain ERC-20 {code} deposit address returned")
        return addr

    def find_deposit(self, txid: str, code: str = "USDT") -> dict | None:
        """The venue's record of the deposit made by on-chain transaction ``txid`` (ccxt
        transaction structure: ``status`` ok/pending/failed, ``amount``), or None if not seen yet."""
        self.load_markets()
        with wrap_errors(self.venue, "fetch_deposits", ccxt_retryable()):
            rows = self.exchange.fetch_deposits(code)
        t = txid.lower().removeprefix("0x")
        return next((r for r in rows if (r.get("txid") or "").lower().removeprefix("0x") == t), None)

    def find_withdrawal(self, client_id: str, code: str = "USDT", address: str | None = None,
                        amount: float | None = None) -> dict | None:
        """Our withdrawal with client id ``client_id`` (ccxt transaction structure), or None.
        Venues that cannot filter by it (Bybit) are matched on address and amount."""
        spec = self._transfer_spec()
        self.load_markets()
        params = {spec.withdraw_lookup: client_id} if spec.withdraw_lookup else {}
        with wrap_errors(self.venue, "fetch_withdrawals", ccxt_retryable()):
            rows = self.exchange.fetch_withdrawals(code, None, None, params)
        for r in rows:
            info = r.get("info") or {}
            if info.get(spec.withdraw_id) == client_id:
                return r
            if spec.withdraw_lookup is None and address and amount is not None and \
                    (r.get("address") or "").lower() == address.lower() and abs(float(r.get("amount") or 0) - amount) < 1e-6:
                return r
        return None

    def withdraw(self, amount: float, address: str, client_id: str, code: str = "USDT") -> tuple[dict, bool]:
        """Withdraw ``amount`` ``code`` over ERC-20 to ``address`` with client id ``client_id``,
        unless a withdrawal with that id exists. Returns (record, already_sent)."""
        spec = self._transfer_spec()
        found = self.find_withdrawal(client_id, code, address, amount)
        if found is not None:
            return found, True
        with wrap_errors(self.venue, "withdraw", ccxt_retryable()):
            r = self.exchange.withdraw(code, amount, address, {"network": spec.network, spec.withdraw_id: client_id})
        return r, False

    def internal_transfer(self, amount: float, to_trading: bool, client_id: str, code: str = "USDT") -> dict:
        """Move ``amount`` ``code`` between the funding and trading accounts (ccxt ``transfer``),
        with the venue's client transfer id when it has one (Bybit: a UUID derived from
        ``client_id``, so a resend is recognised by the venue)."""
        import uuid

        spec = self._transfer_spec()
        self.load_markets()
        src, dst = (spec.funding, spec.trading) if to_trading else (spec.trading, spec.funding)
        params = {}
        if spec.transfer_id == "transferId":
            params["transferId"] = str(uuid.uuid5(uuid.NAMESPACE_OID, client_id))
        elif spec.transfer_id:
            params[spec.transfer_id] = client_id
        with wrap_errors(self.venue, "transfer", ccxt_retryable()):
            return self.exchange.transfer(code, amount, src, dst, params)
