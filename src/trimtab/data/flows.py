"""Capital flows as input: a flows file (CSV ``time,amount``) and ``--flow TIME:AMOUNT`` parsed into
:class:`Flow` records, each checked (a parsable UTC time; a finite non-zero amount in the share
class, or ``all`` to withdraw everything). Read by the engine (:mod:`trimtab.engine.flows`, which
books them) and by config validation (a malformed flows file is refused at the config's
``flows`` field, before a run starts).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import TrimtabError
from ..timeutil import UtcTime, utc


class FlowError(TrimtabError):
    """A malformed flow; the message names the file and row or the option."""


@dataclass(frozen=True)
class Flow:
    time: UtcTime
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
    """Read a flows CSV (``time,amount``; blank lines skipped, a missing field is empty) with the
    csv module. Raises FlowError naming the file and row (the header is row 1)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [(k, r) for k, r in enumerate(csv.reader(f), 1) if r]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise FlowError(f"{path}: cannot read flows file: {e}") from None
    header = rows[0][1] if rows else []
    if header[:2] != ["time", "amount"]:
        raise FlowError(f"{path}: expected columns time,amount; got {','.join(header)}")
    out = []
    for k, r in rows[1:]:
        r = r + [""] * (2 - len(r))
        out.append(Flow(_time(r[0], f"{path}:{k}"), _amount(r[1], f"{path}:{k}")))
    return out


def _time(t: str, where: str) -> UtcTime:
    # "", "nan", "NaT" read as no time (NotATime, a ValueError): refused, never a flow that
    # compares false with every tick.
    try:
        return utc(str(t).strip())
    except (ValueError, TypeError, OverflowError):
        raise FlowError(f"{where}: unparsable time {t!r}") from None


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
