"""Real execution: the venue side of the executor for ``--execute`` runs.

:class:`VenueGateway` is the live counterpart of :class:`trimtab.engine.executor.PaperGateway`
(same protocol, ``execute(plan_id, step, tick, simulated_fills) -> fills``). The executor has
already run the step on the simulated venues (the pre-trade estimate; for a bundle also the
safety check: balances, flash repayment, health factor >= 1). The gateway then carries the
step out on the venue and returns the fills *as the venue reported them*.

Each kind of step is carried out, and documented, in its own module:

- :mod:`.perps`: perp ``trade`` (Binance, Bybit, OKX) and the resting take-profit / stop-loss
  of signal-driven perps (:meth:`VenueGateway.stops`);
- :mod:`.spot`: CEX ``spot_trade`` (Binance, Bybit spot);
- :mod:`.chain_steps`: chain operations (``stake``, Aave v3 ``supply``/``withdraw``/``borrow``/
  ``repay``), the flash-loan bundle and DEX ``swap``, through the journal's write-ahead outbox;
- :mod:`.transfers`: CEX ``deposit``/``withdraw`` and their arrival (:meth:`VenueGateway.arrived`).

:class:`VenueGateway` composes them (one mixin class per module) and dispatches each step;
:mod:`.common` holds what they share.

No instruction twice across a crash: the journal checkpoints once per tick, so a process
killed mid-tick re-runs the step in flight on resume. Orders are found by client id; chain
steps are read back from the outbox -- a transaction that was signed is never signed again
for the same (plan, step, index): its receipt is looked up, or the same signed bytes are
rebroadcast (same nonce: it can be mined once only).

:func:`unsupported_operations` lists what a strategy needs that none of the above covers;
:func:`trimtab.live.connect.venue_gateway` refuses such a strategy at start-up. LST
``unstake`` is not listed: no plan emits it (the planner sells LSTs on the swap venue; the
executor has no unstake outside a bundle).
Failures raise :class:`~trimtab.errors.ExecutionError` (nothing happened) or
:class:`~trimtab.engine.executor.PartialExecution` (part happened: its fills are booked), so
the executor's failure path (later steps cancelled, journaled, leg-risk compensation) applies.
Messages are redacted (:func:`trimtab.secrets.redact`); nothing here holds a key.
"""
from __future__ import annotations

import time

from ...errors import ExecutionError
from ...planner.plan import Step
from ...templates.registry import template_for
from ..adapters.base import AdapterError
from ..adapters.chain import ChainAdapter
from ..adapters.contracts import CHAIN_SYMBOL
from ..adapters.exchange import ExchangeAdapter
from ..adapters.registry import chain_venues, strategy_chain_venues
from .chain_steps import ChainSteps
from .common import CLOSED, DEAD, TRANSFER_IDX, VENUE_IDX, WITHDRAW_IDX, executed_amount
from .perps import STOP_IDX, STOPS_PLAN, PerpSteps
from .spot import SPOT_RETURN_IDX, SpotSteps
from .transfers import TransferSteps

__all__ = ["VenueGateway", "unsupported_operations", "executed_amount", "CLOSED", "DEAD", "VENUE_IDX",
           "TRANSFER_IDX", "WITHDRAW_IDX", "SPOT_RETURN_IDX", "STOP_IDX", "STOPS_PLAN", "live_spot", "live_stops"]

def live_spot(strategy, venue: str) -> bool:
    """True when ``venue``'s file declares a spot market adapter (``live.spot``)."""
    v = strategy.venues.get(venue)
    return v is not None and v.live is not None and v.live.spot is not None


def live_stops(strategy, venue: str) -> bool:
    """True when ``venue``'s file declares resting take-profit / stop-loss orders (``live.stops``)."""
    v = strategy.venues.get(venue)
    return v is not None and v.live is not None and v.live.stops is not None


def unsupported_operations(strategy) -> list[str]:
    """What the strategy's plans can emit that :class:`VenueGateway` cannot execute (sorted).

    - ``<venue>.spot_trade`` for a ``spot`` target on a venue without a spot market adapter
      (no ``live.spot`` block in its venue file; shipped: Binance, Bybit have one);
    - ``<venue>.swap <pair>`` for a DEX pair its chain adapter does not swap (no chain
      ``live:`` block, no on-chain token in ``contracts.TOKENS``, or no pool fee tier in the
      venue file's ``live.fee_tiers``);
    - ``<venue> perp take-profit/stop-loss orders`` for signal-driven perps on a venue whose
      conditional orders are not implemented (no ``live.stops`` block: all but Binance and Bybit).

    Bundle-internal operations (flash loans, the unwind's swap) run inside the bundle. LST
    ``unstake`` is never emitted by a plan (see the module doc) and is not listed.
    """
    out = set()
    chain = strategy_chain_venues(strategy.venues)
    for name, v in strategy.venues.items():
        if v.model == "dex" and "swap" in v.operations:
            for pair in (v.pairs or {}):
                syms = [CHAIN_SYMBOL.get(a, a) for a in pair.split("/")]
                if name not in chain or len(syms) != 2 or not chain[name].can_swap(*syms):
                    out.add(f"{name}.swap {pair}")
    for t in strategy.config.targets:
        out |= template_for(t).live_gaps(t, lambda v: live_spot(strategy, v), lambda v: live_stops(strategy, v))
    return sorted(out)


class VenueGateway(PerpSteps, SpotSteps, ChainSteps, TransferSteps):
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
            if self._on_chain(ins):
                return self._chain_op(plan_id, step, tick, ins, fills)
            if ins.operation == "swap":
                return self._swap(plan_id, step, tick, ins, fills)
            if ins.operation == "deposit" and ins.venue in self.exchanges:
                return self._deposit(plan_id, step, tick, ins, fills)
            if ins.operation == "withdraw" and ins.venue in self.exchanges:
                return self._withdraw(plan_id, step, tick, ins, fills)
            if ins.operation in ("deposit", "withdraw"):  # a chain venue's withdraw was sent above
                raise ExecutionError(f"{plan_id}/{step.id}: no exchange adapter for {ins.venue}; not sent")
        except AdapterError as e:
            raise ExecutionError(f"{plan_id}/{step.id}: {e}") from None
        raise ExecutionError(f"{plan_id}/{step.id}: live execution of {ins.venue}.{ins.operation} is not implemented; not sent")

    # ------------------------------------------------------------------ adapters
    def _on_chain(self, ins) -> bool:
        """True when a chain venue adapter builds ``ins`` (its venue file's ``live.operations``):
        the chain adapter's venues, or without one the checkout's (the step then fails: no
        chain adapter configured)."""
        venues = self.chain.venues if self.chain is not None else chain_venues()
        v = venues.get(ins.venue)
        return v is not None and v.builds(ins.operation)

    def _exchange(self, venue: str) -> ExchangeAdapter:
        ex = self.exchanges.get(venue)
        if ex is None:
            raise ExecutionError(f"no exchange adapter for {venue}; not sent")
        return ex
