"""Instrument keys: ``venue:position_type:symbol``.

The one parser for instrument keys (DESIGN.md, "Names"). Examples::

    aave_v3:aToken:aweETH      aave_v3:debtToken:debtWETH    etherfi:BaseToken:weETH
    binance:Perp:ETHUSDT       binance:Margin:USDT           wallet:BaseToken:USDT

Position types are a closed set so a typo is caught at load time, not as a silent
zero position at run time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

#: Position types trimtab knows. ``Transit`` holds funds between venues (sent, not yet
#: credited), so equity never loses money that is merely in flight.
POSITION_TYPES = ("BaseToken", "aToken", "debtToken", "Perp", "Margin", "Transit")

_PART = re.compile(r"^[A-Za-z0-9_.\-]+$")
_HELP = "expected 'venue:position_type:symbol', e.g. 'aave_v3:aToken:aweETH'"


class InstrumentKeyError(ValueError):
    """A malformed instrument key; the message says what is wrong and the expected form."""


@dataclass(frozen=True, slots=True)
class InstrumentKey:
    """A parsed instrument key. ``str(key)`` gives back the canonical text."""

    venue: str
    position_type: str
    symbol: str

    def __str__(self) -> str:
        return f"{self.venue}:{self.position_type}:{self.symbol}"


def parse_key(text: str) -> InstrumentKey:
    """Parse ``venue:position_type:symbol``.

    Raises:
        InstrumentKeyError: wrong number of parts, an empty or invalid part, or an unknown
            position type (the message lists the known ones).
    """
    if not isinstance(text, str):
        raise InstrumentKeyError(f"instrument key must be a string, got {type(text).__name__}; {_HELP}")
    parts = text.split(":")
    if len(parts) != 3:
        raise InstrumentKeyError(f"malformed instrument key {text!r}: {len(parts)} part(s); {_HELP}")
    venue, ptype, symbol = parts
    for name, part in (("venue", venue), ("position_type", ptype), ("symbol", symbol)):
        if not part or not _PART.match(part):
            raise InstrumentKeyError(f"malformed instrument key {text!r}: invalid {name} {part!r}; {_HELP}")
    if ptype not in POSITION_TYPES:
        import difflib

        close = difflib.get_close_matches(ptype, POSITION_TYPES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InstrumentKeyError(
            f"malformed instrument key {text!r}: unknown position type {ptype!r}{hint} "
            f"(known: {', '.join(POSITION_TYPES)})"
        )
    return InstrumentKey(venue, ptype, symbol)


def key(venue: str, position_type: str, symbol: str) -> str:
    """Build and validate a key string from its parts."""
    return str(parse_key(f"{venue}:{position_type}:{symbol}"))
