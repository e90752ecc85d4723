"""Real execution behind the gateway seam, against recorded venue responses (no network).

What is proven on the wire (``RecordedSession.requests`` / ``RecordedProvider.requests``):
a step re-run after a crash -- a fresh gateway and a journal reopened from the same SQLite
file, the venue (session / node) the same -- sends no order and no transaction twice; the
outbox holds the signed bytes before they are sent; the executor books the venue's fills in
place of the simulated ones, and a venue failure takes the executor's failure path.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from eth_utils import keccak
from web3 import Web3

from trimtab.accounting.book import Fill, Leg
from trimtab.engine.executor import PaperGateway
from trimtab.engine.journal import Journal
from trimtab.live.adapters.base import client_order_id
from trimtab.live.adapters.chain import ChainAdapter
from trimtab.live.adapters.registry import exchange_from_env
from trimtab.live.adapters.recorded import RecordedProvider, RecordedSession, load_fixture
from trimtab.live.connect import ExecutionSetupError, required_env, venue_gateway
from trimtab.live.execution import VenueGateway, unsupported_operations
from trimtab.live.reconcile import Tolerances, book_positions, reconcile
from trimtab.planner.plan import Instruction, Plan, Step
from trimtab.errors import ExecutionError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "live"
CHAIN = load_fixture(FIX / "chain_mainnet.json")
ACCOUNT, DSA = CHAIN["account"], CHAIN["dsa"]
#: Hardhat/Anvil test account #0: its key is published for local testing (the fixture's account).
TEST_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
PLAN = "3f9c2a71d04b8e65"  # the plan id the recorded Binance order was placed for
ENV = {"TRIMTAB_BINANCE_KEY": "bnKey0123456789abcdef", "TRIMTAB_BINANCE_SECRET": "bnSecret0123456789abcdef",
       "TRIMTAB_ETH_PRIVATE_KEY": TEST_KEY, "TRIMTAB_ETH_RPC_URL": "https://eth.example/v2/rpcKey0123456789"}
USDT, POOL = "0xdAC17F958D2ee523a2206206994597C13D831ec7", "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"
GAS_USED, GAS_PRICE = 0x2F2B4, 3 * 10**9


class Crash(BaseException):
    """The process dies here (not an Exception: nothing may catch it on the way out)."""


@pytest.fixture
def env(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    return monkeypatch


def no_sleep(_):
    pass


def crash(_):
    raise Crash()


# -- perps -------------------------------------------------------------------------------
def binance(session=None):
    a = exchange_from_env("binance")
    s = session or RecordedSession(load_fixture(FIX / "binance_usdm.json")["responses"])
    a.exchange.session = s
    a.exchange.enableRateLimit = False
    return a, s


TRADE = Step("s1", "buy back 1 ETH on binance", (Instruction("binance", "trade", "binance:Perp:ETHUSDT", 1.0, "ETH"),))


def sim_trade_fills(tick=3):
    return [(Fill(tick, "binance", "trade", "trading_fees", [Leg("binance:Perp:ETHUSDT", 1.0, 1.0), Leg("binance:Margin:USDT", -1.58, -1.58)],
                  price=3168.0, price_field="perp.binance.ETHUSDT.close", note="simulated"), 3168.0)]


def test_perp_step_rerun_after_a_crash_sends_one_order_and_books_the_venue_fill(env, tmp_path):
    path = tmp_path / "journal.sqlite"
    ex, session = binance()
    gw = VenueGateway(Journal(path), {"binance": ex}, sleep=no_sleep)
    (first, price), = gw.execute(PLAN, TRADE, 3, sim_trade_fills())
    # the venue's fill, not the simulation's: size, average price and fee from the order
    assert price == pytest.approx(3170.21) and first.price_field == "binance fill"
    assert [(l.key, l.delta) for l in first.legs][0] == ("binance:Perp:ETHUSDT", 1.0)
    assert client_order_id(PLAN, "s1") in first.note
    # crash before the tick's checkpoint: a new process, the same journal file, the same venue
    ex2, _ = binance(session)
    gw2 = VenueGateway(Journal(path, fresh=False), {"binance": ex2}, sleep=no_sleep)
    (again, price2), = gw2.execute(PLAN, TRADE, 3, sim_trade_fills())
    assert len(session.calls("POST", "/fapi/v1/order")) == 1  # exactly one order on the wire
    assert price2 == price and [(l.key, l.delta, l.amount) for l in again.legs] == [(l.key, l.delta, l.amount) for l in first.legs]
    assert "not resent" in again.note


# -- chain -------------------------------------------------------------------------------
SUPPLY = Step("s2", "supply 10 USDT to aave", (Instruction("aave_v3", "supply", "aave_v3:aToken:aUSDT", 10.0, "USDT"),))


def sim_supply_fills(tick=5):
    return [(Fill(tick, "aave_v3", "supply", "gas", [Leg("wallet:BaseToken:ETH", -0.0009, 0.0009)], note="sim gas"), None),
            (Fill(tick, "aave_v3", "supply", "trading_fees", [Leg("aave_v3:aToken:aUSDT", 9.9, 10.0), Leg("wallet:BaseToken:USDT", -10.0, -10.0)],
                  price=1.0101, price_field="aave.USDT.liquidity_index", note="scaled = amount / index"), None)]


def receipt(tx_hash: str, status: int = 1) -> dict:
    return {"transactionHash": tx_hash, "transactionIndex": "0x1", "blockHash": "0x" + "ab" * 32, "blockNumber": "0x14a8b30",
            "from": ACCOUNT, "to": POOL, "cumulativeGasUsed": hex(GAS_USED), "gasUsed": hex(GAS_USED),
            "effectiveGasPrice": hex(GAS_PRICE), "contractAddress": None, "logs": [], "logsBloom": "0x" + "00" * 256,
            "status": hex(status), "type": "0x2"}


def chain_node(pending_first: bool = True, status: int = 1):
    """A recorded node that knows the signed supply's hash (signing is deterministic)."""
    probe = ChainAdapter(Web3(RecordedProvider(CHAIN["responses"])), ACCOUNT, dsa=DSA)
    (tx,) = probe.build(SUPPLY.instructions[0])
    h = probe.sign(tx, live=True).tx_hash
    routes = [{"rpc": "eth_sendRawTransaction", "result": h}]
    if pending_first:
        routes.append({"rpc": "eth_getTransactionReceipt", "result": None, "once": True})
    routes.append({"rpc": "eth_getTransactionReceipt", "result": receipt(h, status)})
    return RecordedProvider(routes + CHAIN["responses"]), h


