"""The machine lets `transitions` pick the transition; the decision record must agree with it.

For every shipped machine (each strategy config's and the portfolio's), from every state, on
metric vectors drawn around the rules' own thresholds: the transition taken is the first one
in YAML order that leaves the current state and whose rules all hold *according to the
decision record*, the machine lands in its destination, and nothing is taken when none holds.
"""
from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import pytest

from trimtab.config.load import load_strategy
from trimtab.engine.machine import StrategyMachine
from trimtab.portfolio.config import load_portfolio

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = sorted(p for p in (ROOT / "configs").glob("*.yaml") if p.name != "portfolio_strategies.yaml")


def _load(path: Path):
    if path.name == "portfolio_strategies.yaml":
        return load_portfolio(path)
    return load_strategy(path)


def _draws(owner, rng: random.Random, n: int):
    """``n`` metric vectors: each metric near one of the rules' thresholds, 0, or NaN."""
    names: set[str] = set()
    points = {0.0, 1.0}
    for r in owner.rules.values():
        names |= set(r.expr.names)
        points |= {float(v) for v in r.expr.constants.values() if math.isfinite(v)}
    points = sorted(points)
    for _ in range(n):
        m = {}
        for name in sorted(names):
            x = rng.random()
            if x < 0.03:
                m[name] = math.nan
            else:
                p = rng.choice(points)
                m[name] = p + rng.choice((-1, 0, 1)) * max(abs(p), 1.0) * 0.01
        yield m


def _expected(order, src: str, held: dict[str, bool]):
    for trigger, sources, dest, when in order:
        if src in sources and all(held[r] for r in when):
            return trigger, dest
    return None, src


@pytest.mark.parametrize("path", STRATEGIES + [ROOT / "configs" / "portfolio_strategies.yaml"], ids=lambda p: p.stem)
def test_the_transition_taken_is_the_first_whose_recorded_rules_all_hold(path, caplog):
    owner = _load(path)
    sm = StrategyMachine(owner)
    rng = random.Random(path.stem)
    states = list(owner.machine.states)
    taken = later = contested = 0
    with caplog.at_level(logging.WARNING, logger="transitions"):
        for metrics in _draws(owner, rng, 300):
            src = rng.choice(states)
            sm.machine.set_state(src, sm.model)
            d = sm.step(7, "2024-06-01T07:00Z", metrics)
            held = {r["rule"]: r["result"] for r in d.rules}
            assert set(held) == set(owner.rules)  # every rule is on record, evaluated once
            want_trigger, want_dest = _expected(sm.order, src, held)
            assert (d.source, d.trigger, d.dest) == (src, want_trigger, want_dest)
            assert sm.state == want_dest
            if d.trigger is not None:
                taken += 1
                holding = [t for t, sources, _, when in sm.order if src in sources and all(held[r] for r in when)]
                contested += len(holding) > 1  # the earlier one won (checked above)
                leaving = [t for t, sources, _, _ in sm.order if src in sources]
                later += leaving.index(d.trigger) > 0
    assert taken > 0  # the draws do reach the guards
    assert not caplog.records  # no "can't trigger event" warnings from states nothing leaves
    if any(sum(st in sources for _, sources, _, _ in sm.order) > 1 for st in states):
        assert later > 0  # a later transition is taken when the earlier ones do not hold
        assert contested > 0  # and the earliest wins when several hold

