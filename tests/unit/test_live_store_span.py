"""A resumed live run puts the ticks it already saw back on its clock one at a time
(``LiveStore.market(t, t)``); the store serves them as slices of one MarketData of every row
(the data checks run once). Each slice must read exactly what the live loop read at that tick
from the rows known by then -- with rows that arrived late and a faulty row in the mix."""
from __future__ import annotations

import math

import numpy as np
import pytest

from trimtab.data.market import MarketView
from trimtab.data.quality import Bands
from trimtab.live.collect import LiveStore, Observation

HOUR = 3600
T0 = 1722729600          # 2024-08-04T00:00Z (the Aug-5-2024 crash follows)
TICKS = 60
BARS = ("perp.binance.ETHUSDT", "perp.bybit.ETHUSDT", "perp.okx.ETHUSDT", "spot.bybit.ETHUSDT")
FUNDING = ("funding.binance.ETHUSDT", "funding.bybit.ETHUSDT", "funding.okx.ETHUSDT")
POINTS = ("aave.USDT", "oracle.WETH_USD")
# Fetch outages: rows due at ticks in [a, b) arrive at b (the next fetch asks from the last stored row).
OUTAGES = {"perp.okx.ETHUSDT": (T0 + 10 * HOUR, T0 + 14 * HOUR), "funding.bybit.ETHUSDT": (T0 + 16 * HOUR, T0 + 25 * HOUR),
           "aave.USDT": (T0 + 30 * HOUR, T0 + 31 * HOUR)}


def _known(name: str, t: int) -> int:
    a, b = OUTAGES.get(name, (0, 0))
    return b if a <= t < b else t
SPIKE = ("perp.bybit.ETHUSDT", T0 + 22 * HOUR)                       # close x100: quarantined
TIGHT = Bands(max_cross_venue_deviation=0.002, max_jump=0.004, max_funding_deviation=1e-5)


def _rows(market) -> list[tuple[Observation, int]]:
    """(row, tick it became known) in arrival order: bundle rows when available (some late)."""
    out = []
    view = market.slice(market.index[0], market.index[-1])
    e0 = int(view.epoch[0])
    for t in range(T0, T0 + TICKS * HOUR, HOUR):
        for name in BARS + FUNDING:
            raw = market._get(name)   # the bundle's rows, as a venue returns them
            for k in np.nonzero((raw.avail > t - HOUR) & (raw.avail <= t))[0].tolist():
                a = int(raw.avail[k])
                ts = a - HOUR if name in BARS else a
                vals = {c: float(v[k]) for c, v in raw.values.items()}
                if (name, a) == SPIKE:
                    vals["close"] *= 100
                out.append((Observation(name, ts, a, vals), _known(name, t)))
        for name in POINTS:
            vals = {c: float(view.field(f"{name}.{c}")[(t - e0) // HOUR]) for c in market.fields(name)}
            out.append((Observation(name, t, t, vals), _known(name, t)))
    return sorted(out, key=lambda x: x[1])   # a store receives rows in the order they become known (stable)


def _read(md, fields, series) -> dict:
    v = MarketView(md, set(fields))
    return {"cols": {f: v.cols[f] for f in fields}, "ages": {s: v.ages[s] for s in series},
            "quar": {s: v.quarantined(s, 0) for s in series}, "at": v.quarantined_at(0)}


def test_span_slices_equal_the_ticks_the_live_loop_built(market):
    rows = _rows(market)
    series = BARS + FUNDING + POINTS
    fields = [f"{s}.{c}" for s in series for c in market.fields(s)]
    full = LiveStore(market.static, set(series))
    for o, known in rows:
        assert full.add(o, known)
    spans, late, faulty = 0, 0, 0
    for t in range(T0, T0 + TICKS * HOUR, HOUR):
        live = LiveStore(market.static, set(series))   # what the store held at tick t
        for o, known in rows:
            if known <= t:
                live.add(o, known)
        md = full.market(t, t)
        sliced = full._span is not None and md._shared is full._span[3]._shared
        spans += sliced
        late += not sliced
        # The default checks, and tight ones (a run's data_checks) that fault many rows.
        for bands in (None, TIGHT):
            want = _read(live.market(t, t).with_checks(bands), fields, series)
            got = _read(md.with_checks(bands), fields, series)
            for f in fields:
                a, b = want["cols"][f], got["cols"][f]
                assert (a == b) or (math.isnan(a[0]) and math.isnan(b[0])), (t, f, a, b)
            assert got["ages"] == want["ages"] and got["quar"] == want["quar"], t
            assert [x[:2] for x in got["at"]] == [x[:2] for x in want["at"]], t
            faulty += sum(got["quar"].values())
    # The late rows' ticks were rebuilt from the rows known then; the others were slices.
    assert 4 + 1 + 1 <= late <= 16 and spans == TICKS - late
    assert faulty > TICKS   # the tight checks quarantined series at many ticks, alike both ways
    q = full.market(SPIKE[1], SPIKE[1])
    assert MarketView(q, {"perp.bybit.ETHUSDT.close"}).quarantined("perp.bybit.ETHUSDT", 0)


def test_the_live_loop_still_builds_from_the_rows_known_then(market):
    rows = _rows(market)
    store = LiveStore(market.static, set(BARS))
    t = T0 + 5 * HOUR
    for o, known in rows:
        if known <= t:
            store.add(o, known)
    md = store.market(t, t)     # the newest tick: nothing after it to slice from
    assert store._span is None and md.index[0].timestamp() == t
    with pytest.raises(Exception):
        md.position(t + HOUR)