def chain_gateway(journal, provider, sleep=no_sleep):
    return VenueGateway(journal, {}, ChainAdapter(Web3(provider), ACCOUNT, dsa=DSA), sleep=sleep, poll_s=0.0, receipt_polls=3)


def test_chain_step_crash_while_waiting_for_the_receipt_is_not_sent_again(env, tmp_path):
    path = tmp_path / "journal.sqlite"
    node, h = chain_node()
    with pytest.raises(Crash):  # sent; the receipt is not there yet; the process dies
        chain_gateway(Journal(path), node, sleep=crash).execute(PLAN, SUPPLY, 5, sim_supply_fills())
    j = Journal(path, fresh=False)
    (row,) = j.outbox(PLAN, "s2")
    assert row["status"] == "sent" and row["tx_hash"] == h and row["raw"].startswith("0x02")
    fills = chain_gateway(j, node).execute(PLAN, SUPPLY, 5, sim_supply_fills())
    assert len(node.calls("eth_sendRawTransaction")) == 1
    gas, supply = (f for f, _ in fills)
    assert gas.category == "gas" and gas.legs[0].delta == pytest.approx(-GAS_USED * GAS_PRICE / 1e18) and h in gas.note
    assert [(l.key, l.delta) for l in supply.legs] == [("aave_v3:aToken:aUSDT", 9.9), ("wallet:BaseToken:USDT", -10.0)]
    assert j.outbox(PLAN, "s2")[0]["status"] == "mined"
    # and once more (a second crash after the receipt): nothing at all goes to the node
    n = len(node.requests)
    again = chain_gateway(Journal(path, fresh=False), node).execute(PLAN, SUPPLY, 5, sim_supply_fills())
    assert len(node.requests) == n and [f.legs[0].delta for f, _ in again] == [f.legs[0].delta for f, _ in fills]


