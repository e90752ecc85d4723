"""A quiet span cut short books the funding settlements its look-ahead worked out.

:meth:`QuietSpans._fundings` settles the funding ticks of a whole span ahead (the monitors need
the margin balances they leave); a transition or a venue able to liquidate may then end the
span earlier. The settlements before the cut are booked from the look-ahead, with the sim's
state (last rates, proxy counts) as settling them left it, instead of being settled again.
The run must stay the same as stepping every tick (journal and summary, float by float).
"""
from __future__ import annotations

from test_quiet import ROOT, spans_match_ticks  # the same comparison as the spans' own tests

from trimtab.config.load import load_strategy
from trimtab.engine.kernel import Engine

FLAGSHIP = "usdt_eth_staking_hedged_leveraged.yaml"


def test_cut_span_books_its_look_ahead(market, tmp_path):
    # the August 2024 crash: transitions inside spans that settled funding before them
    _, engine = spans_match_ticks(FLAGSHIP, "2024-07-25", "2024-08-12", market, tmp_path)
    quiet = engine.quiet
    assert quiet.why.get("transition", 0) > 0  # spans were cut by a transition
    assert quiet.settled["ahead"] > 0
    assert quiet.settled["again"] == 0, quiet.settled  # nothing worked out ahead was settled twice


def test_look_ahead_keeps_only_stale_mark_reads(market, tmp_path):
    # OKX's data stopping in April 2025 (its position held, marked at the reference price): a
    # settlement booked from the look-ahead (SimVenues.funding_block's rows) is marked stale
    # exactly where the perp's mark was stale (its hour is counted when booked); a fresh read
    # changes nothing and is not marked
    e = Engine(load_strategy(ROOT / "configs" / FLAGSHIP), market.slice("2025-03-20", "2025-04-10"), tmp_path, bulk=True)
    booked = []
    take = e.quiet._take_ahead

    def recording(end):
        got = take(end)
        if got and end >= 0:
            booked.extend(got)
        return got

    e.quiet._take_ahead = recording
    e.run_until(e.view.n)
    stale = fresh = 0
    for t, key, *_, was_stale, _proxy in booked:
        inf = e.px.info[key]
        assert was_stale == (not e.view.fresh(inf.mark_field, inf.stale_after_h, t)), (t, key)
        stale += was_stale
        fresh += not was_stale
    assert stale > 5 and fresh > 50  # both kinds of read were booked
