"""Vectorised guards: IR (see :mod:`trimtab.rules.fold`) -> ``fn(env) -> bool array``.

The numpy counterpart of :func:`trimtab.rules.fast.fast_guard`, for the kernel's quiet spans
(:mod:`trimtab.engine.quiet`): ``env`` maps each metric name to a float64 array over the
span's ticks (or one float for all of them), and the result holds, tick by tick, the truth of
the value ``fast_guard(ir, nan_as)`` gives for that tick's metrics. The semantics are those of
:mod:`trimtab.rules.runtime` and :mod:`trimtab.rules.fast`, element by element: IEEE 754
arithmetic (``x / 0`` a signed infinity, ``0 / 0`` NaN, which is what numpy's division gives),
``min``/``max`` NaN if either side is, every comparison with a NaN side false (``!=``
included); with ``nan_as`` (critical rules) a comparison with a NaN side counts as ``nan_as``,
flipped under ``not``, and so does a NaN number used as a boolean.

A shape this module does not reproduce exactly (a boolean used as a comparison operand or a
number used as an ``and``/``or`` operand, which the grammar's folding never produces) makes
:func:`vector_guard` return None: the caller then evaluates tick by tick.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from .nodes import MIRROR

#: A vectorised guard: environment (metric name -> array or float) -> bool array or bool.
VFn = Callable[[Mapping[str, object]], object]
_NUM = ("const", "name", "neg", "call", "bin")


class _Unsupported(Exception):
    """An IR shape without an exact vector form here."""


def vector_guard(ir: tuple, nan_as: bool | None) -> VFn | None:
    """Vectorised ``fast_guard(ir, nan_as)``: ``fn(env)`` returns a bool array (or a bool, when
    nothing in ``ir`` varies) whose element t is the truth of the guard on tick t's metrics.
    None when ``ir`` holds a shape without an exact vector form. Raises ``KeyError`` (at call
    time) for a name missing from ``env``."""
    try:
        if ir[0] in ("name", "call", "neg", "bin") or (ir[0] == "const" and not isinstance(ir[1], bool)):
            num = _num(ir)
            f = lambda env: num(env) != 0  # bool(x): NaN is true
        else:
            f = _bool(ir) if nan_as is None else _nan(ir, nan_as)
    except _Unsupported:
        return None

    def guard(env):
        with np.errstate(all="ignore"):  # inf - inf, 0 / 0: NaN, as in the closures, without a warning
            return f(env)

    guard.raw = f  # the same without the errstate: for callers evaluating many guards inside one
    return guard


def _num(ir: tuple) -> VFn:
    """A number-valued node (plain fast semantics)."""
    tag = ir[0]
    if tag == "const":
        v = ir[1]
        if isinstance(v, bool):
            raise _Unsupported(ir)
        return lambda env: v
    if tag == "name":
        n = ir[1]
        return lambda env: env[n]
    if tag == "neg":
        f = _num(ir[1])
        return lambda env: -f(env)
    if tag == "call":
        fs = [_num(a) for a in ir[2]]
        if ir[1] == "abs":
            (f,) = fs
            return lambda env: np.abs(f(env))
        return _fold(_min2 if ir[1] == "min" else _max2, fs)
    if tag == "bin":
        op, lf, rf = ir[1], _num(ir[2]), _num(ir[3])
        if op == "+":
            return lambda env: lf(env) + rf(env)
        if op == "-":
            return lambda env: lf(env) - rf(env)
        if op == "*":
            return lambda env: lf(env) * rf(env)

        def div(env):
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.true_divide(lf(env), rf(env))  # IEEE: runtime.div_by_zero's results

        return div
    raise _Unsupported(ir)


def _min2(a, b):
    """runtime.min2 element by element: a if a <= b, else b if b < a, else NaN."""
    return np.where(a <= b, a, np.where(b < a, b, np.nan))


def _max2(a, b):
    """runtime.max2 element by element: a if a >= b, else b if b > a, else NaN."""
    return np.where(a >= b, a, np.where(b > a, b, np.nan))


def _cmp(op: str, a, b):
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    if op == "==":
        return a == b
    return (a < b) | (a > b)  # runtime.ne: false with a NaN side


def _operands(ir: tuple) -> tuple[str, VFn, VFn]:
    op, left, right = ir[1], ir[2], ir[3]
    if left[0] not in _NUM or right[0] not in _NUM:
        raise _Unsupported(ir)  # a boolean compared as a number
    if left[0] == "const" and right[0] != "const":
        op, left, right = MIRROR[op], right, left  # exact for floats, NaN included
    return op, _num(left), _num(right)


def _bool(ir: tuple) -> VFn:
    """A boolean node with IEEE semantics (fast)."""
    tag = ir[0]
    if tag == "const":
        if not isinstance(ir[1], bool):
            raise _Unsupported(ir)
        v = ir[1]
        return lambda env: v
    if tag == "cmp":
        op, lf, rf = _operands(ir)
        return lambda env: _cmp(op, lf(env), rf(env))
    if tag == "not":
        f = _bool(ir[1])
        return lambda env: np.logical_not(f(env))
    if tag == "truth":
        g = _num(ir[1])

        def truth(env):
            x = g(env)
            return (x != 0) & (x == x)

        return truth
    if tag in ("and", "or"):
        return _fold(_JOIN[tag], [_bool(k) for k in ir[1]])
    raise _Unsupported(ir)


def _nan(ir: tuple, nan_as: bool) -> VFn:
    """A boolean node where a comparison with a NaN side counts as ``nan_as`` (fast._fast_nan)."""
    tag = ir[0]
    if tag == "const":
        return _bool(ir)
    if tag == "cmp":
        op, lf, rf = _operands(ir)

        def cmp(env):
            a, b = lf(env), rf(env)
            return np.where((a == a) & (b == b), _cmp(op, a, b), nan_as)

        return cmp
    if tag == "not":
        f = _nan(ir[1], not nan_as)  # polarity flips under "not", as in the tracer
        return lambda env: np.logical_not(f(env))
    if tag == "truth":
        g = _num(ir[1])

        def truth(env):
            x = g(env)
            return np.where(x == x, x != 0, nan_as)

        return truth
    if tag in ("and", "or"):
        return _fold(_JOIN[tag], [_nan(k, nan_as) for k in ir[1]])
    raise _Unsupported(ir)


#: the truth arrays' and / or (the closures' ``all`` / ``any`` over their parts)
_JOIN = {"and": np.logical_and, "or": np.logical_or}


def _fold(join, fs: list[VFn]) -> VFn:
    """``join(...join(join(f0(env), f1(env)), f2(env))...)`` over ``fs`` in order: min/max of
    numbers, and/or of truths (the closures' left-to-right order)."""

    def folded(env):
        acc = fs[0](env)
        for f in fs[1:]:
            acc = join(acc, f(env))
        return acc

    return folded
