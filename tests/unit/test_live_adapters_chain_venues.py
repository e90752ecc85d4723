"""Chain venue facts come from the venue files (``live:`` blocks of ``kind: chain``), not Python.

Each test copies the project's YAML folders to a temporary root, changes one fact there
(a contract address, a call argument, a bundle connector, a pool fee tier, a position type),
and checks that the chain adapter built from that root uses it while the shipped files still
give the shipped answer. Transactions are only built (web3 encodes calldata offline), so no
node is needed except where an allowance would be read, which these tests avoid.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from eth_abi import decode
from eth_utils import keccak
from web3 import Web3

from trimtab.config.load import load_strategy
from trimtab.errors import ConfigError
from trimtab.live.adapters.aave_v3 import AaveV3Adapter
from trimtab.live.adapters.base import AdapterError
from trimtab.live.adapters.chain import ChainAdapter
from trimtab.live.adapters.contracts import TOKENS
from trimtab.live.adapters.etherfi import EtherFiAdapter
from trimtab.live.adapters.lido import LidoAdapter
from trimtab.live.adapters.registry import chain_facts, chain_venue, chain_venues, live_venues, strategy_chain_venues
from trimtab.live.adapters.uniswap_v3 import UniswapV3Adapter
from trimtab.live.adapters.wallet import WalletAdapter
from trimtab.live.execution import unsupported_operations
from trimtab.planner.plan import Instruction, Step

from conftest import copy_project, edit_venue as edit  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = "usdt_eth_staking_hedged_leveraged"
ACCOUNT = "0x1111111111111111111111111111111111111111"
DSA = "0x2222222222222222222222222222222222222222"
OTHER = "0x3333333333333333333333333333333333333333"


@pytest.fixture
def root(tmp_path):
    return copy_project(tmp_path)


def adapter(root: Path | None = None) -> ChainAdapter:
    """A chain adapter over the venue files of ``root`` (None: the checkout); no node behind it."""
    return ChainAdapter(Web3(), ACCOUNT, dsa=DSA, venues=chain_venues(root))


def args(tx, signature: str) -> tuple:
    assert tx.data[:10] == "0x" + keccak(text=signature)[:4].hex(), f"selector is not {signature}"
    types = signature[signature.index("(") + 1:-1]
    return decode([t for t in types.split(",") if t] if "(" not in types else [types], bytes.fromhex(tx.data[10:]))


def stake(venue: str, amount: float = 1.5) -> Instruction:
    return Instruction(venue, "stake", "wallet:BaseToken:ETH", amount, "ETH", {})


def test_every_chain_venue_builds_its_own_adapter_class():
    v = chain_venues()
    assert set(live_venues(kind="chain")) == set(v) >= {"aave_v3", "etherfi", "lido", "wallet", "uniswap_v3", "uniswap_v3_router",
                                                         "instadapp"}
    kinds = {n: type(a) for n, a in v.items()}
    assert kinds["aave_v3"] is AaveV3Adapter and kinds["etherfi"] is EtherFiAdapter and kinds["lido"] is LidoAdapter
    assert kinds["wallet"] is WalletAdapter and kinds["uniswap_v3"] is kinds["uniswap_v3_router"] is UniswapV3Adapter
    assert set(live_venues(kind=None)) == set(v) | set(live_venues())  # exchanges and chain venues, nothing else


def test_the_stake_uses_the_contracts_and_rounding_of_the_venue_file(root):
    edit(root, "lido", 'stake: {address: "0xae7ab96520DE3A18E5e111B5EaAb095312D7fE84"', f'stake: {{address: "{OTHER}"')
    edit(root, "lido", "share_rounding_wei: 2", "share_rounding_wei: 5")
    deposit, approve, wrap = adapter(root).build(stake("lido"))
    assert deposit.to == OTHER and deposit.value == 15 * 10**17 and deposit.function == "submit"
    assert args(wrap, "wrap(uint256)") == (15 * 10**17 - 5,)
    assert approve.to == TOKENS["stETH"][0]  # the share token is approved, wherever the stake goes
    shipped = adapter().build(stake("lido"))
    assert shipped[0].to == TOKENS["stETH"][0] and args(shipped[2], "wrap(uint256)") == (15 * 10**17 - 2,)


def test_etherfi_and_lido_differ_only_in_facts_and_the_stake_call():
    ef, li = adapter().build(stake("etherfi")), adapter().build(stake("lido"))
    assert [t.function for t in ef] == ["deposit", "approve", "wrap"] and ef[0].data == "0x" + keccak(text="deposit()")[:4].hex()
    assert [t.function for t in li] == ["submit", "approve", "wrap"] and args(li[0], "submit(address)") == ("0x" + "00" * 20,)
    assert (ef[2].to, li[2].to) == (TOKENS["weETH"][0], TOKENS["wstETH"][0])


def test_the_wrappers_the_venue_files_name_are_the_tokens_trimtab_prices():
    for venue in ("etherfi", "lido"):
        f = chain_facts(venue)
        assert f.contracts["wrap"].address == TOKENS[f.tokens["wrapped"]][0]
        assert f.tokens["share"] in TOKENS


def test_aave_calls_use_the_call_args_of_the_venue_file(root):
    edit(root, "aave_v3", "referral_code: 0 ", "referral_code: 7 ")
    borrow = Instruction("aave_v3", "borrow", "aave_v3:debtToken:debtWETH", 0.75, "WETH", {})
    (b,) = adapter(root).build(borrow)
    assert args(b, "borrow(address,uint256,uint256,uint16,address)")[2:4] == (2, 7)
    (s,) = adapter().build(borrow)
    assert args(s, "borrow(address,uint256,uint256,uint16,address)")[2:4] == (2, 0)
    assert s.to == chain_facts("aave_v3").contracts["pool"].address


def test_operations_a_venue_file_does_not_list_are_refused(root):
    edit(root, "aave_v3", "operations: [supply, withdraw, borrow, repay]", "operations: [supply, withdraw, repay]")
    borrow = Instruction("aave_v3", "borrow", "aave_v3:debtToken:debtWETH", 0.75, "WETH", {})
    with pytest.raises(AdapterError, match="no transaction builder for aave_v3 borrow"):
        adapter(root).build(borrow)
    assert adapter().builds(borrow) and not adapter(root).builds(borrow)


def test_the_bundle_stakes_with_the_connectors_of_the_venue_file(root):
    entry = Step("s5", "enter", (
        Instruction("morpho", "flash_borrow", "morpho:debtToken:flashWETH", 30.0, "WETH", {}),
        Instruction("lido", "stake", "wallet:BaseToken:ETH", 40.0, "ETH", {"mint": "wstETH"}),
        Instruction("aave_v3", "supply", "aave_v3:aToken:awstETH", 37.9, "wstETH", {}),
        Instruction("aave_v3", "borrow", "aave_v3:debtToken:debtWETH", 30.0, "WETH", {}),
        Instruction("morpho", "flash_repay", "morpho:debtToken:flashWETH", 30.0, "WETH", {}),
    ), bundle=True, venue="instadapp", operation="bundle_entry")
    assert adapter().build_bundle(entry).args["spells"][1:3] == ["LIDO-STETH-A.deposit", "WSTETH-A.deposit"]
    assert adapter().build_bundle(entry).args["route"] == 5
    edit(root, "instadapp", "flash_route: 5", "flash_route: 9")  # the bundler's facts: Aave v3 flash loans
    assert adapter(root).build_bundle(entry).args["route"] == 9
    edit(root, "lido", "  bundle_connectors: {stake: LIDO-STETH-A, wrap: WSTETH-A}", "")
    with pytest.raises(AdapterError, match="no staking spell for venue 'lido'"):
        adapter(root).build_bundle(entry)


def test_swaps_use_the_fee_tier_of_the_venue_file(root):
    # the shipped file trades ETH/USDT in the 0.05% pool (issue 13); a copy moved to the 0.3% pool
    edit(root, "uniswap_v3", "USDT/WETH: 500", "USDT/WETH: 3000")
    sell_eth = ("uniswap_v3", "ETH", "USDT", 1.0, 3000.0)  # selling ETH: no allowance to read
    sig = "exactInputSingle((address,address,uint24,address,uint256,uint256,uint160))"
    (tx,) = adapter(root).build_swap(*sell_eth)
    assert args(tx, sig)[0][2] == 3000 and tx.value == 10**18
    (shipped,) = adapter().build_swap(*sell_eth)
    assert args(shipped, sig)[0][2] == 500 and shipped.to == chain_facts("uniswap_v3").contracts["router"].address
    assert adapter().swap_payee("uniswap_v3", "ETH") == shipped.to and adapter().swap_payee("uniswap_v3", "USDT") == ACCOUNT


def test_a_pair_without_a_fee_tier_is_refused_at_start_up(root):
    edit(root, "uniswap_v3", "    EIGEN/WETH: 3000\n", "")
    changed = unsupported_operations(load_strategy(root / "configs" / f"{FLAGSHIP}.yaml"))
    assert "uniswap_v3.swap EIGEN/ETH" in changed
    assert "uniswap_v3.swap EIGEN/ETH" not in unsupported_operations(load_strategy(ROOT / "configs" / f"{FLAGSHIP}.yaml"))
    with pytest.raises(AdapterError, match="no Uniswap v3 pool fee tier known for EIGEN/ETH"):
        adapter(root).build_swap("uniswap_v3", "EIGEN", "ETH", 10.0, 0.001)


def test_reconciliation_reads_the_position_types_the_venue_file_lists(root):
    edit(root, "wallet", "positions: [BaseToken]", "positions: []")
    assert chain_venues(root)["wallet"].read(None, "BaseToken", "ETH", [ACCOUNT]) is None  # not read: no chain call made
    assert adapter(root).read("wallet", "BaseToken", "ETH") is None
    assert chain_facts("wallet").positions == ["BaseToken"]
    assert adapter().read("etherfi", "BaseToken", "weETH") is None  # a venue that reads nothing


def test_the_strategy_builds_its_chain_venues_from_the_files_it_loaded(root):
    edit(root, "aave_v3", "referral_code: 0 ", "referral_code: 9 ")
    s = load_strategy(root / "configs" / f"{FLAGSHIP}.yaml")
    v = strategy_chain_venues(s.venues)
    assert {"aave_v3", "etherfi", "wallet", "uniswap_v3"} <= set(v) and "binance" not in v
    assert v["aave_v3"].arg("referral_code") == 9


def test_bad_chain_blocks_are_refused_naming_the_file(root):
    edit(root, "aave_v3", "abi: aave_pool}", "abi: aave_pol}")
    with pytest.raises(AdapterError, match="live.contracts.pool.abi 'aave_pol' is not one of"):
        chain_venue("aave_v3", root=root)
    edit(root, "etherfi", "kind: chain ", "kind: chian ")
    with pytest.raises(AdapterError) as ei:
        chain_facts("etherfi", root)
    assert "etherfi.yaml:" in str(ei.value) and "\n" not in str(ei.value)
    with pytest.raises(AdapterError, match=r"okx\.yaml: the 'live:' block is of kind 'exchange', so trimtab has no chain adapter"):
        chain_facts("okx", root)


def test_a_chain_block_on_an_exchange_is_a_config_error(root):
    lido = (root / "venues" / "lido.yaml").read_text()
    okx = root / "venues" / "okx.yaml"
    text = okx.read_text()
    okx.write_text(text[:text.index("\nlive:")] + lido[lido.index("\nlive:"):])
    with pytest.raises(ConfigError) as ei:
        load_strategy(root / "configs" / f"{FLAGSHIP}.yaml")
    assert "okx.yaml" in str(ei.value) and "a 'live:' block of kind 'chain' configures a chain adapter" in str(ei.value)
