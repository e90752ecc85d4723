"""A portfolio run's own ``equity.csv``, written without pandas.

Columns ``time, equity, cash, sleeve.<id>...``: per tick (hourly) the portfolio's equity, its
cash and each sleeve's equity, in the share class. Byte for byte the file the pandas
formulation wrote (``DataFrame({"equity", "cash", "sleeve.<id>"...}).to_csv(path,
index_label="time")`` with ``cash = equity - frame[sleeves].sum(axis=1)``); the test
``tests/integration/test_portfolio_nopandas.py`` writes both and compares them.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..engine.results import csv_floats


def sleeves_sum(columns: Sequence[Sequence[float]], n: int) -> np.ndarray:
    """Per tick the sum of the sleeves' equity, as pandas' ``DataFrame.sum(axis=1)``: a missing
    (NaN) value counts as 0, and the columns are added left to right ((a + b) + c: numpy's
    sum over the first axis of the (columns, n) block), shape (n,); zeros without columns."""
    if not columns:
        return np.zeros(n)
    block = np.array(columns, dtype=np.float64).reshape(len(columns), n)
    np.putmask(block, np.isnan(block), 0.0)
    return block.sum(axis=0)


def write_portfolio_csv(path: Path, epoch: Sequence[int], equity: Sequence[float],
                        sleeves: Mapping[str, Sequence[float]]) -> None:
    """Write the portfolio's ``equity.csv`` to ``path``.

    Args:
        epoch: each tick's UTC time, int epoch seconds, shape (n,).
        equity: the portfolio's equity per tick (share class), shape (n,).
        sleeves: per sleeve id (in column order) its equity per tick, each shape (n,).

    The ``time`` column reads ``YYYY-MM-DD HH:MM:SS+00:00``; floats are written as pandas writes
    them (shortest round-trip text, ``inf``; NaN as an empty field); ``cash`` is the equity
    minus :func:`sleeves_sum`.

    Raises:
        ValueError: the columns differ in length. OSError: the file cannot be written."""
    n = len(epoch)
    bad = {k: len(v) for k, v in sleeves.items() if len(v) != n}
    if len(equity) != n or bad:
        raise ValueError(f"portfolio equity.csv columns differ in length: {n} times, {len(equity)} equity, sleeves {bad}")
    eq = np.asarray(equity, dtype=np.float64)
    with np.errstate(invalid="ignore"):    # inf - inf is NaN, silently, as in pandas
        cash = eq - sleeves_sum([sleeves[k] for k in sleeves], n)
    fmt, gm = time.strftime, time.gmtime
    cols = [[fmt("%Y-%m-%d %H:%M:%S+00:00", gm(int(e))) for e in epoch], csv_floats(eq), csv_floats(cash)]
    cols += [csv_floats(np.asarray(v, dtype=np.float64)) for v in sleeves.values()]
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(["time", "equity", "cash", *(f"sleeve.{k}" for k in sleeves)]) + "\n")
        f.write("".join(",".join(r) + "\n" for r in zip(*cols)))
