"""The live market-data feed (issue 7, ``trimtab run CONFIG --live``) end to end, offline.

The flagship runs through the real pieces -- ``feeds/live.yaml``, :class:`LiveFeed` on a fake
wall clock, the collector, ccxt (Binance USD-M and spot, Bybit linear and spot, OKX swap) over
recorded HTTP answers and web3 over recorded JSON-RPC answers -- and is compared with
``run_backtest`` over the same hours.

Recordings (tests/live_recordings.py) are built from the bundled real data for
2024-08-04T00:00Z .. 2024-08-06T00:00Z (the Aug-5-2024 crash): bars and funding events are the
bundle's rows in the venues' shapes, so the live loader derives the very same values and ages.
Chain series are the one principled difference: the bundle samples Aave, the oracle and the
LST rates daily (indices interpolated geometrically, the rest held as-of), while a live run
reads the latest block every hour; so the recorded chain answers are what the backtest's view
shows at each hour. With that, the live run must make exactly the backtest's decisions (with
every rule's observed values), plans and fills.
"""
from __future__ import annotations

import json
import math
import sqlite3
import sys
from pathlib import Path

import pandas as pd
import pytest
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from live_recordings import FakeClock, record  # noqa: E402

from trimtab.engine.backtest import run_backtest  # noqa: E402
from trimtab.engine.journal import read_metrics  # noqa: E402
from trimtab.data.market import series_of  # noqa: E402
from trimtab.live.adapters.recorded import RecordedProvider, RecordedSession  # noqa: E402
from trimtab.live.control import request_stop  # noqa: E402
from trimtab.live.runner import run_live  # noqa: E402
from trimtab.live.sources import load_sources  # noqa: E402
from conftest import rows  # noqa: E402  (one SQLite read helper for the tests)

START, END = "2024-08-04T00:00", "2024-08-06T00:00"
T0, T1 = int(pd.Timestamp(START, tz="UTC").timestamp()), int(pd.Timestamp(END, tz="UTC").timestamp())
DECISIONS = "SELECT tick, time, source, dest, trigger, plan_id, rules FROM decisions ORDER BY tick"
PLANS = "SELECT plan_id, tick, plan FROM plans ORDER BY tick, plan_id"
FILLS = "SELECT fill_id, tick, plan_id, step_id, operation, category, price, price_field, legs FROM fills ORDER BY fill_id"
SEEN = "SELECT tick, seen FROM metrics ORDER BY tick"  # what the rules saw where it differs


def metrics(db_path) -> list[tuple]:
    """Every tick's metrics by name (repr: NaN equals NaN); column order may differ between journals."""
    db = sqlite3.connect(db_path)
    try:
        return [(r.tick, r.time, r.state, {k: repr(v) for k, v in r.metrics.items()}) for r in read_metrics(db)]
    finally:
        db.close()


@pytest.fixture(scope="module")
def sources():
    return load_sources()


@pytest.fixture(scope="module")
def needed(flagship, market):
    from trimtab.data.market import MarketView
    from trimtab.venues.pricing import Pricing
    from trimtab.venues.sim import SimVenues

    v = MarketView(market.slice(START, START), set())
    px = Pricing(flagship, v)
    return {series_of(f) for f in px.fields() | SimVenues(flagship, px, market.static).fields()}


@pytest.fixture(scope="module")
def recordings(market, sources, needed):
    return record(market, sources, needed, T0, T1, sources.warmup_hours)


def transports(recordings, chain_from=None, market=None, sources=None, needed=None):
    http, rpc = recordings if chain_from is None else record(market, sources, needed, T0, T1, sources.warmup_hours, chain_from)
    sessions = {k: RecordedSession(v) for k, v in http.items()}
    return sessions, Web3(RecordedProvider(rpc))


def live(flagship, market, sources, recordings, tmp_path, run_id="live", clock=None, **kw):
    sessions, w3 = transports(recordings)
    clock = clock or FakeClock(T0 + 45)
    return run_live(flagship, out=tmp_path, run_id=run_id, end=END, feed="live", sources=sources, sessions=sessions, w3=w3,
                    clock=clock, sleep=clock.sleep, static=market.static, poll_s=3600, **kw), sessions, w3


