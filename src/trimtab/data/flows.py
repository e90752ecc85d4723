"""Capital flows as input: a flows file (CSV ``time,amount``) and ``--flow TIME:AMOUNT`` parsed into
:class:`Flow` records, each checked (a parsable UTC time; a finite non-zero amount in the share
class, or ``all`` to withdraw everything). Read by the engine (:mod:`trimtab.engine.flows`, which
books them) and by config validation (a malformed flows file is refused at the config's
``flows`` field, before a run starts).
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
