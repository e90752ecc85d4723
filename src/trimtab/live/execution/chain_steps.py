"""Chain steps: transactions through the write-ahead outbox, the flash-loan bundle and DEX swaps
(:class:`ChainSteps`).

- chain operations (``stake`` on EtherFi/Lido; Aave v3 ``supply``/``withdraw``/``borrow``/
  ``repay``; the flash-loan bundle as ONE Instadapp DSA ``cast``), through
  :class:`~trimtab.live.adapters.chain.ChainAdapter`, for each transaction of the step:
  build -> simulate (``eth_call``; a revert is not sent) -> sign -> **write-ahead**: the
  signed bytes and hash are committed to the journal's ``outbox`` -> broadcast -> wait for
  the receipt (bounded). A reverted receipt fails the step. Fills: the amounts the
  transaction was built with (the simulated fill's, clamped to the book), and gas from the
  receipts (gasUsed x effectiveGasPrice).
- DEX ``swap`` outside a bundle, built by the DEX venue's chain adapter (shipped: Uniswap v3
  SwapRouter02 ``exactInputSingle`` on the pool tier of the venue file's ``live.fee_tiers``:
  the catalog's 0.3% pools; LST/WETH 0.01%), ``amountOutMinimum`` = the simulated output x
  (1 - ``swap_slippage``); an ERC-20 approval first when the allowance is short; buying native
  ETH is one router ``multicall`` (swap to the router, ``unwrapWETH9`` to the account). Fill:
  the input as sent and the output from the receipt's ERC-20 ``Transfer`` events (WETH paid to
  the router when unwrapping, else the token paid to the account); a receipt without those
  logs books the simulated output, which the minimum-out bound guarantees within slippage.

Sources: Ethereum JSON-RPC (eth_call, eth_sendRawTransaction, eth_getTransactionReceipt),
Uniswap v3 SwapRouter02 (docs.uniswap.org, swap-router-contracts).
"""
from __future__ import annotations

import json
from dataclasses import replace

from ...accounting.book import Fill, Leg
from ...planner.plan import Instruction, Step
from ...errors import ExecutionError, PartialExecution
from ...venues.sim import WALLET_ETH
from ..adapters.base import AdapterError
from ..adapters.chain import ChainAdapter, Receipt, TxRequest
from ...secrets import redact
from .common import VENUE_IDX, executed_amount, fresh, utc_now