def test_crash_between_write_ahead_and_send_rebroadcasts_the_same_bytes(env, tmp_path):
    path = tmp_path / "journal.sqlite"
    node, h = chain_node()
    gw = chain_gateway(Journal(path), node)

    def dies(raw):
        raise Crash()

    gw.chain.broadcast = dies  # the outbox row is committed; the process dies before sending
    with pytest.raises(Crash):
        gw.execute(PLAN, SUPPLY, 5, sim_supply_fills())
    assert node.calls("eth_sendRawTransaction") == []
    j = Journal(path, fresh=False)
    (row,) = j.outbox(PLAN, "s2")
    assert row["status"] == "signed" and row["tx_hash"] == h
    chain_gateway(j, node).execute(PLAN, SUPPLY, 5, sim_supply_fills())
    (sent,) = node.calls("eth_sendRawTransaction")  # once, and the very bytes written ahead
    assert sent[0].lower() == row["raw"].lower()
    assert node.calls("eth_estimateGas") and len(node.calls("eth_getTransactionCount")) == 1  # signed once only


def test_a_reverted_receipt_fails_the_step(env, tmp_path):
    node, h = chain_node(pending_first=False, status=0)
    j = Journal(tmp_path / "j.sqlite")
    with pytest.raises(ExecutionError, match="reverted on chain"):
        chain_gateway(j, node).execute(PLAN, SUPPLY, 5, sim_supply_fills())
    assert j.outbox(PLAN, "s2")[0]["status"] == "reverted"


def test_a_reverting_simulation_is_never_sent(env, tmp_path):
    step = Step("s3", "borrow", (Instruction("aave_v3", "borrow", "aave_v3:debtToken:debtWETH", 500.0, "WETH"),))
    node = RecordedProvider(CHAIN["responses"])
    fills = [(Fill(5, "aave_v3", "borrow", "trading_fees", [Leg("aave_v3:debtToken:debtWETH", 490.0, 500.0), Leg("wallet:BaseToken:ETH", 500.0, 500.0)]), None)]
    with pytest.raises(ExecutionError, match="reverted, not sent: 35"):
        chain_gateway(Journal(tmp_path / "j.sqlite"), node).execute(PLAN, step, 5, fills)
    assert node.calls("eth_sendRawTransaction") == []


def test_journal_of_a_venue_run_holds_no_secret(env, tmp_path):
    path = tmp_path / "journal.sqlite"
    ex, _ = binance()
    j = Journal(path)
    VenueGateway(j, {"binance": ex}, sleep=no_sleep).execute(PLAN, TRADE, 3, sim_trade_fills())
    node, _ = chain_node(pending_first=False)
    chain_gateway(j, node).execute(PLAN, SUPPLY, 5, sim_supply_fills())
    j.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir()).lower()
    assert b"0x02" in blob  # the outbox's signed bytes are there
    for v in ENV.values():
        for form in {v, v.removeprefix("0x")}:
            assert form.lower().encode() not in blob, "a secret reached the journal"


# -- the executor seam -------------------------------------------------------------------
class FakeVenue:
    """A gateway whose venue fills at a different price, or fails."""

    live = True

    def __init__(self, fail: bool = False):
        self.fail, self.seen = fail, []

    def execute(self, plan_id, step, tick, fills):
        self.seen.append((plan_id, step.id, [f.operation for f, _ in fills]))
        if self.fail:
            raise ExecutionError("venue said no")
        f, price = fills[0]
        return [(Fill(tick, f.venue, "trade", "trading_fees", [Leg(f.legs[0].key, f.legs[0].delta, f.legs[0].amount)],
                      price=price + 10.0, price_field="venue fill", note="venue"), price + 10.0)]


def _trade_plan(stages):
    st = stages("2024-06-01", "2024-06-03")
    st.fund(10_000.0, "binance:Margin:USDT")
    step = Step("s1", "short 1 ETH", (Instruction("binance", "trade", "binance:Perp:ETHUSDT", -1.0, "ETH"),))
    return st, Plan(st.strategy.name, "entry_full", "enter", "test", "2024-06-01T00:00Z", {}, (step,), 0.0)


def test_the_executor_books_the_gateways_fills_instead_of_the_simulation(stages):
    st, plan = _trade_plan(stages)
    st.ex.gateway = venue = FakeVenue()
    st.ex.submit(plan, 1)
    assert venue.seen == [(plan.id, "s1", ["trade"])]
    (f,) = st.fills
    assert f.note == "venue" and f.plan_id == plan.id and st.book.qty("binance:Perp:ETHUSDT") == -1.0
    assert st.book.entry["binance:Perp:ETHUSDT"] == pytest.approx(f.price) and st.book.qty("binance:Margin:USDT") == 10_000.0
    assert st.steps[-1][2] == "done" and not st.book.check_fills()


