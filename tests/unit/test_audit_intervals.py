"""The interval reasoning behind the rule audits (trimtab.audit.intervals)."""
from __future__ import annotations

import math

import pytest

from trimtab.audit.intervals import Interval, Solver, metric_domain
from trimtab.rules.parse import parse

P = {"enter": 1.05, "leave": 1.10, "m_enter": 0.25, "m_leave": 0.40, "zero": 0.0}


@pytest.fixture
def solver():
    return Solver(P)


@pytest.mark.parametrize("text, holds", [
    ("health_factor < enter or margin_ratio_min < m_enter", True),
    ("health_factor < zero", False),                       # health_factor >= 0
    ("health_factor <= zero", True),                       # 0 is a health factor (all collateral gone)
    ("health_factor > 1e300", True),                       # inf without debt
    ("hedge_allocation_drift > 1", False),                 # a share difference
    ("plan_in_flight > 0 and plan_in_flight < 1", False),  # a flag: 0 or 1
    ("plan_in_flight == 0.5", False),
    ("signal_side == 2", False),
    ("signal_side != position_side", True),
    ("abs(delta_drift) > 0.02 and abs(delta_drift) < 0.01", False),
    ("abs(delta_drift) < 0.01 and delta_drift > 0.005", True),
    ("health_factor < 1 and health_factor > 1", False),
    ("health_factor <= 1 and health_factor >= 1", True),
    ("not (health_factor >= enter) and health_factor > leave", False),
    ("withdraw_all > 0 and withdraw_all == 0", False),
    ("equity_deviation * 2 < 0", False),
    ("unknown_metric < -5", True),                         # unknown metrics range over all reals
    ("true", True),
    ("false", False),
])
def test_can_hold(solver, text, holds):
    assert solver.can_hold(parse(text)) is holds


def test_two_guards_together_and_implication(solver):
    enter = parse("health_factor < enter or margin_ratio_min < m_enter")
    leave = parse("health_factor > leave and margin_ratio_min > m_leave")
    assert not solver.can_hold(enter, leave)
    # `health_factor < 1.0` implies the enter guard: it cannot hold while enter does not.
    assert not solver.can_hold(parse("health_factor < 1.0"), negated=[enter])
    assert solver.can_hold(parse("health_factor < 1.08"), negated=[enter])


def test_witness_narrows_each_metric(solver):
    got = solver.satisfiable(parse("health_factor < enter and margin_ratio_min < 0.5"))
    assert got["health_factor"] == Interval(0.0, 1.05, False, True)
    assert got["margin_ratio_min"].hi == 0.5 and got["margin_ratio_min"].hi_open
    assert got["health_factor"].describe("health_factor") == "0 <= health_factor < 1.05"


def test_an_environment_restricts_metrics(solver):
    g = parse("plan_in_flight == 0")
    assert solver.can_hold(g)
    assert not solver.can_hold(g, env={"plan_in_flight": Interval.point(1.0)})
    cooldown = parse("abs(delta_drift) > 0.02 and hours_since_rebalance >= 24")
    assert not solver.can_hold(cooldown, env={"hours_since_rebalance": Interval.point(0.0)})


def test_metric_domains():
    assert metric_domain("health_factor").lo == 0 and metric_domain("health_factor").hi == math.inf
    assert metric_domain("margin_ratio.okx") == metric_domain("margin_ratio_min")
    assert metric_domain("something_new") == Interval()


def test_integer_intervals():
    assert Interval(0.2, 0.8, integer=True).empty()
    assert not Interval(0.0, 1.0, lo_open=True, integer=True).empty()
    assert Interval(0.0, 1.0, lo_open=True, hi_open=True, integer=True).empty()


class _FromScratch(Solver):
    """The solver with every conjunction's feasibility worked out from no intervals."""

    def _feasible_after(self, x, c):
        return self.feasible(c)


def _random_guard(rng) -> str:
    """A guard over bounded, integer and unbounded metrics: bounds by parameters and numbers
    (the points an integer metric takes among them), ``!=``, ``abs``, a metric against a metric."""
    def comparison() -> str:
        metric = rng.choice(["health_factor", "plan_in_flight", "delta_drift", "abs(delta_drift)", "signal_side", "unknown_x"])
        const = rng.choice(["enter", "leave", "zero", "0", "1", "-1", "0.5", "2", "0.01"])
        op = rng.choice(["<", "<=", ">", ">=", "==", "!="])
        if rng.random() < 0.15:
            return f"{metric} {op} unknown_x * 2"
        return f"{metric} {op} {const}" if rng.random() < 0.8 else f"{const} {op} {metric}"

    def expr(depth: int) -> str:
        if depth == 0 or rng.random() < 0.4:
            return comparison()
        parts = [expr(depth - 1) for _ in range(rng.randint(2, 3))]
        text = f" {rng.choice(['and', 'or'])} ".join(f"({p})" for p in parts)
        return f"not ({text})" if rng.random() < 0.2 else text

    return expr(2)


def test_conjunctions_narrowed_on_from_an_earlier_one_match_a_fresh_look():
    """And-ing a state's guards one after another narrows each conjunction on from the one
    before (Solver._narrowed_on): every conjunction's answer and intervals are those worked out
    from scratch, and so is every question's."""
    import random

    rng = random.Random(14)
    for _ in range(300):
        guards = [parse(_random_guard(rng)) for _ in range(rng.randint(2, 6))]
        fast, slow = Solver(P), _FromScratch(P)
        for k in range(1, len(guards)):
            got, want = (s.satisfiable(guards[k], negated=guards[:k]) for s in (fast, slow))
            assert (None if got is None else list(got.items())) == (None if want is None else list(want.items()))
            assert fast.can_hold(*guards[:k + 1]) is slow.can_hold(*guards[:k + 1])
        for conj, env in fast._feasible_memo.values():
            fresh = fast._feasible(conj, {})
            assert (None if env is None else list(env.items())) == (None if fresh is None else list(fresh.items()))