def test_live_feed_makes_the_backtests_decisions_plans_and_fills(flagship, market, sources, recordings, tmp_path):
    errors = []
    # Full journals: every tick's rule trace is compared too.
    res, sessions, w3 = live(flagship, market, sources, recordings, tmp_path, notice=errors.append, journal="full")
    bt = run_backtest(flagship, out=tmp_path, run_id="bt", start=START, end=END, data=market, journal="full")
    a, b = res.run_dir / "journal.sqlite", bt.run_dir / "journal.sqlite"
    assert len(rows(a, DECISIONS)) == 49 and all(r[-1] for r in rows(a, DECISIONS))
    assert rows(a, DECISIONS) == rows(b, DECISIONS)
    assert rows(a, PLANS) == rows(b, PLANS) and rows(a, PLANS)
    assert rows(a, FILLS) == rows(b, FILLS) and len(rows(a, FILLS)) > 5
    assert metrics(a) == metrics(b) and rows(a, SEEN) == rows(b, SEEN)
    assert res.summary["final_equity"] == bt.summary["final_equity"]
    assert res.summary["transitions"] == bt.summary["transitions"]
    # What went over the wire: venue endpoints with the since the collector derived, and
    # every chain value read at the block of its tick.
    paths = {r["path"] for s in sessions.values() for r in s.requests}
    assert {"/fapi/v1/klines", "/fapi/v1/fundingRate", "/v5/market/kline", "/v5/market/funding/history",
            "/api/v5/public/funding-rate-history", "/api/v3/klines"} <= paths
    assert len(w3.provider.calls("eth_getBlockByNumber")) == 49
    # Every needed series is collected. The EIGEN/WETH pool did not exist yet (the bundle
    # starts in Oct 2024): its slot0 call returns no data, which is reported at every tick and
    # leaves NaN, as in the backtest. OKX has no funding events in Aug 2024 (a source gap).
    errs = rows(a, "SELECT series, count(*) FROM feed_errors GROUP BY series")
    assert errs == [("dex.uniswapv3.EIGENWETH", 49)]
    assert len(errors) == 49 and all("dex.uniswapv3.EIGENWETH" in e for e in errors)
    obs = dict(rows(a, "SELECT series, count(*) FROM observations GROUP BY series"))
    assert obs["perp.binance.ETHUSDT"] == 25 + 48 and obs["gas.ethereum"] == 49 and obs["aave.weETH"] == 49
    assert "funding.okx.ETHUSDT" not in obs and obs["funding.binance.ETHUSDT"] == 4 + 6  # 3 warm-up events, then 00:00 Aug 4 .. 00:00 Aug 6
    values = [(s, json.loads(d)) for s, d in rows(a, "SELECT series, data FROM observations")]
    assert all(v != 0 for s, d in values if not s.startswith("funding.") for v in d.values())


def test_a_failed_fetch_is_reported_and_leaves_no_value(flagship, market, sources, recordings, tmp_path):
    """Binance klines time out for one tick: the journal and the notice name it, the bar is
    absent at that tick (the price ages instead of reading zero), and the next tick catches up."""
    http, rpc = recordings
    sessions = {k: RecordedSession(v) for k, v in http.items()}
    since = str((T0 + 2 * 3600) * 1000)
    sessions["binanceusdm:linear"].add({"method": "GET", "path": "/fapi/v1/klines", "match": {"symbol": "ETHUSDT", "startTime": since},
                                        "error": "timeout", "once": True})
    clock = FakeClock(T0 + 45)
    errors = []
    res = run_live(flagship, out=tmp_path, run_id="fail", end="2024-08-04T06:00", feed="live", sources=sources, sessions=sessions,
                   w3=Web3(RecordedProvider(rpc)), clock=clock, sleep=clock.sleep, static=market.static, poll_s=3600,
                   notice=errors.append)
    db = res.run_dir / "journal.sqlite"
    fe = rows(db, "SELECT tick, series, source, message FROM feed_errors WHERE series != 'dex.uniswapv3.EIGENWETH'")
    assert fe == [(3, "perp.binance.ETHUSDT", "binanceusdm (linear) ETH/USDT:USDT", fe[0][3])] and "RequestTimeout" in fe[0][3]
    errors = [e for e in errors if "EIGENWETH" not in e]
    assert len(errors) == 1 and "perp.binance.ETHUSDT" in errors[0] and "2024-08-04T03:00Z" in errors[0]
    # Tick 3 had no new Binance bar; tick 4 fetched both missed bars at once, each stamped as
    # known at tick 4.
    got = rows(db, "SELECT tick, ts, avail, known FROM observations WHERE series='perp.binance.ETHUSDT' AND tick >= 3")
    assert [(t, ts - T0) for t, ts, _, _ in got] == [(4, 2 * 3600), (4, 3 * 3600), (5, 4 * 3600), (6, 5 * 3600)]
    assert all(kn == T0 + 4 * 3600 for t, _, _, kn in got if t == 4)
    # At tick 3 the view has the bar of 01:00 (age 2h): stale, never zero.
    from trimtab.live.collect import LiveStore  # noqa: F401  (the store the runner used)
    assert len(rows(db, "SELECT tick FROM metrics")) == 7


