"""Flash-loan bundles as ONE transaction: an Instadapp DSA ``cast`` of spells.

The planner's atomic bundles (``Step(bundle=True)``) are

    entry:  flash_borrow WETH -> stake ETH (mint LST) -> supply LST -> borrow WETH -> flash_repay
    unwind: flash_borrow WETH -> repay WETH -> withdraw LST -> swap LST->ETH -> flash_repay

and become one call to the user's DSA (the ``instadapp`` venue is the bundler)::

    DSA.cast(["INSTAPOOL-C"], [flashBorrowAndCast(WETH, amt, route, abi.encode(targets, datas), "")], origin)

where ``targets``/``datas`` are the inner spells, run inside the flash loan:

    entry:  WETH-A.withdraw(amt)                      unwrap the flashed WETH to ETH
            <stake>.deposit(stake) + <wrap>.deposit(max -> id 1)   the staking venue's
                                    live.bundle_connectors (EtherFi: EETH-A, WEETH-A;
                                    Lido: LIDO-STETH-A, WSTETH-A)
            AAVE-V3-A.deposit(LST, supply, getId 1)   supply exactly what was minted
            AAVE-V3-A.borrow(WETH, borrow, 2)         variable rate
            INSTAPOOL-C.flashPayback(WETH, amt + fee)
    unwind: AAVE-V3-A.payback(WETH, repay, 2)
            AAVE-V3-A.withdraw(LST, amount -> id 2)
            UNISWAP-V3-SWAP-A.sell(WETH, LST, fee tier, min rate, amount, getId 2)
            INSTAPOOL-C.flashPayback(WETH, amt + fee)

The whole cast reverts if any spell reverts (including Aave's health-factor check on borrow
or withdraw), which is the bundle's all-or-nothing promise (DESIGN.md "Plans").

Why Instadapp and not a bare Morpho ``flashLoan``: Morpho Blue calls back
``onMorphoFlashLoan`` on ``msg.sender``, so the caller must be a deployed contract; a DSA is
that contract, and its connectors are audited and deployed. Instadapp's flash aggregator
(``flashloan-aggregator/contracts/aggregator/mainnet/flashloan/main.sol``) routes 1 (Aave v2),
2 (Maker), 5 (Balancer), 9 (Aave v3), 10 (Spark) and has no Morpho route; the shipped route is
5 (Balancer v2, no protocol fee), closest to the catalog's fee-free Morpho leg. The route and
the unwind swap's pool fee tier are the bundler's venue facts (``venues/instadapp.yaml``
``live.call_args``); ``flash_fee_bps`` is a parameter.

Amounts: instruction amounts are asset units; calldata carries base units (18 decimals for
ETH, WETH, weETH, wstETH). The DSA must already hold the ETH that the stake needs beyond the
flashed amount (the strategy's own equity).
"""
from __future__ import annotations

from dataclasses import dataclass

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from web3 import Web3

from trimtab.live.adapters.base import AdapterError
from trimtab.live.adapters.contracts import CONNECTOR_ABIS, DSA_ABI, MAX_UINT, TOKENS, VARIABLE_RATE, ZERO

ID_MINTED = 1   # InstaMemory slot: LST minted by the stake, read by the supply
ID_WITHDRAWN = 2  # InstaMemory slot: LST withdrawn, read by the swap

_w3 = Web3()


@dataclass(frozen=True)
class Spell:
    """One connector call: ``connector`` name, ``method`` and its ``args`` (base units)."""

    connector: str
    method: str
    args: tuple

    def encode(self) -> bytes:
        c = _w3.eth.contract(abi=CONNECTOR_ABIS[self.connector])
        return bytes.fromhex(c.encode_abi(self.method, args=list(self.args))[2:])


def to_base_units(amount: float, decimals: int) -> int:
    """``amount`` asset units -> integer base units, rounded down (never more than planned)."""
    from decimal import ROUND_DOWN, Decimal

    if amount < 0:
        raise ValueError(f"negative amount {amount}")
    return int((Decimal(repr(float(amount))) * (Decimal(10) ** decimals)).to_integral_value(rounding=ROUND_DOWN))


def _ops(step) -> list[str]:
    return [i.operation for i in step.instructions]


def _flash_amounts(step, fee_bps: float) -> tuple[int, int]:
    first, last = step.instructions[0], step.instructions[-1]
    if first.operation != "flash_borrow" or last.operation != "flash_repay":
        raise AdapterError("instadapp", "bundle", f"step {step.id}: a bundle must start with flash_borrow and end with flash_repay, got {_ops(step)}")
    if first.asset != "WETH" or last.asset != "WETH":
        raise AdapterError("instadapp", "bundle", f"step {step.id}: only WETH flash loans are supported, got {first.asset}")
    amt = to_base_units(first.amount, 18)
    payback = amt + (amt * round(fee_bps * 100) + 999_999) // 1_000_000  # fee rounded up
    if to_base_units(last.amount, 18) > payback:
        raise AdapterError("instadapp", "bundle", f"step {step.id}: flash_repay {last.amount} exceeds the flash amount plus fee")
    return amt, payback


