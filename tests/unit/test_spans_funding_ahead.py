"""A quiet span cut short books the funding settlements its look-ahead worked out.

:meth:`QuietSpans._fundings` settles the funding ticks of a whole span ahead (the monitors need
the margin balances they leave); a transition or a venue able to liquidate may then end the
span earlier. The settlements before the cut are booked from the look-ahead, with the sim's
state (last rates, proxy counts) as settling them left it, instead of being settled again.
The run must stay the same as stepping every tick (journal and summary, float by float).
"""
from __future__ import annotations

from test_quiet import spans_match_ticks  # the same comparison as the spans' own tests

FLAGSHIP = "usdt_eth_staking_hedged_leveraged.yaml"


def test_cut_span_books_its_look_ahead(market, tmp_path):
    # the August 2024 crash: transitions inside spans that settled funding before them
    _, engine = spans_match_ticks(FLAGSHIP, "2024-07-25", "2024-08-12", market, tmp_path)
    quiet = engine.quiet
    assert quiet.why.get("transition", 0) > 0  # spans were cut by a transition
    assert quiet.settled["ahead"] > 0
    assert quiet.settled["again"] == 0, quiet.settled  # nothing worked out ahead was settled twice
