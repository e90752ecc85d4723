"""EtherFi restaking rewards: EIGEN and ETHFI drops to weETH holders, from the real records.

Source: ``data/static.json`` ``etherfi_rewards.distributions`` (manual_sources/
etherfi_distributions): for each staking period, EIGEN per eETH = eigen_earned /
(eth_restaked + eth_not_restaked) (for weekly periods this is the file's eigen_per_eeth_weekly);
ETHFI top-ups give ethfi_per_eeth_distributed. A holder receives that many tokens per eETH
held, time-weighted over the period (eETH = weETH x the weETH/ETH rate; weETH in the wallet
and supplied to Aave both count, as EtherFi tracks both). EIGEN arrives at the first tick of
the day after the period ends; ETHFI the day after its top-up date (never before the record
could be known).
"""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

import numpy as np

from ..accounting.book import Fill, Leg
from ..timeutil import utc

#: The LST whose holders receive the drops, and the venue that pays them.
TOKEN, VENUE = "weETH", "etherfi"


@dataclass(frozen=True)
class Drop:
    token: str
    per_eeth: float
    start: int  # epoch seconds, period start (inclusive)
    end: int  # epoch seconds, period end (exclusive)
    pay: int  # epoch seconds at which it is credited


def _epoch(day: str) -> int:
    """Epoch seconds of a record's date (UTC). Raises ValueError for one that is not a date."""
    return utc(day).epoch


def schedule(static: dict) -> list[Drop]:
    """Every drop in the bundled records, in payment order."""
    d = static["etherfi_rewards"]["distributions"]
    day = 86400
    out = []
    for r in d["eigen_distributions_raw"]:
        s = _epoch(r["staking_period_start"])
        e = _epoch(r["staking_period_end"]) + day
        per = r["eigen_earned"] / (r["eth_restaked"] + r["eth_not_restaked"])
        out.append(Drop("EIGEN", per, s, e, e))
    for r in d["ethfi_topups_raw"]:
        s = _epoch(r["staking_period_start"])
        e = _epoch(r["staking_period_end"]) + day
        pay = _epoch(r["top_up_date"]) + day
        out.append(Drop("ETHFI", r["ethfi_per_eeth_distributed"], s, e, pay))
    return sorted(out, key=lambda x: (x.pay, x.token))


