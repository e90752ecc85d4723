"""Fast closures: IR (see :mod:`trimtab.rules.fold`) -> ``fn(env) -> value``.

This is the hot path of every backtest step, hence the specialised closures for the common
guard shapes ("name OP constant"); each must give exactly the result the generic form would.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping

from .nodes import MIRROR
from .runtime import ARITH, CMP, div_by_zero, max2, min2

#: A compiled closure: environment (metric name -> float) -> bool or float.
Fn = Callable[[Mapping[str, float]], object]


def fast(ir: tuple) -> Fn:
    """Closure evaluating ``ir`` (an IR tuple from :func:`~trimtab.rules.fold.fold`) on ``env``.

    Raises ``KeyError`` for a name missing from ``env`` (the caller turns it into ExprError).
    """
    tag = ir[0]
    if tag == "const":
        v = ir[1]
        return lambda env: v
    if tag == "name":
        return operator.itemgetter(ir[1])
    if tag == "neg":
        arg = ir[1]
        if arg[0] == "name":
            n = arg[1]
            return lambda env: -env[n]
        f = fast(arg)
        return lambda env: -f(env)
    if tag == "call":
        return _fast_call(ir[1], ir[2])
    if tag == "bin":
        return _fast_bin(ir[1], ir[2], ir[3])
    if tag == "cmp":
        return _fast_cmp(ir[1], ir[2], ir[3])
    if tag == "not":
        f = fast(ir[1])
        return lambda env: not f(env)
    if tag == "truth":
        f = fast(ir[1])

        def truth(env):
            x = f(env)
            return x != 0 and x == x

        return truth
    if tag in ("and", "or"):
        return _fast_bool(tag, ir[1])
    raise AssertionError(tag)  # pragma: no cover


def _fast_call(fname: str, args: tuple) -> Fn:
    if fname == "abs":
        (arg,) = args
        if arg[0] == "name":
            n = arg[1]
            return lambda env: abs(env[n])
        f = fast(arg)
        return lambda env: abs(f(env))
    pick = min2 if fname == "min" else max2
    fs = [fast(a) for a in args]
    if len(fs) == 2:
        a, b = fs
        return lambda env: pick(a(env), b(env))
    first, rest = fs[0], tuple(fs[1:])

    def reduce_(env):
        acc = first(env)
        for g in rest:
            acc = pick(acc, g(env))
        return acc

    return reduce_


# Specialised closures for "name OP constant" and "expr OP constant", the common guard shapes.
_NAME_CONST_ARITH = {
    "+": lambda n, c: lambda env: env[n] + c,
    "-": lambda n, c: lambda env: env[n] - c,
    "*": lambda n, c: lambda env: env[n] * c,
    "/": lambda n, c: lambda env: env[n] / c,  # only used for a non-zero constant
}
_FN_CONST_ARITH = {
    "+": lambda f, c: lambda env: f(env) + c,
    "-": lambda f, c: lambda env: f(env) - c,
    "*": lambda f, c: lambda env: f(env) * c,
    "/": lambda f, c: lambda env: f(env) / c,
}


def _fast_bin(op: str, left: tuple, right: tuple) -> Fn:
    if right[0] == "const" and (op != "/" or (right[1] != 0 and right[1] == right[1])):
        c = right[1]
        if left[0] == "name":
            return _NAME_CONST_ARITH[op](left[1], c)
        return _FN_CONST_ARITH[op](fast(left), c)
    lf, rf = fast(left), fast(right)
    if op == "/":

        def div(env):
            a = lf(env)
            b = rf(env)
            return a / b if b else div_by_zero(a, b)

        return div
    fn = ARITH[op]
    return lambda env: fn(lf(env), rf(env))


def _ne_name_const(n, c):
    def ne(env):
        x = env[n]
        return x < c or x > c

    return ne


def _ne_fn_const(f, c):
    def ne(env):
        x = f(env)
        return x < c or x > c

    return ne


_NAME_CONST_CMP = {
    "<": lambda n, c: lambda env: env[n] < c,
    "<=": lambda n, c: lambda env: env[n] <= c,
    ">": lambda n, c: lambda env: env[n] > c,
    ">=": lambda n, c: lambda env: env[n] >= c,
    "==": lambda n, c: lambda env: env[n] == c,
    "!=": _ne_name_const,
}
_FN_CONST_CMP = {
    "<": lambda f, c: lambda env: f(env) < c,
    "<=": lambda f, c: lambda env: f(env) <= c,
    ">": lambda f, c: lambda env: f(env) > c,
    ">=": lambda f, c: lambda env: f(env) >= c,
    "==": lambda f, c: lambda env: f(env) == c,
    "!=": _ne_fn_const,
}


def _fast_cmp(op: str, left: tuple, right: tuple) -> Fn:
    if left[0] == "const" and right[0] != "const":
        # Mirroring is exact for floats: "c < x" and "x > c" agree, NaN included.
        op, left, right = MIRROR[op], right, left
    if right[0] == "const":
        c = right[1]
        if left[0] == "name":
            return _NAME_CONST_CMP[op](left[1], c)
        return _FN_CONST_CMP[op](fast(left), c)
    lf, rf = fast(left), fast(right)
    if op == "!=":

        def ne(env):
            a = lf(env)
            b = rf(env)
            return a < b or a > b

        return ne
    fn = CMP[op]
    return lambda env: fn(lf(env), rf(env))


def _fast_bool(tag: str, kids: tuple, make: Callable[[tuple], Fn] = None) -> Fn:  # type: ignore[assignment]
    """``and``/``or`` over ``kids``, each compiled with ``make`` (default :func:`fast`)."""
    neutral = tag == "and"  # constants that cannot decide the result are dropped
    kept = [k for k in kids if not (k[0] == "const" and k[1] == neutral)]
    if not kept:  # pragma: no cover - folded to a constant before we get here
        return lambda env: neutral
    fs = [(make or fast)(k) for k in kept]
    if len(fs) == 1:
        return fs[0]
    if tag == "and":
        if len(fs) == 2:
            a, b = fs
            return lambda env: a(env) and b(env)
        if len(fs) == 3:
            a, b, c = fs
            return lambda env: a(env) and b(env) and c(env)
        ts = tuple(fs)

        def all_(env):
            for f in ts:
                if not f(env):
                    return False
            return True

        return all_
    if len(fs) == 2:
        a, b = fs
        return lambda env: a(env) or b(env)
    if len(fs) == 3:
        a, b, c = fs
        return lambda env: a(env) or b(env) or c(env)
    ts = tuple(fs)

    def any_(env):
        for f in ts:
            if f(env):
                return True
        return False

    return any_


# --- guards with "NaN in guards" semantics -------------------------------------------------
#
# The fast counterpart of trimtab.rules.trace.tracer(ir, nan_as) for nan_as True/False: the same
# value, the same names read in the same order (so the same KeyError), but no Comparison records.
# Per comparison: a NaN side makes it count as ``nan_as`` (flipped under ``not``); a NaN number
# used as a boolean counts as ``nan_as`` too. Numbers are unchanged (they hold no comparisons).


def fast_guard(ir: tuple, nan_as: bool | None) -> Fn:
    """Closure ``fn(env)`` whose truth is exactly that of the value ``tracer(ir, nan_as)`` gives
    (the value of :meth:`CompiledExpr.trace`), without recording comparisons.

    The result is a bool (``numpy.bool_`` for numpy metrics): a guard that is a bare number is
    wrapped in ``bool()``, because ``transitions`` tests conditions with ``== True``. ``nan_as``
    None is IEEE semantics (the plain :func:`fast` closure). Raises ``KeyError`` for a name
    missing from ``env`` where the tracing closure would (same names, same order).
    """
    f = fast(ir) if nan_as is None else _fast_nan(ir, nan_as)
    if ir[0] in ("name", "call", "neg", "bin") or (ir[0] == "const" and not isinstance(ir[1], bool)):
        return lambda env: bool(f(env))
    return f


def _fast_nan(ir: tuple, nan_as: bool) -> Fn:
    tag = ir[0]
    if tag == "const":
        v = ir[1]
        return lambda env: v
    if tag == "cmp":
        return _nan_cmp(ir[1], ir[2], ir[3], nan_as)
    if tag == "not":
        f = _fast_nan(ir[1], not nan_as)  # polarity flips under "not", as in the tracer
        return lambda env: not f(env)
    if tag == "truth":
        g = fast(ir[1])

        def truth_or_fault(env):
            x = g(env)
            return nan_as if x != x else x != 0

        return truth_or_fault
    if tag in ("and", "or"):
        return _fast_bool(tag, ir[1], lambda k: _fast_nan(k, nan_as))
    return fast(ir)  # a number


def _nan_side(ir: tuple, nan_as: bool) -> Fn:
    """Closure of one comparison operand, as the tracer builds it (numbers: plain fast)."""
    if ir[0] in ("name", "call", "neg", "bin"):
        return fast(ir)
    return _fast_nan(ir, nan_as)


def _nan_cmp(op: str, left: tuple, right: tuple, nan_as: bool) -> Fn:
    if left[0] == "const" and right[0] != "const":
        # Mirroring is exact for floats ("c < x" and "x > c" agree) and the NaN test is symmetric.
        op, left, right = MIRROR[op], right, left
    fn = CMP[op]
    if right[0] == "const":
        c = right[1]
        f = _nan_side(left, nan_as)
        if c != c:
            def nan_const(env):
                f(env)  # still read the operand: a missing metric raises as in the tracer
                return nan_as

            return nan_const
        if left[0] == "name":
            n = left[1]

            def name_const(env):
                x = env[n]
                return fn(x, c) if x == x else nan_as

            return name_const

        def fn_const(env):
            x = f(env)
            return fn(x, c) if x == x else nan_as

        return fn_const
    lf, rf = _nan_side(left, nan_as), _nan_side(right, nan_as)

    def both(env):
        a = lf(env)
        b = rf(env)
        res = fn(a, b)  # first, as the tracer does: a non-number raises even beside a NaN
        return res if a == a and b == b else nan_as

    return both