def entry_spells(step, flash_fee_bps: float = 0.0, stakers: dict[str, tuple[str, str, str]] | None = None) -> tuple[int, list[Spell]]:
    """Inner spells of an entry bundle; returns (flash amount in wei, spells).

    ``stakers``: staking venue -> (stake connector, wrap connector, LST it ends in), from the
    venues' ``live.bundle_connectors`` (:meth:`ChainVenue.stake_connectors
    <trimtab.live.adapters.chain_venue.ChainVenue.stake_connectors>`)."""
    ins = step.instructions
    if _ops(step) != ["flash_borrow", "stake", "supply", "borrow", "flash_repay"]:
        raise AdapterError("instadapp", "bundle", f"step {step.id}: not an entry bundle: {_ops(step)}")
    amt, payback = _flash_amounts(step, flash_fee_bps)
    stake, supply, borrow = ins[1], ins[2], ins[3]
    stakers = stakers or {}
    if stake.venue not in stakers:
        raise AdapterError("instadapp", "bundle", f"step {step.id}: no staking spell for venue {stake.venue!r}")
    stake_c, wrap_c, lst = stakers[stake.venue]
    if supply.asset != lst or stake.params.get("mint", lst) != lst:
        raise AdapterError("instadapp", "bundle", f"step {step.id}: {stake.venue} mints {lst}, but the bundle supplies {supply.asset}")
    if borrow.asset != "WETH":
        raise AdapterError("instadapp", "bundle", f"step {step.id}: only WETH borrowing is supported, got {borrow.asset}")
    spells = [
        Spell("WETH-A", "withdraw", (amt, 0, 0)),
        Spell(stake_c, "deposit", (to_base_units(stake.amount, 18), 0, 0)),
        Spell(wrap_c, "deposit", (MAX_UINT, 0, ID_MINTED)),
        Spell("AAVE-V3-A", "deposit", (TOKENS[lst][0], to_base_units(supply.amount, 18), ID_MINTED, 0)),
        Spell("AAVE-V3-A", "borrow", (TOKENS["WETH"][0], to_base_units(borrow.amount, 18), VARIABLE_RATE, 0, 0)),
        Spell("INSTAPOOL-C", "flashPayback", (TOKENS["WETH"][0], payback, 0, 0)),
    ]
    return amt, spells


def unwind_spells(step, min_rate: float, flash_fee_bps: float = 0.0, swap_fee_tier: int = 100) -> tuple[int, list[Spell]]:
    """Inner spells of an unwind bundle. ``min_rate``: least WETH accepted per LST (slippage
    included), encoded as the connector's 18-decimal ``unitAmt``; ``swap_fee_tier``: the
    Uniswap v3 pool fee in hundredths of a bip (100 = 0.01%)."""
    ins = step.instructions
    if _ops(step) != ["flash_borrow", "repay", "withdraw", "swap", "flash_repay"]:
        raise AdapterError("instadapp", "bundle", f"step {step.id}: not an unwind bundle: {_ops(step)}")
    if not (min_rate > 0):
        raise AdapterError("instadapp", "bundle", f"step {step.id}: an unwind needs a positive min_rate (WETH per LST), got {min_rate}")
    amt, payback = _flash_amounts(step, flash_fee_bps)
    repay, withdraw, swap = ins[1], ins[2], ins[3]
    lst = withdraw.asset
    if lst not in TOKENS or swap.asset != lst or repay.asset != "WETH":
        raise AdapterError("instadapp", "bundle", f"step {step.id}: unwind must repay WETH and sell the withdrawn LST ({repay.asset}, {lst}, {swap.asset})")
    spells = [
        Spell("AAVE-V3-A", "payback", (TOKENS["WETH"][0], to_base_units(repay.amount, 18), VARIABLE_RATE, 0, 0)),
        Spell("AAVE-V3-A", "withdraw", (TOKENS[lst][0], to_base_units(withdraw.amount, 18), 0, ID_WITHDRAWN)),
        Spell("UNISWAP-V3-SWAP-A", "sell", (TOKENS["WETH"][0], TOKENS[lst][0], swap_fee_tier, to_base_units(min_rate, 18),
                                             to_base_units(swap.amount, 18), ID_WITHDRAWN, 0)),
        Spell("INSTAPOOL-C", "flashPayback", (TOKENS["WETH"][0], payback, 0, 0)),
    ]
    return amt, spells


def cast_calldata(flash_amount: int, spells: list[Spell], route: int, origin: str = ZERO) -> str:
    """``DSA.cast`` calldata (hex) wrapping ``spells`` in one INSTAPOOL-C flash loan of WETH."""
    inner = abi_encode(["string[]", "bytes[]"], [[s.connector for s in spells], [s.encode() for s in spells]])
    flash = Spell("INSTAPOOL-C", "flashBorrowAndCast", (TOKENS["WETH"][0], flash_amount, route, inner, b""))
    dsa = _w3.eth.contract(abi=DSA_ABI)
    return dsa.encode_abi("cast", args=[["INSTAPOOL-C"], [flash.encode()], Web3.to_checksum_address(origin)])


def decode_cast(data: str) -> list[Spell]:
    """Inverse of :func:`cast_calldata`: the outer flash spell followed by the inner spells.

    For audits and journals (what will this transaction do?). Raises ValueError on calldata
    that is not a DSA cast of one INSTAPOOL-C flash loan.
    """
    dsa = _w3.eth.contract(abi=DSA_ABI)
    fn, args = dsa.decode_function_input(data)
    if fn.fn_name != "cast" or list(args["_targetNames"]) != ["INSTAPOOL-C"]:
        raise ValueError("not a DSA cast of one INSTAPOOL-C flash loan")
    out = [_decode_spell("INSTAPOOL-C", args["_datas"][0])]
    targets, datas = abi_decode(["string[]", "bytes[]"], out[0].args[3])
    out += [_decode_spell(t, d) for t, d in zip(targets, datas)]
    return out


def _decode_spell(connector: str, data: bytes) -> Spell:
    c = _w3.eth.contract(abi=CONNECTOR_ABIS[connector])
    fn, args = c.decode_function_input(data)
    return Spell(connector, fn.fn_name, tuple(args.values()))
