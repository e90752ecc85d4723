"""The ``legs`` text of a journal fill row, built without ``json.dumps`` for the usual fill.

A fill's legs are journaled as ``[[key, delta, amount], ...]``, compact JSON (trimtab.engine.journal).
A backtest writes one row per fill, most of them funding settlements (the flagship: ~4,800), so
the encoder's per-call set-up is most of the cost. For the usual leg, a ``str`` key and two
finite ``float`` numbers, the text is known exactly: the key's JSON (cached: keys are a
strategy's few instrument keys) and ``repr`` of each float, which is what json's encoder writes
for a finite float (``float.__repr__``). Anything else is left to the journal's own encoder.
"""
from __future__ import annotations

import json

__all__ = ["legs_json", "one_leg_json"]

_KEY_TEXT: dict[str, str] = {}   # instrument key -> json.dumps(key)
_KEY_CACHE_MAX = 4096            # keys are a strategy's instruments; never let odd input grow this


def legs_json(legs) -> str | None:
    """``json.dumps([[l.key, l.delta, l.amount] for l in legs], separators=(",", ":"))`` for
    ``legs`` (a list of :class:`trimtab.accounting.book.Leg`) whose keys are ``str`` and whose
    numbers are finite ``float`` (exactly, not a subclass such as numpy's float64, whose repr
    differs); None for any other legs (inf/nan, ints, other types): the caller then encodes
    them itself. The same text character for character when not None."""
    parts = []
    for leg in legs:
        d, a = leg.delta, leg.amount
        # inf - inf and nan - nan are nan, never 0.0: a non-finite number takes the slow path
        if type(d) is not float or type(a) is not float or d - d != 0.0 or a - a != 0.0:
            return None
        key = leg.key
        k = _KEY_TEXT.get(key) if type(key) is str else None
        if k is None:
            if type(key) is not str:
                return None
            k = _key_text(key)
        r = repr(d)  # float repr is most of the cost: a funding or fee leg's amount is its delta
        parts.append(f"[{k},{r},{r if a is d else repr(a)}]")
    return "[" + ",".join(parts) + "]"


def one_leg_json(key: str, amount: float) -> str:
    """:func:`legs_json` of one leg on ``key`` whose delta is its ``amount`` (a funding
    settlement's), a finite ``float`` (the caller checks it): the same text."""
    k = _KEY_TEXT.get(key) or _key_text(key)
    r = repr(amount)
    return f"[[{k},{r},{r}]]"


def _key_text(key: str) -> str:
    """``json.dumps(key)``, kept for the next fill on ``key``."""
    k = json.dumps(key)
    if len(_KEY_TEXT) < _KEY_CACHE_MAX:
        _KEY_TEXT[key] = k
    return k
