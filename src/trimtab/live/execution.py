"""Real execution: the venue side of the executor for ``--execute`` runs.

:class:`VenueGateway` is the live counterpart of :class:`trimtab.engine.executor.PaperGateway`
(same protocol, ``execute(plan_id, step, tick, simulated_fills) -> fills``). The executor has
already run the step on the simulated venues (the pre-trade estimate; for a bundle also the
safety check: balances, flash repayment, health factor >= 1). The gateway then carries the
step out on the venue and returns the fills *as the venue reported them*:

- perp ``trade`` (Binance, Bybit, OKX through :class:`~trimtab.live.adapters.exchange.ExchangeAdapter`):
  a market order with the deterministic client order id ``client_order_id(plan_id, step_id, 0)``
  (the adapter looks the id up first, so a step re-run after a crash finds the order and does
  not send it again), then polled by client id until closed (bounded: ``order_polls`` x
  ``poll_s``). Fill = the venue's filled size (signed asset units), average price and fee.
- chain operations (``stake`` on EtherFi/Lido; Aave v3 ``supply``/``withdraw``/``borrow``/
  ``repay``; the flash-loan bundle as ONE Instadapp DSA ``cast``), through
  :class:`~trimtab.live.adapters.chain.ChainAdapter`, for each transaction of the step:
  build -> simulate (``eth_call``; a revert is not sent) -> sign -> **write-ahead**: the
  signed bytes and hash are committed to the journal's ``outbox`` -> broadcast -> wait for
  the receipt (bounded). A reverted receipt fails the step. Fills: the amounts the
  transaction was built with (the simulated fill's, clamped to the book), and gas from the
  receipts (gasUsed x effectiveGasPrice).

No instruction twice across a crash: the journal checkpoints once per tick, so a process
killed mid-tick re-runs the step in flight on resume. Orders are found by client id; chain
steps are read back from the outbox -- a transaction that was signed is never signed again
for the same (plan, step, index): its receipt is looked up, or the same signed bytes are
rebroadcast (same nonce: it can be mined once only).

- DEX ``swap`` outside a bundle (``uniswap_v3``, ``uniswap_v3_router``): Uniswap v3
  SwapRouter02 ``exactInputSingle`` on the pool tier of ``contracts.UNISWAP_FEE_TIERS`` (the
  catalog's 0.3% pools; LST/WETH 0.01%), ``amountOutMinimum`` = the simulated output x
  (1 - ``swap_slippage``); an ERC-20 approval first when the allowance is short; buying native
  ETH is one router ``multicall`` (swap to the router, ``unwrapWETH9`` to the account). Fill:
  the input as sent and the output from the receipt's ERC-20 ``Transfer`` events (WETH paid to
  the router when unwrapping, else the token paid to the account); a receipt without those
  logs books the simulated output, which the minimum-out bound guarantees within slippage.
- CEX ``deposit`` (wallet USDT -> exchange): an ERC-20 ``transfer`` to the account's deposit
  address on the venue (ccxt ``fetch_deposit_address``, ERC-20 network) through the same
  outbox. The executor keeps the transfer in transit for the venue's catalog latency, then asks
  :meth:`VenueGateway.arrived`: credited only once the venue lists the deposit of that
  transaction hash as ``ok`` (ccxt ``fetch_deposits``) and the amount has been moved from the
  account it lands in to the one perps trade from (ccxt ``transfer``; Binance Spot -> USD-M,
  Bybit Funding -> Unified, OKX Funding -> Trading). Until then it stays in transit.
- CEX ``withdraw`` (exchange -> wallet): the amount moves trading -> funding account, then a
  ccxt ``withdraw`` over ERC-20 to the chain account's own address with the venue's client
  withdrawal id (``client_order_id(plan, step, 1001)``); the history is searched for that id
  first, so a re-run never withdraws twice. It arrives when the venue reports it ``ok``.
  Every such venue call is written ahead in the outbox (rows ``idx`` >= 1000: ``sending``
  before the call, ``done`` with the venue's answer after). A call found ``sending`` on a re-run
  had an unknown outcome: withdrawals are looked up by client id; an internal transfer is sent
  again only where the venue deduplicates it (Bybit ``transferId``), otherwise the step or
  arrival stops with a message asking for a manual check (never a second transfer).

- CEX ``spot_trade`` (``spot`` targets: buy/sell BTC or ETH against USDT on Binance/Bybit
  spot): a market order in base units with client id ``client_order_id(plan, step, 0)``
  (Binance spot ``newClientOrderId``, Bybit ``orderLinkId``), looked up before sending and
  polled until closed. Fill = the venue's filled base amount, USDT cost and fee (a fee charged
  in the base asset -- Binance/Bybit buys -- reduces the base received; in USDT, the USDT leg).
  The book keeps a venue's USDT on ``<venue>:Margin:USDT``. Binance spot trades from the Spot
  wallet, not USD-M: a buy first moves the simulated cost x (1 + ``spot_transfer_buffer``)
  USD-M -> Spot (outbox row ``TRANSFER_IDX``), and after the fill the unspent rest (a buy) or
  the USDT proceeds (a sell) move Spot -> USD-M (row ``SPOT_RETURN_IDX``); both are written
  ahead exactly as the deposit/withdrawal transfers (a ``sending`` row on a re-run stops the
  step for a manual check: Binance transfers have no client id). Bybit's Unified Trading
  Account holds spot and perps in one wallet: no transfer.
- resting take-profit / stop-loss of signal-driven perps (``take_profit``/``stop_loss`` in a
  ``trade``'s params): any trade on an instrument with resting stops first cancels them by
  client id; after the entry fills, two reduce-only conditional market orders for the whole
  position (read back from the venue) are placed at the instruction's trigger prices (or the
  previous levels when a trade leaves a position without new ones, as the simulation keeps
  them), client ids ``client_order_id(plan, step, STOP_IDX["take_profit"|"stop_loss"])``. The
  resting pair is kept in the outbox (plan ``"resting-stops"``, step = instrument), committed
  at once. :meth:`VenueGateway.stops` (the engine's per-tick hook, in place of the simulated
  ``check_stops``) polls both by client id: a filled one becomes one fill (its ``kind``, venue
  size, average price, fee) and its sibling is cancelled (one-cancels-the-other).

:func:`unsupported_operations` lists what a strategy needs that none of the above covers;
:func:`trimtab.live.connect.venue_gateway` refuses such a strategy at start-up. LST
``unstake`` is not listed: no plan emits it (the planner sells LSTs on the swap venue; the
executor has no unstake outside a bundle).
Failures raise :class:`~trimtab.venues.sim.ExecutionError` (nothing happened) or
:class:`~trimtab.engine.executor.PartialExecution` (part happened: its fills are booked), so
the executor's failure path (later steps cancelled, journaled, leg-risk compensation) applies.
Messages are redacted (:func:`trimtab.live.secrets.redact`); nothing here holds a key.

Sources: ccxt unified API (docs.ccxt.com: createOrder, fetchOrder, order structure,
fetchDepositAddress, fetchDeposits, withdraw, fetchWithdrawals, transfer, transaction
structure), Ethereum JSON-RPC (eth_call, eth_sendRawTransaction, eth_getTransactionReceipt),
Uniswap v3 SwapRouter02 (docs.uniswap.org, swap-router-contracts).
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime, timezone

from ..accounting.book import Fill, Leg
from ..engine.executor import PartialExecution
from ..planner.plan import Instruction, Step
from ..venues.sim import WALLET_ETH, ExecutionError
from .adapters.base import AdapterError, OrderResult, client_order_id
from .adapters.chain import ChainAdapter, Receipt, TxRequest
from .adapters.contracts import SWAP_ROUTER02, UNISWAP_FEE_TIERS
from .adapters.exchange import ExchangeAdapter
from .secrets import redact

AAVE_OPS = ("supply", "withdraw", "borrow", "repay")
CLOSED = ("closed",)
DEAD = ("canceled", "cancelled", "expired", "rejected")
#: Outbox rows from this index on are venue calls (internal transfers, withdrawals), not
#: chain transactions.
VENUE_IDX = 1000
TRANSFER_IDX, WITHDRAW_IDX = 1000, 1001
#: Outbox row of the Spot -> USD-M move after a Binance spot order (the rest or the proceeds).
SPOT_RETURN_IDX = 1002
#: Client-id indices of the resting stops of a trade step (client_order_id(plan, step, idx)).
STOP_IDX = {"take_profit": 2000, "stop_loss": 2001}
#: Outbox key of the resting stops per instrument: plan id STOPS_PLAN, step id = instrument.
STOPS_PLAN = "resting-stops"
#: Venues whose resting stops ExchangeAdapter.place_stop implements.
STOP_VENUES = ("binance", "bybit")


def unsupported_operations(strategy) -> list[str]:
    """What the strategy's plans can emit that :class:`VenueGateway` cannot execute (sorted).

    - ``<venue>.spot_trade`` for a ``spot`` target on a venue without a spot market adapter
      (:data:`~trimtab.live.adapters.exchange.SPOT_VENUES`: Binance, Bybit);
    - ``<venue>.swap <pair>`` for a DEX pair without an on-chain token or a known Uniswap v3
      fee tier (``contracts.TOKENS`` / ``UNISWAP_FEE_TIERS``);
    - ``<venue> perp take-profit/stop-loss orders`` for signal-driven perps on a venue whose
      conditional orders are not implemented (all but Binance and Bybit).

    Bundle-internal operations (flash loans, the unwind's swap) run inside the bundle. LST
    ``unstake`` is never emitted by a plan (see the module doc) and is not listed.
    """
    from ..config.models import SignalPerpTarget, SpotTarget
    from .adapters.contracts import CHAIN_SYMBOL, TOKENS
    from .adapters.exchange import SPOT_VENUES

    out = set()
    for name, v in strategy.venues.items():
        if v.model == "dex" and "swap" in v.operations:
            for pair in (v.pairs or {}):
                syms = [CHAIN_SYMBOL.get(a, a) for a in pair.split("/")]
                if any(x not in TOKENS for x in syms) or frozenset(syms) not in UNISWAP_FEE_TIERS:
                    out.add(f"{name}.swap {pair}")
    for t in strategy.config.targets:
        venue = t.instrument.split(":")[0] if isinstance(t, (SpotTarget, SignalPerpTarget)) else None
        if isinstance(t, SpotTarget) and venue not in SPOT_VENUES:
            out.add(f"{venue}.spot_trade")
        if isinstance(t, SignalPerpTarget) and venue not in STOP_VENUES:
            out.add(f"{venue} perp take-profit/stop-loss orders")
    return sorted(out)


class VenueGateway:
    """Sends plan steps to the venues and returns the venues' fills (see the module doc).

    Args:
        journal: the run's :class:`~trimtab.engine.journal.Journal` (its ``outbox`` table).
        exchanges: ``{"binance": ExchangeAdapter, ...}`` for the perp venues the strategy uses.
        chain: the :class:`ChainAdapter` (None when the strategy has no chain operation).
        poll_s, order_polls: poll an order every ``poll_s`` seconds, at most ``order_polls`` times.
        receipt_polls: wait at most ``receipt_polls`` x ``poll_s`` seconds for a receipt.
        unwind_slippage: least WETH accepted per LST in an unwind bundle's swap, as a fraction
            below the simulated rate (0.005 = 50 bps).
        swap_slippage: least output accepted by a DEX swap outside a bundle, as a fraction below
            the simulated output (0.005 = 50 bps; the simulation already charges the pool fee
            and the execution-cost table's spread + slippage).
        spot_transfer_buffer: extra fraction of a Binance spot buy's simulated USDT cost moved
            USD-M -> Spot before the order (0.01 = 1%: the market can move before it fills);
            the unspent rest goes back after the fill.
        sleep: injectable ``time.sleep`` (tests pass a no-op).
    """

    live = True

    def __init__(self, journal, exchanges: dict[str, ExchangeAdapter] | None = None, chain: ChainAdapter | None = None, *,
                 poll_s: float = 1.0, order_polls: int = 30, receipt_polls: int = 600, unwind_slippage: float = 0.005,
                 swap_slippage: float = 0.005, spot_transfer_buffer: float = 0.01, sleep=time.sleep) -> None:
        self.journal = journal
        self.exchanges = dict(exchanges or {})
        self.chain = chain
        self.poll_s, self.order_polls, self.receipt_polls = poll_s, order_polls, receipt_polls
        self.unwind_slippage, self.swap_slippage = unwind_slippage, swap_slippage
        self.spot_transfer_buffer = spot_transfer_buffer
        self.sleep = sleep
        #: Why the last :meth:`arrived` answered False (None: not asked, or it arrived).
        self.arrival_note: str | None = None
        self._kept_levels: tuple[float, float] | None = None

    # ------------------------------------------------------------------ the protocol
    def execute(self, plan_id: str, step: Step, tick: int, fills: list) -> list:
        """Carry out ``step`` on the venues; ``fills`` are its simulated fills (in order).

        Returns ``[(Fill, trade price or None), ...]`` as the venues reported them.
        Raises ExecutionError / PartialExecution (messages redacted).
        """
        try:
            if step.bundle:
                return self._bundle(plan_id, step, tick, fills)
            ins = step.instructions[0]
            if ins.operation == "trade":
                return self._trade(plan_id, step, tick, ins, fills)
            if ins.operation == "spot_trade":
                return self._spot_trade(plan_id, step, tick, ins, fills)
            if ins.operation == "stake" or (ins.operation in AAVE_OPS and ins.venue == "aave_v3"):
                return self._chain_op(plan_id, step, tick, ins, fills)
            if ins.operation == "swap":
                return self._swap(plan_id, step, tick, ins, fills)
            if ins.operation == "deposit" and ins.venue in self.exchanges:
                return self._deposit(plan_id, step, tick, ins, fills)
            if ins.operation == "withdraw" and ins.venue in self.exchanges:
                return self._withdraw(plan_id, step, tick, ins, fills)
            if ins.operation in ("deposit", "withdraw") and ins.venue != "aave_v3":
                raise ExecutionError(f"{plan_id}/{step.id}: no exchange adapter for {ins.venue}; not sent")
        except AdapterError as e:
            raise ExecutionError(f"{plan_id}/{step.id}: {e}") from None
        raise ExecutionError(f"{plan_id}/{step.id}: live execution of {ins.venue}.{ins.operation} is not implemented; not sent")

    # ------------------------------------------------------------------ perps
    def _trade(self, plan_id: str, step: Step, tick: int, ins: Instruction, fills: list) -> list:
        """A perp market order (module doc); resting stops of the instrument are cancelled first
        and placed again for the position the trade leaves when the simulation keeps stops."""
        ex = self.exchanges.get(ins.venue)
        if ex is None:
            raise ExecutionError(f"no exchange adapter for {ins.venue}; not sent")
        out = self._cancel_stops(tick, ins.instrument)  # a stop that filled first is booked too
        cid = client_order_id(plan_id, step.id, 0)
        r = self._poll(ex.place_order(ins, cid), lambda: ex.fetch_order_by_client_id(cid, ins.instrument))
        if not r.filled:
            state = r.status or "acknowledged only"
            raise ExecutionError(f"{ins.instrument} order {cid} {state} with nothing filled after polling")
        sim_price = next((p for _, p in fills if p is not None), None)
        out.append(self._order_fill(tick, ins, r, sim_price))
        if r.status not in CLOSED or abs(r.filled) < abs(r.amount) * (1 - 1e-9):
            raise PartialExecution(f"{ins.instrument} order {cid} {r.status}: filled {r.filled} of {r.amount}", out)
        levels = None
        if "take_profit" in ins.params and not ins.params.get("clear_stops"):
            levels = (float(ins.params["take_profit"]), float(ins.params["stop_loss"]))
        elif out[:-1] == [] and self._kept_levels is not None and not ins.params.get("clear_stops"):
            levels = self._kept_levels
        self._kept_levels = None
        if levels is not None:
            try:
                note = self._place_stops(plan_id, step, ex, ins.instrument, levels)
            except AdapterError as e:
                raise PartialExecution(f"{ins.instrument}: the order filled but its stops were not placed: {e}", out) from None
            if note:
                f, p = out[-1]
                out[-1] = (_fresh(f, note=f"{f.note}; {note}"), p)
        return out

    def _poll(self, r: OrderResult, fetch) -> OrderResult:
        polls = 0
        while r.status not in CLOSED + DEAD and polls < self.order_polls:
            self.sleep(self.poll_s)
            polls += 1
            r = fetch() or r
        return r

    # ------------------------------------------------------------------ resting stops
    def _resting(self, instrument: str) -> dict | None:
        row = next((r for r in self.journal.outbox(STOPS_PLAN, instrument) if r["idx"] == 0), None)
        return json.loads(row["receipt"]) if row and row["status"] == "resting" else None

    def _set_resting(self, instrument: str, venue: str, rec: dict | None) -> None:
        self.journal.outbox_put(STOPS_PLAN, instrument, 0, venue=venue, description=f"resting take-profit/stop-loss of {instrument}",
                                status="resting" if rec else "none", receipt=json.dumps(rec) if rec else None, time=_now())

    def _place_stops(self, plan_id: str, step: Step, ex: ExchangeAdapter, instrument: str, levels: tuple[float, float]) -> str:
        """Place the take-profit and stop-loss for the venue's whole position (none when flat)."""
        size = ex.positions().get(instrument, (0.0, 0.0))[0]
        if not size:
            return "flat after the fill: no stops placed"
        rec = {"plan_id": plan_id, "step_id": step.id, "position": size, "take_profit": levels[0], "stop_loss": levels[1], "orders": {}}
        for kind, level in zip(("take_profit", "stop_loss"), levels):
            cid = client_order_id(plan_id, step.id, STOP_IDX[kind])
            r = ex.place_stop(instrument, kind, size, level, cid)
            rec["orders"][kind] = cid
            if r.status in DEAD:
                raise AdapterError(ex.venue, "place_stop", f"{kind} order {cid} {r.status}")
        self._set_resting(instrument, ex.venue, rec)
        return (f"resting reduce-only take-profit {levels[0]:.2f} ({rec['orders']['take_profit']}) and stop-loss "
                f"{levels[1]:.2f} ({rec['orders']['stop_loss']}) for {size:.6g}")

    def _cancel_stops(self, tick: int, instrument: str) -> list:
        """Cancel the instrument's resting stops (by client id) before a new trade; a stop the
        venue reports filled is returned as a fill and the other cancelled. Remembers the
        levels in :attr:`_kept_levels` (the simulation keeps them for what the trade leaves)."""
        self._kept_levels = None
        rec = self._resting(instrument)
        if rec is None:
            return []
        ex = self._exchange(instrument.split(":")[0])
        out = []
        for kind, cid in rec["orders"].items():
            r = ex.cancel_stop(cid, instrument)
            if r is not None and r.filled:
                out.append(self._stop_fill(tick, instrument, kind, r))
        self._set_resting(instrument, ex.venue, None)
        if not out:
            self._kept_levels = (rec["take_profit"], rec["stop_loss"])
        return out

    def _stop_fill(self, tick: int, instrument: str, kind: str, r: OrderResult) -> tuple[Fill, float]:
        ins = Instruction(instrument.split(":")[0], kind, instrument, r.filled, "")
        f, price = self._order_fill(tick, ins, r, None)
        return Fill(f.tick, f.venue, kind, f.category, f.legs, price=price, price_field=f.price_field,
                    note=f"{kind} triggered on the venue: {f.note}"), price

    def stops(self, tick: int, book, sim) -> list:
        """Engine hook (per tick, in place of the simulated ``sim.check_stops``): the resting
        stops that filled on the venue since the last tick, as ``[(Fill, price)]`` (operation
        ``take_profit``/``stop_loss``, the venue's size, average price and fee); the sibling of
        a filled one is cancelled, and the simulated stop of the instrument is dropped. A read
        failure books nothing this tick (asked again next tick; the note is in
        :attr:`arrival_note`)."""
        out = []
        for key in sorted(set(sim.stops) | {k for k in _instruments(book)}):
            try:
                rec = self._resting(key)
                if rec is None:
                    continue
                ex = self._exchange(key.split(":")[0])
                states = {kind: ex.fetch_stop(cid, key) for kind, cid in rec["orders"].items()}
                done = [(k, r) for k, r in states.items() if r is not None and r.filled]
                if not done and all(r is not None and r.status in ("open", None) for r in states.values()):
                    continue
                for kind, r in done:
                    out.append(self._stop_fill(tick, key, kind, r))
                for kind, r in states.items():
                    if r is not None and not r.filled and r.status in ("open", None):
                        ex.cancel_stop(rec["orders"][kind], key)  # one-cancels-the-other
                self._set_resting(key, ex.venue, None)
                sim.stops.pop(key, None)
            except (AdapterError, ExecutionError) as e:
                self.arrival_note = redact(f"stops of {key}: {e}")
        return out

    @staticmethod
    def _order_fill(tick: int, ins: Instruction, r: OrderResult, sim_price: float | None) -> tuple[Fill, float]:
        price = r.average_price if r.average_price is not None else sim_price
        if price is None:
            raise PartialExecution(f"{ins.instrument} order {r.client_order_id} filled {r.filled} but the venue gave no price", [])
        fee, legs = r.fee or 0.0, [Leg(ins.instrument, r.filled, r.filled)]
        cur = (r.fee_currency or "USDT").upper()
        note_fee = f"fee {fee:.6g} {cur}"
        if fee and cur == "USDT":
            legs.append(Leg(f"{ins.venue}:Margin:USDT", -fee, -fee))
        elif fee:
            note_fee += " (not booked: only USDT fees are; reconcile shows it)"
        again = "; found by client order id, not resent" if r.already_placed else ""
        est = "" if r.average_price is not None else " (the venue gave no average price: the simulated price)"
        note = f"{ins.venue} order {r.order_id} ({r.client_order_id}) {r.status}: {r.filled:.6g} at {price:.2f}{est}, {note_fee}{again}"
        return Fill(tick, ins.venue, "trade", "trading_fees", legs, price=price, price_field=f"{ins.venue} fill", note=note), price

    # ------------------------------------------------------------------ CEX spot
    def _spot_trade(self, plan_id: str, step: Step, tick: int, ins: Instruction, fills: list) -> list:
        """A spot market order on the venue's spot market (module doc), with the Binance
        USD-M <-> Spot transfers around it. One fill: base received/given (asset units, net
        of a base-asset fee) and USDT paid/received on ``<venue>:Margin:USDT``."""
        ex = self._exchange(ins.venue)
        spec = ex.spot_spec()
        usdt = f"{ins.venue}:Margin:USDT"
        sim_usdt = sum(l.delta for f, _ in fills if f.operation == "spot_trade" for l in f.legs if l.key == usdt)
        if spec.needs_transfer and ins.amount > 0:
            need = round(-sim_usdt * (1 + self.spot_transfer_buffer), 6)
            tid = client_order_id(plan_id, step.id, TRANSFER_IDX)
            self._venue_call(plan_id, step, TRANSFER_IDX, ins.venue, f"{ins.venue} {need:.6f} USDT USD-M -> spot for {step.id} ({tid})",
                             lambda: ex.internal_transfer(need, False, tid))
        cid = client_order_id(plan_id, step.id, 0)
        r = self._poll(ex.place_spot_order(ins, cid), lambda: ex.fetch_spot_order(cid, ins.instrument))
        if not r.filled:
            raise ExecutionError(f"{ins.instrument} spot order {cid} {r.status or 'acknowledged only'} with nothing filled after polling")
        price = r.average_price or (abs(r.cost / r.filled) if r.cost else None)
        if price is None:
            raise PartialExecution(f"{ins.instrument} spot order {cid} filled {r.filled} but the venue gave no price", [])
        cost = r.cost if r.cost is not None else abs(r.filled) * price
        fee, cur = r.fee or 0.0, (r.fee_currency or "USDT").upper()
        base = r.filled - (fee if cur == ins.asset.upper() else 0.0)
        cash = (-cost if r.filled > 0 else cost) - (fee if cur == "USDT" else 0.0)
        note = (f"{ins.venue} spot order {r.order_id} ({r.client_order_id}) {r.status}: {r.filled:.8g} {ins.asset} at {price:.2f}, "
                f"{cost:.2f} USDT, fee {fee:.6g} {cur}" + ("" if cur in ("USDT", ins.asset.upper()) or not fee else " (not booked)")
                + ("; found by client order id, not resent" if r.already_placed else ""))
        if spec.needs_transfer:
            back = (round(-sim_usdt * (1 + self.spot_transfer_buffer), 6) + cash) if ins.amount > 0 else cash
            if back > 1e-6:
                rid = client_order_id(plan_id, step.id, SPOT_RETURN_IDX)
                self._venue_call(plan_id, step, SPOT_RETURN_IDX, ins.venue, f"{ins.venue} {back:.6f} USDT spot -> USD-M after {step.id} ({rid})",
                                 lambda: ex.internal_transfer(round(back, 6), True, rid))
                note += f"; {back:.6f} USDT moved spot -> USD-M"
        fill = (Fill(tick, ins.venue, "spot_trade", "trading_fees", [Leg(ins.instrument, base, base), Leg(usdt, cash, cash)],
                     price=price, price_field=f"{ins.venue} spot fill", note=note), None)
        if r.status not in CLOSED or abs(r.filled) < abs(r.amount) * (1 - 1e-9):
            raise PartialExecution(f"{ins.instrument} spot order {cid} {r.status}: filled {r.filled} of {r.amount}", [fill])
        return [fill]

    # ------------------------------------------------------------------ DEX swaps
    def _swap(self, plan_id: str, step: Step, tick: int, ins: Instruction, fills: list) -> list:
        """One swap through SwapRouter02 (see the module doc); the fill's output from the receipt."""
        chain = self._need_chain()
        sim = next((f for f, _ in fills if f.operation == "swap" and f.category != "gas"), None)
        if sim is None or len(sim.legs) != 2 or not sim.legs[0].delta:
            raise ExecutionError(f"{step.id}: swap without a simulated fill to bound its price; not sent")
        sell, buy = ins.asset, ins.params["buy"]
        amount_in, sim_out = -sim.legs[0].delta, sim.legs[1].delta
        min_out = sim_out * (1 - self.swap_slippage)
        receipts = self._transactions(plan_id, step, tick, lambda: chain.build_swap(sell, buy, amount_in, min_out))
        _, token_out, dec = chain.chain_token(buy)
        to = SWAP_ROUTER02 if buy == "ETH" else chain.account  # ETH: WETH is paid to the router, which unwraps
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

    # ------------------------------------------------------------------ CEX transfers
    def _exchange(self, venue: str) -> ExchangeAdapter:
        ex = self.exchanges.get(venue)
        if ex is None:
            raise ExecutionError(f"no exchange adapter for {venue}; not sent")
        return ex

    def _deposit(self, plan_id: str, step: Step, tick: int, ins: Instruction, fills: list) -> list:
        """ERC-20 transfer of the (clamped) amount to the venue's deposit address, via the outbox.
        The deposit address is read on the first attempt only (a re-run uses the outbox)."""
        ex, chain = self._exchange(ins.venue), self._need_chain()
        amount = executed_amount(ins, [f for f, _ in fills if f.category != "gas"])

        def build():
            addr = ex.deposit_address(ins.asset)
            return [chain.build_transfer(ins.asset, addr, amount, f"deposit {amount:.6f} {ins.asset} to {ins.venue} ({addr})")]

        receipts = self._transactions(plan_id, step, tick, build)
        return self._with_receipt_gas(tick, step, "wallet", "transfer", fills, receipts)

    def _withdraw(self, plan_id: str, step: Step, tick: int, ins: Instruction, fills: list) -> list:
        """Trading -> funding account, then a withdrawal to the chain account (module doc)."""
        ex, chain = self._exchange(ins.venue), self._need_chain()
        amount = executed_amount(ins, [f for f, _ in fills if f.category != "gas"])
        tid = client_order_id(plan_id, step.id, TRANSFER_IDX)
        self._venue_call(plan_id, step, TRANSFER_IDX, ins.venue, f"{ins.venue} {amount:.6f} {ins.asset} trading -> funding ({tid})",
                         lambda: ex.internal_transfer(amount, False, tid, ins.asset), resend_safe=ins.venue == "bybit")
        wid = client_order_id(plan_id, step.id, WITHDRAW_IDX)
        again = []

        def send():
            rec, found = ex.withdraw(amount, chain.account, wid, ins.asset)
            again.append(found)
            return rec

        rec = self._venue_call(plan_id, step, WITHDRAW_IDX, ins.venue, f"{ins.venue} withdraw {amount:.6f} {ins.asset} to {chain.account} ({wid})",
                               send, lookup=lambda: ex.find_withdrawal(wid, ins.asset, chain.account, amount))
        note = f"{ins.venue} withdrawal {rec.get('id')} ({wid}) of {amount:.6f} {ins.asset} to {chain.account}" + \
            ("; found by client id, not resent" if (not again or again[0]) else "")
        return [(_fresh(f, note=f"{f.note}; {note}"), p) for f, p in fills]

    def _venue_call(self, plan_id: str, step: Step, idx: int, venue: str, description: str, send, *, lookup=None,
                    resend_safe: bool = False) -> dict:
        """A venue call written ahead in the outbox (row ``idx``): ``done`` rows are not repeated;
        a ``sending`` row (outcome unknown) is resolved by ``lookup`` or, when ``resend_safe``
        (the venue deduplicates the client id), sent again; otherwise it raises."""
        j = self.journal
        row = next((r for r in j.outbox(plan_id, step.id) if r["idx"] == idx), None)
        if row and row["status"] == "done":
            return json.loads(row["receipt"])
        if row and row["status"] == "sending":
            found = lookup() if lookup else None
            if found is not None:
                j.outbox_put(plan_id, step.id, idx, status="done", receipt=json.dumps(_plain_json(found)), time=_now())
                return _plain_json(found)
            if lookup is None and not resend_safe:
                raise ExecutionError(redact(f"{step.id}: {description} was sent before a crash and its outcome is unknown; "
                                            "check the venue's transfer history (not sent again)"))
        j.outbox_put(plan_id, step.id, idx, venue=venue, description=description, status="sending", time=_now())
        res = _plain_json(send())
        j.outbox_put(plan_id, step.id, idx, status="done", receipt=json.dumps(res), time=_now())
        return res

    def arrived(self, transit) -> bool:
        """Executor hook: may this transfer in transit be credited now? (the executor asks once
        its catalog latency has passed, every tick until True).

        A deposit arrives when the venue lists the deposit of the step's transaction as ``ok``
        and the amount has been moved to the trading account; a withdrawal when the venue
        reports it ``ok``. Read failures answer False (asked again next tick); the reason is in
        :attr:`arrival_note`."""
        self.arrival_note = None
        try:
            ok, why = self._arrived(transit)
        except (AdapterError, ExecutionError) as e:
            ok, why = False, str(e)
        if not ok:
            self.arrival_note = redact(f"{transit.plan_id}/{transit.step_id}: {why}")
        return ok

    def _arrived(self, tr) -> tuple[bool, str]:
        ex = self.exchanges.get(tr.venue)
        if ex is None:
            return False, f"no exchange adapter for {tr.venue}"
        rows = self.journal.outbox(tr.plan_id, tr.step_id)
        if tr.dst.endswith(":Margin:USDT"):  # a deposit
            sent = next((r for r in rows if r["idx"] < VENUE_IDX and r["status"] == "mined"), None)
            if sent is None:
                return False, "deposit transaction not mined"
            if not any(r["idx"] == TRANSFER_IDX and r["status"] == "done" for r in rows):
                rec = ex.find_deposit(sent["tx_hash"])
                if rec is None or rec.get("status") != "ok":
                    return False, f"{tr.venue} has not credited deposit {sent['tx_hash']} yet ({(rec or {}).get('status', 'not listed')})"
                amount = min(tr.amount, float(rec.get("amount") or tr.amount))
                tid = client_order_id(tr.plan_id, tr.step_id, TRANSFER_IDX)
                step = Step(tr.step_id, "", ())
                self._venue_call(tr.plan_id, step, TRANSFER_IDX, tr.venue, f"{tr.venue} {amount:.6f} USDT funding -> trading ({tid})",
                                 lambda: ex.internal_transfer(amount, True, tid), resend_safe=tr.venue == "bybit")
            return True, ""
        wid = client_order_id(tr.plan_id, tr.step_id, WITHDRAW_IDX)
        rec = ex.find_withdrawal(wid, "USDT", self.chain.account if self.chain else None, None)
        if rec is None or rec.get("status") != "ok":
            return False, f"{tr.venue} withdrawal {wid} not completed yet ({(rec or {}).get('status', 'not listed')})"
        return True, ""

    # ------------------------------------------------------------------ chain
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
            out.append((_fresh(f, note=f"{f.note}; mined in {hashes}"), price))
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
                             tx=json.dumps(_tx_json(tx)), status="built", time=_now())
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


def executed_amount(ins: Instruction, fills: list[Fill]) -> float:
    """The amount the simulation actually moved for ``ins`` (it clamps to the book): the
    asset-unit amount of the first simulated leg on ``ins.instrument`` from a fill of the same
    operation; the planned amount when there is none."""
    for f in fills:
        if f.operation == ins.operation:
            for leg in f.legs:
                if leg.key == ins.instrument:
                    return abs(leg.amount)
    return ins.amount


def _instruments(book) -> list[str]:
    """Perp positions the book holds (keys with a ``:Perp:`` part and a non-zero balance)."""
    return [k for k, v in getattr(book, "bal", {}).items() if ":Perp:" in k and v]


def _fresh(f: Fill, note: str) -> Fill:
    """A copy of a simulated fill with its own leg objects (the simulation's were applied)."""
    return Fill(f.tick, f.venue, f.operation, f.category, [Leg(l.key, l.delta, l.amount) for l in f.legs],
                price=f.price, price_field=f.price_field, note=note)


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


def _plain_json(x):
    """A venue answer as JSON-safe data (ccxt structures hold only JSON types; anything else
    becomes its string)."""
    return json.loads(json.dumps(x, default=str))


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