class ChainSteps:
    """Chain operations, the flash-loan bundle and DEX swaps, each as outbox-backed
    transactions (mixin of :class:`~trimtab.live.execution.VenueGateway`: uses its ``journal``,
    ``chain``, ``poll_s``/``receipt_polls``, ``sleep`` and the slippage settings)."""

    def _need_chain(self) -> ChainAdapter:
        if self.chain is None:
            raise ExecutionError("no chain adapter configured; not sent")
        return self.chain

    def _chain_op(self, plan_id: str, step: Step, tick: int, ins: Instruction, fills: list) -> list:
        chain = self._need_chain()
        sent = replace(ins, amount=executed_amount(ins, [f for f, _ in fills if f.category != "gas"]))
        receipts = self._transactions(plan_id, step, tick, lambda: chain.build(sent))
        return self._with_receipt_gas(tick, step, ins.venue, ins.operation, fills, receipts)

    def _bundle(self, plan_id: str, step: Step, tick: int, fills: list) -> list:
        chain = self._need_chain()
        main = [f for f, _ in fills if f.category != "gas"]
        instructions = tuple(replace(i, amount=executed_amount(i, main)) for i in step.instructions)
        sent = replace(step, instructions=instructions)
        min_rate = None
        if step.operation == "bundle_unwind":
            swap = next((f for f in main if f.operation == "swap"), None)
            if swap is None or not swap.legs[0].delta:
                raise ExecutionError(f"{step.id}: unwind bundle without a simulated swap to bound its price; not sent")
            min_rate = (swap.legs[1].delta / -swap.legs[0].delta) * (1 - self.unwind_slippage)
        receipts = self._transactions(plan_id, step, tick, lambda: [chain.build_bundle(sent, min_rate=min_rate)])
        return self._with_receipt_gas(tick, step, step.venue, step.operation, fills, receipts)

    def _swap(self, plan_id: str, step: Step, tick: int, ins: Instruction, fills: list) -> list:
        """One swap through SwapRouter02 (see the module doc); the fill's output from the receipt."""
        chain = self._need_chain()
        sim = next((f for f, _ in fills if f.operation == "swap" and f.category != "gas"), None)
        if sim is None or len(sim.legs) != 2 or not sim.legs[0].delta:
            raise ExecutionError(f"{step.id}: swap without a simulated fill to bound its price; not sent")
        sell, buy = ins.asset, ins.params["buy"]
        amount_in, sim_out = -sim.legs[0].delta, sim.legs[1].delta
        min_out = sim_out * (1 - self.swap_slippage)
        receipts = self._transactions(plan_id, step, tick, lambda: chain.build_swap(ins.venue, sell, buy, amount_in, min_out))
        _, token_out, dec = chain.chain_token(buy)
        to = chain.swap_payee(ins.venue, buy)  # Uniswap, buying ETH: WETH is paid to the router, which unwraps
        got = receipts[-1].received(token_out, to) / 10 ** dec
        if got > 0:
            src = f"received {got:.8g} {buy} per the receipt's Transfer logs"
        else:
            got, src = sim_out, f"no Transfer log in the receipt: the simulated {sim_out:.8g} {buy} booked (at least {min_out:.8g} guaranteed)"
        real = Fill(tick, ins.venue, "swap", "trading_fees",
                    [Leg(sim.legs[0].key, -amount_in, amount_in), Leg(sim.legs[1].key, got, got)],
                    price=got / amount_in, price_field=f"{ins.venue} fill",
                    note=f"{sell}->{buy} {amount_in:.8g} in, {src}, min out {min_out:.8g}")
        swapped = [((real, None) if f is sim else (f, p)) for f, p in fills]
        return self._with_receipt_gas(tick, step, ins.venue, "swap", swapped, receipts)
    def _with_receipt_gas(self, tick: int, step: Step, venue: str, operation: str, fills: list, receipts: list[Receipt]) -> list:
        """The simulated non-gas fills (amounts as sent) with the gas the receipts report, in the
        simulated order (gas where the simulation charged it, else first)."""
        hashes = ", ".join(r.tx_hash for r in receipts)
        gas = Fill(tick, venue, operation, "gas", [Leg(WALLET_ETH, -sum(r.gas_eth for r in receipts), sum(r.gas_eth for r in receipts))],
                   note=f"gas from receipts: {sum(r.gas_used for r in receipts)} gas units ({hashes})")
        out, placed = [], False
        for f, price in fills:
            if f.category == "gas":
                if not placed:
                    out.append((gas, None))
                    placed = True
                continue
            out.append((fresh(f, note=f"{f.note}; mined in {hashes}"), price))
        if not placed:
            out.insert(0, (gas, None))
        return out

    def _transactions(self, plan_id: str, step: Step, tick: int, build) -> list[Receipt]:
        """Run the step's transactions through the outbox; returns their receipts (all mined ok).

        First attempt: ``build()`` and record every unsigned transaction (status ``built``).
        A re-run (after a crash) takes the transactions from the outbox instead of rebuilding
        (an approval already mined would change what a rebuild returns), and for each one that
        was signed looks its receipt up or rebroadcasts the same bytes.
        """
        chain, j = self._need_chain(), self.journal
        rows = [r for r in j.outbox(plan_id, step.id) if r["idx"] < VENUE_IDX]
        if not rows:
            for i, tx in enumerate(build()):
                j.outbox_put(plan_id, step.id, i, venue=step.venue or step.instructions[0].venue, description=tx.description,
                             tx=json.dumps(_tx_json(tx)), status="built", time=utc_now())
            rows = [r for r in j.outbox(plan_id, step.id) if r["idx"] < VENUE_IDX]
        receipts: list[Receipt] = []
        for row in rows:
            i = row["idx"]
            if row["status"] == "mined":
                receipts.append(Receipt(**json.loads(row["receipt"])))
                continue
            if row["status"] == "reverted":
                self._failed(receipts, f"{step.id} tx {i} ({row['description']}) reverted on chain: {row['tx_hash']}", step, tick)
            if row["raw"]:
                h = row["tx_hash"]
                r = chain.receipt(h)
                if r is None:  # signed, maybe sent: the same bytes again (same nonce, mined once at most)
                    chain.broadcast(row["raw"])
                    j.outbox_put(plan_id, step.id, i, status="sent")
                    r = self._wait(h)
            else:
                tx = TxRequest(**json.loads(row["tx"]))
                try:
                    signed = chain.sign(tx, live=True)  # simulates first: a revert is not sent
                except AdapterError as e:
                    self._failed(receipts, f"{step.id} tx {i} ({row['description']}): {e}", step, tick)
                j.outbox_put(plan_id, step.id, i, raw=signed.raw, tx_hash=signed.tx_hash, status="signed")  # write-ahead
                h = chain.broadcast(signed.raw)
                if h.lower() != signed.tx_hash.lower():
                    raise ExecutionError(f"{step.id} tx {i}: node returned hash {h}, signed {signed.tx_hash}")
                j.outbox_put(plan_id, step.id, i, status="sent")
                r = self._wait(signed.tx_hash)
            j.outbox_put(plan_id, step.id, i, status="mined" if r.ok else "reverted", receipt=json.dumps(r.to_dict()))
            if not r.ok:
                self._failed(receipts, f"{step.id} tx {i} ({row['description']}) reverted on chain: {r.tx_hash}", step, tick)
            receipts.append(r)
        return receipts

    def _failed(self, mined: list[Receipt], message: str, step: Step, tick: int):
        if not mined:
            raise ExecutionError(message)
        gas = sum(r.gas_eth for r in mined)
        # Earlier transactions of the step were mined: their gas was paid; what else they did
        # (an approval, a deposit not yet wrapped) is not a book position -- reconcile shows it.
        g = Fill(tick, step.venue or step.instructions[0].venue, step.operation or step.instructions[0].operation, "gas",
                 [Leg(WALLET_ETH, -gas, gas)], note=f"gas of the mined part: {', '.join(r.tx_hash for r in mined)}")
        raise PartialExecution(message + f" after {len(mined)} mined transaction(s)", [(g, None)])

    def _wait(self, tx_hash: str) -> Receipt:
        for _ in range(self.receipt_polls + 1):
            r = self._need_chain().receipt(tx_hash)
            if r is not None:
                return r
            self.sleep(self.poll_s)
        raise ExecutionError(redact(f"{tx_hash} sent but not mined after {self.receipt_polls * self.poll_s:.0f}s; "
                                    "the outbox keeps it and a re-run looks it up"))


def _tx_json(tx: TxRequest) -> dict:
    return {"chain_id": tx.chain_id, "sender": tx.sender, "to": tx.to, "data": tx.data, "value": tx.value,
            "function": tx.function, "args": _plain(tx.args), "description": tx.description}


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, bytes):
        return "0x" + x.hex()
    return x
