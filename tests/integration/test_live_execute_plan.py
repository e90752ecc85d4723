"""The flagship's first entry plan, from a real backtest over the bundled data, executed step
by step through :class:`VenueGateway` against recorded venue responses.

Steps of the plan (2024-06-01): buy ETH for gas with USDT on Uniswap v3, deposit USDT to
Binance and Bybit, then (once the deposits land) buy the bundle's ETH, short ETH perps on
Binance and Bybit and run the flash-loan entry bundle. Executed here: the second
swap (one router multicall), the Binance deposit (one ERC-20 transfer; arrival once the venue
lists it, then one internal transfer), the Binance short (one market order) and the bundle
(one DSA cast). The Bybit deposit and short take the same code paths with the Bybit adapter
(unit tests: tests/unit/test_live_transfers.py, test_live_execution.py; Bybit wallet
responses are not recorded here). Asserted: each step's wire calls, and that the book built
from the gateway's fills equals the sum of those fills.
"""
from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from hexbytes import HexBytes
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_live_execution import ACCOUNT, PLAN, env  # noqa: E402,F401
from test_live_transfers import BN, Node, binance_wallet, credit, gateway, sel, transfer_log  # noqa: E402

from trimtab.accounting.book import Book, Fill, Leg  # noqa: E402
from trimtab.engine.executor import Transit  # noqa: E402
from trimtab.live.adapters.base import client_order_id  # noqa: E402
from trimtab.live.adapters.bundle import decode_cast  # noqa: E402
from trimtab.live.adapters.contracts import TOKENS  # noqa: E402
from trimtab.live.adapters.uniswap_v3 import config as uniswap_config  # noqa: E402
from trimtab.planner.plan import Instruction, Step  # noqa: E402

SWAP_ROUTER02 = uniswap_config.facts().contracts["router"].address  # the router venues/uniswap_v3.yaml names


def first_plan(flagship, market, tmp_path):
    from trimtab.engine.backtest import run_backtest

    r = run_backtest(flagship, start="2024-06-01", end="2024-06-02", out=tmp_path, run_id="entry", data=market)
    db = sqlite3.connect(r.run_dir / "journal.sqlite")
    pid, plan = db.execute("SELECT plan_id, plan FROM plans ORDER BY tick LIMIT 1").fetchone()
    steps = {}
    for s in json.loads(plan)["steps"]:
        ins = tuple(Instruction(**i) for i in s.pop("instructions"))
        steps[s["id"]] = Step(instructions=ins, **{**s, "depends_on": tuple(s["depends_on"])})
    fills = {}
    for tick, sid, venue, op, cat, legs, price, note in db.execute(
            "SELECT tick, step_id, venue, operation, category, legs, price, note FROM fills WHERE plan_id=? AND operation != 'arrival' ORDER BY fill_id", (pid,)):
        f = Fill(tick, venue, op, cat, [Leg(*x) for x in json.loads(legs)], price=price, note=note)
        fills.setdefault(sid, []).append((f, price if op == "trade" else None))
    return pid, steps, fills


