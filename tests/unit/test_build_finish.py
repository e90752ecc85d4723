"""The end of a run, made cheaper (issue 14), writes what it wrote before.

* ``equity.csv`` (:func:`trimtab.engine.results.write_equity_csv`, its time column from
  shared day and clock texts) is byte for byte ``DataFrame.to_csv`` of the same frame, for
  floats that format awkwardly: NaN (empty), +-inf, -0.0, subnormals, 17-digit values, huge
  and tiny exponents, over more ticks than one block (metric columns as the journal keeps them).
* A fresh journal creates its schema in one transaction: every table and the view exist, and
  nothing is left uncommitted; ``flush(commit=False)`` rows are read by the same connection
  and committed by ``close``.
* A backtest runs with the cyclic collector paused (:func:`trimtab.engine.backtest.collector_paused`),
  which is left as it was found afterwards, after an error too.
"""
from __future__ import annotations

import gc
import math
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pandas_reference import equity_table  # noqa: E402

from trimtab.engine.backtest import collector_paused  # noqa: E402
from trimtab.engine.journal import SCHEMA, Journal, MetricsRow  # noqa: E402
from trimtab.engine.results import _ARROW_MIN, _BLOCK, equity_columns, metric_columns, write_equity_csv  # noqa: E402

_AWKWARD = [math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 2.2250738585072014e-308, 1e300, 1e16, 1e15, 123456789.12345679,
            0.1 + 0.2, 1.0, -1.5e-7, 9.999999999999999e22]


@pytest.mark.parametrize("n", [_BLOCK + 301, _ARROW_MIN - 1])   # more than one block (Arrow's text); a short run (repr's)
def test_equity_csv_is_what_pandas_writes_for_awkward_floats(tmp_path, n):
    rng = np.random.default_rng(5)
    venues = ["binance", "okx"]
    epoch = (1_700_000_000 // 3600 * 3600 + 3600 * np.arange(n)).tolist()
    equity = (1e5 * np.exp(np.cumsum(rng.normal(scale=1e-3, size=n)))).tolist()
    nav = [e / 1e5 for e in equity]
    for k, v in zip(rng.choice(n, size=len(_AWKWARD), replace=False).tolist(), _AWKWARD):
        equity[k] = v
    rows = []
    for t in range(n):
        if t % 97 == 5:
            continue                       # a tick without a journal row: every metric empty
        m = {k: float(rng.choice(_AWKWARD)) if rng.random() < 0.2 else float(rng.normal() * 10.0 ** rng.integers(-9, 9))
             for k in equity_columns(venues) if rng.random() < 0.9}
        rows.append(MetricsRow(t, "", "idle", m))
    index = pd.DatetimeIndex(pd.to_datetime(epoch, unit="s", utc=True).as_unit("ns"))
    reference = tmp_path / "pandas.csv"
    equity_table(pd.Series(equity, index=index), pd.Series(nav, index=index), rows, venues).to_csv(reference, index_label="time")
    ours = tmp_path / "ours.csv"
    write_equity_csv(ours, epoch, equity, nav, tmp_path / "no-journal.sqlite", venues, columns=metric_columns(n, rows, venues))
    assert ours.read_bytes() == reference.read_bytes()
    text = ours.read_text()
    assert ",inf" in text and ",-0.0" in text and ",," in text


def test_a_fresh_journal_has_its_whole_schema_committed(tmp_path):
    path = tmp_path / "journal.sqlite"
    j = Journal(path)
    try:
        j.flush()
        other = sqlite3.connect(path)      # another connection sees only what was committed
        try:
            names = {r[0] for r in other.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        finally:
            other.close()
    finally:
        j.close()
    declared = {line.split(" IF NOT EXISTS ")[1].split()[0] for line in SCHEMA.splitlines() if " IF NOT EXISTS " in line}
    assert declared and declared <= names


def test_rows_flushed_uncommitted_are_read_here_and_committed_by_close(tmp_path):
    path = tmp_path / "journal.sqlite"
    j = Journal(path)
    j.series_row(0, 100.0, 1.0, 0.0)
    j.flush(commit=False)
    assert j.db.execute("SELECT equity FROM series").fetchall() == [(100.0,)]
    other = sqlite3.connect(path)
    try:
        assert other.execute("SELECT count(*) FROM series").fetchone()[0] == 0   # not committed yet
    finally:
        other.close()
    j.close()
    other = sqlite3.connect(path)
    try:
        assert other.execute("SELECT equity FROM series").fetchall() == [(100.0,)]
    finally:
        other.close()


def test_the_collector_is_paused_for_a_run_and_left_as_found():
    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            with collector_paused():
                assert not gc.isenabled()
            assert gc.isenabled() is enabled
        gc.enable()
        with pytest.raises(ZeroDivisionError), collector_paused():
            1 / 0
        assert gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