class RewardAccrual:
    """Tracks eETH held per tick and pays drops when they fall due."""

    def __init__(self, static: dict, epoch: list[int]):
        self.epoch = epoch
        self._schedule = schedule(static)    # parsed once: :meth:`extend` refilters it
        self.drops = [x for x in self._schedule if epoch[0] <= x.pay <= epoch[-1] + 3600]
        self.held: list[float] = []  # eETH held at each tick so far
        self.next = 0
        self.paid: dict[str, float] = {}
        self._keys: list[str] | None = None  # instruments holding weETH (set on the first observe)
        self._held_for, self._held_version, self._held = None, -1, []  # observe's positions, per book version

    def extend(self) -> None:
        """The drops paying within the clock after it grew at its end (``epoch`` is the clock's
        own list, extended in place by a live run): the same list a new RewardAccrual over the
        longer clock selects, from the schedule parsed once instead of every hour. The drops
        are in pay order, so the paid prefix (``next``) keeps its meaning."""
        e0, e1 = self.epoch[0], self.epoch[-1] + 3600
        self.drops = [x for x in self._schedule if e0 <= x.pay <= e1]

    def snapshot(self) -> dict:
        """``{"next": index of the next drop to pay, "paid": {token: amount}}``; the eETH held
        per tick (``held``) is rebuilt from the journal's ``series``."""
        return {"next": self.next, "paid": dict(self.paid)}

    def restore(self, snap: dict) -> None:
        """Load a :meth:`snapshot`."""
        self.next, self.paid = snap["next"], dict(snap["paid"])

    def record(self, eeth: float) -> None:
        self.held.append(eeth)

    def observe(self, book, px, i: int | None = None) -> float:
        """Record and return the eETH the book holds now: weETH in the wallet and supplied to a
        lending venue (every instrument of asset weETH), x the weETH/ETH rate (0 without any),
        at tick ``i`` (default: the view's tick; a quiet span observes its ticks in order).
        Raises DataError where an index or the rate has no value."""
        held = self._weeth(book, px)
        if held:
            # sum() written out: from the int 0, in key order, the same floats
            total = 0
            for k, q in held:
                total += px.amount(k, q, i)
            eeth = total * px.eth_rate(TOKEN, i)
        else:
            eeth = 0.0
        self.record(eeth)
        return eeth

    def _weeth(self, book, px) -> list[tuple[str, float]]:
        """(key, qty) of the weETH positions ``book`` holds, in key order."""
        if self._keys is None:  # the instruments are fixed for a run: find them once
            self._keys = [k for k, inf in px.info.items() if inf.asset == TOKEN]
        if self._held_for is not book or self._held_version != book.version:
            # kept while the book is unchanged (every Book.apply / restore bumps ``version``)
            self._held = [(k, book.qty(k)) for k in self._keys if book.qty(k)]
            self._held_for, self._held_version = book, book.version
        return self._held

    def observe_span(self, book, px, i: int, k: int, column) -> list[float]:
        """:meth:`observe` at ticks ``i .. i + k - 1`` in order, the book's weETH positions
        unchanged throughout: the same floats element by element (the sum from 0 in key order,
        then times the rate), with ``column(field)`` a field's float64 array over the view
        (None if the view lacks it). Where a field it reads has no value in the span,
        :meth:`observe` runs tick by tick instead (and raises where it does)."""
        held = self._weeth(book, px)
        if not held:
            out = [0.0] * k
        else:
            rate_field = px.assets[TOKEN].eth_rate_field
            fields = [f for f in [px.info[key].index_field for key, _ in held] + [rate_field] if f]
            cols = {f: column(f) for f in fields}
            if any(c is None for c in cols.values()):
                return [self.observe(book, px, t) for t in range(i, i + k)]
            total = np.zeros(k)
            for key, q in held:
                f = px.info[key].index_field
                total = total + (q * cols[f][i:i + k] if f else q)
            if rate_field:
                total = total * cols[rate_field][i:i + k]
            if bool(np.isnan(total).any()):  # a field without a value (observe raises there)
                return [self.observe(book, px, t) for t in range(i, i + k)]
            out = total.tolist()
        self.held.extend(out)
        return out

    def is_due(self, i: int) -> bool:
        """True when a drop is payable at tick ``i`` (else :meth:`fills` returns [] and changes nothing)."""
        return self.next < len(self.drops) and self.drops[self.next].pay <= self.epoch[i]

    def fills(self, i: int) -> list[Fill]:
        """The reward fills payable at tick ``i`` (:meth:`due`), credited to the wallet."""
        return [Fill(i, VENUE, "reward", "rewards", [Leg(f"wallet:BaseToken:{token}", amount, amount)],
                     note=f"{drop.per_eeth:.6f} {token}/eETH x mean eETH held over the period")
                for token, amount, drop in self.due(i)]

    def due(self, i: int) -> list[tuple[str, float, Drop]]:
        """(token, amount, drop) for drops payable at tick ``i``: per_eeth x the mean eETH held
        over the period's ticks (ticks before the run count as zero)."""
        out = []
        now = self.epoch[i]
        while self.next < len(self.drops) and self.drops[self.next].pay <= now:
            d = self.drops[self.next]
            self.next += 1
            n = (d.end - d.start) // 3600
            # The ticks with start <= t < end, found by bisection: the clock is strictly
            # increasing, so they are one slice, summed in the same order as a filter would.
            held = len(self.held)
            lo, hi = bisect_left(self.epoch, d.start, 0, held), bisect_left(self.epoch, d.end, 0, held)
            total = sum(self.held[lo:hi])
            amount = d.per_eeth * total / n if n > 0 else 0.0
            if amount > 0:
                out.append((d.token, amount, d))
                self.paid[d.token] = self.paid.get(d.token, 0.0) + amount
        return out
