"""Attribution on real prices: the telescoped parts sum exactly to each value change, and Aave
accrual follows the real index."""
import pytest

from trimtab.accounting.book import Fill, Leg


def test_market_move_parts_sum_to_value_change_on_real_data(stages):
    st = stages("2024-08-01", "2024-08-10")
    px, book = st.px, st.book
    # A book holding one of each kind: LST collateral, WETH debt, a short perp, margin, ETH.
    st.view.i = 0
    legs = [Leg("aave_v3:aToken:aweETH", 10.0 / px.index("aave_v3:aToken:aweETH")),
            Leg("aave_v3:debtToken:debtWETH", 8.0 / px.index("aave_v3:debtToken:debtWETH")),
            Leg("binance:Margin:USDT", 5000.0), Leg("wallet:BaseToken:ETH", 0.5)]
    book.apply(Fill(0, "x", "seed", "capital", legs))
    book.apply(Fill(0, "binance", "trade", "capital", [Leg("binance:Perp:ETHUSDT", -2.5)]), px.mark("binance:Perp:ETHUSDT"))
    total_err = 0.0
    for i in range(1, st.view.n):
        st.view.i = i - 1
        before = st.equity()
        st.view.i = i
        st.attr.start_tick()
        st.attr.market_move(book, px, i - 1, i)
        after = st.equity()
        total_err = max(total_err, abs(sum(st.attr.tick.values()) - (after - before)))
    assert total_err < 1e-9
    t = st.attr.total
    # Over the Aug-2024 crash the short's price gain and the long legs' loss both show.
    assert t["price_delta"] != 0 and t["basis"] != 0
    assert t["supply_yield"] > 0 and t["borrow_cost"] < 0


def test_aave_balance_accrues_with_the_real_liquidity_index(stages, market):
    st = stages("2024-06-01", "2024-09-01")
    key = "aave_v3:aToken:aweETH"
    st.view.i = 0
    scaled = 100.0 / st.px.index(key)
    i1 = st.view.n - 1
    idx = market.slice("2024-06-01", "2024-09-01").field("aave.weETH.liquidity_index")
    assert st.px.amount(key, scaled, i1) == pytest.approx(100.0 * idx[-1] / idx[0], rel=1e-12)
    assert st.px.amount(key, scaled, i1) > 100.0
