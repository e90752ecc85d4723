"""Walk-forward windows: ``--walk-forward IS:OOS`` parsed, and the folds it cuts a window into.

``IS:OOS`` is two lengths, each a whole number and a unit: ``d`` days, ``w`` weeks, ``m``
calendar months (``6m:3m``). The out-of-sample (OOS) windows tile the period after the first
in-sample (IS) window: OOS_0 starts IS after the window's start, each OOS window starts where the
previous one ends, the last one ends at the window's end (a tail shorter than a day is left
out). Fold k's IS window is the IS length just before OOS_k, ending where OOS_k starts.
"""
from __future__ import annotations

import dataclasses
import re

import pandas as pd

from . import ResearchError

__all__ = ["Fold", "make_folds", "parse_spec"]

FLAG = "--walk-forward"
_PART = re.compile(r"\s*([1-9][0-9]{0,3})\s*([dwm])\s*")
MIN_OOS = pd.Timedelta(days=1)


def _offset(n: int, unit: str):
    return pd.DateOffset(months=n) if unit == "m" else pd.Timedelta(days=n * (7 if unit == "w" else 1))


def parse_spec(spec: str):
    """``"6m:3m"`` -> (IS length, OOS length) as pandas offsets (``m``: calendar months).

    Raises:
        ResearchError: (flag ``--walk-forward``) not ``N<unit>:N<unit>`` with N a whole number
            from 1 and unit d, w or m.
    """
    parts = str(spec).split(":")
    m = [_PART.fullmatch(p) for p in parts]
    if len(parts) != 2 or not all(m):
        raise ResearchError(f"{FLAG} {spec}: expected IS:OOS, each a whole number and a unit d, w or m (e.g. 6m:3m, 8w:2w)",
                            FLAG)
    return tuple(_offset(int(x.group(1)), x.group(2)) for x in m)


@dataclasses.dataclass(frozen=True)
class Fold:
    """Fold ``k``: the IS window [is_start, is_end] and the OOS window [oos_start, oos_end] (UTC, is_end == oos_start)."""

    k: int
    is_start: pd.Timestamp
    is_end: pd.Timestamp
    oos_start: pd.Timestamp
    oos_end: pd.Timestamp


def make_folds(start: pd.Timestamp, end: pd.Timestamp, is_len, oos_len, spec: str = "") -> list[Fold]:
    """The folds over [start, end] (see the module doc).

    Raises:
        ResearchError: the window holds no IS window followed by at least a day of OOS.
    """
    folds: list[Fold] = []
    oos_start = start + is_len
    while oos_start < end:
        oos_end = min(oos_start + oos_len, end)
        if oos_end - oos_start < MIN_OOS:
            break
        folds.append(Fold(len(folds), max(start, oos_start - is_len), oos_start, oos_start, oos_end))
        oos_start = oos_end
    if not folds:
        raise ResearchError(f"{FLAG} {spec}: the window {start:%Y-%m-%d %H:%M} -> {end:%Y-%m-%d %H:%M} is shorter than one "
                            f"in-sample window plus a day of out-of-sample; use shorter windows or a longer --start/--end",
                            FLAG)
    return folds
