"""CEX deposits, withdrawals and their arrival (:class:`TransferSteps`).

- CEX ``deposit`` (wallet USDT -> exchange): an ERC-20 ``transfer`` to the account's deposit
  address on the venue (ccxt ``fetch_deposit_address``, ERC-20 network) through the chain
  steps' outbox (:mod:`.chain_steps`). The executor keeps the transfer in transit for the
  venue's catalog latency, then asks :meth:`TransferSteps.arrived`: credited only once the
  venue lists the deposit of that transaction hash as ``ok`` (ccxt ``fetch_deposits``) and the
  amount has been moved from the account it lands in to the one perps trade from (ccxt
  ``transfer``; Binance Spot -> USD-M, Bybit Funding -> Unified, OKX Funding -> Trading). Until
  then it stays in transit.
- CEX ``withdraw`` (exchange -> wallet): the amount moves trading -> funding account, then a
  ccxt ``withdraw`` over ERC-20 to the chain account's own address with the venue's client
  withdrawal id (``client_order_id(plan, step, 1001)``); the history is searched for that id
  first, so a re-run never withdraws twice. It arrives when the venue reports it ``ok``.
  Every such venue call is written ahead in the outbox (rows ``idx`` >= 1000: ``sending``
  before the call, ``done`` with the venue's answer after). A call found ``sending`` on a re-run
  had an unknown outcome: withdrawals are looked up by client id; an internal transfer is sent
  again only where the venue deduplicates it (Bybit ``transferId``), otherwise the step or
  arrival stops with a message asking for a manual check (never a second transfer).

Sources: ccxt unified API (docs.ccxt.com: fetchDepositAddress, fetchDeposits, withdraw,
fetchWithdrawals, transfer, transaction structure).
"""
from __future__ import annotations

import json

from ...planner.plan import Instruction, Step
from ...errors import ExecutionError
from ..adapters.base import AdapterError, client_order_id
from ...secrets import redact
from .common import TRANSFER_IDX, VENUE_IDX, WITHDRAW_IDX, executed_amount, fresh, utc_now


