"""The planner on real prices: deterministic, serialisable plans; bundles that revert whole."""
import json

import pytest



def test_same_inputs_same_plan_and_it_serialises(stages):
    st = stages("2024-06-01", "2024-06-03")
    st.fund(100_000)
    st.view.i = 5
    a = st.planner.plan(st.book, 100_000, "entry_full", "target", st.strategy.params, "enter_full")
    b = st.planner.plan(st.book, 100_000, "entry_full", "target", dict(st.strategy.params), "enter_full")
    assert a.id == b.id and a.canonical_json() == b.canonical_json()
    d = json.loads(json.dumps(a.to_dict()))
    assert d["id"] == a.id and d["steps"]
    st.view.i = 6  # a tick later the prices differ, and so does the plan
    c = st.planner.plan(st.book, 100_000, "entry_full", "target", st.strategy.params, "enter_full")
    assert c.id != a.id


def test_entry_targets_match_the_leveraged_formula(stages):
    st = stages("2024-06-01", "2024-06-03")
    st.fund(100_000)
    st.view.i = 0
    p = st.strategy.params
    plan = st.planner.plan(st.book, 100_000, "entry_full", "target", p, "enter_full")
    pos = plan.targets["positions"]
    rate = st.px.eth_rate("weETH")
    coll_eth = pos["aave_v3:aToken:aweETH"] * rate
    debt = pos["aave_v3:debtToken:debtWETH"]
    assert debt / coll_eth == pytest.approx(p["target_ltv"], rel=1e-9)
    hedge = sum(pos[k] for k in pos if ":Perp:" in k)
    assert -hedge == pytest.approx(coll_eth - debt, rel=1e-9)  # the short hedges the net ETH (targets are rounded to 1e-10)


def test_an_unsafe_bundle_reverts_as_a_whole(stages):
    st = stages("2024-06-01", "2024-06-03")
    st.fund(100_000)
    st.view.i = 0
    p = dict(st.strategy.params, target_ltv=0.97)  # above the 0.95 liquidation threshold: HF < 1
    plan = st.planner.plan(st.book, 100_000, "entry_full", "target", p, "enter_full")
    st.ex.submit(plan, 0)
    for i in range(1, 4):
        st.view.i = i
        st.ex.advance(i)
    statuses = {(s[1].id, s[2]) for s in st.steps}
    bundle = next(s for s in plan.steps if s.bundle)
    assert (bundle.id, "failed") in statuses
    reason = next(s[4] for s in st.steps if s[1].id == bundle.id and s[2] == "failed")
    assert "health factor" in reason and "< 1" in reason
    # Nothing of the bundle stayed: no collateral, no debt, no flash loan; books still add up.
    assert st.book.qty("aave_v3:aToken:aweETH") == 0 and st.book.qty("aave_v3:debtToken:debtWETH") == 0
    assert st.book.qty("morpho:debtToken:flashWETH") == 0
    assert st.book.check_fills() == []
    assert not any(f.step_id == bundle.id for f in st.fills)
