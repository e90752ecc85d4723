"""Live venue facts come from the venue files (``live:`` in venues/*.yaml), not from Python.

Each test copies the project's YAML folders to a temporary root, changes one fact there, and
checks that the adapter (or the data feed, or the execution set-up) built from that root uses
it; a venue file without a ``live:`` block is refused with one line naming the file. A last
check walks the source: no comparison with a live venue's name outside its adapter package.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from trimtab.config.load import load_strategy
from trimtab.errors import ConfigError
from trimtab.live.adapters.base import AdapterError
from trimtab.live.adapters.binance import BinanceAdapter
from trimtab.live.adapters.okx import OkxAdapter
from trimtab.live.adapters.okx import config as okx_config
from trimtab.live.adapters.recorded import RecordedSession, load_fixture
from trimtab.live.adapters.registry import exchange_adapter, live_facts, live_venues, market_data_clients
from trimtab.live.connect import ExecutionSetupError, check_execution, required_env
from trimtab.live.execution import unsupported_operations
from trimtab.planner.plan import Instruction

from conftest import copy_project, edit_venue as edit  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "live"
FLAGSHIP = "usdt_eth_staking_hedged_leveraged"


@pytest.fixture
def root(tmp_path):
    return copy_project(tmp_path)


def drop_live(root: Path, venue: str) -> None:
    f = root / "venues" / f"{venue}.yaml"
    text = f.read_text()
    f.write_text(text[:text.index("\nlive:")] + "\n")


def okx_recorded(facts):
    a = exchange_adapter("okx", facts)
    a.exchange.session = RecordedSession(load_fixture(FIX / "okx_swap.json")["responses"])
    a.exchange.enableRateLimit = False
    return a


def test_the_adapter_uses_the_facts_of_its_venue_file(root):
    edit(root, "okx", "client_id_param: clOrdId ", "client_id_param: myOrderTag ")
    changed, shipped = okx_config.facts(root), okx_config.facts()
    order = Instruction("okx", "trade", "okx:Perp:ETHUSDT", 1.0, "ETH")
    a, b = okx_recorded(changed), okx_recorded(shipped)
    assert a.order_request(order, "cid1", 0.0).params == {"myOrderTag": "cid1"}
    assert b.order_request(order, "cid1", 0.0).params == {"clOrdId": "cid1"}
    edit(root, "okx", "  passphrase: true", "  passphrase: true\n  quotes: [USDC]")
    c = okx_recorded(okx_config.facts(root))  # ETH-USDT-SWAP is no longer a quote it trades
    with pytest.raises(AdapterError, match="no linear perpetual market for okx:Perp:ETHUSDT"):
        c.symbol_for("okx:Perp:ETHUSDT")
    assert b.symbol_for("okx:Perp:ETHUSDT") == "ETH/USDT:USDT"


def test_each_venue_builds_its_own_adapter_class_from_its_facts(root):
    edit(root, "bybit", "transfer_resend_safe: true ", "transfer_resend_safe: false ")
    edit(root, "binance", "ccxt_id: binanceusdm ", "ccxt_id: binancecoinm ")
    by = exchange_adapter("bybit", root=root)
    bn = exchange_adapter("binance", root=root)
    assert by.transfer_resend_safe is False and exchange_adapter("bybit").transfer_resend_safe is True
    assert isinstance(bn, BinanceAdapter) and bn.exchange.id == "binancecoinm"
    assert exchange_adapter("binance").exchange.id == "binanceusdm"
    assert sorted(live_venues(root)) == ["binance", "bybit", "okx"]


def test_the_data_feed_clients_come_from_the_venue_files(root):
    edit(root, "bybit", "- {ccxt_id: bybit, market: spot}", "- {ccxt_id: bybit, market: spot, ccxt_options: {fetchMargins: false}}")
    clients = market_data_clients(root)
    assert list(clients["bybit"]) == ["linear", "spot"]
    assert clients["bybit"]["spot"].ccxt_options == {"fetchMargins": False}
    assert clients["bybit"]["linear"].ccxt_options == {"defaultSubType": "linear"}
    assert market_data_clients()["bybit"]["spot"].ccxt_options == {}
    assert set(market_data_clients()) == {"binanceusdm", "binance", "bybit", "okx"}


def test_a_new_venue_is_a_venue_file_with_a_live_block(root):
    text = (root / "venues" / "okx.yaml").read_text().replace("name: okx", "name: okx_sub")
    (root / "venues" / "okx_sub.yaml").write_text(text)  # a sub-account: same adapter package
    assert "okx_sub" in live_venues(root)
    a = exchange_adapter("okx_sub", root=root)
    a.exchange.session = RecordedSession(load_fixture(FIX / "okx_swap.json")["responses"])
    a.exchange.enableRateLimit = False
    assert isinstance(a, OkxAdapter) and a.venue == "okx_sub"
    assert a.symbol_for("okx_sub:Perp:ETHUSDT") == "ETH/USDT:USDT"
    assert a.instrument_for("ETH/USDT:USDT") == "okx_sub:Perp:ETHUSDT"


def test_execution_setup_reads_the_strategy_venue_files(root):
    edit(root, "binance", "  wallet_field: walletBalance", "  passphrase: true\n  wallet_field: walletBalance")
    drop_live(root, "okx")
    s = load_strategy(root / "configs" / f"{FLAGSHIP}.yaml")
    assert "TRIMTAB_BINANCE_PASSPHRASE" in required_env(s)
    assert "TRIMTAB_BINANCE_PASSPHRASE" not in required_env(load_strategy(ROOT / "configs" / f"{FLAGSHIP}.yaml"))
    with pytest.raises(ExecutionSetupError) as ei:
        check_execution(s)
    msg = str(ei.value)
    assert "no exchange adapter for okx" in msg and str(root / "venues" / "okx.yaml") in msg and "\n" not in msg


def test_a_venue_without_a_live_block_is_refused_naming_its_file(root):
    drop_live(root, "okx")
    with pytest.raises(AdapterError) as ei:
        exchange_adapter("okx", root=root)
    msg = str(ei.value)
    assert str(root / "venues" / "okx.yaml") in msg and "no 'live:' block" in msg and "\n" not in msg
    assert live_venues(root) == ["binance", "bybit"]
    with pytest.raises(AdapterError, match=r"morpho\.yaml has no 'live:' block"):
        live_facts("morpho", root)
    with pytest.raises(AdapterError, match=r"aave_v3\.yaml: the 'live:' block is of kind 'chain', so trimtab has no exchange adapter"):
        live_facts("aave_v3", root)


def test_a_bad_live_block_is_refused_at_its_line(root):
    edit(root, "okx", "  passphrase: true", "  passphrase: true\n  pasphrase: true")
    with pytest.raises(AdapterError) as ei:
        live_facts("okx", root)
    msg = str(ei.value)
    assert "okx.yaml:" in msg and "pasphrase" in msg and "\n" not in msg
    edit(root, "bybit", "adapter: bybit", "adapter: os")
    with pytest.raises(AdapterError, match="no adapter package trimtab.live.adapters.os"):
        exchange_adapter("bybit", root=root)


def test_a_live_block_on_a_venue_that_is_not_an_exchange_is_a_config_error(root):
    okx = (root / "venues" / "okx.yaml").read_text()
    f = root / "venues" / "morpho.yaml"
    f.write_text(f.read_text() + okx[okx.index("\nlive:"):])
    with pytest.raises(ConfigError) as ei:
        load_strategy(root / "configs" / f"{FLAGSHIP}.yaml")
    assert "morpho.yaml" in str(ei.value) and "'live:' block of kind 'exchange' configures an exchange adapter" in str(ei.value)


def test_spot_and_stops_support_follows_the_venue_files(root):
    s = load_strategy(ROOT / "configs" / "ml_btc_directional_usdt_margin.yaml")
    assert unsupported_operations(s) == []
    venue = s.config.targets[0].instrument.split(":")[0]
    f = root / "venues" / f"{venue}.yaml"
    text = f.read_text()
    start = text.index("  stops:")
    end = text.index("  transfers:")
    f.write_text(text[:start] + text[end:])
    s2 = load_strategy(root / "configs" / "ml_btc_directional_usdt_margin.yaml")
    assert unsupported_operations(s2) == [f"{venue} perp take-profit/stop-loss orders"]


def _venue_comparisons(tree: ast.AST, names: set[str]) -> list[int]:
    """Lines comparing something with a venue-name literal (``==``, ``!=``, ``in (...)``)."""
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        for op, right in zip(node.ops, node.comparators):
            operands = [node.left, right]
            if isinstance(op, (ast.In, ast.NotIn)) and isinstance(right, (ast.Tuple, ast.List, ast.Set)):
                operands += list(right.elts)
            if any(isinstance(x, ast.Constant) and x.value in names for x in operands):
                out.append(node.lineno)
    return out


def test_no_venue_name_branch_outside_the_venue_package():
    names = set(live_venues())
    assert names >= {"binance", "bybit", "okx"}
    src = ROOT / "src" / "trimtab"
    found = []
    for f in sorted(src.rglob("*.py")):
        parts = f.relative_to(src).parts
        if parts[:2] == ("live", "adapters") and len(parts) > 3 and parts[2] in names:
            continue  # the venue's own package
        for line in _venue_comparisons(ast.parse(f.read_text()), names):
            found.append(f"{f.relative_to(ROOT)}:{line}")
    assert found == []


def test_no_chain_venue_name_branch_on_the_live_side():
    """The chain venues (``kind: chain``) too: no comparison with their names in ``live/``
    outside their own package. (The backtest side -- planner, simulated venues, config checks --
    names the catalog's venues by design and is not scanned for them.)"""
    names = set(live_venues(kind="chain"))
    assert names >= {"aave_v3", "etherfi", "lido", "wallet"}
    src = ROOT / "src" / "trimtab"
    found = []
    for f in sorted((src / "live").rglob("*.py")):
        parts = f.relative_to(src).parts
        if parts[:2] == ("live", "adapters") and len(parts) > 3 and parts[2] in names:
            continue  # the venue's own package
        for line in _venue_comparisons(ast.parse(f.read_text()), names):
            found.append(f"{f.relative_to(ROOT)}:{line}")
    assert found == []


def test_the_scan_finds_a_venue_name_branch():
    code = "if v == 'aave_v3':\n    pass\nok = x in ('etherfi', 'other')\nfine = v.model == 'dex'\n"
    assert _venue_comparisons(ast.parse(code), {"aave_v3", "etherfi"}) == [1, 3]
