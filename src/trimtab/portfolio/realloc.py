"""The reallocation protocol of a portfolio of strategies: exit before enter.

A reallocation starts when the portfolio machine enters a state with an action
(machines/portfolio.yaml, ``reallocating``), toward the current target weights:

1. ``withdrawing``: each sleeve above target by at least the dust amount is asked for the excess
   (a negative :class:`~trimtab.engine.flows.Flow` at the next tick, capped in total by
   ``limits.max_turnover x equity``; nothing at all under ``limits.min_move``); its own machine
   unwinds and pays out. The step ends when every such sleeve has paid, or ``payout_wait_h``
   (72 h by default) has passed, or what is left is too small for the sleeve's planner to trade
   (cancelled, noted in the record);
2. ``depositing``: the portfolio's cash goes to the sleeves below target in proportion to their
   shortfall, capped by what arrived; the step ends when the deposits have landed;
3. the record is closed as ``done``, ``partial`` (a withdrawal timed out), ``no_moves`` or
   ``incomplete: ...`` (the run ended first), with weights, equity and cash after and its cost.

The record (a JSON-able dict, one row of the ``reallocations`` table of
:mod:`trimtab.portfolio.store`) is the protocol's whole state besides three counters, so a
checkpoint restores a reallocation in flight exactly.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Protocol

from ..engine.flows import Flow
from ..engine.journal import dumps
from ..planner.compile import MIN_TRADE_USD
from .store import PortfolioStore


class PortfolioBook(Protocol):
    """What the protocol reads from the running portfolio (:class:`trimtab.portfolio.runner.PortfolioRunner`).

    ``eq[sleeve][i]`` is a sleeve's equity at tick ``i`` and ``cash`` the portfolio's own cash
    (share-class units); ``times``/``iso``/``epoch`` the tick clock; ``n`` the number of ticks.
    """

    sleeves: list
    times: object
    iso: list
    epoch: object
    n: int
    cfg: object
    params: dict
    eq: dict
    cash: float
    cut: list
    target_info: dict

    def total(self, i: int) -> float: ...

    def targets(self) -> dict[str, float]: ...

    def dust(self) -> float: ...


class Reallocator:
    """Runs reallocations for ``book``: at most one in flight (:attr:`current`, the record),
    each change of it buffered in ``store`` for the next checkpoint.

    Counters: ``count`` (reallocations started), ``last_epoch`` (unix seconds of the last
    start, None before the first) and ``by_status`` (closed reallocations per status).
    """

    def __init__(self, book: PortfolioBook, store: PortfolioStore) -> None:
        self.book = book
        self.store = store
        self.current: dict | None = None
        self.count = 0
        self.last_epoch: int | None = None
        self.by_status: dict[str, int] = defaultdict(int)

    def on_flow(self, sleeve_id: str, kind: str, amount: float) -> None:
        """Credit a sleeve's ``payout`` or ``deposit`` flow (share-class units) to the record in flight."""
        r = self.current
        if r is None:
            return
        if kind == "payout" and sleeve_id in r["withdrawals"]:
            r["paid"][sleeve_id] = r["paid"].get(sleeve_id, 0.0) + amount
        elif kind == "deposit" and sleeve_id in r["deposits"]:
            r["deposited"][sleeve_id] = r["deposited"].get(sleeve_id, 0.0) + amount

    def pending(self) -> float:
        """Withdrawals asked for and not yet paid (0 with nothing in flight)."""
        r = self.current
        return sum(max(r["withdrawals"][k] - r["paid"].get(k, 0.0), 0.0) for k in r["withdrawals"]) if r else 0.0

    def start(self, i: int, trigger: str) -> None:
        """Start a reallocation at tick ``i`` toward the book's targets, triggered by ``trigger``."""
        b = self.book
        total = b.total(i)
        t = b.targets()
        w = {k: b.eq[k][i] / total for k in t}
        min_move = b.cfg.limits.min_move
        dust = b.dust()
        withdrawals = {k: b.eq[k][i] - t[k] * total for k in t if b.eq[k][i] - t[k] * total >= dust}
        if sum(withdrawals.values()) < min_move:
            withdrawals = {}
        cap = b.cfg.limits.max_turnover * total
        if sum(withdrawals.values()) > cap:
            f = cap / sum(withdrawals.values())
            withdrawals = {k: v * f for k, v in withdrawals.items()}
        self.count += 1
        r = {
            "id": self.count, "trigger": trigger, "method": b.cfg.allocation.method, "start_tick": i, "start_time": b.iso[i],
            "equity_before": total, "cash_before": b.cash, "weights_before": w, "targets": t, "target_basis": b.target_info,
            "cut_for_drawdown": list(b.cut), "withdrawals": withdrawals, "paid": {}, "deposits": {}, "deposited": {},
            "status": "withdrawing", "notes": [], "end_tick": None, "end_time": None,
        }
        self.current = r
        self.last_epoch = b.epoch[i]
        when = b.times[i + 1]
        for s in b.sleeves:
            if s.id in withdrawals:
                s.engine.add_flow(Flow(when, -withdrawals[s.id]))
        if not withdrawals:
            self._deposit(i)
        self._save()

    def progress(self, i: int) -> None:
        """Advance the reallocation in flight at tick ``i`` (after the sleeves stepped)."""
        b = self.book
        r = self.current
        if r["status"] == "withdrawing":
            waited = (b.epoch[i] - b.epoch[r["start_tick"]]) / 3600
            timed_out = waited >= b.params.get("payout_wait_h", 72.0)
            done = True
            for s in b.sleeves:
                if s.id not in r["withdrawals"]:
                    continue
                cf = s.engine.cflows
                if cf.next < len(cf.flows):
                    done = False
                    continue
                rest = cf.pending_withdrawal
                if rest <= 1e-6:
                    continue
                # A remainder the sleeve's planner will not trade for (its plans skip moves under
                # MIN_TRADE_USD: costs paid out of the withdrawal leave a little unpaid) would keep
                # the sleeve's machine unwinding every other tick: cancel it (and everything left
                # once the wait is over) and carry on with what was paid.
                small = rest <= 0.02 * r["withdrawals"][s.id] or rest * s.engine.px.share_usd() <= 2 * MIN_TRADE_USD
                if small or timed_out:
                    cf.pending_withdrawal = 0.0
                    cf.log.append({"time": b.iso[i], "kind": "withdrawal_cancelled", "amount": rest})
                    r["notes"].append(f"{s.id}: {rest:,.2f} of the withdrawal {'left unpaid' if small else 'unpaid after the wait'}, "
                                      f"request cancelled")
                    if not small:
                        r["timed_out"] = True
                else:
                    done = False
            if done:
                r["withdraw_end_tick"] = i
                self._deposit(i)
        elif r["status"] == "depositing":
            if all(r["deposited"].get(k, 0.0) >= v - 1e-6 for k, v in r["deposits"].items()):
                self._complete(i, "done")
        self._save()

    def _deposit(self, i: int) -> None:
        b = self.book
        r = self.current
        if i + 1 >= b.n:
            self._complete(i, "incomplete: the run ended before the deposits")
            return
        total = b.total(i)
        t = r["targets"]
        need = {k: t[k] * total - b.eq[k][i] for k in t if k not in r["withdrawals"] and t[k] * total - b.eq[k][i] > 0}
        avail = max(b.cash, 0.0)
        scale = min(1.0, avail / sum(need.values())) if need and sum(need.values()) > 0 else 0.0
        deposits = {k: v * scale for k, v in need.items() if v * scale >= b.dust()}
        r["deposits"] = deposits
        r["status"] = "depositing"
        if not deposits:
            self._complete(i, "done" if r["withdrawals"] or r["paid"] else "no_moves")
            return
        when = b.times[i + 1]
        for s in b.sleeves:
            if s.id in deposits:
                s.engine.add_flow(Flow(when, deposits[s.id]))

    def _complete(self, i: int, status: str) -> None:
        b = self.book
        r = self.current
        total = b.total(i)
        r["status"] = "partial" if status == "done" and r.get("timed_out") else status
        r["end_tick"], r["end_time"] = i, b.iso[i]
        r["equity_after"] = total
        r["cash_after"] = b.cash
        r["weights_after"] = {s.id: b.eq[s.id][i] / total for s in b.sleeves}
        r["moved"] = sum(r["paid"].values())
        r["costs"] = r["equity_before"] - total  # includes the sleeves' P&L over the reallocation's ticks
        self.by_status[r["status"]] += 1
        self._save()
        self.current = None

    def _save(self) -> None:
        r = self.current
        if r is not None:
            self.store.buf["reallocations"].append((r["id"], r["start_tick"], r["start_time"], r["end_tick"], r["end_time"],
                                                    r["trigger"], r["status"], dumps(r)))
