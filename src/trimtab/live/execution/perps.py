"""Perp trades and their resting take-profit / stop-loss orders (:class:`PerpSteps`).

- perp ``trade`` (Binance, Bybit, OKX through :class:`~trimtab.live.adapters.exchange.ExchangeAdapter`):
  a market order with the deterministic client order id ``client_order_id(plan_id, step_id, 0)``
  (the adapter looks the id up first, so a step re-run after a crash finds the order and does
  not send it again), then polled by client id until closed (bounded: ``order_polls`` x
  ``poll_s``). Fill = the venue's filled size (signed asset units), average price and fee.
- resting take-profit / stop-loss of signal-driven perps (``take_profit``/``stop_loss`` in a
  ``trade``'s params): any trade on an instrument with resting stops first cancels them by
  client id; after the entry fills, two reduce-only conditional market orders for the whole
  position (read back from the venue) are placed at the instruction's trigger prices (or the
  previous levels when a trade leaves a position without new ones, as the simulation keeps
  them), client ids ``client_order_id(plan, step, STOP_IDX["take_profit"|"stop_loss"])``. The
  resting pair is kept in the outbox (plan ``"resting-stops"``, step = instrument), committed
  at once. :meth:`PerpSteps.stops` (the engine's per-tick hook, in place of the simulated
  ``check_stops``) polls both by client id: a filled one becomes one fill (its ``kind``, venue
  size, average price, fee) and its sibling is cancelled (one-cancels-the-other).

Sources: ccxt unified API (docs.ccxt.com: createOrder, fetchOrder, order structure).
"""
from __future__ import annotations

import json

from ...accounting.book import Fill, Leg
from ...planner.plan import Instruction, Step
from ...errors import ExecutionError, PartialExecution
from ..adapters.base import AdapterError, OrderResult, client_order_id
from ..adapters.exchange import ExchangeAdapter
from ...secrets import redact
from .common import CLOSED, DEAD, fresh, utc_now

#: Client-id indices of the resting stops of a trade step (client_order_id(plan, step, idx)).
STOP_IDX = {"take_profit": 2000, "stop_loss": 2001}
#: Outbox key of the resting stops per instrument: plan id STOPS_PLAN, step id = instrument.
STOPS_PLAN = "resting-stops"


