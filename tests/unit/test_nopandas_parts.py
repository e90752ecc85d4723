"""The pandas-free pieces of the run path give what their pandas formulations gave: time parsing
and rounding (trimtab.timeutil), the clock's lazily built DatetimeIndex, Arrow columns read from
their buffers, the basket's trailing gas median, the performance figures, the flows and signal
readers. Each reference is computed here with pandas (or pyarrow's own conversion)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pandas_reference import pandas_performance  # noqa: E402

from trimtab.data.feed import _to_numpy, load_market_data
from trimtab.data.flows import FlowError, read_flows
from trimtab.data.market import float_list
from trimtab.data.signals import SignalError, read_signals
from trimtab.engine.results import performance, performance_of
from trimtab.portfolio.drift import trailing_median
from trimtab.timeutil import NotATime, UtcTime, utc

SPELLINGS = ["2024-06-01", "2024-06-01T03:00Z", "2024-06-01 03:30:00+02:00", "2024-06-01T03:00:00.5",
             "20240601", "2024/06/01 17:45", "June 1 2024 4pm", "2024-12-31T23:59:59-05:00"]


def pandas_utc(text: str) -> pd.Timestamp:
    t = pd.Timestamp(text)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


@pytest.mark.parametrize("text", SPELLINGS)
def test_utc_reads_every_spelling_as_pandas_did(text):
    ours, theirs = utc(text), pandas_utc(text)
    assert isinstance(ours, UtcTime)
    assert ours == theirs and ours.value == theirs.value and str(ours) == str(theirs)
    assert ours.isoformat() == theirs.isoformat() and f"{ours:%Y-%m-%d %H:%M}" == f"{theirs:%Y-%m-%d %H:%M}"
    assert ours.floor("h") == theirs.floor("h") and ours.ceil("h") == theirs.ceil("h")
    assert ours.epoch == theirs.value // 10**9 and utc(theirs) == ours


def test_utc_reads_integers_as_pandas_nanoseconds():
    for ns in (1_700_000_000_123_456_789, np.int64(1_700_000_000 * 10**9), 0, -5):
        ours, theirs = utc(ns), pd.Timestamp(ns).tz_localize("UTC")
        assert isinstance(ours, UtcTime) and ours.epoch == theirs.value // 10**9
        assert ours == theirs.floor("us")


def test_utc_refuses_what_is_no_time():
    for text in ("", "NaT", "nan"):
        with pytest.raises(NotATime):
            utc(text)
    with pytest.raises(ValueError):
        utc("not a time at all")
    with pytest.raises(ValueError):
        utc("2024-06-01").floor("D")


def test_clock_index_is_built_lazily_as_the_date_range_it_was():
    md = load_market_data(start="2025-01-01", end="2025-01-03 05:00")
    assert md._index is None   # the loader's clock is epoch seconds until someone asks
    expected = pd.date_range(pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2025-01-03 05:00", tz="UTC"), freq="h")
    assert md.index.equals(expected) and md.index.freq == expected.freq and str(md.index.tz) == "UTC"
    assert md.slice("2025-01-02", "2025-01-02 10:00").index.equals(expected[24:35])


def test_arrow_columns_read_from_their_buffers_as_to_numpy_gives():
    floats = pa.chunked_array([pa.array([1.5, None, -0.0, 3.25]).slice(1), pa.array([None, 2.0, float("inf")])])
    ints = pa.chunked_array([pa.array([7, None, 9], type=pa.int32()).slice(1), pa.array([4], type=pa.int32())])
    for col in (floats, ints, pa.chunked_array([pa.array([1, 2], type=pa.uint16())])):
        got, want = _to_numpy(col), col.to_numpy()
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)
    for unit, per_s in (("s", 1), ("ms", 1000), ("us", 10**6), ("ns", 10**9)):
        raw = [1_700_000_000 * per_s + per_s // 2, None, -3 * per_s // 2]
        col = pa.chunked_array([pa.array(raw, type=pa.timestamp(unit, tz="UTC"))])
        want = pd.DatetimeIndex(pd.to_datetime(col.to_numpy(), utc=True)).as_unit("s").asi8
        assert _to_numpy(col).tolist() == want.tolist()


def test_view_columns_share_float_objects_but_keep_every_bit():
    rng = np.random.default_rng(3)
    v = np.repeat(rng.standard_normal(40), rng.integers(1, 6, 40))
    v[::7] = np.nan
    v[3] = -0.0
    v[4] = 0.0
    runs = 1 + np.count_nonzero(v.view(np.int64)[1:] != v.view(np.int64)[:-1])
    for distinct, objects in ((False, runs), (True, np.unique(v.view(np.int64)).size)):
        got = float_list(v, distinct)
        assert np.array_equal(np.array(got).view(np.int64), v.view(np.int64))   # -0.0 stays -0.0
        assert len({id(x) for x in got}) == objects                             # one per run / value
    assert float_list(np.arange(5.0), distinct=True) == [0.0, 1.0, 2.0, 3.0, 4.0]     # no run repeats


def test_trailing_median_is_pandas_rolling_median():
    rng = np.random.default_rng(0)
    v = rng.lognormal(size=800) * 30
    v[rng.random(800) < 0.1] = np.nan
    v[:9] = np.nan
    for hours in (1, 2, 5, 24, 48):
        want = pd.Series(v).rolling(hours, min_periods=1).median().to_numpy()
        assert np.array_equal(trailing_median(v, hours), want, equal_nan=True)


@pytest.mark.parametrize("seed", range(4))
def test_performance_is_the_pandas_formulation(seed):
    rng = np.random.default_rng(seed)
    n = 24 * 40 + 7
    v = 1e5 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    if seed % 2:
        v[rng.random(n) < 0.05] = np.nan   # unknown ticks, whole unknown days too
        v[24 * 10:24 * 12] = np.nan
    epoch = 1_719_800_000 // 3600 * 3600 + 3600 * np.arange(n)
    s = pd.Series(v, index=pd.to_datetime(epoch, unit="s", utc=True))
    want = pandas_performance(s)
    for got in (performance_of(v.tolist(), epoch.tolist()), performance(s)):
        assert all(got[k] == want[k] or (math.isnan(got[k]) and math.isnan(want[k])) for k in want), (got, want)


def test_flows_file_reads_as_before(tmp_path):
    p = tmp_path / "flows.csv"
    p.write_text("time,amount\n2024-09-01,+50000\n\n2025-01-01T12:00Z,all\n2024-10-01 00:00:00+02:00,-2.5\n")
    flows = read_flows(p)
    assert [f.time for f in flows] == [pandas_utc(t) for t in ("2024-09-01", "2025-01-01T12:00Z", "2024-10-01 00:00:00+02:00")]
    assert [f.amount for f in flows] == [50000.0, -math.inf, -2.5] and flows[1].withdraw_all
    p.write_text("time,amount\n2024-09-01,10\nnot a time,5\n")
    with pytest.raises(FlowError, match=r"flows.csv:3: unparsable time"):
        read_flows(p)
    p.write_text("when,amount\n2024-09-01,10\n")
    with pytest.raises(FlowError, match="expected columns time,amount"):
        read_flows(p)


def test_signal_file_reads_as_pandas_reads_it(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("timestamp,signal,confidence,sd,extra\n2024-01-08T02:00:00Z,long,0.1573,0.005971,x\n"
                 "2024-01-08T01:00:00Z,neutral,0.1677,0.005975,y\n2024-01-08T03:00:00Z,short,1,0.1234567890123,z\n")
    sig = read_signals(p)
    df = pd.read_csv(p)
    ts = pd.to_datetime(df["timestamp"], utc=True)
    order = np.argsort(ts.to_numpy(), kind="stable")
    assert sig.epoch.tolist() == pd.DatetimeIndex(ts).as_unit("s").asi8[order].tolist()
    assert sig.confidence.tolist() == df["confidence"].to_numpy()[order].tolist()
    assert sig.sd.tolist() == df["sd"].to_numpy()[order].tolist()
    assert sig.side.tolist() == df["signal"].map({"long": 1.0, "short": -1.0, "neutral": 0.0}).to_numpy()[order].tolist()
    for body, problem in (("2024-01-08T01:00:00Z,up,0.5,0.1", "s.csv:2: signal 'up'"),
                          ("2024-01-08T01:00:00Z,long,1.5,0.1", "s.csv:2: confidence '1.5'"),
                          ("2024-01-08T01:00:00Z,long,0.5,-1", "s.csv:2: sd '-1'"),
                          ("yesterday-ish,long,0.5,0.1", "s.csv:2: unparsable timestamp"),
                          ("2024-01-08T01:00:00Z,long,0.5,0.1\n2024-01-08T01:00:00Z,long,0.5,0.1", "duplicate timestamp")):
        p.write_text("timestamp,signal,confidence,sd\n" + body + "\n")
        with pytest.raises(SignalError, match=problem):
            read_signals(p)


def test_private_and_public_parquet_readers_give_the_same_tables():
    # feed._read_parquet uses pyarrow's ParquetReader directly (lighter than pyarrow.parquet) and
    # falls back to pq.ParquetFile: both must read every bundled file the same, column by column.
    from trimtab.data import feed

    files = sorted((Path(feed.BUNDLED_DATA_DIR) / "series").glob("*.parquet"))
    assert files
    for f in files:
        keep = lambda n: n != "ts"  # noqa: E731 - a column subset, as the loader asks for one
        a, b = feed._read_parquet(f, keep), feed._read_parquet_public(f, keep)
        assert a.column_names == b.column_names and "ts" not in a.column_names, f
        assert a.equals(b), f