def test_a_gateway_failure_fails_the_step_and_leaves_the_book(stages):
    st, plan = _trade_plan(stages)
    before = st.book.snapshot()
    st.ex.gateway = FakeVenue(fail=True)
    st.ex.submit(plan, 1)
    assert st.fills == [] and st.book.snapshot() == before
    assert st.steps[-1][2] == "failed" and "venue said no" in st.steps[-1][4]
    assert st.ex.failed_at == 1 and not st.ex.in_flight


def test_paper_gateway_is_the_default(stages):
    st, _ = _trade_plan(stages)
    assert isinstance(st.ex.gateway, PaperGateway) and not st.ex.gateway.live


# -- reconciliation ----------------------------------------------------------------------
BOOK = {"binance:Perp:ETHUSDT": -2.5, "binance:Perp:BTCUSDT": 0.01, "binance:Margin:USDT": 24_610.0, "binance:Margin:BTC": 0.35}


def test_reconcile_matching_exchange_state_has_no_mismatch(env):
    ex, _ = binance()
    gw = VenueGateway(None, {"binance": ex})
    assert reconcile(BOOK, gw) == []  # margin 3.91 USDT apart: inside 1 + 0.1%


def test_reconcile_names_instrument_book_and_venue_values(env):
    ex, _ = binance()
    gw = VenueGateway(None, {"binance": ex})
    found = reconcile({**BOOK, "binance:Perp:ETHUSDT": -2.0, "okx:Perp:ETHUSDT": 1.0}, gw)
    assert [(m.instrument, m.book, m.venue) for m in found[:1]] == [("binance:Perp:ETHUSDT", -2.0, -2.5)]
    assert "binance:Perp:ETHUSDT: book -2, venue -2.5" in str(found[0])
    assert found[1].instrument == "okx:Perp:ETHUSDT" and math.isnan(found[1].venue)  # no adapter reads it
    # a position only the venue holds is a mismatch against 0
    missing = reconcile({k: v for k, v in BOOK.items() if k != "binance:Perp:BTCUSDT"}, gw)
    assert [(m.instrument, m.book, m.venue) for m in missing] == [("binance:Perp:BTCUSDT", 0.0, 0.01)]


def _word(x: int) -> str:
    return "0x" + hex(x)[2:].rjust(64, "0")


A_USDT, DEBT_USDT = "0x23878914EFE38d27C4D67Ab83ed1b93A74D4086a", "0x6df1C1E379bC5a00a7b4C6e67A203333772f45A8"


def chain_reads(supplied_units: int) -> ChainAdapter:
    sel = lambda sig: "0x" + keccak(text=sig)[:4].hex()  # noqa: E731
    reserve = "0x" + "".join(hex(v)[2:].rjust(64, "0") for v in [0] * 8) + A_USDT[2:].lower().rjust(64, "0") \
        + "0" * 64 + DEBT_USDT[2:].lower().rjust(64, "0") + "0" * 64 * 4
    routes = [{"rpc": "eth_call", "match": {"to": POOL, "data__startswith": sel("getReserveData(address)")}, "result": reserve},
              {"rpc": "eth_call", "match": {"to": A_USDT, "data__startswith": sel("balanceOf(address)")}, "result": _word(supplied_units)},
              {"rpc": "eth_call", "match": {"to": DEBT_USDT, "data__startswith": sel("balanceOf(address)")}, "result": _word(0)},
              {"rpc": "eth_call", "match": {"to": USDT, "data__startswith": sel("balanceOf(address)")}, "result": _word(250_000_000)},
              {"rpc": "eth_getBalance", "result": hex(2 * 10**17)}, {"rpc": "eth_chainId", "result": "0x1"}]
    return ChainAdapter(Web3(RecordedProvider(routes)), ACCOUNT)


def test_reconcile_reads_aave_and_wallet_balances_from_chain():
    book = {"aave_v3:aToken:aUSDT": 1000.05, "aave_v3:debtToken:debtUSDT": 0.0, "wallet:BaseToken:USDT": 250.0,
            "wallet:BaseToken:ETH": 0.2, "wallet:Transit:USDT": 40.0}
    gw = VenueGateway(None, {}, chain_reads(1_000_000_000))  # 1000 USDT on chain
    assert reconcile(book, gw) == []  # 0.05 of 1000 = 5e-5 relative: inside 1e-4 (an hour of interest)
    gw = VenueGateway(None, {}, chain_reads(990_000_000))
    (m,) = reconcile(book, gw)
    assert (m.instrument, m.book, m.venue) == ("aave_v3:aToken:aUSDT", 1000.05, 990.0)
    assert m.tolerance == pytest.approx(Tolerances().aave_abs + 1e-4 * 1000.05)


