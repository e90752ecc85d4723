"""A resumed live run puts the ticks it had seen back on its clock in stretches
(``LiveStore.replay``): every tick no late row touched in one slice of the span, each late tick
on its own. A view grown stretch by stretch must read exactly what one grown tick by tick
(``market(t, t)``, the live loop's own ticks) reads -- fields, ages, quarantine flags and the
faulty rows' reasons -- on real rows with late arrivals and a spike, with default and tight checks."""
from __future__ import annotations

import math

from trimtab.data.market import MarketView
from trimtab.live.collect import LiveStore

from test_live_store_span import BARS, FUNDING, HOUR, POINTS, T0, TICKS, TIGHT, _rows


def _grow(store: LiveStore, pieces, fields, bands) -> MarketView:
    pieces = iter(pieces)
    view = MarketView(next(pieces).with_checks(bands), set(fields))
    for md in pieces:
        view.extend(md)
    return view


def test_replayed_stretches_read_what_the_ticks_read(market):
    rows = _rows(market)
    series = BARS + FUNDING + POINTS
    fields = [f"{s}.{c}" for s in series for c in market.fields(s)]
    store = LiveStore(market.static, set(series))
    for o, known in rows:
        assert store.add(o, known)
    end = T0 + (TICKS - 1) * HOUR
    for bands in (None, TIGHT):
        pieces = [store.market(T0, T0), *store.replay(T0 + HOUR, end)]
        assert sum(len(p.index) for p in pieces) == TICKS
        assert len(pieces) < TICKS // 2          # stretches, not one piece a tick
        assert any(len(p.index) == 1 for p in pieces[1:])   # and the late ticks on their own
        one = [store.market(t, t) for t in range(T0, end + HOUR, HOUR)]
        a, b = _grow(store, pieces, fields, bands), _grow(store, one, fields, bands)
        assert a.epoch == b.epoch and a.n == TICKS
        for f in fields:
            assert all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a.cols[f], b.cols[f])), f
        assert a.ages == b.ages and a.quar == b.quar
        faulty = [i for i in range(TICKS) if b.quarantined_at(i)]
        assert faulty and all(a.quarantined_at(i) == b.quarantined_at(i) for i in range(TICKS))
