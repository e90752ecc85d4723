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

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import TrimtabError


class FlowError(TrimtabError):
    """A malformed flow; the message names the file and row or the option."""


@dataclass(frozen=True)
class Flow:
    time: pd.Timestamp
    amount: float  # share class; math.inf for "withdraw all" (stored negative)

    @property
    def withdraw_all(self) -> bool:
        return math.isinf(self.amount)


def parse_flow(text: str, where: str = "--flow") -> Flow:
    """``2024-09-01T00:00:AMOUNT`` style: everything after the last ':' is the amount."""
    t, _, a = str(text).rpartition(":")
    if not t.strip() or not a.strip():
        raise FlowError(f"{where}: expected TIME:AMOUNT (e.g. 2024-09-01:+50000 or 2025-01-01:all), got {text!r}")
    return Flow(_time(t, where), _amount(a, where))


def read_flows(path: Path) -> list[Flow]:
    """Read a flows CSV (``time,amount``). Raises FlowError naming the row."""
    try:
        df = pd.read_csv(path, dtype=str)
    except (OSError, pd.errors.ParserError) as e:
        raise FlowError(f"{path}: cannot read flows file: {e}") from None
    if list(df.columns[:2]) != ["time", "amount"]:
        raise FlowError(f"{path}: expected columns time,amount; got {','.join(df.columns)}")
    return [Flow(_time(r.time, f"{path}:{i + 2}"), _amount(r.amount, f"{path}:{i + 2}")) for i, r in enumerate(df.itertuples())]


def _time(t: str, where: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(str(t).strip())
    except (ValueError, TypeError, OverflowError):
        raise FlowError(f"{where}: unparsable time {t!r}") from None
    if ts is pd.NaT:  # "", "nan", "NaT" parse to NaT, which compares false with every tick
        raise FlowError(f"{where}: unparsable time {t!r}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _amount(a: str, where: str) -> float:
    a = str(a).strip()
    if a.lower() == "all":
        return -math.inf
    try:
        v = float(a)
    except ValueError:
        raise FlowError(f"{where}: amount must be a number or 'all', got {a!r}") from None
    if not math.isfinite(v):  # inf would read as "withdraw all" or an endless deposit; nan as nothing
        raise FlowError(f"{where}: amount must be a finite number or 'all', got {a!r}")
    if v == 0:
        raise FlowError(f"{where}: amount must be non-zero")
    return v


def check_window(flows: list[Flow], start: pd.Timestamp, end: pd.Timestamp, where: str = "--flow") -> None:
    """Refuse a flow outside the run's window ``[start, end]`` (UTC), which would never happen.

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
        flows = [Flow(pd.Timestamp(f["time"]).tz_convert("UTC"), f["amount"]) for f in snap["flows"]]
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
