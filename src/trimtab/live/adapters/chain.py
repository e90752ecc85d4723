"""Chain adapter over web3: builds, simulates and (only when told) sends Ethereum transactions.

:meth:`ChainAdapter.build` turns one plan instruction into the transactions that carry it out
(:class:`TxRequest`: ``to``, ``data``, ``value`` in wei, and the decoded call for the journal),
and :meth:`ChainAdapter.build_swap` one DEX swap. What each venue builds is its chain venue
adapter's (``venues``: ``{venue:`` :class:`~trimtab.live.adapters.chain_venue.ChainVenue` ``}``,
built from the ``kind: chain`` ``live:`` blocks of the venue files by
:mod:`trimtab.live.adapters.registry`; default: the checkout's). Shipped: Aave v3 Pool calls
(:mod:`trimtab.live.adapters.aave_v3`), EtherFi and Lido stakes
(:mod:`trimtab.live.adapters.etherfi`, :mod:`trimtab.live.adapters.lido`), Uniswap v3 swaps
(:mod:`trimtab.live.adapters.uniswap_v3`). This class holds what every venue shares: the
connection, the account, ERC-20 approvals and transfers, signing and sending.

:meth:`ChainAdapter.build_bundle` turns an atomic bundle step into ONE transaction, a DSA
``cast`` (see :mod:`trimtab.live.adapters.bundle`).

:meth:`ChainAdapter.simulate` runs ``eth_call`` against the latest block and reports success or
the revert reason; :meth:`ChainAdapter.send` refuses unless called with ``live=True``, signs
with ``TRIMTAB_ETH_PRIVATE_KEY`` (the only source of the key), simulates first and refuses a
reverting transaction, then sends it as an EIP-1559 transaction. The same in three parts, for a
caller that must record the signed bytes before they leave (the write-ahead outbox of
:mod:`trimtab.live.execution`): :meth:`ChainAdapter.sign` (simulate, then sign: no network
write), :meth:`ChainAdapter.broadcast` (``eth_sendRawTransaction``; a rebroadcast of bytes the
node already has is not an error) and :meth:`ChainAdapter.receipt`.

Reads for reconciliation: :meth:`ChainAdapter.read` asks the position's venue adapter
(the wallet's ``eth_getBalance`` / ERC-20 ``balanceOf``, Aave's aToken and debt token), over
:meth:`ChainAdapter.eth_balance`, :meth:`ChainAdapter.token_balance` and
:meth:`ChainAdapter.balance_of`.

Units: instruction amounts are asset units; calldata and ``value`` are base units
(``amount x 10**decimals``, rounded down; USDT 6 decimals, the rest 18).
Errors: :class:`~trimtab.live.adapters.base.AdapterError` with a redacted message.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from web3 import Web3

from trimtab.live.adapters import bundle as bundles
from trimtab.live.adapters.base import AdapterError, wrap_errors
from trimtab.live.adapters.chain_venue import ChainVenue, Reading
from trimtab.live.adapters.contracts import CHAIN_ID, CHAIN_SYMBOL, DSA_ABI, ERC20_ABI, TOKENS, TRANSFER_TOPIC
from trimtab.live.adapters.registry import chain_venues
from trimtab.secrets import eth_private_key, eth_rpc_url

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


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction: ``raw`` (hex of the RLP/typed bytes), ``tx_hash`` (hex), ``nonce``.
    Holds no key; it is public once broadcast."""

    raw: str
    tx_hash: str
    nonce: int


@dataclass(frozen=True)
class Receipt:
    """A mined transaction: ``ok`` (status 1), ``block``, ``gas_used`` and ``gas_eth``
    (gasUsed x effectiveGasPrice, in ETH)."""

    tx_hash: str
    ok: bool
    block: int
    gas_used: int
    gas_eth: float
    #: ERC-20 ``Transfer`` events of the transaction: ``[token, from, to, value (base units)]``
    #: (checksummed addresses), for booking what a swap really paid and received.
    transfers: tuple = ()

    def to_dict(self) -> dict:
        return {"tx_hash": self.tx_hash, "ok": self.ok, "block": self.block, "gas_used": self.gas_used, "gas_eth": self.gas_eth,
                "transfers": [list(t) for t in self.transfers]}

    def received(self, token: str, to: str) -> int:
        """Base units of ``token`` transferred to ``to`` in this transaction (sum of its Transfer events)."""
        t, a = token.lower(), to.lower()
        return sum(int(v) for tok, _, dst, v in self.transfers if tok.lower() == t and dst.lower() == a)


#: Node answers to a rebroadcast of a transaction it has already seen or mined (geth, erigon,
#: nethermind wording): the bytes were sent before, so the send is done.
_ALREADY_SENT = ("already known", "nonce too low", "known transaction", "already imported", "alreadyknown")


