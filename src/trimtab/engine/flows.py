"""Capital flows: deposits and withdrawals at given times, and the share units they move.

A flows file is a CSV with columns ``time`` (UTC) and ``amount`` in the share class: positive
deposits, negative withdrawals, or ``all`` to withdraw everything. ``--flow TIME:AMOUNT`` on
the command line adds the same. A deposit lands at the strategy's capital location at the
first tick at or after its time; a withdrawal becomes a *request* the machine acts on
(``exit_partial`` unwinds 1:1, ``exit_full`` for ``all``) and is paid out of the wallet's
share-class balance once the plan has freed it.

Units: the run starts with ``capital`` units at NAV 1; a deposit mints units at the NAV
before it, a payout burns them, so returns (APY, drawdown, Sharpe) are computed on NAV per
unit and are not distorted by flows.
"""
from __future__ import annotations

from ..data.flows import Flow, FlowError, parse_flow, read_flows  # noqa: F401 (the engine's flow API)
from ..timeutil import utc


def check_window(flows: list[Flow], start, end, where: str = "--flow") -> None:
    """Refuse a flow outside the run's window ``[start, end]`` (UTC datetimes), which would never happen.

    Raises:
        FlowError: naming the flow's time and the window.
    """
    for f in flows:
        if not start <= f.time <= end:
            raise FlowError(f"{where}: {f.time:%Y-%m-%d %H:%M} is outside the run's window "
                            f"{start:%Y-%m-%d %H:%M} -> {end:%Y-%m-%d %H:%M} (UTC); it would never happen")


def unpaid_withdrawals(log: list[dict], tol: float = 1e-6) -> float:
    """Withdrawals requested but not paid by the end of a run, from a run's flow log
    (``summary["flows"]``: ``withdrawal_request``, ``payout``, ``remainder_waived``), in the
    share class. A withdrawal larger than the equity is paid up to the equity; the rest is this.
    "all" requests are settled by paying everything and never count."""
    pending, everything = 0.0, False
    for e in log:
        kind, amount = e.get("kind"), e.get("amount")
        if kind == "withdrawal_request":
            if amount == "all":
                everything = True
            else:
                pending += float(amount)
        elif kind == "payout":
            pending = 0.0 if everything else max(pending - float(amount), 0.0)
            everything = False
        elif kind == "remainder_waived":
            pending = 0.0
    return pending if pending > tol else 0.0


class CapitalFlows:
    """Flows in time order, pending requests, units and NAV."""

    def __init__(self, flows: list[Flow], capital: float):
        self.flows = sorted(flows, key=lambda f: f.time)
        self.next = 0
        self.units = capital
        self.pending_deposit = 0.0
        self.pending_withdrawal = 0.0
        self.withdraw_all = False
        self.net = 0.0  # deposits - payouts so far
        self.log: list[dict] = []

    def snapshot(self) -> dict:
        """Every field as plain data; ``flows`` as ``[{"time": ISO 8601 UTC, "amount": share
        class, -inf for "withdraw all"}]``."""
        return {"flows": [{"time": f.time.isoformat(), "amount": f.amount} for f in self.flows], "next": self.next,
                "units": self.units, "pending_deposit": self.pending_deposit, "pending_withdrawal": self.pending_withdrawal,
                "withdraw_all": self.withdraw_all, "net": self.net, "log": [dict(e) for e in self.log]}

    def restore(self, snap: dict) -> None:
        """Load a :meth:`snapshot`.

        Raises:
            ValueError: a flow time that does not parse, or ``next`` outside the flows.
        """
        flows = [Flow(utc(f["time"]), f["amount"]) for f in snap["flows"]]
        if not 0 <= snap["next"] <= len(flows):
            raise ValueError(f"cflows.next {snap['next']} is outside the {len(flows)} flows")
        self.__dict__.update({k: snap[k] for k in ("next", "units", "pending_deposit", "pending_withdrawal", "withdraw_all", "net")})
        self.flows = flows
        self.log = [dict(e) for e in snap["log"]]

    def due(self, epoch: int) -> list[Flow]:
        out = []
        while self.next < len(self.flows) and self.flows[self.next].time.timestamp() <= epoch:
            out.append(self.flows[self.next])
            self.next += 1
        return out

    def deposit(self, amount: float, equity_before: float, time: str) -> None:
        nav = equity_before / self.units if self.units > 0 else 1.0
        self.units += amount / nav
        self.net += amount
        self.pending_deposit += amount
        self.log.append({"time": time, "kind": "deposit", "amount": amount, "nav": nav})

    def request(self, flow: Flow, time: str) -> None:
        if flow.withdraw_all:
            self.withdraw_all = True
        else:
            self.pending_withdrawal += -flow.amount
        self.log.append({"time": time, "kind": "withdrawal_request", "amount": "all" if flow.withdraw_all else -flow.amount})

    def paid(self, amount: float, equity_before: float, time: str) -> None:
        nav = equity_before / self.units if self.units > 0 else 1.0
        self.units -= amount / nav
        self.net -= amount
        self.pending_withdrawal = max(self.pending_withdrawal - amount, 0.0)
        self.log.append({"time": time, "kind": "payout", "amount": amount, "nav": nav})

    def nav(self, equity: float) -> float:
        return equity / self.units if self.units > 1e-12 else 1.0