def test_book_positions_are_asset_units(stages):
    st = stages("2024-06-01", "2024-06-03")
    st.fund(5.0, "aave_v3:aToken:aweETH")  # a scaled balance
    pos = book_positions(st.book, st.px)
    assert pos["aave_v3:aToken:aweETH"] == pytest.approx(st.px.amount("aave_v3:aToken:aweETH", 5.0)) != 5.0
    assert pos["binance:Perp:ETHUSDT"] == 0.0


# -- construction from the environment ---------------------------------------------------
def test_factory_refuses_what_it_cannot_execute(flagship, tmp_path, env):
    from trimtab.config.load import load_strategy

    assert unsupported_operations(flagship) == []  # swaps, deposits, withdrawals, bundles: all executable
    configs = Path(__file__).resolve().parents[2] / "configs"
    for name in ("ml_btc_directional_usdt_margin", "ml_usdt_directional_usdt_margin", "btc_basis", "eth_basis"):
        assert unsupported_operations(load_strategy(configs / f"{name}.yaml")) == []  # spot orders and resting stops: executable
    ml = load_strategy(configs / "ml_btc_directional_usdt_margin.yaml")
    t = ml.config.targets[0].model_copy(update={"instrument": "okx:Perp:BTCUSDT"})  # conditional orders not implemented on OKX
    object.__setattr__(ml.config, "targets", [t])
    assert unsupported_operations(ml) == ["okx perp take-profit/stop-loss orders"]
    with pytest.raises(ExecutionSetupError, match="cannot yet carry out okx perp take-profit"):
        venue_gateway(ml, Journal(tmp_path / "j.sqlite"))


def test_factory_lists_every_missing_variable_and_no_value(flagship, tmp_path, env):
    env.delenv("TRIMTAB_ETH_RPC_URL")
    with pytest.raises(ExecutionSetupError) as ei:
        venue_gateway(flagship, Journal(tmp_path / "j.sqlite"), allow_unsupported=True)
    msg = str(ei.value)
    for var in ("TRIMTAB_BYBIT_KEY", "TRIMTAB_OKX_PASSPHRASE", "TRIMTAB_ETH_RPC_URL", "TRIMTAB_ETH_DSA"):
        assert var in msg
    assert "TRIMTAB_BINANCE_KEY" not in msg and all(v not in msg for v in ENV.values())
    assert set(required_env(flagship)) >= {"TRIMTAB_BINANCE_KEY", "TRIMTAB_ETH_PRIVATE_KEY"}


def test_factory_takes_prebuilt_adapters(flagship, tmp_path, env):
    ex = {n: binance()[0] for n in ("binance",)}
    chain = ChainAdapter(Web3(RecordedProvider(CHAIN["responses"])), ACCOUNT, dsa=DSA)
    for n in ("bybit", "okx"):
        env.setenv(f"TRIMTAB_{n.upper()}_KEY", f"{n}Key0123456789")
        env.setenv(f"TRIMTAB_{n.upper()}_SECRET", f"{n}Secret0123456789")
    env.setenv("TRIMTAB_OKX_PASSPHRASE", "okxPass0123456")
    gw = venue_gateway(flagship, Journal(tmp_path / "j.sqlite"), exchanges=ex, chain=chain, allow_unsupported=True, sleep=no_sleep)
    assert gw.live and gw.chain is chain and gw.exchanges["binance"] is ex["binance"]
    assert sorted(gw.exchanges) == ["binance", "bybit", "okx"]  # the rest built from the environment


# -- the flash-loan bundle ---------------------------------------------------------------
ENTRY = Step("s5", "enter", (
    Instruction("morpho", "flash_borrow", "morpho:debtToken:flashWETH", 30.0, "WETH"),
    Instruction("etherfi", "stake", "wallet:BaseToken:ETH", 40.0, "ETH", {"mint": "weETH"}),
    Instruction("aave_v3", "supply", "aave_v3:aToken:aweETH", 37.9, "weETH"),
    Instruction("aave_v3", "borrow", "aave_v3:debtToken:debtWETH", 30.0, "WETH"),
    Instruction("morpho", "flash_repay", "morpho:debtToken:flashWETH", 30.0, "WETH"),
), bundle=True, venue="instadapp", operation="bundle_entry")


