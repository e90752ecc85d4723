"""IEEE 754 arithmetic and NaN-safe comparisons shared by constant folding and the closures.

Division never raises (``x / 0`` is a signed infinity, ``0 / 0`` NaN, as IEEE 754 prescribes);
every comparison with a NaN side is false, ``!=`` included; ``min``/``max`` are NaN if any
argument is.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

NAN = math.nan
INF = math.inf


def div_by_zero(a: float, b: float) -> float:
    """IEEE 754 result of ``a / b`` for a zero ``b``: signed infinity, or NaN for 0/0, NaN/0."""
    if a != a or a == 0:
        return NAN
    return math.copysign(INF, a) * math.copysign(1.0, b)


def div(a: float, b: float) -> float:
    """``a / b`` that never raises: division by zero gives inf/-inf/nan as IEEE 754 would."""
    return a / b if b else div_by_zero(a, b)


def min2(a: float, b: float) -> float:
    """``min(a, b)``, NaN if either side is NaN (independent of argument order)."""
    return a if a <= b else (b if b < a else NAN)


def max2(a: float, b: float) -> float:
    """``max(a, b)``, NaN if either side is NaN (independent of argument order)."""
    return a if a >= b else (b if b > a else NAN)


def ne(a: object, b: object) -> bool:
    """NaN-safe ``!=``: false when either side is NaN, like every other comparison."""
    return a < b or a > b  # type: ignore[operator]


def truth(x: object) -> bool:
    """Truth of a value in a boolean context: non-zero and not NaN (bools are themselves)."""
    return x != 0 and x == x


ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": div,
}
CMP: dict[str, Callable[[object, object], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": ne,
}


def call_value(fname: str, args: list) -> float:
    """Value of the whitelisted function ``fname`` (abs/min/max) on ``args`` (floats)."""
    if fname == "abs":
        return abs(args[0])
    pick = min2 if fname == "min" else max2
    acc = args[0]
    for a in args[1:]:
        acc = pick(acc, a)
    return acc
