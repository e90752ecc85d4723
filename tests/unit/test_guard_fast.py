"""The fast guard closures decide exactly what the tracing closures decide.

The machine evaluates every rule, every tick, with :meth:`CompiledExpr.guard` and builds the
trace only when asked; both must agree on every rule of every shipped config, on metrics drawn
from the rules' own thresholds plus NaN, +-inf and +-0, for every ``nan_as``, including which
metric a missing-metric ExprError names.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trimtab.config.load import load_strategy
from trimtab.engine.machine import StrategyMachine, nan_as_for, trace_rules
from trimtab.portfolio.config import load_portfolio
from trimtab.rules.compile import compile_expr
from trimtab.rules.nodes import ExprError

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
SPECIAL = (math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0, -1.0)


def _load(path: Path):
    return load_portfolio(path) if path.name == "portfolio_strategies.yaml" else load_strategy(path)


_OWNERS = {p.stem: _load(p) for p in CONFIGS}


def _points(exprs) -> list[float]:
    pts = set(SPECIAL)
    for e in exprs:
        for v in e.constants.values():
            pts |= {v, math.nextafter(v, math.inf), math.nextafter(v, -math.inf), -v}
    return sorted(pts, key=repr)


def _metrics(exprs):
    """Hypothesis strategy: a metrics dict over every name ``exprs`` read, near their thresholds."""
    names = sorted(set().union(*(e.names for e in exprs)))
    value = st.one_of(st.sampled_from(_points(exprs)), st.floats(allow_nan=True, allow_infinity=True))
    return st.fixed_dictionaries({n: value for n in names})


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except ExprError as e:
        return ("error", str(e))


def _same(expr, metrics, nan_as):
    traced = _outcome(lambda: bool(expr.trace(metrics, nan_as)[0]))
    assert _outcome(expr.holds, metrics, nan_as) == traced, (expr.source, metrics, nan_as)
    if traced[0] == "ok":
        assert bool(expr.guard(nan_as)(metrics)) == traced[1]


def test_every_shipped_config_is_covered():
    assert len(_OWNERS) >= 10
    assert sum(len(o.rules) for o in _OWNERS.values()) > 50
    assert any(r.spec.severity == "critical" for o in _OWNERS.values() for r in o.rules.values())


@pytest.mark.parametrize("stem", sorted(_OWNERS))
def test_fast_guard_equals_trace_for_every_shipped_rule(stem):
    exprs = [r.expr for r in _OWNERS[stem].rules.values()]

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(m=_metrics(exprs), drop=st.integers(min_value=-1, max_value=40))
    def check(m, drop):
        if 0 <= drop < len(m):
            del m[sorted(m)[drop]]  # a missing metric: the same ExprError (or none, short-circuited)
        for e in exprs:
            for nan_as in (None, True, False):
                _same(e, m, nan_as)

    check()


@pytest.mark.parametrize("text", [
    "x < 1", "1 > x", "x != 1", "x == 0", "not (x < 1)", "not (x < 1 or y > 2)", "not not (x >= y)",
    "x and y", "not x", "x or not y", "(x < 1) == (y < 2)", "(x < 1) != (not (y > 2))", "x < y", "min(x, y, 3) > 0",
    "abs(x - y) / y > 0.5", "x / y < 1", "-x <= y * 2", "x < 1 and y > 2 and x < y and y != 0",
    "x < 1 or y > 2 or x < y or y == 0", "x > t", "t > x", "x > nan_c", "nan_c < x and y > 1", "x > 1 and t > 0",
    "t < 0 or x > 1", "max(x, t) >= y", "true and x > 1", "false or x > 1", "x", "x + y",
])
@pytest.mark.parametrize("nan_as", [None, True, False])
def test_fast_guard_equals_trace_on_a_grid(text, nan_as):
    expr = compile_expr(text, {"t": 2.0, "nan_c": math.nan})
    grid = SPECIAL + (0.5, 2.0, 3.0)
    for x in grid:
        for y in grid:
            _same(expr, {"x": x, "y": y}, nan_as)
    for m in ({"x": 1.0}, {"y": 1.0}, {}):  # missing metrics
        _same(expr, m, nan_as)


def test_a_nan_critical_guard_fires_and_an_info_one_does_not():
    crit, info = compile_expr("health_factor < 1.1"), compile_expr("health_factor > 1.2")
    m = {"health_factor": math.nan}
    assert crit.holds(m, nan_as_for("critical")) is True
    assert info.holds(m, nan_as_for("info")) is False
    assert crit.holds({"health_factor": 1.15}, True) is False
    with pytest.raises(ExprError, match="health_factor"):
        crit.holds({}, True)


def test_trace_rules_is_the_machine_record():
    s = _OWNERS["usdt_eth_staking_hedged_leveraged"]
    m = {n: 1.0 for r in s.rules.values() for n in r.expr.names} | {"health_factor": math.nan}
    out = trace_rules(((n, r.expr, r.spec.severity) for n, r in s.rules.items()), m)
    assert [e["rule"] for e in out] == list(s.rules)
    hf = next(e for e in out if e["rule"] == "health_factor_critical")
    assert hf == {"rule": "health_factor_critical", "result": True,
                  "comparisons": [["health_factor", "nan", "<", s.params["hf_reduce"], True]], "data_fault": ["health_factor"]}
    assert StrategyMachine(s).evaluate(m) == out


def test_decision_rules_are_traced_lazily_from_the_step_metrics():
    s = _OWNERS["usdt_eth_staking_hedged_leveraged"]
    sm = StrategyMachine(s)
    m = {n: 0.0 for r in s.rules.values() for n in r.expr.names} | {"health_factor": 5.0, "margin_ratio_min": 5.0}
    calls = []
    decide = sm._decide
    sm._decide = lambda: calls.append(1) or decide()
    d = sm.step(3, "t", m)  # idle, nothing holds: transitions is not asked
    assert (d.trigger, d.dest, calls) == (None, "idle", [])
    assert d._rules is None and d.metrics is m  # nothing traced yet; the step's own dict kept
    assert d.rules == trace_rules(sm._rule_triples, m) and d._lazy is None
    assert d.fired_rules() == [r for r in d.rules if r["result"]]
    m2 = dict(m, pending_deposit=5.0)
    d = sm.step(4, "t", m2)
    assert (d.trigger, d.dest, sm.state, calls) == ("deposit", "entry_partial", "entry_partial", [1])
    assert {r["rule"] for r in d.fired_rules()} >= {"deposit_received"}
    with pytest.raises(ExprError, match="plan_in_flight"):
        sm.step(5, "t", {k: v for k, v in m.items() if k != "plan_in_flight"})


def test_a_bare_number_guard_fires_like_its_trace():
    """``transitions`` tests conditions with ``== True``: a guard worth 2.0 must still count as true."""
    import dataclasses

    from trimtab.config.load import CompiledRule

    s = _OWNERS["usdt_eth_staking_hedged_leveraged"]
    r = s.rules["deposit_received"]
    rules = dict(s.rules, deposit_received=CompiledRule(r.name, r.spec, compile_expr("pending_deposit"), r.file, r.line, r.col))
    sm = StrategyMachine(dataclasses.replace(s, rules=rules))
    m = {n: 0.0 for r in s.rules.values() for n in r.expr.names} | {"health_factor": 5.0, "margin_ratio_min": 5.0}
    d = sm.step(0, "t", m | {"pending_deposit": 2.0})
    assert (d.trigger, d.dest) == ("deposit", "entry_partial")
    assert next(e for e in d.rules if e["rule"] == "deposit_received")["result"] is True
