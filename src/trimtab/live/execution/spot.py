"""CEX spot trades (:class:`SpotSteps`).

- CEX ``spot_trade`` (``spot`` targets: buy/sell BTC or ETH against USDT on Binance/Bybit
  spot): a market order in base units with client id ``client_order_id(plan, step, 0)``
  (Binance spot ``newClientOrderId``, Bybit ``orderLinkId``), looked up before sending and
  polled until closed. Fill = the venue's filled base amount, USDT cost and fee (a fee charged
  in the base asset -- Binance/Bybit buys -- reduces the base received; in USDT, the USDT leg).
  The book keeps a venue's USDT on ``<venue>:Margin:USDT``. Binance spot trades from the Spot
  wallet, not USD-M: a buy first moves the simulated cost x (1 + ``spot_transfer_buffer``)
  USD-M -> Spot (outbox row ``TRANSFER_IDX``), and after the fill the unspent rest (a buy) or
  the USDT proceeds (a sell) move Spot -> USD-M (row ``SPOT_RETURN_IDX``); both are written
  ahead exactly as the deposit/withdrawal transfers (a ``sending`` row on a re-run stops the
  step for a manual check: Binance transfers have no client id). Bybit's Unified Trading
  Account holds spot and perps in one wallet: no transfer.

Sources: ccxt unified API (docs.ccxt.com: createOrder, fetchOrder, order structure, transfer).
"""
from __future__ import annotations

from ...accounting.book import Fill, Leg
from ...planner.plan import Instruction, Step
from ...errors import ExecutionError, PartialExecution
from ..adapters.base import client_order_id
from .common import CLOSED, TRANSFER_IDX

#: Outbox row of the Spot -> USD-M move after a Binance spot order (the rest or the proceeds).
SPOT_RETURN_IDX = 1002


class SpotSteps:
    """CEX ``spot_trade`` steps (mixin of :class:`~trimtab.live.execution.VenueGateway`: uses its
    ``_exchange``, ``spot_transfer_buffer``, the order polling of
    :class:`~trimtab.live.execution.perps.PerpSteps` and the written-ahead venue calls of
    :class:`~trimtab.live.execution.transfers.TransferSteps`)."""

    def _spot_trade(self, plan_id: str, step: Step, tick: int, ins: Instruction, fills: list) -> list:
        """A spot market order on the venue's spot market (module doc), with the Binance
        USD-M <-> Spot transfers around it. One fill: base received/given (asset units, net
        of a base-asset fee) and USDT paid/received on ``<venue>:Margin:USDT``."""
        ex = self._exchange(ins.venue)
        spec = ex.spot_spec()
        usdt = f"{ins.venue}:Margin:USDT"
        sim_usdt = sum(l.delta for f, _ in fills if f.operation == "spot_trade" for l in f.legs if l.key == usdt)
        if spec.needs_transfer and ins.amount > 0:
            need = round(-sim_usdt * (1 + self.spot_transfer_buffer), 6)
            tid = client_order_id(plan_id, step.id, TRANSFER_IDX)
            self._venue_call(plan_id, step, TRANSFER_IDX, ins.venue, f"{ins.venue} {need:.6f} USDT USD-M -> spot for {step.id} ({tid})",
                             lambda: ex.internal_transfer(need, False, tid))
        cid = client_order_id(plan_id, step.id, 0)
        r = self._poll(ex.place_spot_order(ins, cid), lambda: ex.fetch_spot_order(cid, ins.instrument))
        if not r.filled:
            raise ExecutionError(f"{ins.instrument} spot order {cid} {r.status or 'acknowledged only'} with nothing filled after polling")
        price = r.average_price or (abs(r.cost / r.filled) if r.cost else None)
        if price is None:
            raise PartialExecution(f"{ins.instrument} spot order {cid} filled {r.filled} but the venue gave no price", [])
        cost = r.cost if r.cost is not None else abs(r.filled) * price
        fee, cur = r.fee or 0.0, (r.fee_currency or "USDT").upper()
        base = r.filled - (fee if cur == ins.asset.upper() else 0.0)
        cash = (-cost if r.filled > 0 else cost) - (fee if cur == "USDT" else 0.0)
        note = (f"{ins.venue} spot order {r.order_id} ({r.client_order_id}) {r.status}: {r.filled:.8g} {ins.asset} at {price:.2f}, "
                f"{cost:.2f} USDT, fee {fee:.6g} {cur}" + ("" if cur in ("USDT", ins.asset.upper()) or not fee else " (not booked)")
                + ("; found by client order id, not resent" if r.already_placed else ""))
        if spec.needs_transfer:
            back = (round(-sim_usdt * (1 + self.spot_transfer_buffer), 6) + cash) if ins.amount > 0 else cash
            if back > 1e-6:
                rid = client_order_id(plan_id, step.id, SPOT_RETURN_IDX)
                self._venue_call(plan_id, step, SPOT_RETURN_IDX, ins.venue, f"{ins.venue} {back:.6f} USDT spot -> USD-M after {step.id} ({rid})",
                                 lambda: ex.internal_transfer(round(back, 6), True, rid))
                note += f"; {back:.6f} USDT moved spot -> USD-M"
        fill = (Fill(tick, ins.venue, "spot_trade", "trading_fees", [Leg(ins.instrument, base, base), Leg(usdt, cash, cash)],
                     price=price, price_field=f"{ins.venue} spot fill", note=note), None)
        if r.status not in CLOSED or abs(r.filled) < abs(r.amount) * (1 - 1e-9):
            raise PartialExecution(f"{ins.instrument} spot order {cid} {r.status}: filled {r.filled} of {r.amount}", [fill])
        return [fill]
