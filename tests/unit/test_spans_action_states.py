"""Quiet spans do not start where the machine is bound to leave its state at once.

An action state whose plan is done leaves at its next tick (``plan_complete``: ``plan_in_flight
== 0``), whatever the market does: the flagship enters ``sell_dust`` at every EIGEN drop and
leaves it the tick after. :meth:`StrategyMachine.fires_on` tells this from the metrics a span
holds constant, and :class:`trimtab.engine.quiet.QuietSpans` then steps the tick instead of
working out a whole span only to drop it. The run must stay the same as stepping every tick
(journal and summary, float by float), and no span may be dropped in an action state.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from test_quiet import journal_rows, spans_match_ticks  # the same comparison as the spans' own tests
from trimtab.config.load import load_strategy
from trimtab.engine.machine import StrategyMachine

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = "usdt_eth_staking_hedged_leveraged.yaml"


def test_no_span_dropped_in_an_action_state(market, tmp_path):
    # January 2025: four EIGEN drops, each selling the dust (idle -> sell_dust -> idle)
    _, engine = spans_match_ticks(FLAGSHIP, "2025-01-01", "2025-02-01", market, tmp_path)
    machine = engine.machine
    plans = journal_rows(tmp_path / "spans" / "journal.sqlite")["plans"]
    assert any(row.startswith("[('plan_id'") and "'sell_dust'" in row for row in plans), "no dust sold"
    dropped = {st: n for st, n in engine.quiet.discarded.items() if machine.action(st) is not None}
    assert dropped == {}, dropped
    assert engine.quiet.counts["bulk"] >= 0.9 * engine.view.n


@pytest.fixture
def machine():
    m = StrategyMachine(load_strategy(ROOT / "configs" / FLAGSHIP))
    m._all_checked = True  # as after the first step, which checks every rule (nothing else is needed here)
    return m


CONSTANTS = {"plan_in_flight": 0.0, "pending_deposit": 0.0, "withdraw_all": 0.0}


def test_fires_on_constant_metrics(machine):
    machine.restore({"state": "sell_dust"})
    assert machine.fires_on(CONSTANTS)  # plan_complete holds: complete fires
    assert not machine.fires_on({**CONSTANTS, "plan_in_flight": 1.0})
    machine.restore({"state": "idle"})
    assert not machine.fires_on(CONSTANTS)  # idle's other guards read market metrics: not known
    assert machine.fires_on({**CONSTANTS, "withdraw_all": 1.0})  # withdraw_everything reads only withdraw_all


def test_fires_on_before_the_first_step():
    m = StrategyMachine(load_strategy(ROOT / "configs" / FLAGSHIP))
    m.restore({"state": "sell_dust"})
    assert not m.fires_on(CONSTANTS)  # quiet_until cannot answer yet either
