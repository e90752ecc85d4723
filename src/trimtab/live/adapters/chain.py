"""Chain adapter over web3: builds, simulates and (only when told) sends Ethereum transactions.

:meth:`ChainAdapter.build` turns one plan instruction into the transactions that carry it out
(:class:`TxRequest`: ``to``, ``data``, ``value`` in wei, and the decoded call for the journal):

- ``aave_v3`` ``supply``/``withdraw``/``borrow``/``repay`` -> Aave v3 Pool calls on behalf of
  the account (variable rate, referral 0), preceded by an ERC-20 ``approve`` of the Pool when
  the current allowance (read with ``eth_call``) is short.
- ``etherfi`` ``stake`` -> ``LiquidityPool.deposit()`` with ETH, ``eETH.approve(weETH)``,
  ``weETH.wrap``; ``lido`` ``stake`` -> ``stETH.submit(0x0)`` with ETH, ``stETH.approve(wstETH)``,
  ``wstETH.wrap``. The wrap amount is the staked amount less 2 wei: eETH and stETH are share
  tokens and mint up to 1-2 wei less than deposited (Lido integration guide, "1-2 wei corner case").

:meth:`ChainAdapter.build_bundle` turns an atomic bundle step into ONE transaction, a DSA
``cast`` (see :mod:`trimtab.live.adapters.bundle`).

:meth:`ChainAdapter.simulate` runs ``eth_call`` against the latest block and reports success or
the revert reason; :meth:`ChainAdapter.send` refuses unless called with ``live=True``, signs
with ``TRIMTAB_ETH_PRIVATE_KEY`` (the only source of the key), simulates first and refuses a
reverting transaction, then sends it as an EIP-1559 transaction.

Units: instruction amounts are asset units; calldata and ``value`` are base units
(``amount x 10**decimals``, rounded down; USDT 6 decimals, the rest 18).
Errors: :class:`~trimtab.live.adapters.base.AdapterError` with a redacted message.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from web3 import Web3

from trimtab.live.adapters import bundle as bundles
from trimtab.live.adapters.base import AdapterError, wrap_errors
from trimtab.live.adapters.contracts import (AAVE_POOL_ABI, AAVE_V3_POOL, CHAIN_ID, DSA_ABI, ERC20_ABI, ETHERFI_LIQUIDITY_POOL,
                                             ETHERFI_POOL_ABI, LIDO_ABI, LIDO_STETH, TOKENS, VARIABLE_RATE, WEETH_ABI,
                                             WSTETH_ABI, ZERO)
from trimtab.live.secrets import eth_private_key

SHARE_ROUNDING_WEI = 2
ERROR_SELECTOR = "0x08c379a0"  # Error(string)


@dataclass(frozen=True)
class TxRequest:
    """An unsigned transaction plus what it means. ``value`` is wei; ``function``/``args``
    are the decoded top-level call (base units), for logs, journals and audits."""

    chain_id: int
    sender: str
    to: str
    data: str
    value: int
    function: str
    args: dict
    description: str

    def call_params(self) -> dict:
        return {"from": self.sender, "to": self.to, "data": self.data, "value": self.value}


@dataclass(frozen=True)
class SimulationResult:
    """``eth_call`` outcome: ``ok``, the raw return data, or the revert ``reason``."""

    ok: bool
    return_data: str = "0x"
    reason: str | None = None


@dataclass
class ChainAdapter:
    """Transactions for ``account`` (the EOA that signs) on Ethereum mainnet.

    ``dsa``: the account's Instadapp DSA address, needed only for bundles. ``flash_route`` and
    ``flash_fee_bps`` configure the bundle flash loan (see :mod:`.bundle`).
    """

    w3: Web3
    account: str
    dsa: str | None = None
    flash_route: int = 5
    flash_fee_bps: float = 0.0
    swap_fee_tier: int = 100
    chain_id: int = CHAIN_ID
    _contracts: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.account = Web3.to_checksum_address(self.account)
        if self.dsa:
            self.dsa = Web3.to_checksum_address(self.dsa)

    @classmethod
    def from_env(cls, account: str, dsa: str | None = None, **kw) -> "ChainAdapter":
        """Connect to ``TRIMTAB_ETH_RPC_URL`` (never logged: it often embeds a provider key)."""
        from trimtab.live.secrets import eth_rpc_url

        url = eth_rpc_url()
        return cls(Web3(Web3.HTTPProvider(url.reveal())), account, dsa, **kw)

    # -- building ----------------------------------------------------------------------
    def _c(self, address: str, abi: list):
        key = (address, id(abi))
        if key not in self._contracts:
            self._contracts[key] = self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)
        return self._contracts[key]

    def _tx(self, address: str, abi: list, fn: str, args: list, value: int = 0, desc: str = "", sender: str | None = None) -> TxRequest:
        c = self._c(address, abi)
        data = c.encode_abi(fn, args=args)
        names = [i["name"] for i in next(e for e in abi if e.get("name") == fn)["inputs"]]
        return TxRequest(self.chain_id, sender or self.account, Web3.to_checksum_address(address), data, int(value), fn,
                         dict(zip(names, args)), desc or fn)

    def _token(self, asset: str) -> tuple[str, int]:
        try:
            return TOKENS[asset]
        except KeyError:
            raise AdapterError("chain", "build", f"unknown token {asset!r} (known: {', '.join(TOKENS)})") from None

    def allowance(self, asset: str, spender: str) -> int:
        """ERC-20 allowance of ``account`` for ``spender`` (base units), via ``eth_call``."""
        addr, _ = self._token(asset)
        with wrap_errors("chain", "allowance"):
            return int(self._c(addr, ERC20_ABI).functions.allowance(self.account, Web3.to_checksum_address(spender)).call())

    def _approve_if_needed(self, asset: str, spender: str, amount: int) -> list[TxRequest]:
        if self.allowance(asset, spender) >= amount:
            return []
        addr, _ = self._token(asset)
        return [self._tx(addr, ERC20_ABI, "approve", [Web3.to_checksum_address(spender), amount], desc=f"approve {asset} for {spender}")]

    def build(self, instruction) -> list[TxRequest]:
        """The transactions (in order) that carry out one non-bundle chain instruction."""
        op, venue = instruction.operation, instruction.venue
        if venue == "aave_v3" and op in ("supply", "withdraw", "borrow", "repay"):
            return self._aave(instruction)
        if venue in ("etherfi", "lido") and op == "stake":
            return self._stake(instruction)
        raise AdapterError("chain", "build", f"no transaction builder for {venue} {op} (instrument {instruction.instrument})")

    def _aave(self, ins) -> list[TxRequest]:
        token, decimals = self._token(ins.asset)
        amt = bundles.to_base_units(ins.amount, decimals)
        if amt <= 0:
            raise AdapterError("chain", "build", f"aave_v3 {ins.operation} of {ins.amount} {ins.asset} rounds to zero")
        pool, me = AAVE_V3_POOL, self.account
        d = f"aave_v3 {ins.operation} {ins.amount} {ins.asset}"
        if ins.operation == "supply":
            return self._approve_if_needed(ins.asset, pool, amt) + [self._tx(pool, AAVE_POOL_ABI, "supply", [token, amt, me, 0], desc=d)]
        if ins.operation == "withdraw":
            return [self._tx(pool, AAVE_POOL_ABI, "withdraw", [token, amt, me], desc=d)]
        if ins.operation == "borrow":
            return [self._tx(pool, AAVE_POOL_ABI, "borrow", [token, amt, VARIABLE_RATE, 0, me], desc=d)]
        return self._approve_if_needed(ins.asset, pool, amt) + [self._tx(pool, AAVE_POOL_ABI, "repay", [token, amt, VARIABLE_RATE, me], desc=d)]

    def _stake(self, ins) -> list[TxRequest]:
        if ins.asset != "ETH":
            raise AdapterError("chain", "build", f"{ins.venue} stake takes ETH, got {ins.asset}")
        wei = bundles.to_base_units(ins.amount, 18)
        if wei <= SHARE_ROUNDING_WEI:
            raise AdapterError("chain", "build", f"{ins.venue} stake of {ins.amount} ETH is too small")
        wrap_amt = wei - SHARE_ROUNDING_WEI
        d = f"{ins.venue} stake {ins.amount} ETH"
        if ins.venue == "etherfi":
            eeth, weeth = TOKENS["eETH"][0], TOKENS["weETH"][0]
            return [self._tx(ETHERFI_LIQUIDITY_POOL, ETHERFI_POOL_ABI, "deposit", [], value=wei, desc=d + " -> eETH"),
                    self._tx(eeth, ERC20_ABI, "approve", [weeth, wrap_amt], desc="approve eETH for weETH"),
                    self._tx(weeth, WEETH_ABI, "wrap", [wrap_amt], desc="wrap eETH -> weETH")]
        steth, wsteth = LIDO_STETH, TOKENS["wstETH"][0]
        return [self._tx(LIDO_STETH, LIDO_ABI, "submit", [ZERO], value=wei, desc=d + " -> stETH"),
                self._tx(steth, ERC20_ABI, "approve", [wsteth, wrap_amt], desc="approve stETH for wstETH"),
                self._tx(wsteth, WSTETH_ABI, "wrap", [wrap_amt], desc="wrap stETH -> wstETH")]

    def build_bundle(self, step, min_rate: float | None = None) -> TxRequest:
        """One DSA ``cast`` transaction for an atomic bundle step (entry or unwind).

        ``min_rate`` (WETH per LST, slippage included) is required for an unwind's swap.
        """
        if not self.dsa:
            raise AdapterError("chain", "bundle", "no DSA address configured: bundles run through the account's Instadapp DSA")
        if step.operation == "bundle_entry":
            amt, spells = bundles.entry_spells(step, self.flash_fee_bps)
        elif step.operation == "bundle_unwind":
            amt, spells = bundles.unwind_spells(step, min_rate or 0.0, self.flash_fee_bps, self.swap_fee_tier)
        else:
            raise AdapterError("chain", "bundle", f"step {step.id}: unknown bundle operation {step.operation!r}")
        data = bundles.cast_calldata(amt, spells, self.flash_route, self.account)
        return TxRequest(self.chain_id, self.account, self.dsa, data, 0, "cast",
                         {"spells": [f"{s.connector}.{s.method}" for s in spells], "flash_amount": amt, "route": self.flash_route},
                         f"{step.operation} {step.id}: " + " -> ".join(i.operation for i in step.instructions))

    # -- simulating and sending --------------------------------------------------------
    def simulate(self, tx: TxRequest, block: str = "latest") -> SimulationResult:
        """``eth_call`` the transaction; a revert is a result (``ok=False``), not an exception."""
        from web3.exceptions import ContractLogicError

        try:
            out = self.w3.eth.call(tx.call_params(), block)
        except ContractLogicError as e:
            return SimulationResult(False, reason=_revert_reason(e))
        except Exception as e:  # noqa: BLE001
            raise AdapterError("chain", "simulate", f"{type(e).__name__}: {e}", retryable=True) from None
        return SimulationResult(True, "0x" + bytes(out).hex())

    def send(self, tx: TxRequest, live: bool = False, gas_margin: float = 1.2) -> str:
        """Sign and send ``tx``; returns the transaction hash (hex).

        Refuses unless ``live`` is True. The key comes from ``TRIMTAB_ETH_PRIVATE_KEY`` only and
        must be ``tx.sender``'s. The transaction is simulated first; a revert is not sent.
        """
        if live is not True:
            raise AdapterError("chain", "send", "refusing to send: pass live=True to send a real transaction")
        from eth_account import Account

        key = eth_private_key()
        with wrap_errors("chain", "send"):
            acct = Account.from_key(key.reveal())
        if acct.address != Web3.to_checksum_address(tx.sender):
            raise AdapterError("chain", "send", f"TRIMTAB_ETH_PRIVATE_KEY is not the key of sender {tx.sender}")
        sim = self.simulate(tx)
        if not sim.ok:
            raise AdapterError("chain", "send", f"simulation reverted, not sent: {sim.reason}")
        with wrap_errors("chain", "send"):
            w = self.w3.eth
            base = w.get_block("latest")["baseFeePerGas"]
            tip = w.max_priority_fee
            body = {**tx.call_params(), "chainId": tx.chain_id, "nonce": w.get_transaction_count(acct.address, "pending"),
                    "maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base + tip, "type": 2}
            body["gas"] = int(w.estimate_gas(tx.call_params()) * gas_margin)
            signed = acct.sign_transaction(body)
            raw = getattr(signed, "raw_transaction", None) or signed.rawTransaction
            return "0x" + bytes(w.send_raw_transaction(raw)).hex()


def _revert_reason(e: Exception) -> str:
    """Aave and connectors revert with Error(string); web3 puts the decoded text in the message."""
    msg = getattr(e, "message", None) or str(e)
    return msg.replace("execution reverted: ", "").strip() or "execution reverted"


__all__ = ["ChainAdapter", "TxRequest", "SimulationResult", "DSA_ABI"]