@dataclass
class ChainAdapter:
    """Transactions for ``account`` (the EOA that signs) on Ethereum mainnet.

    ``dsa``: the account's Instadapp DSA address, needed only for bundles. ``flash_route`` and
    ``flash_fee_bps`` configure the bundle flash loan, ``swap_fee_tier`` the unwind's swap (see
    :mod:`.bundle`; route and tier default to the bundler venue file's ``live.call_args``
    ``flash_route`` and ``unwind_swap_fee_tier``). ``venues``: the
    chain venue adapters by venue name (default: every chain ``live:`` block of the checkout's
    venue files, :func:`~trimtab.live.adapters.registry.chain_venues`). ``cache``: what the
    venue adapters read once (reserve token addresses).
    """

    w3: Web3
    account: str
    dsa: str | None = None
    flash_route: int | None = None
    flash_fee_bps: float = 0.0
    swap_fee_tier: int | None = None
    chain_id: int = CHAIN_ID
    venues: dict[str, ChainVenue] = field(default_factory=chain_venues, repr=False)
    cache: dict = field(default_factory=dict, repr=False)
    _contracts: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.account = Web3.to_checksum_address(self.account)
        if self.dsa:
            self.dsa = Web3.to_checksum_address(self.dsa)

    @classmethod
    def from_env(cls, account: str, dsa: str | None = None, **kw) -> "ChainAdapter":
        """Connect to ``TRIMTAB_ETH_RPC_URL`` (never logged: it often embeds a provider key)."""
        url = eth_rpc_url()
        return cls(Web3(Web3.HTTPProvider(url.reveal())), account, dsa, **kw)

    # -- building ----------------------------------------------------------------------
    def contract(self, address: str, abi: list):
        """The web3 contract at ``address`` with ``abi`` (built once per adapter)."""
        key = (address, id(abi))
        if key not in self._contracts:
            self._contracts[key] = self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)
        return self._contracts[key]

    def tx(self, address: str, abi: list, fn: str, args: list, value: int = 0, desc: str = "", sender: str | None = None) -> TxRequest:
        """The unsigned call ``fn(*args)`` of contract ``address`` (``abi``), ``value`` in wei."""
        c = self.contract(address, abi)
        data = c.encode_abi(fn, args=args)
        names = [i["name"] for i in next(e for e in abi if e.get("name") == fn)["inputs"]]
        return TxRequest(self.chain_id, sender or self.account, Web3.to_checksum_address(address), data, int(value), fn,
                         dict(zip(names, args)), desc or fn)

    def token(self, asset: str) -> tuple[str, int]:
        """(address, decimals) of ERC-20 ``asset`` (a :data:`TOKENS` symbol); AdapterError if unknown."""
        try:
            return TOKENS[asset]
        except KeyError:
            raise AdapterError("chain", "build", f"unknown token {asset!r} (known: {', '.join(TOKENS)})") from None

    def allowance(self, asset: str, spender: str) -> int:
        """ERC-20 allowance of ``account`` for ``spender`` (base units), via ``eth_call``."""
        addr, _ = self.token(asset)
        with wrap_errors("chain", "allowance"):
            return int(self.contract(addr, ERC20_ABI).functions.allowance(self.account, Web3.to_checksum_address(spender)).call())

    def approve_if_needed(self, asset: str, spender: str, amount: int) -> list[TxRequest]:
        """``approve(spender, amount)`` of ERC-20 ``asset`` (base units) when the allowance is
        short (none when it suffices); USDT first resets a non-zero allowance to 0."""
        current = self.allowance(asset, spender)
        if current >= amount:
            return []
        addr, _ = self.token(asset)
        sp = Web3.to_checksum_address(spender)
        out = []
        if asset == "USDT" and current > 0:
            # Tether's approve() reverts when changing a non-zero allowance to another non-zero
            # value (TetherToken.sol: require(!((_value != 0) && (allowed[msg.sender][_spender] != 0)))).
            out.append(self.tx(addr, ERC20_ABI, "approve", [sp, 0], desc=f"reset {asset} allowance for {spender}"))
        return out + [self.tx(addr, ERC20_ABI, "approve", [sp, amount], desc=f"approve {asset} for {spender}")]

    # -- swaps and transfers outside bundles ---------------------------------------------
    def chain_token(self, asset: str) -> tuple[str, str, int]:
        """(ERC-20 symbol, address, decimals) that carries trimtab asset ``asset`` on chain
        (ETH -> WETH, BTC -> WBTC, else the asset itself)."""
        sym = CHAIN_SYMBOL.get(asset, asset)
        addr, dec = self.token(sym)
        return sym, Web3.to_checksum_address(addr), dec

    def _venue(self, venue: str) -> ChainVenue:
        if venue not in self.venues:
            raise AdapterError("chain", "build", f"no chain adapter for venue {venue!r} (no chain 'live:' block in its venue file)")
        return self.venues[venue]

    def build_swap(self, venue: str, sell: str, buy: str, amount_in: float, min_out: float) -> list[TxRequest]:
        """The transactions of a DEX swap on ``venue`` of ``amount_in`` ``sell`` (asset units)
        for at least ``min_out`` ``buy`` (asset units; the transaction reverts below it): the
        venue adapter's (Uniswap v3: :mod:`trimtab.live.adapters.uniswap_v3.execution`)."""
        return self._venue(venue).build_swap(self, sell, buy, amount_in, min_out)

    def swap_payee(self, venue: str, buy: str) -> str:
        """The address a swap on ``venue`` pays its output token ``buy`` to (its Transfer log)."""
        return self._venue(venue).swap_payee(self, buy)

    def build_transfer(self, asset: str, to: str, amount: float, description: str = "") -> TxRequest:
        """ERC-20 ``transfer(to, amount)`` of ``amount`` asset units (e.g. USDT to a CEX deposit address)."""
        sym, addr, dec = self.chain_token(asset)
        amt = bundles.to_base_units(amount, dec)
        if amt <= 0:
            raise AdapterError("chain", "build", f"transfer of {amount} {asset} rounds to zero")
        return self.tx(addr, ERC20_ABI, "transfer", [Web3.to_checksum_address(to), amt],
                        desc=description or f"transfer {amount} {sym} to {to}")

    def builds(self, instruction) -> bool:
        """True when a chain venue adapter builds ``instruction`` (its venue file's ``live.operations``)."""
        v = self.venues.get(instruction.venue)
        return v is not None and v.builds(instruction.operation)

    def build(self, instruction) -> list[TxRequest]:
        """The transactions (in order) that carry out one non-bundle chain instruction: its
        venue adapter's :meth:`~trimtab.live.adapters.chain_venue.ChainVenue.build`."""
        if not self.builds(instruction):
            raise AdapterError("chain", "build", f"no transaction builder for {instruction.venue} {instruction.operation} "
                                                 f"(instrument {instruction.instrument})")
        return self.venues[instruction.venue].build(self, instruction)

    def build_bundle(self, step, min_rate: float | None = None) -> TxRequest:
        """One DSA ``cast`` transaction for an atomic bundle step (entry or unwind).

        ``min_rate`` (WETH per LST, slippage included) is required for an unwind's swap.
        """
        if not self.dsa:
            raise AdapterError("chain", "bundle", "no DSA address configured: bundles run through the account's Instadapp DSA")
        bundler = self._venue(step.venue)
        route = self.flash_route if self.flash_route is not None else bundler.arg("flash_route")
        if step.operation == "bundle_entry":
            stakers = {name: c for name, v in self.venues.items() if (c := v.stake_connectors()) is not None}
            amt, spells = bundles.entry_spells(step, self.flash_fee_bps, stakers)
        elif step.operation == "bundle_unwind":
            tier = self.swap_fee_tier if self.swap_fee_tier is not None else bundler.arg("unwind_swap_fee_tier")
            amt, spells = bundles.unwind_spells(step, min_rate or 0.0, self.flash_fee_bps, tier)
        else:
            raise AdapterError("chain", "bundle", f"step {step.id}: unknown bundle operation {step.operation!r}")
        data = bundles.cast_calldata(amt, spells, route, self.account)
        return TxRequest(self.chain_id, self.account, self.dsa, data, 0, "cast",
                         {"spells": [f"{s.connector}.{s.method}" for s in spells], "flash_amount": amt, "route": route},
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
        return self.broadcast(self.sign(tx, live=True, gas_margin=gas_margin).raw)

    def sign(self, tx: TxRequest, live: bool = False, gas_margin: float = 1.2) -> SignedTx:
        """Simulate ``tx``, then sign it as an EIP-1559 transaction (pending nonce, gas estimate
        x ``gas_margin``, max fee 2 x base fee + tip). Sends nothing.

        Raises AdapterError: ``live`` not True, a key that is not ``tx.sender``'s, a reverting
        simulation (the reason is in the message), or a failed read.
        """
        if live is not True:
            raise AdapterError("chain", "send", "refusing to sign: pass live=True to prepare a real transaction")
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
            nonce = w.get_transaction_count(acct.address, "pending")
            body = {**tx.call_params(), "chainId": tx.chain_id, "nonce": nonce,
                    "maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base + tip, "type": 2}
            body["gas"] = int(w.estimate_gas(tx.call_params()) * gas_margin)
            signed = acct.sign_transaction(body)
            raw = bytes(getattr(signed, "raw_transaction", None) or signed.rawTransaction)
            return SignedTx("0x" + raw.hex(), "0x" + bytes(Web3.keccak(raw)).hex(), nonce)

    def broadcast(self, raw: str) -> str:
        """``eth_sendRawTransaction`` of signed bytes; returns the hash (hex). Sending bytes the
        node already knows or has mined ("already known", "nonce too low") is not an error:
        the same signed bytes (same nonce) can be mined once only."""
        from hexbytes import HexBytes

        local = "0x" + bytes(Web3.keccak(HexBytes(raw))).hex()
        try:
            with wrap_errors("chain", "send", (ConnectionError, TimeoutError, OSError)):
                return "0x" + bytes(self.w3.eth.send_raw_transaction(HexBytes(raw))).hex()
        except AdapterError as e:
            if any(m in str(e).lower() for m in _ALREADY_SENT):
                return local
            raise

    def receipt(self, tx_hash: str) -> Receipt | None:
        """The receipt of ``tx_hash`` (``eth_getTransactionReceipt``), None while not mined."""
        from web3.exceptions import TransactionNotFound

        with wrap_errors("chain", "receipt", (ConnectionError, TimeoutError, OSError)):
            try:
                r = self.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                return None
        if r is None:
            return None
        gas_used = int(r["gasUsed"])
        price = int(r.get("effectiveGasPrice") or 0)
        return Receipt(tx_hash, int(r["status"]) == 1, int(r["blockNumber"]), gas_used, gas_used * price / 1e18,
                       _transfers(r.get("logs") or []))

    # -- reads for reconciliation -------------------------------------------------------
    def holders(self) -> list[str]:
        """The addresses whose balances make up the strategy's on-chain book: the account and,
        when configured, its DSA (bundles hold their Aave position in the DSA)."""
        return [self.account] + ([self.dsa] if self.dsa else [])

    def eth_balance(self, holder: str | None = None) -> float:
        """Native ETH of ``holder`` (default: the account), in ETH."""
        with wrap_errors("chain", "balance", (ConnectionError, TimeoutError, OSError)):
            return int(self.w3.eth.get_balance(Web3.to_checksum_address(holder or self.account))) / 1e18

    def token_balance(self, asset: str, holder: str | None = None) -> float:
        """ERC-20 ``balanceOf(holder)`` of ``asset`` (a :data:`TOKENS` symbol), in asset units."""
        addr, decimals = self.token(asset)
        return self.balance_of(addr, decimals, holder or self.account)

    def balance_of(self, token: str, decimals: int, holder: str) -> float:
        """ERC-20 ``balanceOf(holder)`` of the token at address ``token``, in units of ``decimals``."""
        with wrap_errors("chain", "balance", (ConnectionError, TimeoutError, OSError)):
            raw = self.contract(token, ERC20_ABI).functions.balanceOf(Web3.to_checksum_address(holder)).call()
        return int(raw) / 10**decimals

    def read(self, venue: str, position_type: str, symbol: str) -> Reading | None:
        """The on-chain value of book position ``venue:position_type:symbol`` over
        :meth:`holders`, from the venue's adapter (:meth:`ChainVenue.read
        <trimtab.live.adapters.chain_venue.ChainVenue.read>`): (asset units, tolerance kind,
        source), or None when no chain venue adapter reads it."""
        v = self.venues.get(venue)
        return v.read(self, position_type, symbol, self.holders()) if v is not None else None


def _hex(x) -> str:
    return x if isinstance(x, str) else "0x" + bytes(x).hex()


def _transfers(logs) -> tuple:
    """ERC-20 Transfer events of a receipt's logs as (token, from, to, value) tuples."""
    out = []
    for log in logs:
        topics = [_hex(t).lower() for t in (log.get("topics") or [])]
        if len(topics) == 3 and topics[0] == TRANSFER_TOPIC:
            data = _hex(log.get("data") or "0x")
            out.append((Web3.to_checksum_address(log["address"]), Web3.to_checksum_address("0x" + topics[1][-40:]),
                        Web3.to_checksum_address("0x" + topics[2][-40:]), int(data, 16) if data != "0x" else 0))
    return tuple(out)


def _revert_reason(e: Exception) -> str:
    """Aave and connectors revert with Error(string); web3 puts the decoded text in the message."""
    msg = getattr(e, "message", None) or str(e)
    return msg.replace("execution reverted: ", "").strip() or "execution reverted"


__all__ = ["ChainAdapter", "TxRequest", "SimulationResult", "SignedTx", "Receipt", "DSA_ABI"]
