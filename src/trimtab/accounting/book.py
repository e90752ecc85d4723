"""The book: every position, changed only by fills.

Positions are held in *book units*: scaled balances for Aave (amount = scaled x index, so
interest accrues with no fill), contracts (signed, in asset units) for perps, token amounts
otherwise. Every other change (a trade, a transfer, gas, funding, a liquidation) is a
:class:`Fill` whose legs add to the positions, so at any time each position equals the sum of
its fills' legs (:meth:`Book.check_fills`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..keys import parse_key

EPS = 1e-9

_PTYPES: dict[str, str] = {}  # key -> position type, parsed once (keys are few, fills many)


def _ptype(key: str) -> str:
    """``parse_key(key).position_type``, memoised; a malformed key raises every time."""
    t = _PTYPES.get(key)
    if t is None:
        t = _PTYPES[key] = parse_key(key).position_type
    return t


@dataclass(slots=True)
class Leg:
    """One position change: ``delta`` in book units, ``amount`` in asset units (for reading)."""

    key: str
    delta: float
    amount: float = 0.0


@dataclass(slots=True)
class Fill:
    """A change to the book with its cause.

    ``category`` is the P&L category its equity impact is booked to (trading_fees, gas,
    funding, liquidation, transfer); ``impact`` (share class) is set when it is applied.
    ``price``/``price_field`` say what it filled at and which data field that price came from.
    """

    tick: int
    venue: str
    operation: str
    category: str
    legs: list[Leg]
    plan_id: str | None = None
    step_id: str | None = None
    price: float | None = None
    price_field: str | None = None
    note: str = ""
    impact: float = 0.0
    id: int = 0


@dataclass
class Book:
    """Positions by instrument key, perp entry prices, and the per-key sum of fill legs.

    ``version`` counts changes (every :meth:`apply` and :meth:`restore`): anything derived from
    the positions alone (a perp account's margin, an Aave health factor) can be cached per
    (tick, version), since only fills change the book.
    """

    bal: dict[str, float] = field(default_factory=dict)
    entry: dict[str, float] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    version: int = 0

    def qty(self, key: str) -> float:
        return self.bal.get(key, 0.0)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """The book as plain data: ``{"bal": {key: book units}, "entry": {perp key: price},
        "sums": {key: sum of fill legs}}`` (copies; JSON-able, see trimtab.engine.checkpoint)."""
        return {"bal": dict(self.bal), "entry": dict(self.entry), "sums": dict(self.sums)}

    def restore(self, snap: dict[str, dict[str, float]]) -> None:
        """Load a :meth:`snapshot` (copied, so the snapshot can be restored again)."""
        self.bal, self.entry, self.sums = dict(snap["bal"]), dict(snap["entry"]), dict(snap["sums"])
        self.version += 1

    def apply(self, fill: Fill, trade_price: float | None = None) -> None:
        """Add the fill's legs to the book.

        A leg on a ``Perp`` key is a trade at ``trade_price``: the entry price is averaged on
        increases, and on reductions the realised P&L, ``closed x (entry - price)``, is added
        as an extra leg on the venue's ``Margin:USDT`` key (so fills still sum to positions).
        """
        self.version += 1
        bal, sums = self.bal, self.sums  # (_trade_perp changes bal in place)
        extra: list[Leg] = []
        for leg in fill.legs:
            key, delta = leg.key, leg.delta
            if delta == 0.0:
                continue
            if (_PTYPES.get(key) or _ptype(key)) == "Perp":  # _ptype's memo read inline: every fill's legs
                realised = self._trade_perp(key, delta, trade_price)
                if realised:
                    extra.append(Leg(f"{key.split(':', 1)[0]}:Margin:USDT", realised, realised))
            else:
                bal[key] = bal.get(key, 0.0) + delta
            sums[key] = sums.get(key, 0.0) + delta
        if extra:
            for leg in extra:
                bal[leg.key] = bal.get(leg.key, 0.0) + leg.delta
                sums[leg.key] = sums.get(leg.key, 0.0) + leg.delta
            fill.legs.extend(extra)

    def _trade_perp(self, key: str, ds: float, price: float | None) -> float:
        if price is None:
            raise ValueError(f"a perp leg on {key} needs a trade price")
        s0 = self.bal.get(key, 0.0)
        e0 = self.entry.get(key, 0.0)
        if s0 == 0.0 or (s0 > 0) == (ds > 0):
            s1 = s0 + ds
            self.entry[key] = (s0 * e0 + ds * price) / s1
            self.bal[key] = s1
            return 0.0
        closed = -s0 if abs(ds) >= abs(s0) else ds
        realised = closed * (e0 - price)
        rest = ds - closed
        s1 = s0 + closed + rest
        self.bal[key] = s1
        if abs(s0 + closed) < EPS:
            self.entry[key] = price if rest else 0.0
        return realised

    def check_fills(self, tol: float = 1e-9) -> list[str]:
        """Keys whose position differs from the sum of their fills (empty when consistent)."""
        bad = []
        for k in set(self.bal) | set(self.sums):
            a, b = self.bal.get(k, 0.0), self.sums.get(k, 0.0)
            if abs(a - b) > tol * max(1.0, abs(a)):
                bad.append(f"{k}: position {a!r} != sum of fills {b!r}")
        return sorted(bad)

    def negatives(self, tol: float = 1e-9) -> list[str]:
        """Non-perp keys holding a negative balance (a bug or an over-spend)."""
        return sorted(k for k, v in self.bal.items() if v < -tol and _ptype(k) not in ("Perp",))
