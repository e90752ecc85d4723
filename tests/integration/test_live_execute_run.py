"""``trimtab run CONFIG --live --execute`` end to end, offline: the live feed over recorded venue
answers built from the bundled data, the venue gateway over a recorded chain node.

- The credentials are checked before any venue is contacted, and the CLI names every missing
  variable (never a value) -- a real subprocess.
- Before the first tick the book (the config's capital in the wallet) is reconciled with the
  chain: an account that holds something else halts the machine (nothing is sent, the rules are
  still journaled), and `trimtab status` says so.
- An account that matches is traded for real: the first plan's transactions are simulated,
  written ahead, sent once each and booked from their receipts; positions equal the fills.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from live_recordings import FakeClock, record  # noqa: E402
from test_live_execution import A_USDT, ACCOUNT, DEBT_USDT, POOL, USDT, _word, env  # noqa: E402,F401
from test_live_transfers import Node, sel  # noqa: E402

from trimtab.config.load import load_strategy  # noqa: E402
from trimtab.data.market import MarketView, series_of  # noqa: E402
from trimtab.live.adapters.chain import ChainAdapter  # noqa: E402
from trimtab.live.adapters.recorded import RecordedProvider, RecordedSession  # noqa: E402
from trimtab.live.control import status  # noqa: E402
from trimtab.live.runner import run_live  # noqa: E402
from trimtab.live.sources import load_sources  # noqa: E402
from trimtab.venues.pricing import Pricing  # noqa: E402
from trimtab.venues.sim import SimVenues  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "pure_lending_usdt.yaml"
START, END = "2024-08-04T00:00", "2024-08-04T06:00"
T0, T1 = int(pd.Timestamp(START, tz="UTC").timestamp()), int(pd.Timestamp(END, tz="UTC").timestamp())


@pytest.fixture(scope="module")
def lending():
    return load_strategy(CONFIG)


@pytest.fixture(scope="module")
def feed(lending, market):
    sources = load_sources()
    px = Pricing(lending, MarketView(market.slice(START, START), set()))
    needed = {series_of(f) for f in px.fields() | SimVenues(lending, px, market.static).fields()}
    return sources, record(market, sources, needed, T0, T1, sources.warmup_hours)


def wallet_node(usdt_units: int, eth_wei: int) -> Node:
    """The recorded mainnet node, answering the wallet's balances with these amounts (and no
    Aave position: aUSDT and variable-debt USDT balances 0)."""
    node = Node()
    reserve = "0x" + "0" * 64 * 8 + A_USDT[2:].lower().rjust(64, "0") + "0" * 64 + DEBT_USDT[2:].lower().rjust(64, "0") + "0" * 64 * 4
    node.routes[:0] = [{"rpc": "eth_call", "match": {"to": POOL, "data__startswith": sel("getReserveData(address)")}, "result": reserve},
                       {"rpc": "eth_call", "match": {"to": A_USDT, "data__startswith": sel("balanceOf(address)")}, "result": _word(0)},
                       {"rpc": "eth_call", "match": {"to": DEBT_USDT, "data__startswith": sel("balanceOf(address)")}, "result": _word(0)},
                       {"rpc": "eth_call", "match": {"to": USDT, "data__startswith": sel("balanceOf(address)")}, "result": _word(usdt_units)},
                       {"rpc": "eth_call", "match": {"data__startswith": sel("balanceOf(address)")}, "result": _word(0)},  # other tokens
                       {"rpc": "eth_getBalance", "result": hex(eth_wei)}]
    return node


def run(lending, market, feed, tmp_path, node, run_id):
    sources, (http, rpc) = feed
    clock = FakeClock(T0 + 45)
    chain = ChainAdapter(Web3(node), ACCOUNT)
    return run_live(lending, out=tmp_path, run_id=run_id, end=END, feed="live", sources=sources,
                    sessions={k: RecordedSession(v) for k, v in http.items()}, w3=Web3(RecordedProvider(rpc)),
                    clock=clock, sleep=clock.sleep, static=market.static, poll_s=3600, execute=True,
                    execution={"chain": chain, "sleep": lambda _: None, "poll_s": 0.0, "receipt_polls": 2})


def q(path, sql):
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_execute_without_credentials_names_every_variable_before_any_network_call(tmp_path, monkeypatch):
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("TRIMTAB_")}
    p = subprocess.run([sys.executable, "-m", "trimtab.cli.main", "run", "configs/usdt_eth_staking_hedged_leveraged.yaml",
                        "--live", "--execute", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 1, p.stderr
    for var in ("TRIMTAB_BINANCE_KEY", "TRIMTAB_BYBIT_SECRET", "TRIMTAB_OKX_PASSPHRASE", "TRIMTAB_ETH_PRIVATE_KEY",
                "TRIMTAB_ETH_RPC_URL", "TRIMTAB_ETH_DSA"):
        assert var in p.stderr
    assert "unavailable" not in p.stderr and "Traceback" not in p.stderr  # failed on credentials, not on the network
    p = subprocess.run([sys.executable, "-m", "trimtab.cli.main", "run", str(CONFIG), "--live", "--replay", "--execute",
                        "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 2 and "--replay" in p.stderr


def test_an_account_that_does_not_match_the_book_halts_the_run_and_sends_nothing(lending, market, feed, tmp_path, env):
    node = wallet_node(usdt_units=250 * 10**6, eth_wei=0)  # the book starts with the config's capital, the wallet has 250 USDT
    res = run(lending, market, feed, tmp_path, node, "halted")
    db = res.run_dir / "journal.sqlite"
    assert node.calls("eth_sendRawTransaction") == [] and node.sent == []
    rec = json.loads(q(db, "SELECT value FROM meta WHERE key='reconciliation'")[0][0])
    assert not rec["ok"] and [m["instrument"] for m in rec["mismatches"]] == ["wallet:BaseToken:USDT"]
    assert rec["mismatches"][0]["venue"] == 250.0 and rec["mismatches"][0]["book"] == lending.config.capital
    decisions = q(db, "SELECT tick, source, dest, trigger FROM decisions ORDER BY tick")
    assert len(decisions) == (T1 - T0) // 3600 + 1 and all(s == d == "idle" and t is None for _, s, d, t in decisions)
    st = status(res.run_dir)
    assert st["mode"] == "execute" and st["reconciliation"]["ok"] is False and st["positions"] == {"wallet:BaseToken:USDT": lending.config.capital}


def test_a_matching_account_is_traded_once_per_transaction_and_positions_equal_fills(lending, market, feed, tmp_path, env):
    node = wallet_node(usdt_units=int(lending.config.capital * 10**6), eth_wei=0)
    res = run(lending, market, feed, tmp_path, node, "traded")
    db = res.run_dir / "journal.sqlite"
    assert json.loads(q(db, "SELECT value FROM meta WHERE key='reconciliation'")[0][0])["ok"]
    outbox = q(db, "SELECT plan_id, step_id, tx_hash FROM outbox ORDER BY rowid")
    sent = node.calls("eth_sendRawTransaction")
    assert outbox and len(sent) == len(outbox)  # every signed transaction written ahead, each sent once
    assert len({h for _, _, h in outbox}) == len(outbox)
    steps = q(db, "SELECT plan_id, step_id, status FROM instructions ORDER BY rowid")
    assert steps and not [s for s in steps if s[2] == "failed"]
    assert res.summary["positions_match_fills"] and res.summary["plans"] >= 1
    assert res.summary["final_positions"].get("aave_v3:aToken:aUSDT", 0.0) > 0  # the capital went to Aave, for real
