"""The rounds of a lending loop (trimtab.templates.lend_loop.build_rounds): every borrow under
the max LTV, every withdrawal above the health-factor floor, ending exactly at the target."""
from __future__ import annotations

import pytest

from trimtab.templates.lend_loop import KEEP_COLLATERAL, MAX_ROUNDS, WITHDRAW_HF, build_rounds

MAX_LTV, LT = 0.75, 0.78   # venues/aave_v3.yaml, USDT standard


def apply(c, d, ops):
    for op, a in ops:
        assert a > 0
        if op == "supply":
            c += a
        elif op == "borrow":
            d += a
            assert d <= MAX_LTV * c * (1 + 1e-12), "a borrow above the max LTV reverts on Aave"
        elif op == "withdraw":
            c -= a
            assert d == 0 or c * LT / d >= WITHDRAW_HF * (1 - 1e-12), "a withdrawal under the health-factor floor"
        else:
            d -= a
    return c, d


@pytest.mark.parametrize("ltv", [0.3, 0.7, 0.74])
def test_build_from_zero_reaches_the_target(ltv):
    e = 1000.0
    c, d = apply(0.0, 0.0, build_rounds(0.0, 0.0, e / (1 - ltv), e * ltv / (1 - ltv), MAX_LTV, LT))
    assert c - d == pytest.approx(e, rel=1e-12)
    assert d / c == pytest.approx(ltv, rel=1e-9)


def test_resize_down_and_unwind_to_zero():
    c0, d0 = 1000 / 0.3, 700 / 0.3
    c, d = apply(c0, d0, build_rounds(c0, d0, 700 / 0.3, 490 / 0.3, MAX_LTV, LT))
    assert (c, d) == (pytest.approx(700 / 0.3), pytest.approx(490 / 0.3))
    c, d = apply(c, d, build_rounds(c, d, 0.0, 0.0, MAX_LTV, LT))
    assert c == pytest.approx(KEEP_COLLATERAL, abs=1e-9) and d == pytest.approx(0.0, abs=1e-9)


def test_a_loop_over_its_max_ltv_still_unwinds():
    # Accrued to LTV 0.76 (above max LTV 0.75, health factor 1.026): withdrawals are bounded by
    # the health factor, not the max LTV, so the unwind can start.
    c, d = 1000.0, 760.0
    c, d = apply(c, d, build_rounds(c, d, 0.0, 0.0, MAX_LTV, LT))
    assert d == pytest.approx(0.0, abs=1e-6)


def test_rounds_are_bounded():
    ops = build_rounds(0.0, 0.0, 1e6 / (1 - 0.7499), 1e6 * 0.7499 / (1 - 0.7499), MAX_LTV, LT)
    assert sum(1 for op, _ in ops if op == "borrow") <= MAX_ROUNDS
