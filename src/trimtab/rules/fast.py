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


def _fast_bool(tag: str, kids: tuple) -> Fn:
    neutral = tag == "and"  # constants that cannot decide the result are dropped
    kept = [k for k in kids if not (k[0] == "const" and k[1] == neutral)]
    if not kept:  # pragma: no cover - folded to a constant before we get here
        return lambda env: neutral
    fs = [fast(k) for k in kept]
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