def test_stop_then_resume_rebuilds_the_same_data_and_ends_identical(flagship, market, sources, recordings, needed, tmp_path):
    whole, _, _ = live(flagship, market, sources, recordings, tmp_path, run_id="whole")
    # A first process runs until a stop request arrives after tick 20; its journal is then
    # reopened as a killed run's would be (no stop request, no summary).
    clock = FakeClock(T0 + 45)
    sessions, w3 = transports(recordings)
    calls = {"n": 0}

    def progress(done, total):
        calls["n"] = done
        if done == 21:
            request_stop(tmp_path / "cut")

    first = run_live(flagship, out=tmp_path, run_id="cut", end=END, feed="live", sources=sources, sessions=sessions, w3=w3,
                     clock=clock, sleep=clock.sleep, static=market.static, poll_s=3600, progress=progress)
    # Nothing in flight: the stop is taken while waiting for the next hour, after tick 20.
    assert first.summary["end"] == "2024-08-04T20:00Z" and calls["n"] == 21
    db = tmp_path / "cut" / "journal.sqlite"
    dbc = sqlite3.connect(db)
    with dbc:
        dbc.execute("DELETE FROM control")
        dbc.execute("DELETE FROM meta WHERE key IN ('stopped', 'summary')")
    dbc.close()
    # The resumed process: the wall clock is at tick 21, and "latest" answers start there.
    clock = FakeClock(T0 + 21 * 3600 + 45)
    sessions, w3 = transports(recordings, chain_from=T0 + 21 * 3600, market=market, sources=sources, needed=needed)
    resumed = run_live(flagship, out=tmp_path, run_id="cut", end=END, feed="live", resume=True, sources=sources, sessions=sessions,
                       w3=w3, clock=clock, sleep=clock.sleep, static=market.static, poll_s=3600)
    a, b = tmp_path / "cut" / "journal.sqlite", whole.run_dir / "journal.sqlite"
    assert rows(a, DECISIONS) == rows(b, DECISIONS)
    assert rows(a, FILLS) == rows(b, FILLS)
    assert rows(a, "SELECT series, ts, avail, known, data FROM observations ORDER BY rowid") == \
        rows(b, "SELECT series, ts, avail, known, data FROM observations ORDER BY rowid")
    assert resumed.summary["final_equity"] == whole.summary["final_equity"]
    assert not math.isnan(resumed.summary["final_equity"])


def test_resume_on_the_live_feed_refuses_a_damaged_journal(flagship, market, sources, recordings, tmp_path):
    """Issue 11: the live feed's resume checks the journal like the replay's -- a pickle in the
    checkpoint is refused unread, a damaged observation row is refused, and a truncated journal is
    refused -- each before any engine is rebuilt, with the path and the reason."""
    import hashlib
    import pickle
    import shutil

    from trimtab.engine.checkpoint import CheckpointError

    def progress(done, total):
        if done == 6:
            request_stop(tmp_path / "base")

    live(flagship, market, sources, recordings, tmp_path, run_id="base", progress=progress)
    pwned = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(pwned), "w"))

    def resumed(run_id):
        clock = FakeClock(T0 + 6 * 3600 + 45)
        sessions, w3 = transports(recordings)
        return run_live(flagship, out=tmp_path, run_id=run_id, end=END, feed="live", resume=True, sources=sources,
                        sessions=sessions, w3=w3, clock=clock, sleep=clock.sleep, static=market.static, poll_s=3600)

    shutil.copytree(tmp_path / "base", tmp_path / "pickled")
    blob = pickle.dumps(Payload())
    db = sqlite3.connect(tmp_path / "pickled" / "journal.sqlite")
    with db:
        db.execute("UPDATE checkpoints SET state = ?", (blob,))
        tick = db.execute("SELECT tick FROM checkpoints").fetchone()[0]
    db.close()
    (tmp_path / "pickled" / "checkpoint.json").write_text(json.dumps(
        {"format": "trimtab-checkpoint-marker", "database": "journal.sqlite", "tick": tick, "sha256": hashlib.sha256(blob).hexdigest()}))
    with pytest.raises(CheckpointError, match=f"checkpoint at tick {tick}: not a trimtab checkpoint: it is a Python pickle"):
        resumed("pickled")
    assert not pwned.exists()

    shutil.copytree(tmp_path / "base", tmp_path / "obs")
    db = sqlite3.connect(tmp_path / "obs" / "journal.sqlite")
    with db:
        db.execute("UPDATE observations SET data = '[\"not\", \"a\", \"row\"]' WHERE rowid = 3")
    db.close()
    with pytest.raises(CheckpointError, match=r"obs/journal.sqlite: its observations cannot be read \(row of "):
        resumed("obs")

    shutil.copytree(tmp_path / "base", tmp_path / "cut")
    f = tmp_path / "cut" / "journal.sqlite"
    f.write_bytes(f.read_bytes()[:8192])
    with pytest.raises(CheckpointError, match=r"cut/journal.sqlite is (damaged|not a readable trimtab journal)"):
        resumed("cut")
