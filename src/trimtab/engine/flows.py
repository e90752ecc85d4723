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
    t, _, a = text.rpartition(":")
    if not t or not a:
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
        ts = pd.Timestamp(t.strip())
    except ValueError:
        raise FlowError(f"{where}: unparsable time {t!r}") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _amount(a: str, where: str) -> float:
    a = a.strip()
    if a.lower() == "all":
        return -math.inf
    try:
        v = float(a)
    except ValueError:
        raise FlowError(f"{where}: amount must be a number or 'all', got {a!r}") from None
    if v == 0 or math.isnan(v):
        raise FlowError(f"{where}: amount must be non-zero")
    return v


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
