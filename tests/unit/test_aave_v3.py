"""Issue 13 part 2: Aave v3 as the protocol computes it.

Worked examples come from the protocol's own code and tests (aave-dao/aave-v3-origin, v3.3):
``tests/protocol/libraries/math/MathUtils.t.sol`` for the interest formulas and
``src/contracts/protocol/libraries/logic/LiquidationLogic.sol`` (executeLiquidationCall,
_calculateAvailableCollateralToLiquidate) for liquidations, with the numbers worked by hand.
"""
from __future__ import annotations

import math

import pytest

from trimtab.data.accrual import (RAY, SECONDS_PER_YEAR, compounded_interest, compounded_interest_ray, linear_interest,
                                  linear_interest_ray)
from trimtab.errors import ExecutionError
from trimtab.venues.aave import DustError, available_collateral, liquidation_call

HALF_YEAR = 365 * 86400 // 2


# -- MathUtils ----------------------------------------------------------------------------
def test_linear_interest_matches_the_protocol_test():
    # MathUtils.t.sol test_calculateLinearInterest: rate 1.0005e27 over 365 days / 2 -> 1.50025e27
    assert linear_interest_ray(10005 * 10 ** 23, HALF_YEAR) == 1_500_250_000_000_000_000_000_000_000
    assert linear_interest(1.0005, HALF_YEAR) == pytest.approx(1.50025, rel=1e-15)
    assert SECONDS_PER_YEAR == 365 * 86400   # test_constants: SECONDS_PER_YEAR == 365 days


def test_compounded_interest_matches_the_protocol_test():
    # MathUtils.t.sol test_calculateCompoundInterest_1: 1.0005e27 over 365 days / 2 ->
    # 1.646239361880034706419516000e27 (the 3-term binomial, not exp(0.50025) = 1.6491)
    assert compounded_interest_ray(10005 * 10 ** 23, HALF_YEAR) == 1_646_239_361_880_034_706_419_516_000   # exact
    # the float version differs only by the contract's integer truncation (2e-7 at this 100% rate)
    assert compounded_interest(1.0005, HALF_YEAR) == pytest.approx(1.646239361880034706419516, rel=2e-7)
    # ... and agrees to 1e-12 at a bundled-data rate (3%) over a day
    day = compounded_interest_ray(3 * 10 ** 25, 86400) / RAY
    assert compounded_interest(0.03, 86400) == pytest.approx(day, rel=1e-12)
    assert compounded_interest(1.0005, HALF_YEAR) != pytest.approx(math.exp(1.0005 / 2), rel=1e-4)
    # test_calculateCompoundInterest_edge: no time elapsed -> exactly 1 (RAY)
    assert compounded_interest(1.0005, 0) == 1.0
    # one and two seconds: the higher terms vanish as in the contract (expMinusOne/expMinusTwo)
    r = 0.05 / SECONDS_PER_YEAR
    assert compounded_interest(0.05, 1) == pytest.approx(1 + r, rel=1e-15)
    assert compounded_interest(0.05, 2) == pytest.approx(1 + 2 * r + r * r, rel=1e-15)


# -- LiquidationLogic -------------------------------------------------------------------------
def test_available_collateral_with_the_bonus():
    # 1000 WETH-units of debt at 3000 USD against weETH at 3150 USD, bonus 1% (eMode):
    # collateral = 1000 x 3000 / 3150 x 1.01 = 961.904761... weETH
    seized, repaid = available_collateral(1000, 3000, 3150, 5000, 0.01)
    assert seized == pytest.approx(1000 * 3000 / 3150 * 1.01, rel=1e-15)
    assert repaid == 1000


def test_deep_underwater_liquidation_scales_the_debt_down_and_burns_the_rest():
    # Collateral 100 units at 1 USD, debt 98 at 1 USD, bonus 5%: 98 x 1.05 = 102.9 > 100, so all
    # 100 are taken and the debt repaid is 100 / 1.05 = 95.238...; with no collateral left, v3.3
    # burns the rest (98 - 95.24) as a reserve deficit (_burnBadDebt).
    hf = 100 * 0.8 / 98
    liq = liquidation_call(hf, 98.0, 100.0, 98.0, 1.0, 100.0, 1.0, 0.05)
    assert liq.collateral_seized == 100.0
    assert liq.debt_repaid == pytest.approx(100 / 1.05, rel=1e-15)
    assert liq.deep and liq.bad_debt and liq.close_factor == 1.0


