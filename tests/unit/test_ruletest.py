"""Rule tests (`trimtab test`): the shipped fixtures pass and cover every transition and rule of
the lifecycle machine; a wrong expectation fails with the reason; fixture mistakes are reported
at their file:line:col."""
from __future__ import annotations

from pathlib import Path

import pytest

from trimtab.ruletest import run_files

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "rules"
FLAGSHIP = "../../configs/usdt_eth_staking_hedged_leveraged.yaml"
CALM = """metrics:
  health_factor: 1.118
  ltv: 0.85
  margin_ratio_min: 1.0
  net_delta: 0.0
  delta_drift: 0.0
  equity: 100000
  equity_deviation: 0.0
  idle_fraction: 0.0
  hours_since_rebalance: 100
  plan_in_flight: 0
  hedge_allocation_drift: 0.0
  stale_venues: 0
  signal_side: 0
  position_side: 0
  dust_fraction: 0.0
  pending_deposit: 0
  withdrawal_fraction: 0.0
  withdraw_all: 0
  venue_imbalance: 0.0
"""


def fixture(tmp_path: Path, cases: str, extra: str = "") -> Path:
    d = tmp_path / "tests" / "rules"
    d.mkdir(parents=True)
    f = d / "t.yaml"
    cfg = (ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml").resolve()
    f.write_text(f"config: {cfg}\n{extra}{CALM}cases:\n{cases}")
    return f


def test_shipped_fixtures_pass_and_cover_every_transition_and_rule():
    r = run_files([FIXTURES])
    assert not r.issues, [str(i) for i in r.issues]
    assert r.cases and not r.failed, [(c.name, c.message) for c in r.failed]
    (cov,) = r.coverage.values()
    uncovered = [p for p in cov.pairs if not cov.fired.get(p)]
    assert not uncovered
    assert cov.rules_covered == len(cov.rules)
    # every (state, trigger) the machine has, `source: "*"` expanded
    assert ("exit_full", "enter_emergency") in cov.pairs and ("emergency", "retry_emergency") in cov.pairs


def test_a_wrong_expectation_fails_with_the_rule_that_decided(tmp_path):
    f = fixture(tmp_path, """  - name: low health factor
    state: idle
    metrics: {health_factor: 1.07}
    expect: rebalance_margin
  - name: hysteresis keeps emergency
    state: emergency
    metrics: {health_factor: 1.12}
    expect: none
""")
    r = run_files([f])
    assert not r.issues
    assert [c.ok for c in r.cases] == [False, False]
    first, second = r.cases
    assert first.got == "reduce_risk" and first.line == 23
    assert "expected rebalance_margin, got reduce_risk; it fired on health_factor=1.07 < 1.08" in first.message
    assert second.got == "leave_emergency"


def test_parameters_in_a_case_recompile_the_rules(tmp_path):
    f = fixture(tmp_path, """  - name: calm at the shipped hf_reduce
    state: idle
    expect: none
  - name: a stricter hf_reduce fires on the same tick
    state: idle
    parameters: {hf_reduce: 1.12}
    expect: reduce_risk
    rules: {health_factor_critical: true}
""")
    r = run_files([f])
    assert [c.ok for c in r.cases] == [True, True], [c.message for c in r.cases]


def test_fixture_mistakes_are_reported_at_their_line(tmp_path):
    f = fixture(tmp_path, """  - name: typos
    state: idel
    metrics: {helth_factor: 1.0}
    expect: reduce_rsk
""")
    r = run_files([f])
    got = sorted(str(i) for i in r.issues)
    assert any(":24:12: cases[0].state: unknown state 'idel' (did you mean 'idle'?)" in g for g in got), got
    assert any(":25:15: cases[0].metrics.helth_factor: unknown metric 'helth_factor'" in g for g in got), got
    assert any(":26:13: cases[0].expect: unknown trigger 'reduce_rsk'" in g for g in got), got
    assert not r.cases


def test_a_missing_metric_is_a_failing_case_not_a_crash(tmp_path):
    f = fixture(tmp_path, """  - name: no withdraw_all
    state: idle
    expect: none
""")
    f.write_text(f.read_text().replace("  withdraw_all: 0\n", ""))
    r = run_files([f])
    assert len(r.cases) == 1 and not r.cases[0].ok
    assert "withdraw_all" in r.cases[0].message
