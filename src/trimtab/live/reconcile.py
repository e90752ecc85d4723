"""Reconciliation: the book's positions against what the venues report (on ``--resume --execute``).

:func:`reconcile` compares, in asset units, every position the venue side can read:

=========================  =================================================================
book key                   venue read
=========================  =================================================================
``<cex>:Perp:<SYM>``       ``ExchangeAdapter.positions()`` signed size (asset units)
``<cex>:Margin:<CCY>``     ``ExchangeAdapter.balances()`` wallet balance, unrealised PnL excluded
``aave_v3:aToken:a<X>``    aToken ``balanceOf`` (supplied + interest), account + DSA
``aave_v3:debtToken:debt<X>``  variable debt token ``balanceOf``, account + DSA
``wallet:BaseToken:ETH``   ``eth_getBalance``, account + DSA
``wallet:BaseToken:<X>``   ERC-20 ``balanceOf`` for the tokens of ``contracts.TOKENS``
=========================  =================================================================

The chain rows are read by the position's chain venue adapter
(:meth:`ChainAdapter.read <trimtab.live.adapters.chain.ChainAdapter.read>`: the packages
``trimtab.live.adapters.aave_v3`` and ``.wallet``, for the position types their venue file's
``live.positions`` lists); the table shows the shipped venues.

A position the venue reports that the book does not hold is compared with 0. A non-zero book
position that nothing can read (a key of a venue without an adapter) is a mismatch too (venue
value NaN): it cannot be verified, so the run must not resume on trust. Transfers in transit
(``Transit`` keys) are skipped: they are in flight and no venue reports them.

Tolerances (:class:`Tolerances`, ``|book - venue| <= abs + rel x max(|book|, |venue|)``):

- perp sizes: 1e-8 asset units. The book records the venue's own reported fills, so any
  difference beyond float noise is an order or a liquidation the book does not know about.
- exchange margin balances: 1 unit + 0.1%. The book's funding is the settlement rate x the
  feed's hourly mark, the venue's uses its mark at the settlement instant (a few bps of a
  funding payment, itself ~1 bp of notional per 8 h); 0.1% of the balance covers weeks of
  that and still catches a missing fee, trade or transfer (>= 1 USDT).
- Aave balances: 1e-6 units + 0.01%. The book accrues with the feed's hourly index, the chain
  to the latest block: at most ~1 h of interest, 10% APR / 8760 ~ 1.1e-5 relative; 1e-4 is 9x
  that. Base-unit rounding of amounts sent (down to 1e-18, 1e-6 for USDT) is far below 1e-6.
- wallet tokens: 1e-6 units + 0.05%. Gas is booked from receipts exactly; LST units minted
  are booked at the oracle rate, which differs from the protocol's mint rate by a few bps;
  eETH/stETH share rounding is 1-2 wei.

Errors: adapter reads raise :class:`~trimtab.live.adapters.base.AdapterError` (redacted).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..keys import parse_key


@dataclass(frozen=True)
class Tolerances:
    """Absolute (asset units) and relative tolerances per kind of position (see module doc)."""

    perp_abs: float = 1e-8
    perp_rel: float = 0.0
    margin_abs: float = 1.0
    margin_rel: float = 1e-3
    aave_abs: float = 1e-6
    aave_rel: float = 1e-4
    wallet_abs: float = 1e-6
    wallet_rel: float = 5e-4

    def of(self, kind: str, book: float, venue: float) -> float:
        a, r = getattr(self, f"{kind}_abs"), getattr(self, f"{kind}_rel")
        return a + r * max(abs(book), abs(venue) if math.isfinite(venue) else 0.0)


@dataclass(frozen=True)
class Mismatch:
    """One position where book and venue disagree beyond ``tolerance`` (asset units).
    ``venue`` is NaN when no adapter can read the position."""

    instrument: str
    book: float
    venue: float
    tolerance: float
    source: str

    def __str__(self) -> str:
        if math.isnan(self.venue):
            return f"{self.instrument}: book {self.book:.10g}, venue unknown ({self.source})"
        return (f"{self.instrument}: book {self.book:.10g}, venue {self.venue:.10g} "
                f"(difference {self.book - self.venue:+.6g} > tolerance {self.tolerance:.3g}; {self.source})")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["venue"] = None if math.isnan(self.venue) else self.venue
        d["message"] = str(self)
        return d


def book_positions(book, px) -> dict[str, float]:
    """Every instrument the strategy knows (``px.info``) and every book key, in asset units
    (Aave: scaled x the current index), zeros included so a venue-only position is compared."""
    keys = set(px.info) | set(book.bal)
    return {k: (px.amount(k, book.qty(k)) if k in px.info else book.qty(k)) for k in sorted(keys)}


def reconcile(positions: dict[str, float], gateway, tolerances: Tolerances = Tolerances()) -> list[Mismatch]:
    """Compare ``positions`` (key -> asset units, e.g. :func:`book_positions`) with the venues
    behind ``gateway`` (a :class:`~trimtab.live.execution.VenueGateway`: its ``exchanges`` and
    ``chain``). Returns the mismatches beyond tolerance, sorted by instrument (empty: all agree).
    """
    tol = tolerances
    venue: dict[str, tuple[float, str, str]] = {}  # key -> (value, tolerance kind, source)
    for name, ex in sorted(gateway.exchanges.items()):
        pos, bal = ex.positions(), ex.balances()
        for k, (size, _) in pos.items():
            venue[k] = (size, "perp", f"{name} positions")
        for k, v in bal.items():
            venue[k] = (v, "margin", f"{name} wallet balance")
        for k in positions:
            p = parse_key(k)
            if p.venue == name and p.position_type in ("Perp", "Margin") and k not in venue:
                venue[k] = (0.0, "perp" if p.position_type == "Perp" else "margin", f"{name}: none reported")
    chain = getattr(gateway, "chain", None)
    if chain is not None:
        for k in positions:
            p = parse_key(k)
            reading = chain.read(p.venue, p.position_type, p.symbol)  # the venue adapter's, None: not read
            if reading is not None:
                venue[k] = reading
    out: list[Mismatch] = []
    for k in sorted(set(positions) | set(venue)):
        b = positions.get(k, 0.0)
        if k in venue:
            v, kind, source = venue[k]
            t = tol.of(kind, b, v)
            if abs(b - v) > t:
                out.append(Mismatch(k, b, v, t, source))
        elif abs(b) > 1e-12 and parse_key(k).position_type != "Transit":
            out.append(Mismatch(k, b, math.nan, 0.0, "no adapter reads this position"))
    return out


def reconcile_engine(engine, gateway, tolerances: Tolerances = Tolerances()) -> list[Mismatch]:
    """Reconcile an engine's book (at the start of a run or on resume) with the venues; journal the result (meta
    ``reconciliation``, committed at once) and halt the engine (``engine.halted = True``: rules
    are still evaluated and journaled, nothing fires) when anything is out of tolerance."""
    found = reconcile(book_positions(engine.book, engine.px), gateway, tolerances)
    engine.journal.meta("reconciliation", {"tick": engine.next_tick, "ok": not found,
                                           "mismatches": [m.to_dict() for m in found], "tolerances": asdict(tolerances)})
    engine.journal.db.commit()
    if found:
        engine.halted = True
    return found