def test_flagship_first_entry_plan_executes_through_the_gateway(flagship, market, tmp_path, env):
    pid, steps, sim = first_plan(flagship, market, tmp_path)
    ops = {sid: (s.operation or s.instructions[0].operation, s.venue or s.instructions[0].venue) for sid, s in steps.items()}
    # Two swaps since issue 13 part 4: the ETH for gas at once, the ETH for the bundle once the
    # deposits have landed (so it is bought in the tick the hedge goes on); the second is run here.
    assert sorted(ops.values()) == sorted([("swap", "uniswap_v3"), ("swap", "uniswap_v3"), ("deposit", "binance"), ("deposit", "bybit"),
                                           ("trade", "binance"), ("trade", "bybit"), ("bundle_entry", "instadapp")])
    by = {v: k for k, v in ops.items()}
    dep_id, trade_id, bundle_id = by[("deposit", "binance")], by[("trade", "binance")], by[("bundle_entry", "instadapp")]
    (swap_id,) = [sid for sid, (op, _) in ops.items() if op == "swap" and dep_id in steps[sid].depends_on]

    usdt_in = -sim[swap_id][0][0].legs[0].delta
    eth_out = int(sim[swap_id][0][0].legs[1].delta * 1.001 * 10**18)  # the pool paid a little more than simulated

    def logs(tx):
        if Web3.to_checksum_address(tx["to"]) == SWAP_ROUTER02:
            return [transfer_log(TOKENS["WETH"][0], "0x11b815efB8f581194ae79006d24E0d814B7697F6", SWAP_ROUTER02, eth_out)]
        return []

    node, (ex, session) = Node(logs), binance_wallet()
    node.routes.insert(0, {"rpc": "eth_call", "match": {"to": "0xd5A0000000000000000000000000000000000001"}, "result": "0x"})
    cid = client_order_id(pid, trade_id, 0)
    trade = steps[trade_id].instructions[0]
    contracts = f"{int(abs(trade.amount) * 1000) / 1000:.3f}"  # the venue step (0.001 ETH), truncated
    order = {"orderId": 8389765519318099999, "symbol": "ETHUSDT", "status": "FILLED", "clientOrderId": cid, "price": "0.00",
             "avgPrice": "3764.12000", "origQty": contracts, "executedQty": contracts, "cumQuote": "28449.2", "timeInForce": "GTC",
             "type": "MARKET", "reduceOnly": False, "side": "SELL", "positionSide": "BOTH", "stopPrice": "0.00", "origType": "MARKET",
             "updateTime": 1717203600000, "time": 1717203600000}
    for r in ({"method": "GET", "path": "/fapi/v1/order", "match": {"origClientOrderId": cid}, "body": order},
              {"method": "POST", "path": "/fapi/v1/order", "match": {"newClientOrderId": cid}, "body": order},
              {"method": "GET", "path": "/fapi/v1/order", "match": {"origClientOrderId": cid}, "once": True, "status": 400,
               "body": {"code": -2013, "msg": "Order does not exist."}}):
        session.add(r)
    gw = gateway(tmp_path / "live.sqlite", node, {"binance": ex})

    booked = []

    def run(sid):
        n_sent, n_post = len(node.sent), len(session.calls("POST"))
        out = gw.execute(pid, steps[sid], 0, sim[sid])
        booked.extend(f for f, _ in out)
        return out, node.sent[n_sent:], session.calls("POST")[n_post:]

    # 1. swap: one multicall to the router; the ETH booked is what the logs say
    out, txs, posts = run(swap_id)
    assert len(txs) == 1 and not posts and HexBytes(txs[0]["data"])[:4].hex().removeprefix("0x") == sel("multicall(bytes[])")[2:]
    swap = next(f for f, _ in out if f.category != "gas")
    assert swap.legs[0].delta == pytest.approx(-usdt_in) and swap.legs[1].delta == eth_out / 1e18
    # 2. Binance deposit: one USDT transfer to the venue's deposit address, arrival after the venue lists it
    out, txs, posts = run(dep_id)
    assert len(txs) == 1 and Web3.to_checksum_address(txs[0]["to"]) == TOKENS["USDT"][0] and not posts
    transit = next(f for f, _ in out if f.operation == "deposit").legs[1]
    credit(session, gw.journal.outbox(pid, dep_id)[0]["tx_hash"], transit.delta)
    assert gw.arrived(Transit(pid, dep_id, "binance", 0, transit.key, "binance:Margin:USDT", transit.delta))
    (move,) = session.calls("POST", "/sapi/v1/asset/transfer")
    booked.append(Fill(1, "binance", "arrival", "trading_fees", [Leg(transit.key, -transit.delta, -transit.delta),
                                                                   Leg("binance:Margin:USDT", transit.delta, transit.delta)]))
    # 3. Binance short: one market order with the plan's client id, the venue's fill booked
    out, txs, posts = run(trade_id)
    assert not txs and [p["path"] for p in posts] == ["/fapi/v1/order"]
    assert posts[0]["params"]["newClientOrderId"] == cid and posts[0]["params"]["side"] == "SELL" and posts[0]["params"]["quantity"] == contracts
    assert out[0][1] == pytest.approx(3764.12)
    # 4. the entry bundle: one DSA cast carrying the simulated amounts
    out, txs, posts = run(bundle_id)
    assert len(txs) == 1 and not posts and Web3.to_checksum_address(txs[0]["to"]) == "0xd5A0000000000000000000000000000000000001"
    spells = decode_cast(HexBytes(txs[0]["data"]).hex() if HexBytes(txs[0]["data"]).hex().startswith("0x") else "0x" + HexBytes(txs[0]["data"]).hex())
    assert [s.connector for s in spells][1:] == ["WETH-A", "EETH-A", "WEETH-A", "AAVE-V3-A", "AAVE-V3-A", "INSTAPOOL-C"]
    assert len(node.calls("eth_sendRawTransaction")) == 3 and len(session.calls("POST")) == 2  # nothing else went out

    # the book built from the gateway's fills is the sum of those fills
    book, total = Book(), {}
    cap = Fill(0, "wallet", "deposit_capital", "capital", [Leg("wallet:BaseToken:USDT", 100_000.0, 100_000.0),
                                                           Leg("wallet:BaseToken:ETH", 0.1, 0.1)])
    for f in [cap] + booked:
        book.apply(f, f.price if f.operation == "trade" else None)
        for leg in f.legs:
            total[leg.key] = total.get(leg.key, 0.0) + leg.delta
    assert {k: pytest.approx(v, abs=1e-9) for k, v in total.items()} == {k: book.qty(k) for k in total}
    assert book.qty("binance:Perp:ETHUSDT") == pytest.approx(-float(contracts))
