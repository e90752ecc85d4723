"""The executor: runs a plan's steps on the venues as their dependencies and latencies allow.

A step runs at the first tick at which every step it depends on is done. Debits are clamped
to what the balance holds (a plan is sized on estimates; the fill records what really moved).
An atomic bundle applies whole or not at all: its fills are applied to a copy of the book and
kept only if no balance goes negative, the flash loan is repaid and the lending venue's health
factor stays >= 1. A failed step fails the plan: later steps are cancelled, what already
happened stays (and is journaled), so positions stay consistent. Transfers in transit arrive
even if their plan is cancelled: money in flight cannot be recalled.

The venue side is one seam, the *gateway* (DESIGN.md: only the clock, the feed and the venue
side differ between backtest and live). Every step is first run on the simulated venues: that
is the pre-trade estimate and, for bundles, the safety check. Its fills are then handed to the
gateway: :class:`PaperGateway` (backtests, paper runs) returns them unchanged and they are
booked as they are; a live gateway (:class:`trimtab.live.execution.VenueGateway`) sends the
step to the venues and returns the fills as the venues reported them, which replace the
simulated ones; or it raises :class:`ExecutionError` and the step fails as any other.
Transfers in transit are credited once their latency has passed *and* the gateway's
``arrived(transit)`` agrees (paper: always; live: the venue has confirmed the transfer).
Resting take-profit / stop-loss fills come from the gateway's ``stops(tick, book, sim)``
(paper: the simulated ``check_stops``; live: the venue's triggered orders).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..accounting.attribution import Attribution
from ..accounting.book import Book, Fill, Leg
from ..planner.plan import Instruction, Plan, Step
from ..venues.pricing import Pricing
from ..errors import ExecutionError, PartialExecution
from ..venues.sim import WALLET_ETH, SimVenues


class PaperGateway:
    """The simulated venue side: the simulated fills are the fills (backtests, paper runs).

    Gateway protocol: ``execute(plan_id, step, tick, fills) -> fills`` where ``fills`` is the
    step's simulated ``[(Fill, trade price or None), ...]`` in the order they were applied.
    Returning the very same list object means "book the simulation as it is"; any other list
    replaces the simulated fills. Raise :class:`ExecutionError` (nothing happened) or
    :class:`PartialExecution` (part happened) to fail the step.
    """

    live = False

    def execute(self, plan_id: str, step: Step, tick: int, fills: list) -> list:
        return fills

    def arrived(self, transit: "Transit") -> bool:
        """Optional hook: may ``transit`` be credited now? Asked once its latency has passed,
        every tick until True. Paper: always (the latency is the model); a live gateway
        confirms with the venue first. A gateway without this method is treated as True."""
        return True

    def stops(self, tick: int, book: Book, sim: SimVenues) -> list:
        """Engine hook, once per tick: the resting take-profit / stop-loss orders that filled,
        as ``[(Fill, price)]`` for the engine to apply. Paper: exactly the simulated
        :meth:`SimVenues.check_stops` (the bar's high/low against ``sim.stops``); a live
        gateway reports the venue's fills instead (:meth:`trimtab.live.execution.VenueGateway.stops`)."""
        return sim.check_stops(tick, book)


@dataclass
class Transit:
    plan_id: str
    step_id: str
    venue: str
    arrival_epoch: int
    src: str
    dst: str
    amount: float


class Executor:
    """Runs plans against :class:`SimVenues`, applying fills to the book and the attribution.

    ``on_fill(fill)`` and ``on_step(plan_id, step, status, tick, detail)`` receive every fill and
    step status change (the journal). ``gateway`` is the venue side (default
    :class:`PaperGateway`: the simulated fills are booked).
    """

    def __init__(self, px: Pricing, sim: SimVenues, book: Book, attribution: Attribution, on_fill, on_step, gateway=None):
        self.px = px
        self.sim = sim
        self.gateway = gateway if gateway is not None else PaperGateway()
        self._staged: list | None = None  # fills of the step being run, not yet recorded
        self.book = book
        self.attr = attribution
        self.on_fill = on_fill
        self.on_step = on_step
        self.plan: Plan | None = None
        self.status: dict[str, str] = {}
        self.transits: list[Transit] = []
        self.last_failure: str | None = None
        self.failed_at: int | None = None
        self.counts = {"plans": 0, "instructions": 0, "failed_plans": 0}
        self._touched: dict[str, tuple[str, ...]] = {}  # leg key -> the keys apply() values (_touch)

    # ------------------------------------------------------------------ plan lifecycle
    @property
    def in_flight(self) -> bool:
        return self.plan is not None

    def submit(self, plan: Plan, tick: int) -> None:
        """Start ``plan`` (pre-empting any plan in flight) and run what is ready now."""
        if self.plan is not None:
            self.cancel(tick, f"pre-empted by plan {plan.id}")
        self.plan = plan
        self.status = {s.id: "pending" for s in plan.steps}
        self.counts["plans"] += 1
        self.counts["instructions"] += sum(len(s.instructions) for s in plan.steps)
        for s in plan.steps:
            self.on_step(plan.id, s, "pending", tick, "")
        self.advance(tick)

    def cancel(self, tick: int, reason: str) -> None:
        if self.plan is None:
            return
        for s in self.plan.steps:
            if self.status[s.id] == "pending":
                self.status[s.id] = "cancelled"
                self.on_step(self.plan.id, s, "cancelled", tick, reason)
        self.plan = None

    def advance(self, tick: int) -> None:
        """Process arrivals due by this tick, then run every ready step (repeatedly)."""
        if self.plan is None and not self.transits:
            return  # most ticks: nothing in flight, nothing to arrive
        now = self.px.view.epoch[tick]
        arrived = getattr(self.gateway, "arrived", None)
        for tr in [t for t in self.transits if t.arrival_epoch <= now]:
            if arrived is not None and not arrived(tr):
                continue  # the venue has not confirmed it yet: still in transit, asked again next tick
            self.transits.remove(tr)
            self.apply(Fill(tick, tr.venue, "arrival", "trading_fees", [Leg(tr.src, -tr.amount, -tr.amount), Leg(tr.dst, tr.amount, tr.amount)],
                            plan_id=tr.plan_id, step_id=tr.step_id, note="transfer credited"))
            if self.plan and self.plan.id == tr.plan_id and self.status.get(tr.step_id) == "in_transit":
                self.status[tr.step_id] = "done"
                self.on_step(tr.plan_id, self._step(tr.step_id), "done", tick, "arrived")
        progress = True
        while self.plan is not None and progress:
            progress = False
            for s in self.plan.steps:
                if self.status[s.id] != "pending" or any(self.status[d] != "done" for d in s.depends_on):
                    continue
                try:
                    self._run(s, tick)
                except ExecutionError as e:
                    self._fail(s, tick, str(e))
                    return
                progress = True
            if all(v in ("done",) for v in self.status.values()):
                self.plan = None

    def _fail(self, s: Step, tick: int, reason: str) -> None:
        self.status[s.id] = "failed"
        self.on_step(self.plan.id, s, "failed", tick, reason)
        self.last_failure = f"{self.plan.id}/{s.id}: {reason}"
        self.failed_at = tick
        self.counts["failed_plans"] += 1
        self.cancel(tick, f"step {s.id} failed")

    def _step(self, sid: str) -> Step:
        return next(s for s in self.plan.steps if s.id == sid)

    # ------------------------------------------------------------------ checkpoints
    def snapshot(self) -> dict:
        """The plan in flight and its progress as plain data: ``plan`` (:meth:`Plan.to_dict` or
        None), ``status`` (step id -> pending/in_transit/done/failed/cancelled), ``transits``
        (:class:`Transit` fields), ``counts``, ``last_failure``, ``failed_at`` (tick or None)."""
        return {"plan": self.plan.to_dict() if self.plan is not None else None, "status": dict(self.status),
                "transits": [asdict(t) for t in self.transits], "counts": dict(self.counts),
                "last_failure": self.last_failure, "failed_at": self.failed_at}

    def restore(self, snap: dict) -> None:
        """Load a :meth:`snapshot`.

        Raises:
            ValueError: the plan's id does not match its content, or ``status`` does not name
                exactly the plan's steps.
        """
        plan = Plan.from_dict(snap["plan"]) if snap["plan"] is not None else None
        steps = {s.id for s in plan.steps} if plan is not None else set()
        if plan is not None and set(snap["status"]) != steps:
            raise ValueError(f"executor.status names steps {sorted(snap['status'])}, the plan has {sorted(steps)}")
        self.plan, self.status = plan, dict(snap["status"])
        self.transits = [Transit(**t) for t in snap["transits"]]
        self.counts = dict(snap["counts"])
        self.last_failure, self.failed_at = snap["last_failure"], snap["failed_at"]

    # ------------------------------------------------------------------ applying fills
    def apply(self, fill: Fill, price: float | None = None, record: bool = True) -> Fill:
        """Apply ``fill`` to the book at this tick's prices; set and book its equity impact:
        the value (share class) of every key it touches after minus before, the touched keys
        being its legs' and, for a perp leg, its venue's ``Margin:USDT`` (realised P&L lands
        there). Raises KeyError for a leg on a key the strategy does not hold (px.info)."""
        legs = fill.legs
        if len(legs) == 1:  # funding, gas, arrivals: the keys of a one-leg fill, cached
            keys = self._touched.get(legs[0].key) or self._touch(legs[0].key)
        else:
            # Ordered (legs first, then perp margins), not a set: the sums below would otherwise
            # follow PYTHONHASHSEED and differ in their last digits from one process to the next.
            keys = dict.fromkeys(leg.key for leg in legs)
            for leg in legs:
                touched = self._touched.get(leg.key) or self._touch(leg.key)
                if len(touched) > 1:
                    keys[touched[1]] = None
        book, value = self.book, self.px.value
        bal, entry = book.bal, book.entry
        before = sum([value(k, bal.get(k, 0.0), entry.get(k, 0.0)) for k in keys])
        book.apply(fill, price)
        bal, entry = book.bal, book.entry
        after = sum([value(k, bal.get(k, 0.0), entry.get(k, 0.0)) for k in keys])
        fill.impact = after - before
        if record and self._staged is not None:
            self._staged.append((fill, price))  # booked once the gateway has the step
        elif record:
            self.attr.book_fill(fill)
            self.on_fill(fill)
        return fill

    def apply_settlements(self, rows: list[tuple]) -> list[float]:
        """Apply funding settlements worked out column-wise
        (:meth:`trimtab.venues.sim.SimVenues.funding_block`'s rows: ``pay`` on a margin key of
        fixed value) to the book, in order, and return their equity impacts: what :meth:`apply`
        does with each one-leg fill (``record=False``), without building it."""
        book, value = self.book, self.px.value
        bal, entry, sums = book.bal, book.entry, book.sums
        out = []
        for row in rows:
            m, pay = row[3], row[4]
            e = entry.get(m, 0.0)
            before = 0 + value(m, bal.get(m, 0.0), e)  # apply()'s sum over the one touched key
            book.version += 1
            if pay != 0.0:  # Book.apply skips a zero leg
                bal[m] = bal.get(m, 0.0) + pay
                sums[m] = sums.get(m, 0.0) + pay
            out.append(0 + value(m, bal.get(m, 0.0), e) - before)
        return out

    def _touch(self, key: str) -> tuple[str, ...]:
        """The keys a one-leg fill on ``key`` touches, in :meth:`apply`'s order: ``(key,)``, or
        ``(key, venue margin key)`` for a perp; kept per key (instruments and venues are static).
        Raises KeyError for a key the strategy does not hold."""
        inf = self.px.info[key]
        out = (key, f"{inf.venue}:Margin:USDT") if inf.ptype == "Perp" else (key,)
        self._touched[key] = out
        return out

    def _record(self, fills: list) -> None:
        for f, _ in fills:
            self.attr.book_fill(f)
            self.on_fill(f)

    def _through_gateway(self, s: Step, tick: int, run) -> str:
        """Run ``run()`` (the simulated step, applied to the book), then hand its fills to the
        gateway. Paper: the simulated fills are recorded as they are. Otherwise the book goes
        back to where it was and the gateway's fills are applied and recorded instead."""
        # Only a live gateway can replace or refuse the simulated fills, so only it needs the undo point.
        live = self.gateway.live
        snap = self.book.snapshot() if live else None
        n_transits, stops = len(self.transits), dict(self.sim.stops) if live else None

        def undo() -> None:
            if not live:
                raise TypeError(f"{type(self.gateway).__name__} has live = False: it must book the simulated fills unchanged")
            self.book.restore(snap)
            del self.transits[n_transits:]
            self.sim.stops = stops

        self._staged = []
        try:
            detail = run()
        except ExecutionError:
            staged, self._staged = self._staged, None
            if live:
                undo()  # nothing was sent
            else:
                self._record(staged)
            raise
        staged, self._staged = self._staged, None
        try:
            real = self.gateway.execute(self.plan.id, s, tick, staged)
        except PartialExecution as e:
            undo()
            for f, price in e.fills:
                self.apply(self._tag(f, s), price)
            raise
        except ExecutionError:
            undo()
            raise
        if real is staged:
            self._record(staged)
            return detail
        self.book.restore(snap)  # the venue's fills replace the simulated ones; transits and stops stay
        for f, price in real:
            self.apply(self._tag(f, s), price)
        return "; ".join(f.note for f, _ in real if f.note) or detail

    # ------------------------------------------------------------------ running steps
    def _run(self, s: Step, tick: int) -> None:
        pid = self.plan.id
        if s.bundle:
            detail = self._through_gateway(s, tick, lambda: self._run_bundle(s, tick))
            self.status[s.id] = "done"
            self.on_step(pid, s, "done", tick, "bundle applied atomically" if not self.gateway.live else f"bundle applied atomically: {detail}")
            return
        ins = s.instructions[0]
        detail = self._through_gateway(s, tick, lambda: self._run_instruction(ins, s, tick))
        if s.latency_s > 0:
            self.status[s.id] = "in_transit"
            self.on_step(pid, s, "in_transit", tick, detail)
        else:
            self.status[s.id] = "done"
            self.on_step(pid, s, "done", tick, detail)

    def _tag(self, f: Fill, s: Step) -> Fill:
        f.plan_id, f.step_id = self.plan.id, s.id
        return f

    def _gas(self, s: Step, tick: int, venue: str, operation: str, commit: bool = True) -> Fill | None:
        f = self.sim.gas_fill(tick, venue, operation, self.sim.op(venue, operation).gas_op)
        if f is None:
            return None
        if self.book.qty(WALLET_ETH) + f.legs[0].delta < -1e-12:
            raise ExecutionError(f"not enough ETH in the wallet for gas of {venue}.{operation}: need {-f.legs[0].delta:.6f}, have {self.book.qty(WALLET_ETH):.6f}")
        return self.apply(self._tag(f, s)) if commit else f

    def _available(self, key: str, reserve: float = 0.0) -> float:
        return max(self.book.qty(key) - reserve, 0.0)

    def _run_instruction(self, ins: Instruction, s: Step, tick: int) -> str:
        sim = self.sim
        if ins.operation == "trade":
            f, price = sim.perp_trade(tick, ins.instrument, ins.amount)
            self.apply(self._tag(f, s), price)
            if ins.params.get("clear_stops") or not self.book.qty(ins.instrument):
                sim.stops.pop(ins.instrument, None)
            elif "take_profit" in ins.params:
                sim.stops[ins.instrument] = (ins.params["take_profit"], ins.params["stop_loss"])
                return f.note + f"; take-profit {ins.params['take_profit']:.2f}, stop-loss {ins.params['stop_loss']:.2f}"
            return f.note
        if ins.operation == "spot_trade":
            f = sim.spot_trade(tick, ins.instrument, ins.amount, ins.price_field, ins.params["fee_bps"], ins.params["cost_pair"])
            if ins.amount > 0 and self.book.qty(f"{ins.venue}:Margin:USDT") + f.legs[1].delta < -1e-9:
                raise ExecutionError(f"not enough USDT on {ins.venue} to buy {ins.amount:.6f} {ins.asset}")
            if ins.amount < 0 and self.book.qty(ins.instrument) + ins.amount < -1e-9:
                raise ExecutionError(f"cannot sell {-ins.amount:.6f} {ins.asset} on {ins.venue}: holding {self.book.qty(ins.instrument):.6f}")
            self.apply(self._tag(f, s))
            return f.note
        if ins.operation == "stake":
            gas = sim.gas_eth(sim.op(ins.venue, "stake").gas_op)
            amount = min(ins.amount, self._available(WALLET_ETH, gas))
            if amount <= 0:
                raise ExecutionError("nothing to stake: the wallet holds no ETH beyond gas")
            self._gas(s, tick, ins.venue, "stake")
            f = sim.stake(tick, ins.venue, amount)
            self.apply(self._tag(f, s))
            return f.note + _clamped(ins.amount, amount)
        if ins.operation in ("supply", "withdraw") and sim.venues[ins.venue].model == "aave_v3":
            if ins.operation == "supply":
                amount = min(ins.amount, self._available(f"wallet:BaseToken:{ins.asset}"))
            else:
                amount = min(ins.amount, self.px.amount(ins.instrument, self.book.qty(ins.instrument)))
            if amount <= 0:
                raise ExecutionError(f"nothing to {ins.operation}: balance is empty")
            self._gas(s, tick, ins.venue, ins.operation)
            f = sim.aave(tick, ins.venue, ins.operation, ins.instrument, amount)
            self.apply(self._tag(f, s))
            return f.note + _clamped(ins.amount, amount)
        if ins.operation == "swap":
            gas = sim.gas_eth(sim.op(ins.venue, "swap").gas_op)
            reserve = gas if ins.instrument == WALLET_ETH else 0.0
            amount = min(ins.amount, self._available(ins.instrument, reserve))
            if amount <= 0:
                raise ExecutionError(f"nothing to swap: {ins.instrument} is empty")
            f = sim.swap(tick, ins.venue, ins.asset, ins.params["buy"], amount)
            if ins.params["buy"] == "ETH":
                # A wallet holding only stablecoins pays the gas of its first ETH purchase
                # out of the ETH it receives (the swap router settles gas after the trade).
                self.apply(self._tag(f, s))
                self._gas(s, tick, ins.venue, "swap")
            else:
                self._gas(s, tick, ins.venue, "swap")
                self.apply(self._tag(f, s))
            return f.note + _clamped(ins.amount, amount)
        if ins.operation == "unstake":  # an LST into its protocol's withdrawal queue (planner.routes)
            amount = min(ins.amount, self._available(ins.instrument))
            if amount <= 0:
                raise ExecutionError(f"nothing to unstake: {ins.instrument} is empty")
            self._gas(s, tick, ins.venue, "unstake")
            f, eth = sim.unstake(tick, ins.venue, amount)
            self.apply(self._tag(f, s))
            self._transit(s, tick, ins.venue, "wallet:Transit:ETH", WALLET_ETH, eth)
            return f.note + _clamped(ins.amount, amount)
        if ins.operation == "deposit":
            amount = min(ins.amount, self._available(ins.instrument))
            if amount <= 0:
                raise ExecutionError(f"nothing to deposit: {ins.instrument} is empty")
            self._gas(s, tick, "wallet", "transfer")
            f = sim.send(tick, ins.venue, "deposit", ins.instrument, f"{ins.venue}:Transit:USDT", amount)
            self.apply(self._tag(f, s))
            self._transit(s, tick, ins.venue, f"{ins.venue}:Transit:USDT", f"{ins.venue}:Margin:USDT", amount - sim.op(ins.venue, "deposit").fee)
            return f.note + _clamped(ins.amount, amount)
        if ins.operation == "withdraw":
            eq, notional, _ = sim.perp_account(self.book, ins.venue)
            floor = self.sim.venues[ins.venue].perp.initial_margin * notional
            amount = min(ins.amount, self._available(ins.instrument), max(eq - floor, 0.0))
            if amount <= 0:
                raise ExecutionError(f"cannot withdraw from {ins.venue}: account equity {eq:.2f} is at the initial margin floor {floor:.2f}")
            f = sim.send(tick, ins.venue, "withdraw", ins.instrument, "wallet:Transit:USDT", amount)
            self.apply(self._tag(f, s))
            self._transit(s, tick, ins.venue, "wallet:Transit:USDT", "wallet:BaseToken:USDT", amount - sim.op(ins.venue, "withdraw").fee)
            return f.note + _clamped(ins.amount, amount)
        raise ExecutionError(f"operation {ins.venue}.{ins.operation} cannot run outside a bundle")

    def _transit(self, s: Step, tick: int, venue: str, src: str, dst: str, amount: float) -> None:
        arrival = self.px.view.epoch[tick] + int(math.ceil(s.latency_s))
        self.transits.append(Transit(self.plan.id, s.id, venue, arrival, src, dst, amount))

    def _run_bundle(self, s: Step, tick: int) -> None:
        """Apply every instruction to the book, then keep the result only if it is safe."""
        sim = self.sim
        snap = self.book.snapshot()
        fills: list[tuple[Fill, float | None]] = []
        gas = sim.gas_eth(sim.op(s.venue, s.operation).gas_op)
        try:
            for ins in s.instructions:
                f = self._bundle_fill(ins, tick, gas)
                self.apply(self._tag(f, s), record=False)
                fills.append((f, None))
            g = self._gas(s, tick, s.venue, s.operation, commit=False)
            if g is not None:
                self.apply(self._tag(g, s), record=False)
                fills.append((g, None))
            problems = self.book.negatives(1e-9)
            flash = [k for k, v in self.book.bal.items() if ":flash" in k and abs(v) > 1e-9]
            lending = {self.px.info[i.instrument].venue for i in s.instructions if i.operation in ("supply", "borrow", "repay", "withdraw")}
            hfs = {v: sim.aave_health(self.book, v)[0] for v in lending}
            if problems or flash or any(h < 1.0 for h in hfs.values()):
                why = "; ".join(problems + [f"flash loan not repaid: {k}" for k in flash] + [f"{v} health factor {h:.4f} < 1" for v, h in hfs.items() if h < 1.0])
                raise ExecutionError(f"bundle reverted: {why}")
        except ExecutionError:
            self.book.restore(snap)
            raise
        if self._staged is not None:
            self._staged.extend(fills)
        else:
            self._record(fills)

    def _bundle_fill(self, ins: Instruction, tick: int, gas: float) -> Fill:
        sim, book = self.sim, self.book
        op = ins.operation
        if op in ("flash_borrow", "flash_repay"):
            return sim.flash(tick, ins.venue, op, ins.amount)
        if op == "stake":
            amount = min(ins.amount, self._available(WALLET_ETH, gas))
            return sim.stake(tick, ins.venue, amount)
        if op == "supply":
            amount = min(ins.amount, self._available(f"wallet:BaseToken:{ins.asset}"))
            return sim.aave(tick, ins.venue, "supply", ins.instrument, amount)
        if op == "withdraw":
            amount = min(ins.amount, self.px.amount(ins.instrument, book.qty(ins.instrument)))
            return sim.aave(tick, ins.venue, "withdraw", ins.instrument, amount)
        if op == "repay":
            amount = min(ins.amount, self.px.amount(ins.instrument, book.qty(ins.instrument)))
            return sim.aave(tick, ins.venue, "repay", ins.instrument, amount)
        if op == "borrow":
            return sim.aave(tick, ins.venue, "borrow", ins.instrument, ins.amount)
        if op == "swap":
            amount = min(ins.amount, self._available(ins.instrument))
            return sim.swap(tick, ins.venue, ins.asset, ins.params["buy"], amount)
        raise ExecutionError(f"unknown bundle operation {ins.venue}.{op}")


def _clamped(planned: float, actual: float) -> str:
    return f" (clamped from {planned:.6f} to what the balance held)" if actual < planned * (1 - 1e-9) else ""