def test_close_factor_switches_at_hf_095():
    # 10,000 USD of debt and 10,400 of collateral (each >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD):
    # 50% of the total debt while HF > 0.95 (CLOSE_FACTOR_HF_THRESHOLD), 100% at or below.
    args = (10_000.0, 10_400.0, 10_000.0, 1.0, 10_400.0, 1.0, 0.01)
    above = liquidation_call(0.9501, *args)
    assert above.close_factor == 0.5 and above.debt_repaid == pytest.approx(5_000.0)
    assert above.collateral_seized == pytest.approx(5_050.0)
    at = liquidation_call(0.95, *args)
    assert at.close_factor == 1.0 and at.debt_repaid == pytest.approx(10_000.0)
    assert at.collateral_seized == pytest.approx(10_100.0) and not at.bad_debt


def test_close_factor_is_full_for_small_positions_v33():
    # v3.3: reserve debt under 2000 USD -> the whole reserve debt is liquidatable even at HF 0.99
    liq = liquidation_call(0.99, 1_500.0, 1_600.0, 1_500.0, 1.0, 1_600.0, 1.0, 0.05)
    assert liq.close_factor == 1.0 and liq.debt_repaid == pytest.approx(1_500.0)


def test_close_factor_caps_at_half_the_total_debt_not_the_reserve():
    # Two debt reserves (6000 + 4000 USD): the 50% cap is of the *total* debt (5000 USD), so the
    # 6000 reserve may lose 5000, the 4000 reserve all of it (4000 <= 5000).
    big = liquidation_call(0.97, 10_000.0, 20_000.0, 6_000.0, 1.0, 20_000.0, 1.0, 0.05)
    assert big.debt_repaid == pytest.approx(5_000.0) and big.close_factor == 0.5
    small = liquidation_call(0.97, 10_000.0, 20_000.0, 4_000.0, 1.0, 20_000.0, 1.0, 0.05)
    assert small.debt_repaid == pytest.approx(4_000.0)


def test_dust_rule_refuses_a_liquidation_leaving_under_1000_usd():
    # Aave docs (aave.com/docs/aave-v3, liquidations): a liquidation must not leave less than
    # 1000 USD of debt or collateral unless it clears it (MUST_NOT_LEAVE_DUST).
    # Debt 2500, collateral 2600: 50% repays 1250 and seizes 1312.5, leaving 1287.5 of
    # collateral and 1250 of debt -> allowed. Covering 1800 would leave 700 of debt -> refused.
    ok = liquidation_call(0.99, 2_500.0, 2_600.0, 2_500.0, 1.0, 2_600.0, 1.0, 0.05)
    assert ok.debt_repaid == pytest.approx(1_250.0)
    with pytest.raises(DustError, match="MUST_NOT_LEAVE_DUST"):
        liquidation_call(0.90, 2_500.0, 2_600.0, 2_500.0, 1.0, 2_600.0, 1.0, 0.05, 1_800.0)
    with pytest.raises(ExecutionError, match="not below 1"):
        liquidation_call(1.0, 2_500.0, 2_600.0, 2_500.0, 1.0, 2_600.0, 1.0, 0.05)


# -- eMode per asset, on the real venue file and the real simulator ------------------------
def test_emode_applies_per_asset(flagship):
    risk = flagship.venues["aave_v3"].risk
    assert risk.params("weETH", "eth_correlated").liquidation_threshold == 0.95
    assert risk.params("weETH", "eth_correlated").liquidation_bonus == 0.01
    assert risk.params("USDT", "eth_correlated").liquidation_threshold == 0.78    # not a member: its own
    assert risk.params("weETH", None).liquidation_threshold == 0.80               # no eMode: its own
    assert risk.category_for(None, "weETH", "WETH") == "eth_correlated"           # auto
    assert risk.category_for("none", "weETH", "WETH") is None
    assert risk.category_for(None, "USDT", "USDT") is None


def test_health_factor_mixes_category_and_own_thresholds(stages):
    st_ = stages("2024-08-05", "2024-08-06")
    st_.view.i = 3
    sim, px, book = st_.sim, st_.px, st_.book
    assert sim.emode == {"aave_v3": "eth_correlated"}
    book.bal["aave_v3:aToken:aweETH"] = 10.0 / px.index("aave_v3:aToken:aweETH")
    book.bal["aave_v3:aToken:aUSDT"] = 20_000.0 / px.index("aave_v3:aToken:aUSDT")
    book.bal["aave_v3:debtToken:debtWETH"] = 12.0 / px.index("aave_v3:debtToken:debtWETH")
    w, u, e = px.asset_usd("weETH"), px.asset_usd("USDT"), px.asset_usd("WETH")
    hf, ltv, coll, debt = sim.aave_health(book, "aave_v3")
    # GenericLogic.calculateUserAccountData: weETH at the category's 0.95, USDT at its own 0.78
    assert hf == pytest.approx((10 * w * 0.95 + 20_000 * u * 0.78) / (12 * e), rel=1e-12)
    assert coll == pytest.approx(10 * w + 20_000 * u, rel=1e-12) and debt == pytest.approx(12 * e, rel=1e-12)


