"""Exchange adapters against recorded Binance / Bybit / OKX REST responses (no network here).

Only ccxt's HTTP session is replaced (``RecordedSession``): ccxt still builds and signs the
requests, parses the venue payloads and maps venue error codes to its exceptions. The
fixtures (tests/fixtures/live/*.json) follow each venue's documented response shapes and cite
the pages. Each test asserts trimtab's side of the mapping: instrument keys, signed asset
units, contract sizes, reduceOnly, the client order id in the venue's own parameter, and that
a retried order is recognised instead of sent twice.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from trimtab.live.adapters.base import AdapterError, client_order_id
from trimtab.live.adapters.registry import exchange_from_env
from trimtab.live.adapters.recorded import RecordedSession, load_fixture
from trimtab.planner.plan import Instruction

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "live"
PLAN = "3f9c2a71d04b8e65"
CREDS = {
    "TRIMTAB_BINANCE_KEY": "bnKey0123456789abcdef", "TRIMTAB_BINANCE_SECRET": "bnSecret0123456789abcdef",
    "TRIMTAB_BYBIT_KEY": "byKey0123456789abcdef", "TRIMTAB_BYBIT_SECRET": "bySecret0123456789abcdef",
    "TRIMTAB_OKX_KEY": "okKey0123456789abcdef", "TRIMTAB_OKX_SECRET": "okSecret0123456789abcdef",
    "TRIMTAB_OKX_PASSPHRASE": "okPassphrase-42",
}
FILES = {"binance": "binance_usdm.json", "bybit": "bybit_linear.json", "okx": "okx_swap.json"}


@pytest.fixture
def venue(monkeypatch):
    """``venue(name)`` -> (adapter, recorded session), credentials from the environment."""
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)

    def make(name: str):
        a = exchange_from_env(name)
        s = RecordedSession(load_fixture(FIX / FILES[name])["responses"])
        a.exchange.session = s
        a.exchange.enableRateLimit = False  # no throttling sleeps against recorded responses
        return a, s

    return make


def trade(venue_name: str, amount: float, **params) -> Instruction:
    return Instruction(venue_name, "trade", f"{venue_name}:Perp:ETHUSDT", amount, "ETH", params)


def sent_orders(s: RecordedSession, path: str) -> list[dict]:
    return [r["params"] for r in s.calls("POST", path)]


# -- markets and symbols ---------------------------------------------------------------
@pytest.mark.parametrize("name,cs", [("binance", 1.0), ("bybit", 1.0), ("okx", 0.1)])
def test_symbol_mapping_and_contract_size_come_from_recorded_markets(venue, name, cs):
    a, _ = venue(name)
    assert a.symbol_for(f"{name}:Perp:ETHUSDT") == "ETH/USDT:USDT"
    assert a.symbol_for(f"{name}:Perp:BTCUSDT") == "BTC/USDT:USDT"
    assert a.instrument_for("ETH/USDT:USDT") == f"{name}:Perp:ETHUSDT"
    assert a.contract_size("ETH/USDT:USDT") == cs
    with pytest.raises(AdapterError, match="no linear perpetual market"):
        a.symbol_for(f"{name}:Perp:SOLUSDT")
    with pytest.raises(AdapterError, match="not a"):
        a.symbol_for("aave_v3:aToken:aweETH")


def test_okx_btc_contract_is_a_hundredth_of_a_btc(venue):
    a, _ = venue("okx")
    assert a.contract_size("BTC/USDT:USDT") == 0.01


# -- balances, positions, funding ------------------------------------------------------
def test_balances_are_wallet_balances_without_unrealised_pnl(venue):
    bn, _ = venue("binance")
    # walletBalance, not marginBalance (24472.59 = wallet - 141.32 uPnL); zero BNB left out
    assert bn.balances() == {"binance:Margin:USDT": pytest.approx(24613.91), "binance:Margin:BTC": pytest.approx(0.35)}
    by, _ = venue("bybit")
    assert by.balances() == {"bybit:Margin:USDT": pytest.approx(21402.28)}  # not equity 21493.52
    ok, _ = venue("okx")
    assert ok.balances() == {"okx:Margin:USDT": pytest.approx(28102.6125), "okx:Margin:BTC": pytest.approx(0.33)}  # cashBal


def test_positions_are_signed_asset_units_with_entry_price(venue):
    bn, _ = venue("binance")
    assert bn.positions() == {"binance:Perp:ETHUSDT": (pytest.approx(-2.5), pytest.approx(3110.42)),
                              "binance:Perp:BTCUSDT": (pytest.approx(0.01), pytest.approx(81620.3))}
    by, _ = venue("bybit")
    assert by.positions() == {"bybit:Perp:ETHUSDT": (pytest.approx(1.5), pytest.approx(3109.11))}
    ok, _ = venue("okx")
    # OKX reports pos "-25" contracts of ctVal 0.1 ETH: -2.5 ETH, not -25
    assert ok.positions() == {"okx:Perp:ETHUSDT": (pytest.approx(-2.5), pytest.approx(3110.42))}


@pytest.mark.parametrize("name,rate", [("binance", 0.00007346), ("bybit", 0.0001), ("okx", 0.0000835412370843)])
def test_funding_rate_and_next_settlement(venue, name, rate):
    a, s = venue(name)
    f = a.funding(f"{name}:Perp:ETHUSDT")
    assert f.rate == pytest.approx(rate)
    assert f.next_time.isoformat() == "2025-03-10T08:00:00+00:00"  # the 08:00 UTC settlement
    rate_, when = f  # a plain (rate, next_time) tuple too
    assert rate_ == f.rate and when == f.next_time


# -- orders ----------------------------------------------------------------------------
def test_binance_reducing_buy_is_reduce_only_with_new_client_order_id(venue):
    a, s = venue("binance")
    cid = client_order_id(PLAN, "s1")
    r = a.place_order(trade("binance", 1.0), cid)  # short -2.5 ETH, buy 1.0 back
    (sent,) = sent_orders(s, "/fapi/v1/order")
    assert sent["symbol"] == "ETHUSDT" and sent["side"] == "BUY" and sent["type"] == "MARKET"
    assert sent["quantity"] == "1" and sent["reduceOnly"] == "true"
    assert sent["newClientOrderId"] == cid
    assert (r.instrument, r.amount, r.filled, r.contracts) == ("binance:Perp:ETHUSDT", 1.0, 1.0, 1.0)
    assert r.reduce_only and r.status == "closed" and r.average_price == pytest.approx(3170.21)
    assert r.client_order_id == cid and not r.already_placed


def test_bybit_reducing_sell_uses_order_link_id(venue):
    a, s = venue("bybit")
    cid = client_order_id(PLAN, "s2")
    r = a.place_order(trade("bybit", -0.5), cid)  # long 1.5 ETH, sell 0.5
    (sent,) = sent_orders(s, "/v5/order/create")
    assert sent["category"] == "linear" and sent["symbol"] == "ETHUSDT"
    assert sent["side"] == "Sell" and sent["orderType"] == "Market" and sent["qty"] == "0.5"
    assert sent["orderLinkId"] == cid and sent["reduceOnly"] is True
    # the create response is only an acknowledgement; fills come from the re-read order
    assert r.amount == pytest.approx(-0.5) and r.filled == pytest.approx(-0.5) and r.status == "closed"
    assert r.order_id == "1c1d6d6f-7a2e-4b7a-9d65-2b0f3f0a9e11" and r.reduce_only


def test_okx_sizes_in_contracts_and_uses_cl_ord_id(venue):
    a, s = venue("okx")
    cid = client_order_id(PLAN, "s3")
    r = a.place_order(trade("okx", -1.2), cid)  # short -2.5 ETH, sell 1.2 more: not reduce-only
    (sent,) = sent_orders(s, "/api/v5/trade/batch-orders")
    assert sent["instId"] == "ETH-USDT-SWAP" and sent["side"] == "sell" and sent["ordType"] == "market"
    assert sent["sz"] == "12"  # 1.2 ETH / 0.1 ETH per contract
    assert sent["clOrdId"] == cid and "reduceOnly" not in sent and sent["tdMode"] == "cross"
    assert r.contracts == 12 and r.amount == pytest.approx(-1.2) and r.filled == pytest.approx(-1.2)
    assert not r.reduce_only and r.fee == pytest.approx(1.9016) and r.fee_currency == "USDT"


@pytest.mark.parametrize("name,step,amount,path,param", [
    ("binance", "s1", 1.0, "/fapi/v1/order", "newClientOrderId"),
    ("bybit", "s2", -0.5, "/v5/order/create", "orderLinkId"),
    ("okx", "s3", -1.2, "/api/v5/trade/batch-orders", "clOrdId"),
])
def test_retry_with_same_client_id_is_detected_and_not_sent_again(venue, name, step, amount, path, param):
    a, s = venue(name)
    cid = client_order_id(PLAN, step)
    first = a.place_order(trade(name, amount), cid)
    again = a.place_order(trade(name, amount), cid)  # e.g. the process restarted mid-plan
    assert len(sent_orders(s, path)) == 1
    assert again.already_placed and not first.already_placed
    assert again.order_id == first.order_id and again.client_order_id == cid
    assert again.filled == pytest.approx(first.filled)


def test_timeout_while_sending_is_resolved_by_client_id_lookup(venue):
    a, s = venue("okx")
    cid = client_order_id(PLAN, "s4")
    r = a.place_order(trade("okx", 1.0), cid)  # the recorded send times out; the order did fill
    (sent,) = sent_orders(s, "/api/v5/trade/batch-orders")
    assert sent["sz"] == "10" and sent["reduceOnly"] is True and sent["clOrdId"] == cid
    assert r.already_placed and r.filled == pytest.approx(1.0) and r.order_id == "2240563390217953280"
    assert len(sent_orders(s, "/api/v5/trade/batch-orders")) == 1


@pytest.mark.parametrize("name,amount,filled", [("binance", -0.5, -0.5), ("bybit", 0.2, 0.2)])
def test_duplicate_client_id_rejection_returns_the_existing_order(venue, name, amount, filled):
    a, s = venue(name)
    r = a.place_order(trade(name, amount), "duplicate-example", current_size=0.0)
    assert r.already_placed and r.client_order_id == "duplicate-example"
    assert r.filled == pytest.approx(filled)


def test_flip_is_not_reduce_only_and_rounds_to_the_lot_step(venue):
    a, _ = venue("okx")
    req = a.order_request(trade("okx", 3.0), "x", current_size=-2.5)  # crosses zero
    assert (req.side, req.contracts, req.reduce_only) == ("buy", 30.0, False)
    req = a.order_request(trade("okx", 2.5), "x", current_size=-2.5)  # exactly flat
    assert req.reduce_only and req.params == {"clOrdId": "x", "reduceOnly": True}
    req = a.order_request(trade("okx", 0.123456), "x", current_size=0.0)  # 1.23456 contracts, lot 0.01
    assert req.contracts == pytest.approx(1.23) and not req.reduce_only
    b, _ = venue("binance")
    with pytest.raises(AdapterError, match="size step"):
        b.order_request(trade("binance", 0.0004), "x", current_size=0.0)
    with pytest.raises(AdapterError, match="not a perp trade"):
        b.order_request(Instruction("binance", "deposit", "wallet:BaseToken:USDT", 10.0, "USDT"), "x", 0.0)


def test_client_order_id_is_deterministic_and_fits_every_venue():
    a = client_order_id(PLAN, "s1")
    assert a == client_order_id(PLAN, "s1") != client_order_id(PLAN, "s2") != client_order_id("other", "s1")
    assert len(a) == 32 and a.isalnum()  # OKX clOrdId: <= 32 alphanumerics; Binance/Bybit: <= 36
    assert client_order_id(PLAN, "s1", 1) != a


def test_cancel_all_clears_markets_with_open_orders(venue):
    bn, s = venue("binance")
    assert bn.cancel_all() == ["binance:Perp:BTCUSDT"]
    assert [c["params"]["symbol"] for c in s.calls("DELETE", "/fapi/v1/allOpenOrders")] == ["BTCUSDT"]
    by, s = venue("bybit")
    assert by.cancel_all() == ["bybit:Perp:ETHUSDT"]
    assert s.calls("POST", "/v5/order/cancel-all")[0]["params"]["symbol"] == "ETHUSDT"
    ok, s = venue("okx")  # OKX has no cancel-all for regular orders: cancelled by id
    assert ok.cancel_all() == ["okx:Perp:ETHUSDT"]
    assert s.calls("POST", "/api/v5/trade/cancel-batch-orders")[0]["params"]["ordId"] == "2240500000000000000"


def test_exchange_error_is_an_adapter_error_without_the_key(venue):
    a, _ = venue("binance")
    with pytest.raises(AdapterError) as ei:
        a.funding("binance:Perp:BTCUSDT")  # recorded: -2015 invalid API-key
    assert "Invalid API-key" in str(ei.value) and not ei.value.retryable
    for secret in CREDS.values():
        assert secret not in str(ei.value)
    assert ei.value.__cause__ is None and ei.value.__suppress_context__