def sim_entry_fills(tick=7):
    """The simulation clamped the stake to 39.5 ETH (what the wallet held beyond gas)."""
    f = lambda op, legs: (Fill(tick, "x", op, "trading_fees", [Leg(k, d, a) for k, d, a in legs]), None)  # noqa: E731
    return [f("flash_borrow", [("morpho:debtToken:flashWETH", 30.0, 30.0), ("wallet:BaseToken:ETH", 30.0, 30.0)]),
            f("stake", [("wallet:BaseToken:ETH", -39.5, 39.5), ("wallet:BaseToken:weETH", 37.5, 37.5)]),
            f("supply", [("aave_v3:aToken:aweETH", 37.4, 37.5), ("wallet:BaseToken:weETH", -37.5, -37.5)]),
            f("borrow", [("aave_v3:debtToken:debtWETH", 29.9, 30.0), ("wallet:BaseToken:ETH", 30.0, 30.0)]),
            f("flash_repay", [("morpho:debtToken:flashWETH", -30.0, -30.0), ("wallet:BaseToken:ETH", -30.0, -30.0)]),
            (Fill(tick, "instadapp", "bundle_entry", "gas", [Leg("wallet:BaseToken:ETH", -0.01, 0.01)]), None)]


def test_bundle_is_one_transaction_built_from_what_the_simulation_moved(env, tmp_path):
    from trimtab.live.adapters.bundle import decode_cast

    probe = ChainAdapter(Web3(RecordedProvider(CHAIN["responses"])), ACCOUNT, dsa=DSA)
    gw = VenueGateway(Journal(tmp_path / "j.sqlite"), {}, probe, sleep=no_sleep, poll_s=0.0, receipt_polls=2)
    sent = {}
    real_sign = probe.sign

    def sign(tx, live=False):
        s = real_sign(tx, live=live)
        sent["tx"], sent["hash"] = tx, s.tx_hash
        probe.w3.provider.routes[:0] = [{"rpc": "eth_sendRawTransaction", "result": s.tx_hash},
                                        {"rpc": "eth_getTransactionReceipt", "result": receipt(s.tx_hash)}]
        return s

    probe.sign = sign
    fills = gw.execute(PLAN, ENTRY, 7, sim_entry_fills())
    assert len(probe.w3.provider.calls("eth_sendRawTransaction")) == 1
    spells = decode_cast(sent["tx"].data)
    assert spells[2].connector == "EETH-A" and spells[2].args[0] == 395 * 10**17  # the clamped 39.5 ETH, not 40
    assert [f.operation for f, _ in fills] == ["flash_borrow", "stake", "supply", "borrow", "flash_repay", "bundle_entry"]
    assert fills[-1][0].legs[0].delta == pytest.approx(-GAS_USED * GAS_PRICE / 1e18)


def test_enable_execution_on_resume_reconciles_and_halts_on_a_mismatch(market, tmp_path, env):
    from trimtab.config.load import load_strategy
    from trimtab.engine.kernel import Engine
    from trimtab.live.connect import enable_execution

    strategy = load_strategy(Path(__file__).resolve().parents[2] / "configs" / "pure_lending_usdt.yaml")
    engine = Engine(strategy, market.slice("2024-06-01", "2024-06-02"), tmp_path / "run")  # the book: capital in wallet USDT
    chain = chain_reads(0)
    bal = "0x" + keccak(text="balanceOf(address)")[:4].hex()
    chain.w3.provider.routes += [{"rpc": "eth_call", "match": {"data__startswith": bal}, "result": _word(0)}]
    gw, found = enable_execution(engine, resume=True, chain=chain, allow_unsupported=True)
    assert engine.executor.gateway is gw and engine.halted
    # the chain holds 0.2 ETH the book does not know, and 250 USDT where the book has its capital
    assert [(m.instrument, m.book, m.venue) for m in found] == [("wallet:BaseToken:ETH", 0.0, 0.2),
                                                                ("wallet:BaseToken:USDT", engine.capital, 250.0)]
    rec = json.loads(engine.journal.db.execute("SELECT value FROM meta WHERE key='reconciliation'").fetchone()[0])
    assert not rec["ok"] and [m["instrument"] for m in rec["mismatches"]] == ["wallet:BaseToken:ETH", "wallet:BaseToken:USDT"]