def test_borrowing_outside_the_category_is_refused(stages):
    st_ = stages("2024-08-05", "2024-08-06")
    st_.view.i = 3
    with pytest.raises(ExecutionError, match="NOT_BORROWABLE_IN_EMODE"):
        st_.sim.aave(3, "aave_v3", "borrow", "aave_v3:debtToken:debtUSDT", 1_000.0)
    fill = st_.sim.aave(3, "aave_v3", "borrow", "aave_v3:debtToken:debtWETH", 1.0)   # WETH is borrowable
    assert fill.legs[1].amount == 1.0


def test_sim_liquidates_deep_underwater_and_burns_the_rest(stages):
    st_ = stages("2024-08-05", "2024-08-06")
    st_.view.i = 3
    sim, px, book = st_.sim, st_.px, st_.book
    w, e = px.asset_usd("weETH"), px.asset_usd("WETH")
    debt_eth = 10.0 * w / e * 1.002        # HF 0.948 <= 0.95 (100%), collateral < debt x 1.01: deep underwater
    book.bal["aave_v3:aToken:aweETH"] = 10.0 / px.index("aave_v3:aToken:aweETH")
    book.bal["aave_v3:debtToken:debtWETH"] = debt_eth / px.index("aave_v3:debtToken:debtWETH")
    before = st_.equity()
    (fill, _), = [x for x in sim.liquidations(3, book) if x[0].venue == "aave_v3"]
    book.apply(fill)
    # the user loses all 10 weETH and owes nothing: equity moves by debt - collateral (> 0 here,
    # the burned bad debt is the protocol's deficit, not the user's)
    assert st_.equity() - before == pytest.approx(debt_eth * e - 10.0 * w, rel=1e-9)
    assert book.qty("aave_v3:aToken:aweETH") == pytest.approx(0.0, abs=1e-12)
    assert book.qty("aave_v3:debtToken:debtWETH") == pytest.approx(0.0, abs=1e-12)
    repaid = -fill.legs[0].amount
    assert repaid == pytest.approx(10.0 * w / e / 1.01, rel=1e-12)     # scaled down to what 10 weETH cover
    assert "scaled down" in fill.note and "bad debt" in fill.note


def test_sim_liquidator_steps_around_the_dust_rule(stages):
    # weETH 2,100 USD (the largest collateral) + WETH 2,000 USD against 4,100 x 0.95 / 0.97 USD of
    # WETH debt: HF 0.97 > 0.95 and both reserves >= 2000 USD, so at most 50% of the debt; that
    # seizes 1.01 x 2,007.7 of the 2,100 USD of weETH and would leave 72 USD: MUST_NOT_LEAVE_DUST.
    # The liquidator's largest call that passes leaves 1,000 USD of weETH: repaid (2100 - 1000) / 1.01.
    st_ = stages("2024-08-05", "2024-08-06")
    st_.view.i = 3
    sim, px, book = st_.sim, st_.px, st_.book
    w, e = px.asset_usd("weETH"), px.asset_usd("WETH")
    debt_usd = 4_100.0 * 0.95 / 0.97
    book.bal["aave_v3:aToken:aweETH"] = 2_100.0 / w / px.index("aave_v3:aToken:aweETH")
    book.bal["aave_v3:aToken:aWETH"] = 2_000.0 / e / px.index("aave_v3:aToken:aWETH")
    book.bal["aave_v3:debtToken:debtWETH"] = debt_usd / e / px.index("aave_v3:debtToken:debtWETH")
    assert sim.aave_health(book, "aave_v3")[0] == pytest.approx(0.97, rel=1e-9)
    with pytest.raises(DustError):
        liquidation_call(0.97, debt_usd, 4_100.0, debt_usd / e, e, 2_100.0 / w, w, 0.01)
    (fill, _), = [x for x in sim.liquidations(3, book) if x[0].venue == "aave_v3"]
    assert -fill.legs[0].amount * e == pytest.approx(1_100.0 / 1.01, rel=1e-9)
    assert -fill.legs[1].amount * w == pytest.approx(1_100.0, rel=1e-9)
