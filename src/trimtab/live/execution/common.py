"""What the step modules of :mod:`trimtab.live.execution` share: order states, the outbox row
indices of venue calls, and helpers on the simulated fills."""
from __future__ import annotations

from datetime import datetime, timezone

from ...accounting.book import Fill, Leg
from ...planner.plan import Instruction

#: ccxt order statuses: done (filled, maybe in part) / ended without filling (the rest).
CLOSED = ("closed",)
DEAD = ("canceled", "cancelled", "expired", "rejected")
#: Outbox rows from this index on are venue calls (internal transfers, withdrawals), not
#: chain transactions.
VENUE_IDX = 1000
TRANSFER_IDX, WITHDRAW_IDX = 1000, 1001


def executed_amount(ins: Instruction, fills: list[Fill]) -> float:
    """The amount the simulation actually moved for ``ins`` (it clamps to the book): the
    asset-unit amount of the first simulated leg on ``ins.instrument`` from a fill of the same
    operation; the planned amount when there is none."""
    for f in fills:
        if f.operation == ins.operation:
            for leg in f.legs:
                if leg.key == ins.instrument:
                    return abs(leg.amount)
    return ins.amount


def fresh(f: Fill, note: str) -> Fill:
    """A copy of a simulated fill with its own leg objects (the simulation's were applied)."""
    return Fill(f.tick, f.venue, f.operation, f.category, [Leg(l.key, l.delta, l.amount) for l in f.legs],
                price=f.price, price_field=f.price_field, note=note)


def utc_now() -> str:
    """The outbox's timestamp: now, UTC, to the second."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
