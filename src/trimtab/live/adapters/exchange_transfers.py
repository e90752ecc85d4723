"""USDT transfers of an exchange: deposit address and deposits, withdrawals, internal moves.

:class:`ExchangeTransfers` is the part of :class:`~trimtab.live.adapters.exchange.ExchangeAdapter`
behind the gateway's CEX ``deposit``/``withdraw`` steps and the Binance USD-M <-> Spot moves
around spot orders (:mod:`trimtab.live.execution.transfers`). The venue file's
``live.transfers`` facts (:class:`~trimtab.config.models.LiveTransfersSpec`) map the venue onto
ccxt's unified transfer API: the ERC-20 network (ccxt maps the unified code to the venue's
own id: Binance ``ETH``, Bybit ``ETH``, OKX chain ``USDT-ERC20``), the accounts deposits land
in and perps trade from (Binance Spot / USD-M Futures, Bybit Funding / Unified, OKX Funding (6)
/ Trading (18)), and the venue's client ids for withdrawals and internal transfers.

Sources: ccxt unified API (docs.ccxt.com: fetchDepositAddress, fetchDeposits, withdraw,
fetchWithdrawals, transfer); the Binance, Bybit v5 and OKX v5 endpoints are cited beside the
facts in ``venues/*.yaml``.
"""
from __future__ import annotations

import re
import uuid

from trimtab.config.models import LiveTransfersSpec
from trimtab.live.adapters.base import AdapterError, ccxt_retryable, wrap_errors


class ExchangeTransfers:
    """Deposits, withdrawals and internal transfers of one exchange (mixin of
    :class:`~trimtab.live.adapters.exchange.ExchangeAdapter`: uses its ``venue``, ``facts``,
    ``exchange`` and ``load_markets``)."""

    def _transfer_spec(self) -> LiveTransfersSpec:
        if self.facts.transfers is None:
            raise AdapterError(self.venue, "transfer", "no transfer settings for this venue (its venue file has no live.transfers block)")
        return self.facts.transfers

    @property
    def transfer_resend_safe(self) -> bool:
        """True when the venue deduplicates our internal-transfer id, so a transfer whose
        outcome is unknown may be sent again (``live.transfers.transfer_resend_safe``)."""
        return self.facts.transfers is not None and self.facts.transfers.transfer_resend_safe

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
        params = {spec.withdraw_lookup_param: client_id} if spec.withdraw_lookup_param else {}
        with wrap_errors(self.venue, "fetch_withdrawals", ccxt_retryable()):
            rows = self.exchange.fetch_withdrawals(code, None, None, params)
        for r in rows:
            info = r.get("info") or {}
            if info.get(spec.withdraw_id_param) == client_id:
                return r
            if spec.withdraw_lookup_param is None and address and amount is not None and \
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
            r = self.exchange.withdraw(code, amount, address, {"network": spec.network, spec.withdraw_id_param: client_id})
        return r, False

    def internal_transfer(self, amount: float, to_trading: bool, client_id: str, code: str = "USDT") -> dict:
        """Move ``amount`` ``code`` between the funding and trading accounts (ccxt ``transfer``),
        with the venue's client transfer id when it has one (``transfer_id_uuid``: a UUID-5 of
        ``client_id``, so a resend is recognised by the venue: Bybit)."""
        spec = self._transfer_spec()
        self.load_markets()
        src, dst = (spec.funding_account, spec.trading_account) if to_trading else (spec.trading_account, spec.funding_account)
        params = {}
        if spec.transfer_id_param:
            params[spec.transfer_id_param] = str(uuid.uuid5(uuid.NAMESPACE_OID, client_id)) if spec.transfer_id_uuid else client_id
        with wrap_errors(self.venue, "transfer", ccxt_retryable()):
            return self.exchange.transfer(code, amount, src, dst, params)