class TransferSteps:
    """CEX ``deposit``/``withdraw`` steps, their arrival, and venue calls written ahead in the
    outbox (mixin of :class:`~trimtab.live.execution.VenueGateway`: uses its ``journal``,
    ``exchanges``, ``_exchange``, ``arrival_note`` and the outbox-backed transactions of
    :class:`~trimtab.live.execution.chain_steps.ChainSteps`)."""

    def _deposit(self, plan_id: str, step: Step, tick: int, ins: Instruction, fills: list) -> list:
        """ERC-20 transfer of the (clamped) amount to the venue's deposit address, via the outbox.
        The deposit address is read on the first attempt only (a re-run uses the outbox)."""
        ex, chain = self._exchange(ins.venue), self._need_chain()
        amount = executed_amount(ins, [f for f, _ in fills if f.category != "gas"])

        def build():
            addr = ex.deposit_address(ins.asset)
            return [chain.build_transfer(ins.asset, addr, amount, f"deposit {amount:.6f} {ins.asset} to {ins.venue} ({addr})")]

        receipts = self._transactions(plan_id, step, tick, build)
        return self._with_receipt_gas(tick, step, "wallet", "transfer", fills, receipts)

    def _withdraw(self, plan_id: str, step: Step, tick: int, ins: Instruction, fills: list) -> list:
        """Trading -> funding account, then a withdrawal to the chain account (module doc)."""
        ex, chain = self._exchange(ins.venue), self._need_chain()
        amount = executed_amount(ins, [f for f, _ in fills if f.category != "gas"])
        tid = client_order_id(plan_id, step.id, TRANSFER_IDX)
        self._venue_call(plan_id, step, TRANSFER_IDX, ins.venue, f"{ins.venue} {amount:.6f} {ins.asset} trading -> funding ({tid})",
                         lambda: ex.internal_transfer(amount, False, tid, ins.asset), resend_safe=ex.transfer_resend_safe)
        wid = client_order_id(plan_id, step.id, WITHDRAW_IDX)
        again = []

        def send():
            rec, found = ex.withdraw(amount, chain.account, wid, ins.asset)
            again.append(found)
            return rec

        rec = self._venue_call(plan_id, step, WITHDRAW_IDX, ins.venue, f"{ins.venue} withdraw {amount:.6f} {ins.asset} to {chain.account} ({wid})",
                               send, lookup=lambda: ex.find_withdrawal(wid, ins.asset, chain.account, amount))
        note = f"{ins.venue} withdrawal {rec.get('id')} ({wid}) of {amount:.6f} {ins.asset} to {chain.account}" + \
            ("; found by client id, not resent" if (not again or again[0]) else "")
        return [(fresh(f, note=f"{f.note}; {note}"), p) for f, p in fills]

    def _venue_call(self, plan_id: str, step: Step, idx: int, venue: str, description: str, send, *, lookup=None,
                    resend_safe: bool = False) -> dict:
        """A venue call written ahead in the outbox (row ``idx``): ``done`` rows are not repeated;
        a ``sending`` row (outcome unknown) is resolved by ``lookup`` or, when ``resend_safe``
        (the venue deduplicates the client id), sent again; otherwise it raises."""
        j = self.journal
        row = next((r for r in j.outbox(plan_id, step.id) if r["idx"] == idx), None)
        if row and row["status"] == "done":
            return json.loads(row["receipt"])
        if row and row["status"] == "sending":
            found = lookup() if lookup else None
            if found is not None:
                j.outbox_put(plan_id, step.id, idx, status="done", receipt=json.dumps(_plain_json(found)), time=utc_now())
                return _plain_json(found)
            if lookup is None and not resend_safe:
                raise ExecutionError(redact(f"{step.id}: {description} was sent before a crash and its outcome is unknown; "
                                            "check the venue's transfer history (not sent again)"))
        j.outbox_put(plan_id, step.id, idx, venue=venue, description=description, status="sending", time=utc_now())
        res = _plain_json(send())
        j.outbox_put(plan_id, step.id, idx, status="done", receipt=json.dumps(res), time=utc_now())
        return res

    def arrived(self, transit) -> bool:
        """Executor hook: may this transfer in transit be credited now? (the executor asks once
        its catalog latency has passed, every tick until True).

        A deposit arrives when the venue lists the deposit of the step's transaction as ``ok``
        and the amount has been moved to the trading account; a withdrawal when the venue
        reports it ``ok``. Read failures answer False (asked again next tick); the reason is in
        :attr:`arrival_note`."""
        self.arrival_note = None
        try:
            ok, why = self._arrived(transit)
        except (AdapterError, ExecutionError) as e:
            ok, why = False, str(e)
        if not ok:
            self.arrival_note = redact(f"{transit.plan_id}/{transit.step_id}: {why}")
        return ok

    def _arrived(self, tr) -> tuple[bool, str]:
        ex = self.exchanges.get(tr.venue)
        if ex is None:
            return False, f"no exchange adapter for {tr.venue}"
        rows = self.journal.outbox(tr.plan_id, tr.step_id)
        if tr.dst.endswith(":Margin:USDT"):  # a deposit
            sent = next((r for r in rows if r["idx"] < VENUE_IDX and r["status"] == "mined"), None)
            if sent is None:
                return False, "deposit transaction not mined"
            if not any(r["idx"] == TRANSFER_IDX and r["status"] == "done" for r in rows):
                rec = ex.find_deposit(sent["tx_hash"])
                if rec is None or rec.get("status") != "ok":
                    return False, f"{tr.venue} has not credited deposit {sent['tx_hash']} yet ({(rec or {}).get('status', 'not listed')})"
                amount = min(tr.amount, float(rec.get("amount") or tr.amount))
                tid = client_order_id(tr.plan_id, tr.step_id, TRANSFER_IDX)
                step = Step(tr.step_id, "", ())
                self._venue_call(tr.plan_id, step, TRANSFER_IDX, tr.venue, f"{tr.venue} {amount:.6f} USDT funding -> trading ({tid})",
                                 lambda: ex.internal_transfer(amount, True, tid), resend_safe=ex.transfer_resend_safe)
            return True, ""
        wid = client_order_id(tr.plan_id, tr.step_id, WITHDRAW_IDX)
        rec = ex.find_withdrawal(wid, "USDT", self.chain.account if self.chain else None, None)
        if rec is None or rec.get("status") != "ok":
            return False, f"{tr.venue} withdrawal {wid} not completed yet ({(rec or {}).get('status', 'not listed')})"
        return True, ""


def _plain_json(x):
    """A venue answer as JSON-safe data (ccxt structures hold only JSON types; anything else
    becomes its string)."""
    return json.loads(json.dumps(x, default=str))
