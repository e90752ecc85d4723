"""Chain adapter against recorded Ethereum JSON-RPC responses (no network here).

Calldata is decoded back *independently* (eth_abi with literal Solidity signatures, not the
adapter's own ABI tables) and compared with the intended function and arguments.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from eth_abi import decode
from eth_utils import keccak
from web3 import Web3

from trimtab.live.adapters.base import AdapterError
from trimtab.live.adapters.bundle import decode_cast, to_base_units
from trimtab.live.adapters.chain import ChainAdapter
from trimtab.live.adapters.recorded import RecordedProvider, load_fixture
from trimtab.planner.plan import Instruction, Step

FIXTURE = load_fixture(Path(__file__).resolve().parents[1] / "fixtures" / "live" / "chain_mainnet.json")
ACCOUNT, DSA = FIXTURE["account"], FIXTURE["dsa"]
#: Hardhat/Anvil test account #0: its private key is published for local testing; not a secret.
TEST_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
POOL = "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
WEETH = "0xCd5fE23C85820F7B72D0926FC9b05b43E359b7ee"
WSTETH = "0x7f39C581F595B53c5cb19bD0b3f8dA6c935E2Ca0"
USDT = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
MAX = 2**256 - 1


def call(data: str, signature: str) -> tuple:
    """Decode calldata against a literal Solidity signature; the selector must match."""
    assert data[:10] == "0x" + keccak(text=signature)[:4].hex(), f"selector is not {signature}"
    types = signature[signature.index("(") + 1:-1]
    return decode(_split(types), bytes.fromhex(data[10:]))


def _split(types: str) -> list[str]:
    return [t for t in types.split(",") if t] if "(" not in types else [types]


def addr(a) -> str:
    return Web3.to_checksum_address(a)


@pytest.fixture
def chain():
    provider = RecordedProvider(FIXTURE["responses"])
    return ChainAdapter(Web3(provider), ACCOUNT, dsa=DSA), provider


def ins(venue, op, key, amount, asset, **params):
    return Instruction(venue, op, key, amount, asset, params)


def test_aave_supply_approves_then_supplies_in_base_units(chain):
    ca, p = chain
    approve, supply = ca.build(ins("aave_v3", "supply", "aave_v3:aToken:aweETH", 12.5, "weETH"))
    assert approve.to == WEETH and supply.to == POOL and supply.value == 0
    spender, amount = call(approve.data, "approve(address,uint256)")
    assert (addr(spender), amount) == (POOL, 12_500_000_000_000_000_000)
    asset, amount, on_behalf, referral = call(supply.data, "supply(address,uint256,address,uint16)")
    assert (addr(asset), amount, addr(on_behalf), referral) == (WEETH, 12_500_000_000_000_000_000, ACCOUNT, 0)
    assert p.calls("eth_call")[0][0]["to"] == WEETH  # allowance was read on chain first


def test_usdt_repay_uses_six_decimals_and_skips_approve_when_allowed(chain):
    ca, _ = chain
    (repay,) = ca.build(ins("aave_v3", "repay", "aave_v3:debtToken:debtUSDT", 1234.567891, "USDT"))
    asset, amount, mode, on_behalf = call(repay.data, "repay(address,uint256,uint256,address)")
    assert (addr(asset), amount, mode, addr(on_behalf)) == (USDT, 1_234_567_891, 2, ACCOUNT)


def test_aave_withdraw_and_borrow(chain):
    ca, _ = chain
    (w,) = ca.build(ins("aave_v3", "withdraw", "aave_v3:aToken:awstETH", 3.0, "wstETH"))
    assert call(w.data, "withdraw(address,uint256,address)") == (WSTETH.lower(), 3 * 10**18, ACCOUNT.lower())
    (b,) = ca.build(ins("aave_v3", "borrow", "aave_v3:debtToken:debtWETH", 0.75, "WETH"))
    asset, amount, mode, referral, on_behalf = call(b.data, "borrow(address,uint256,uint256,uint16,address)")
    assert (addr(asset), amount, mode, referral, addr(on_behalf)) == (WETH, 75 * 10**16, 2, 0, ACCOUNT)


def test_etherfi_deposit_then_wrap_to_weeth(chain):
    ca, _ = chain
    dep, appr, wrap = ca.build(ins("etherfi", "stake", "wallet:BaseToken:ETH", 2.0, "ETH", mint="weETH"))
    assert dep.to == "0x308861A430be4cce5502d0A12724771Fc6DaF216" and dep.value == 2 * 10**18
    assert dep.data == "0x" + keccak(text="deposit()")[:4].hex()
    assert appr.to == "0x35fA164735182de50811E8e2E824cFb9B6118ac2"  # eETH
    assert call(appr.data, "approve(address,uint256)") == (WEETH.lower(), 2 * 10**18 - 2)
    assert wrap.to == WEETH and call(wrap.data, "wrap(uint256)") == (2 * 10**18 - 2,)


def test_lido_submit_then_wrap_to_wsteth(chain):
    ca, _ = chain
    sub, appr, wrap = ca.build(ins("lido", "stake", "wallet:BaseToken:ETH", 1.5, "ETH", mint="wstETH"))
    assert sub.to == "0xae7ab96520DE3A18E5e111B5EaAb095312D7fE84" and sub.value == 15 * 10**17
    assert call(sub.data, "submit(address)") == ("0x0000000000000000000000000000000000000000",)
    assert wrap.to == WSTETH and call(wrap.data, "wrap(uint256)") == (15 * 10**17 - 2,)
    with pytest.raises(AdapterError, match="takes ETH"):
        ca.build(ins("lido", "stake", "wallet:BaseToken:WETH", 1.0, "WETH"))


def test_unknown_operations_are_refused(chain):
    ca, _ = chain
    with pytest.raises(AdapterError, match="no transaction builder"):
        ca.build(ins("uniswap_v3", "swap", "wallet:BaseToken:USDT", 100.0, "USDT", buy="ETH"))


ENTRY = Step("s5", "enter", (
    ins("morpho", "flash_borrow", "morpho:debtToken:flashWETH", 30.0, "WETH"),
    ins("etherfi", "stake", "wallet:BaseToken:ETH", 40.0, "ETH", mint="weETH"),
    ins("aave_v3", "supply", "aave_v3:aToken:aweETH", 37.9, "weETH"),
    ins("aave_v3", "borrow", "aave_v3:debtToken:debtWETH", 30.0, "WETH"),
    ins("morpho", "flash_repay", "morpho:debtToken:flashWETH", 30.0, "WETH"),
), bundle=True, venue="instadapp", operation="bundle_entry")

UNWIND = Step("s6", "unwind", (
    ins("morpho", "flash_borrow", "morpho:debtToken:flashWETH", 10.0, "WETH"),
    ins("aave_v3", "repay", "aave_v3:debtToken:debtWETH", 10.0, "WETH"),
    ins("aave_v3", "withdraw", "aave_v3:aToken:awstETH", 8.5, "wstETH"),
    ins("uniswap_v3", "swap", "wallet:BaseToken:wstETH", 8.5, "wstETH", buy="ETH"),
    ins("morpho", "flash_repay", "morpho:debtToken:flashWETH", 10.0, "WETH"),
), bundle=True, venue="instadapp", operation="bundle_unwind")

CONNECTOR_SIGS = {
    ("WETH-A", "withdraw"): "withdraw(uint256,uint256,uint256)",
    ("EETH-A", "deposit"): "deposit(uint256,uint256,uint256)",
    ("WEETH-A", "deposit"): "deposit(uint256,uint256,uint256)",
    ("AAVE-V3-A", "deposit"): "deposit(address,uint256,uint256,uint256)",
    ("AAVE-V3-A", "borrow"): "borrow(address,uint256,uint256,uint256,uint256)",
    ("AAVE-V3-A", "payback"): "payback(address,uint256,uint256,uint256,uint256)",
    ("AAVE-V3-A", "withdraw"): "withdraw(address,uint256,uint256,uint256)",
    ("UNISWAP-V3-SWAP-A", "sell"): "sell(address,address,uint24,uint256,uint256,uint256,uint256)",
    ("INSTAPOOL-C", "flashPayback"): "flashPayback(address,uint256,uint256,uint256)",
}


def decode_bundle(data: str):
    """Independent decoding: cast -> flashBorrowAndCast -> (targets, datas) -> each spell."""
    targets, datas, origin = call(data, "cast(string[],bytes[],address)")
    assert list(targets) == ["INSTAPOOL-C"]
    token, amt, route, inner, extra = call("0x" + datas[0].hex(), "flashBorrowAndCast(address,uint256,uint256,bytes,bytes)")
    names, spells = decode(["string[]", "bytes[]"], inner)
    # (connector, method, decoded args); the 4-byte selector picks the literal signature
    out = []
    for n, d in zip(names, spells):
        sig = next(s for (c, m), s in CONNECTOR_SIGS.items() if c == n and d[:4] == keccak(text=s)[:4])
        out.append((n, sig.split("(")[0], call("0x" + d.hex(), sig)))
    return addr(origin), addr(token), amt, route, extra, out


def test_entry_bundle_is_one_dsa_cast_of_a_flash_loan(chain):
    ca, _ = chain
    tx = ca.build_bundle(ENTRY)
    assert tx.to == DSA and tx.value == 0 and tx.function == "cast"
    origin, token, amt, route, extra, spells = decode_bundle(tx.data)
    assert (origin, token, amt, route, extra) == (ACCOUNT, WETH, 30 * 10**18, 5, b"")
    assert spells == [
        ("WETH-A", "withdraw", (30 * 10**18, 0, 0)),
        ("EETH-A", "deposit", (40 * 10**18, 0, 0)),
        ("WEETH-A", "deposit", (MAX, 0, 1)),
        ("AAVE-V3-A", "deposit", (WEETH.lower(), 379 * 10**17, 1, 0)),
        ("AAVE-V3-A", "borrow", (WETH.lower(), 30 * 10**18, 2, 0, 0)),
        ("INSTAPOOL-C", "flashPayback", (WETH.lower(), 30 * 10**18, 0, 0)),
    ]
    # the adapter's own decoder agrees (used for audits and journals)
    assert [f"{s.connector}.{s.method}" for s in decode_cast(tx.data)][1:] == tx.args["spells"]


def test_unwind_bundle_repays_withdraws_sells_and_pays_back_with_fee(chain):
    ca, _ = chain
    ca.flash_fee_bps = 5.0
    tx = ca.build_bundle(UNWIND, min_rate=1.17)
    _, token, amt, route, _, spells = decode_bundle(tx.data)
    assert (token, amt) == (WETH, 10 * 10**18)
    assert spells == [
        ("AAVE-V3-A", "payback", (WETH.lower(), 10 * 10**18, 2, 0, 0)),
        ("AAVE-V3-A", "withdraw", (WSTETH.lower(), 85 * 10**17, 0, 2)),
        ("UNISWAP-V3-SWAP-A", "sell", (WETH.lower(), WSTETH.lower(), 100, 117 * 10**16, 85 * 10**17, 2, 0)),
        ("INSTAPOOL-C", "flashPayback", (WETH.lower(), 10 * 10**18 + 5 * 10**15, 0, 0)),  # +5 bps
    ]
    with pytest.raises(AdapterError, match="min_rate"):
        ca.build_bundle(UNWIND)


def test_malformed_bundles_are_refused(chain):
    ca, _ = chain
    bad = Step("s7", "x", ENTRY.instructions[1:], bundle=True, venue="instadapp", operation="bundle_entry")
    with pytest.raises(AdapterError, match="not an entry bundle"):
        ca.build_bundle(bad)
    mixed = Step("s8", "x", ENTRY.instructions[:2] + (ins("aave_v3", "supply", "aave_v3:aToken:awstETH", 1.0, "wstETH"),)
                 + ENTRY.instructions[3:], bundle=True, venue="instadapp", operation="bundle_entry")
    with pytest.raises(AdapterError, match="mints weETH"):
        ca.build_bundle(mixed)
    with pytest.raises(AdapterError, match="DSA"):
        ChainAdapter(ca.w3, ACCOUNT).build_bundle(ENTRY)


def test_simulate_reports_success_and_revert_reason(chain):
    ca, p = chain
    ok = ca.simulate(ca.build_bundle(ENTRY))
    assert ok.ok and ok.return_data == "0x" + "00" * 32
    sent = p.calls("eth_call")[-1][0]
    assert addr(sent["to"]) == DSA and addr(sent["from"]) == ACCOUNT
    (borrow,) = ca.build(ins("aave_v3", "borrow", "aave_v3:debtToken:debtWETH", 500.0, "WETH"))
    bad = ca.simulate(borrow)  # recorded: Aave reverts with '35' (health factor below 1)
    assert not bad.ok and bad.reason == "35"


def test_send_needs_the_live_flag_and_the_key_from_the_environment(chain, monkeypatch):
    ca, p = chain
    (supply,) = ca.build(ins("aave_v3", "supply", "aave_v3:aToken:aUSDT", 10.0, "USDT"))
    with pytest.raises(AdapterError, match="live=True"):
        ca.send(supply)
    monkeypatch.delenv("TRIMTAB_ETH_PRIVATE_KEY", raising=False)
    with pytest.raises(KeyError, match="TRIMTAB_ETH_PRIVATE_KEY"):
        ca.send(supply, live=True)
    assert p.calls("eth_sendRawTransaction") == []


def test_send_simulates_signs_and_sends_the_same_calldata(chain, monkeypatch):
    ca, p = chain
    monkeypatch.setenv("TRIMTAB_ETH_PRIVATE_KEY", TEST_KEY)
    (supply,) = ca.build(ins("aave_v3", "supply", "aave_v3:aToken:aUSDT", 10.0, "USDT"))
    h = ca.send(supply, live=True)
    assert h == FIXTURE["responses"][-1]["result"]
    (raw,) = p.calls("eth_sendRawTransaction")
    from eth_account import Account
    from eth_account.typed_transactions import TypedTransaction

    from hexbytes import HexBytes

    tx = TypedTransaction.from_bytes(HexBytes(raw[0])).as_dict()
    assert addr(tx["to"]) == POOL and "0x" + bytes(tx["data"]).hex() == supply.data
    assert tx["chainId"] == 1 and tx["nonce"] == 0x2A and tx["gas"] == int(0x3D090 * 1.2)
    assert tx["maxFeePerGas"] == 2 * 10**9 + 10**8 and tx["maxPriorityFeePerGas"] == 10**8
    assert Account.recover_transaction(raw[0]) == ACCOUNT
    assert [m for m, _ in p.requests].index("eth_call") < [m for m, _ in p.requests].index("eth_sendRawTransaction")


def test_send_refuses_a_reverting_transaction(chain, monkeypatch):
    ca, p = chain
    monkeypatch.setenv("TRIMTAB_ETH_PRIVATE_KEY", TEST_KEY)
    (borrow,) = ca.build(ins("aave_v3", "borrow", "aave_v3:debtToken:debtWETH", 500.0, "WETH"))
    with pytest.raises(AdapterError, match="reverted, not sent: 35"):
        ca.send(borrow, live=True)
    assert p.calls("eth_sendRawTransaction") == []


def test_base_units_round_down():
    assert to_base_units(1.2345678, 6) == 1_234_567
    assert to_base_units(0.1, 18) == 10**17
    with pytest.raises(ValueError):
        to_base_units(-1.0, 18)
