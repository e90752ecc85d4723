"""Real execution of CEX spot trades and resting perp take-profit / stop-loss orders, against
recorded Binance responses (spot API, wallet transfer, USD-M Algo Order API; the pages are
cited in ``tests/fixtures/live/binance_spot.json`` and ``binance_algo.json``).

Proven on the wire (``RecordedSession.requests``): the spot order's params and client id, the
USD-M <-> Spot transfers around it, one order only across a crash (fresh gateway + journal
reopened from the same SQLite file); the stops' trigger prices, reduce-only flag and client
ids; a stop the venue reports filled becomes one fill and its sibling is cancelled; clearing
the stops cancels both before the exit order.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest

from test_live_execution import FIX, PLAN, Crash, binance, env, no_sleep  # noqa: F401
from trimtab.accounting.book import Book, Fill, Leg
from trimtab.engine.executor import PaperGateway
from trimtab.engine.journal import Journal
from trimtab.live.adapters.base import client_order_id
from trimtab.live.adapters.recorded import load_fixture
from trimtab.live.execution import STOP_IDX, VenueGateway
from trimtab.planner.plan import Instruction, Step

SPOT = load_fixture(FIX / "binance_spot.json")
ALGO = load_fixture(FIX / "binance_algo.json")
BTC, USDT_M = "binance:BaseToken:BTC", "binance:Margin:USDT"
PERP = "binance:Perp:BTCUSDT"


def adapter(session=None):
    """The Binance adapter with its spot client on the same recorded session."""
    ex, s = binance(session)
    if session is None:
        for r in reversed(SPOT["responses"]):
            s.add(copy.deepcopy(r))
    ex.spot.session = s
    return ex, s


def gw(path, ex, fresh=True):
    return VenueGateway(Journal(path, fresh=fresh), {"binance": ex}, sleep=no_sleep, poll_s=0.0)


def with_cid(body, cid):
    return {**copy.deepcopy(body), "clientOrderId": cid}


# -- spot ----------------------------------------------------------------------------------
def spot_step(sid, units):
    verb = "buy" if units > 0 else "sell"
    return Step(sid, f"{verb} {abs(units)} BTC spot on binance", (Instruction(
        "binance", "spot_trade", BTC, units, "BTC", {"fee_bps": 10, "cost_pair": "BTCUSDT-PERP"}, "spot.binance.BTCUSDT.close"),))


def sim_spot(units, price):
    cash = -units * price * (1 + (10 / 1e4 if units > 0 else -10 / 1e4))
    return [(Fill(0, "binance", "spot_trade", "trading_fees", [Leg(BTC, units, units), Leg(USDT_M, cash, cash)],
                  price=price, price_field="spot.binance.BTCUSDT.close", note="simulated"), None)]


def record_order(s, cid, post, query, trades):
    s.add({"method": "GET", "path": "/api/v3/myTrades", "match": {"orderId": str(query["orderId"])}, "body": trades})
    s.add({"method": "GET", "path": "/api/v3/order", "match": {"origClientOrderId": cid}, "body": with_cid(query, cid)})
    s.add({"method": "POST", "path": "/api/v3/order", "match": {"newClientOrderId": cid}, "body": with_cid(post, cid)})
    s.add({"method": "GET", "path": "/api/v3/order", "match": {"origClientOrderId": cid}, "once": True, **SPOT["not_found"]})


def test_spot_buy_moves_usdt_to_spot_buys_by_client_id_and_books_the_venue_fill(env, tmp_path):
    ex, s = adapter()
    cid = client_order_id(PLAN, "s2", 0)
    record_order(s, cid, SPOT["buy_order"], SPOT["buy_query"], SPOT["buy_trades"])
    (f, price), = gw(tmp_path / "j.sqlite", ex).execute(PLAN, spot_step("s2", 0.5), 0, sim_spot(0.5, 82250.0))
    out, back = s.calls("POST", "/sapi/v1/asset/transfer")
    need = round(0.5 * 82250.0 * 1.001 * 1.01, 6)  # simulated cost + the 1% buffer
    assert (out["params"]["type"], float(out["params"]["amount"])) == ("UMFUTURE_MAIN", need)  # USD-M -> Spot first
    (order,) = s.calls("POST", "/api/v3/order")
    p = order["params"]
    assert (p["symbol"], p["side"], p["type"], float(p["quantity"]), p["newClientOrderId"]) == ("BTCUSDT", "BUY", "MARKET", 0.5, cid)
    assert s.requests.index(out) < s.requests.index(order) < s.requests.index(back)
    # the venue's fill: 0.5 BTC less the 0.0005 BTC commission, 41125 USDT (cummulativeQuoteQty)
    assert [(l.key, l.delta) for l in f.legs] == [(BTC, pytest.approx(0.4995)), (USDT_M, -41125.0)]
    assert f.operation == "spot_trade" and price is None and f.price == pytest.approx(82250.0) and cid in f.note
    assert (back["params"]["type"], float(back["params"]["amount"])) == ("MAIN_UMFUTURE", pytest.approx(need - 41125.0))


def test_spot_buy_rerun_after_a_crash_sends_one_order_and_one_transfer_each_way(env, tmp_path):
    path = tmp_path / "j.sqlite"
    ex, s = adapter()
    cid = client_order_id(PLAN, "s2", 0)
    record_order(s, cid, SPOT["buy_order"], SPOT["buy_query"], SPOT["buy_trades"])
    real = ex.spot.create_order

    def sent_then_crash(*a, **k):
        real(*a, **k)
        raise Crash()  # the venue took the order; the process died before it knew

    ex.spot.create_order = sent_then_crash
    with pytest.raises(Crash):
        gw(path, ex).execute(PLAN, spot_step("s2", 0.5), 0, sim_spot(0.5, 82250.0))
    ex2, _ = adapter(s)
    (f, _), = gw(path, ex2, fresh=False).execute(PLAN, spot_step("s2", 0.5), 0, sim_spot(0.5, 82250.0))
    assert len(s.calls("POST", "/api/v3/order")) == 1  # exactly one order on the wire
    assert [r["params"]["type"] for r in s.calls("POST", "/sapi/v1/asset/transfer")] == ["UMFUTURE_MAIN", "MAIN_UMFUTURE"]
    assert "not resent" in f.note and f.legs[1].delta == -41125.0


def test_spot_sell_books_usdt_net_of_the_fee_and_returns_the_proceeds_to_usd_m(env, tmp_path):
    ex, s = adapter()
    cid = client_order_id(PLAN, "s3", 0)
    record_order(s, cid, SPOT["sell_query"], SPOT["sell_query"], SPOT["sell_trades"])
    (f, _), = gw(tmp_path / "j.sqlite", ex).execute(PLAN, spot_step("s3", -0.2), 0, sim_spot(-0.2, 82400.0))
    (order,) = s.calls("POST", "/api/v3/order")
    assert (order["params"]["side"], float(order["params"]["quantity"]), order["params"]["newClientOrderId"]) == ("SELL", 0.2, cid)
    assert [(l.key, l.delta) for l in f.legs] == [(BTC, -0.2), (USDT_M, pytest.approx(16480.0 - 16.48))]
    (back,) = s.calls("POST", "/sapi/v1/asset/transfer")  # no transfer before a sell
    assert (back["params"]["type"], float(back["params"]["amount"])) == ("MAIN_UMFUTURE", pytest.approx(16463.52))


# -- resting take-profit / stop-loss ---------------------------------------------------------
TP, SL = 84000.0, 80700.0
ENTRY = Step("s1", "increase binance:Perp:BTCUSDT by +0.01", (Instruction("binance", "trade", PERP, 0.01, "BTC", {"take_profit": TP, "stop_loss": SL}),))
EXIT = Step("s1", "reduce binance:Perp:BTCUSDT by -0.01", (Instruction("binance", "trade", PERP, -0.01, "BTC", {"clear_stops": True}),))
EXIT_PLAN = "9d0e5b7a11c2f304"


def sim_perp(units, price=82368.3):
    return [(Fill(0, "binance", "trade", "trading_fees", [Leg(PERP, units, units), Leg(USDT_M, -0.33, -0.33)], price=price), price)]


def cids(plan=PLAN, sid="s1"):
    return {k: client_order_id(plan, sid, i) for k, i in STOP_IDX.items()}


def algo(cid, kind, status="NEW", **extra):
    body = {**copy.deepcopy(ALGO["algo_order"]), "clientAlgoId": cid, "algoStatus": status,
            "orderType": "TAKE_PROFIT_MARKET" if kind == "take_profit" else "STOP_MARKET",
            "triggerPrice": f"{TP if kind == 'take_profit' else SL:.2f}", **extra}
    return body


def record_entry(s, plan=PLAN, body="entry_order", side="BUY"):
    cid = client_order_id(plan, "s1", 0)
    o = {**ALGO[body], "clientOrderId": cid, "side": side}
    s.add({"method": "GET", "path": "/fapi/v1/order", "match": {"origClientOrderId": cid}, "body": o})
    s.add({"method": "POST", "path": "/fapi/v1/order", "match": {"newClientOrderId": cid}, "body": o})
    s.add({"method": "GET", "path": "/fapi/v1/order", "match": {"origClientOrderId": cid}, "once": True, **ALGO["algo_not_found"]})


def placed(tmp_path):
    """A gateway that entered 0.01 BTC long and placed both stops."""
    ex, s = binance()
    record_entry(s)
    for kind, cid in cids().items():
        s.add({"method": "GET", "path": "/fapi/v1/algoOrder", "match": {"clientAlgoId": cid}, "body": algo(cid, kind)})
        s.add({"method": "POST", "path": "/fapi/v1/algoOrder", "match": {"clientAlgoId": cid}, "body": algo(cid, kind)})
        s.add({"method": "GET", "path": "/fapi/v1/algoOrder", "match": {"clientAlgoId": cid}, "once": True, **ALGO["algo_not_found"]})
    g = gw(tmp_path / "j.sqlite", ex)
    fills = g.execute(PLAN, ENTRY, 0, sim_perp(0.01))
    return g, s, fills


def test_entry_fill_places_reduce_only_take_profit_and_stop_loss_for_the_whole_position(env, tmp_path):
    _, s, fills = placed(tmp_path)
    (f, price), = fills
    assert price == pytest.approx(82368.3) and [(l.key, l.delta) for l in f.legs][0] == (PERP, 0.01)
    tp, sl = (r["params"] for r in s.calls("POST", "/fapi/v1/algoOrder"))
    order = s.calls("POST", "/fapi/v1/order")[0]
    assert s.requests.index(order) < min(s.requests.index(r) for r in s.calls("POST", "/fapi/v1/algoOrder"))
    c = cids()
    for p, kind, typ, level in ((tp, "take_profit", "TAKE_PROFIT_MARKET", TP), (sl, "stop_loss", "STOP_MARKET", SL)):
        assert (p["algoType"], p["type"], p["side"], p["reduceOnly"], p["clientAlgoId"]) == ("CONDITIONAL", typ, "SELL", "true", c[kind])
        assert float(p["triggerPrice"]) == level and float(p["quantity"]) == 0.01  # the venue's whole position (positionRisk)
    assert c["take_profit"] in f.note and c["stop_loss"] in f.note


def test_a_stop_filled_on_the_venue_is_one_fill_and_its_sibling_is_cancelled(env, tmp_path):
    g, s, _ = placed(tmp_path)
    c = cids()
    trig = ALGO["triggered_order"]
    s.add({"method": "GET", "path": "/fapi/v1/order", "match": {"orderId": str(trig["orderId"])}, "body": trig})
    s.add({"method": "GET", "path": "/fapi/v1/algoOrder", "match": {"clientAlgoId": c["stop_loss"]},
           "body": algo(c["stop_loss"], "stop_loss", "FINISHED", actualOrderId=str(trig["orderId"]), actualPrice="80682.10")})
    s.add({"method": "GET", "path": "/fapi/v1/algoOrder", "match": {"clientAlgoId": c["take_profit"]}, "body": algo(c["take_profit"], "take_profit", "CANCELED")})
    s.add({"method": "DELETE", "path": "/fapi/v1/algoOrder", "match": {"clientAlgoId": c["take_profit"]},
           "body": {**ALGO["cancel_ack"], "clientAlgoId": c["take_profit"]}})
    for _ in range(2):  # open when polled and when re-read before the cancel
        s.add({"method": "GET", "path": "/fapi/v1/algoOrder", "match": {"clientAlgoId": c["take_profit"]}, "once": True, "body": algo(c["take_profit"], "take_profit")})
    book = Book()
    book.apply(Fill(0, "binance", "trade", "trading_fees", [Leg(PERP, 0.01, 0.01)], price=82368.3), 82368.3)
    sim = SimpleNamespace(stops={PERP: (TP, SL)})
    (f, price), = g.stops(5, book, sim)
    assert (f.operation, f.tick, price) == ("stop_loss", 5, pytest.approx(80682.10))
    assert [(l.key, l.delta) for l in f.legs][0] == (PERP, -0.01) and "triggered on the venue" in f.note
    (cancel,) = s.calls("DELETE", "/fapi/v1/algoOrder")
    assert cancel["params"]["clientAlgoId"] == c["take_profit"]  # one-cancels-the-other
    assert sim.stops == {}
    n = len(s.requests)
    assert g.stops(6, book, SimpleNamespace(stops={})) == [] and len(s.requests) == n  # nothing resting any more


def test_clearing_the_stops_cancels_both_by_client_id_before_the_exit_order(env, tmp_path):
    g, s, _ = placed(tmp_path)
    c = cids()
    for kind, cid in c.items():
        s.add({"method": "GET", "path": "/fapi/v1/algoOrder", "match": {"clientAlgoId": cid}, "body": algo(cid, kind, "CANCELED")})
        s.add({"method": "DELETE", "path": "/fapi/v1/algoOrder", "match": {"clientAlgoId": cid}, "body": {**ALGO["cancel_ack"], "clientAlgoId": cid}})
        s.add({"method": "GET", "path": "/fapi/v1/algoOrder", "match": {"clientAlgoId": cid}, "once": True, "body": algo(cid, kind)})
    record_entry(s, EXIT_PLAN, side="SELL")
    n_algo = len(s.calls("POST", "/fapi/v1/algoOrder"))
    (f, _), = g.execute(EXIT_PLAN, EXIT, 3, sim_perp(-0.01))
    cancels = s.calls("DELETE", "/fapi/v1/algoOrder")
    assert sorted(r["params"]["clientAlgoId"] for r in cancels) == sorted(c.values())
    exit_order = s.calls("POST", "/fapi/v1/order")[-1]
    assert max(s.requests.index(r) for r in cancels) < s.requests.index(exit_order)
    assert len(s.calls("POST", "/fapi/v1/algoOrder")) == n_algo  # no new stops after clearing
    assert g._resting(PERP) is None


def test_paper_gateway_stops_are_the_simulated_check():
    calls = []
    sim = SimpleNamespace(check_stops=lambda tick, book: calls.append((tick, book)) or ["x"])
    book = Book()
    assert PaperGateway().stops(4, book, sim) == ["x"] and calls == [(4, book)]