class PerpSteps:
    """Perp ``trade`` steps and resting stops (mixin of :class:`~trimtab.live.execution.VenueGateway`:
    uses its ``journal``, ``exchanges``, ``_exchange``, polling settings, ``sleep``,
    ``arrival_note`` and ``_kept_levels``)."""

    def _trade(self, plan_id: str, step: Step, tick: int, ins: Instruction, fills: list) -> list:
        """A perp market order (module doc); resting stops of the instrument are cancelled first
        and placed again for the position the trade leaves when the simulation keeps stops."""
        ex = self.exchanges.get(ins.venue)
        if ex is None:
            raise ExecutionError(f"no exchange adapter for {ins.venue}; not sent")
        out = self._cancel_stops(tick, ins.instrument)  # a stop that filled first is booked too
        cid = client_order_id(plan_id, step.id, 0)
        r = self._poll(ex.place_order(ins, cid), lambda: ex.fetch_order_by_client_id(cid, ins.instrument))
        if not r.filled:
            state = r.status or "acknowledged only"
            raise ExecutionError(f"{ins.instrument} order {cid} {state} with nothing filled after polling")
        sim_price = next((p for _, p in fills if p is not None), None)
        out.append(self._order_fill(tick, ins, r, sim_price))
        if r.status not in CLOSED or abs(r.filled) < abs(r.amount) * (1 - 1e-9):
            raise PartialExecution(f"{ins.instrument} order {cid} {r.status}: filled {r.filled} of {r.amount}", out)
        levels = None
        if "take_profit" in ins.params and not ins.params.get("clear_stops"):
            levels = (float(ins.params["take_profit"]), float(ins.params["stop_loss"]))
        elif out[:-1] == [] and self._kept_levels is not None and not ins.params.get("clear_stops"):
            levels = self._kept_levels
        self._kept_levels = None
        if levels is not None:
            try:
                note = self._place_stops(plan_id, step, ex, ins.instrument, levels)
            except AdapterError as e:
                raise PartialExecution(f"{ins.instrument}: the order filled but its stops were not placed: {e}", out) from None
            if note:
                f, p = out[-1]
                out[-1] = (fresh(f, note=f"{f.note}; {note}"), p)
        return out

    def _poll(self, r: OrderResult, fetch) -> OrderResult:
        polls = 0
        while r.status not in CLOSED + DEAD and polls < self.order_polls:
            self.sleep(self.poll_s)
            polls += 1
            r = fetch() or r
        return r

    # ------------------------------------------------------------------ resting stops
    def _resting(self, instrument: str) -> dict | None:
        row = next((r for r in self.journal.outbox(STOPS_PLAN, instrument) if r["idx"] == 0), None)
        return json.loads(row["receipt"]) if row and row["status"] == "resting" else None

    def _set_resting(self, instrument: str, venue: str, rec: dict | None) -> None:
        self.journal.outbox_put(STOPS_PLAN, instrument, 0, venue=venue, description=f"resting take-profit/stop-loss of {instrument}",
                                status="resting" if rec else "none", receipt=json.dumps(rec) if rec else None, time=utc_now())

    def _place_stops(self, plan_id: str, step: Step, ex: ExchangeAdapter, instrument: str, levels: tuple[float, float]) -> str:
        """Place the take-profit and stop-loss for the venue's whole position (none when flat)."""
        size = ex.positions().get(instrument, (0.0, 0.0))[0]
        if not size:
            return "flat after the fill: no stops placed"
        rec = {"plan_id": plan_id, "step_id": step.id, "position": size, "take_profit": levels[0], "stop_loss": levels[1], "orders": {}}
        for kind, level in zip(("take_profit", "stop_loss"), levels):
            cid = client_order_id(plan_id, step.id, STOP_IDX[kind])
            r = ex.place_stop(instrument, kind, size, level, cid)
            rec["orders"][kind] = cid
            if r.status in DEAD:
                raise AdapterError(ex.venue, "place_stop", f"{kind} order {cid} {r.status}")
        self._set_resting(instrument, ex.venue, rec)
        return (f"resting reduce-only take-profit {levels[0]:.2f} ({rec['orders']['take_profit']}) and stop-loss "
                f"{levels[1]:.2f} ({rec['orders']['stop_loss']}) for {size:.6g}")

    def _cancel_stops(self, tick: int, instrument: str) -> list:
        """Cancel the instrument's resting stops (by client id) before a new trade; a stop the
        venue reports filled is returned as a fill and the other cancelled. Remembers the
        levels in :attr:`_kept_levels` (the simulation keeps them for what the trade leaves)."""
        self._kept_levels = None
        rec = self._resting(instrument)
        if rec is None:
            return []
        ex = self._exchange(instrument.split(":")[0])
        out = []
        for kind, cid in rec["orders"].items():
            r = ex.cancel_stop(cid, instrument)
            if r is not None and r.filled:
                out.append(self._stop_fill(tick, instrument, kind, r))
        self._set_resting(instrument, ex.venue, None)
        if not out:
            self._kept_levels = (rec["take_profit"], rec["stop_loss"])
        return out

    def _stop_fill(self, tick: int, instrument: str, kind: str, r: OrderResult) -> tuple[Fill, float]:
        ins = Instruction(instrument.split(":")[0], kind, instrument, r.filled, "")
        f, price = self._order_fill(tick, ins, r, None)
        return Fill(f.tick, f.venue, kind, f.category, f.legs, price=price, price_field=f.price_field,
                    note=f"{kind} triggered on the venue: {f.note}"), price

    def stops(self, tick: int, book, sim) -> list:
        """Engine hook (per tick, in place of the simulated ``sim.check_stops``): the resting
        stops that filled on the venue since the last tick, as ``[(Fill, price)]`` (operation
        ``take_profit``/``stop_loss``, the venue's size, average price and fee); the sibling of
        a filled one is cancelled, and the simulated stop of the instrument is dropped. A read
        failure books nothing this tick (asked again next tick; the note is in
        :attr:`arrival_note`)."""
        out = []
        for key in sorted(set(sim.stops) | {k for k in _instruments(book)}):
            try:
                rec = self._resting(key)
                if rec is None:
                    continue
                ex = self._exchange(key.split(":")[0])
                states = {kind: ex.fetch_stop(cid, key) for kind, cid in rec["orders"].items()}
                done = [(k, r) for k, r in states.items() if r is not None and r.filled]
                if not done and all(r is not None and r.status in ("open", None) for r in states.values()):
                    continue
                for kind, r in done:
                    out.append(self._stop_fill(tick, key, kind, r))
                for kind, r in states.items():
                    if r is not None and not r.filled and r.status in ("open", None):
                        ex.cancel_stop(rec["orders"][kind], key)  # one-cancels-the-other
                self._set_resting(key, ex.venue, None)
                sim.stops.pop(key, None)
            except (AdapterError, ExecutionError) as e:
                self.arrival_note = redact(f"stops of {key}: {e}")
        return out

    @staticmethod
    def _order_fill(tick: int, ins: Instruction, r: OrderResult, sim_price: float | None) -> tuple[Fill, float]:
        price = r.average_price if r.average_price is not None else sim_price
        if price is None:
            raise PartialExecution(f"{ins.instrument} order {r.client_order_id} filled {r.filled} but the venue gave no price", [])
        fee, legs = r.fee or 0.0, [Leg(ins.instrument, r.filled, r.filled)]
        cur = (r.fee_currency or "USDT").upper()
        note_fee = f"fee {fee:.6g} {cur}"
        if fee and cur == "USDT":
            legs.append(Leg(f"{ins.venue}:Margin:USDT", -fee, -fee))
        elif fee:
            note_fee += " (not booked: only USDT fees are; reconcile shows it)"
        again = "; found by client order id, not resent" if r.already_placed else ""
        est = "" if r.average_price is not None else " (the venue gave no average price: the simulated price)"
        note = f"{ins.venue} order {r.order_id} ({r.client_order_id}) {r.status}: {r.filled:.6g} at {price:.2f}{est}, {note_fee}{again}"
        return Fill(tick, ins.venue, "trade", "trading_fees", legs, price=price, price_field=f"{ins.venue} fill", note=note), price


def _instruments(book) -> list[str]:
    """Perp positions the book holds (keys with a ``:Perp:`` part and a non-zero balance)."""
    return [k for k, v in getattr(book, "bal", {}).items() if ":Perp:" in k and v]
