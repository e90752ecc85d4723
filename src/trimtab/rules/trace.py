"""Tracing closures: IR -> ``fn(env, out) -> value``, appending every evaluated Comparison to out.

Numbers never contain comparisons (the type rules forbid booleans inside arithmetic), so
numeric sub-trees reuse the fast closures. ``nan_as`` implements "NaN in guards" (see the
:mod:`trimtab.rules` package docstring).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .comparison import new_comparison
from .fast import fast
from .nodes import MIRROR
from .runtime import CMP, truth

def tracer(ir: tuple, nan_as: bool | None = None) -> Callable[[Mapping[str, float], list], object]:
    """Tracing closure ``fn(env, out)`` for ``ir``; ``nan_as`` as in :meth:`CompiledExpr.trace`."""
    tag = ir[0]
    if tag == "const":
        v, comps = ir[1], ir[2]
        if not comps:
            return lambda env, out: v

        def const(env, out):
            out.extend(comps)
            return v

        return const
    if tag == "cmp":
        return _trace_cmp(ir, nan_as)
    if tag == "not":
        f = tracer(ir[1], None if nan_as is None else not nan_as)  # polarity flips under "not"
        return lambda env, out: not f(env, out)
    if tag == "truth":
        g = fast(ir[1])
        if nan_as is not None:
            def truth_or_fault(env, out):
                x = g(env)
                return nan_as if x != x else truth(x)

            return truth_or_fault
        return lambda env, out: truth(g(env))
    if tag in ("and", "or"):
        fs = tuple(tracer(k, nan_as) for k in ir[1])
        stop_on = tag == "or"

        def junction(env, out):
            for f in fs:
                if bool(f(env, out)) == stop_on:
                    return stop_on
            return not stop_on

        return junction
    g = fast(ir)  # a number
    return lambda env, out: g(env)


def _trace_side(ir: tuple, nan_as: bool | None = None):
    """(kind, payload) for one comparison operand: 0 constant value, 1 fast fn, 2 trace fn."""
    if ir[0] == "const" and not ir[2]:
        return 0, ir[1]
    if ir[0] in ("name", "call", "neg", "bin"):  # numbers never contain comparisons
        return 1, fast(ir)
    return 2, tracer(ir, nan_as)


def _trace_cmp(ir: tuple, nan_as: bool | None = None):
    _, op, left, right, (text, left_text, right_text) = ir
    fn = CMP[op]
    if left[0] == "const" and right[0] != "const":
        # report "varying OP' constant": observed = right side, threshold = left side
        swap = True
        op_out, ltext_out, rtext_out = MIRROR[op], right_text, left_text
    else:
        swap = False
        op_out, ltext_out, rtext_out = op, left_text, right_text
    lk, lv = _trace_side(left, nan_as)
    rk, rv = _trace_side(right, nan_as)

    def cmp(env, out):
        a = lv if lk == 0 else (lv(env) if lk == 1 else lv(env, out))
        b = rv if rk == 0 else (rv(env) if rk == 1 else rv(env, out))
        res = bool(fn(a, b))
        if nan_as is not None and (a != a or b != b):
            res = nan_as
        if swap:
            out.append(new_comparison(text, ltext_out, op_out, rtext_out, float(b), float(a), res))
        else:
            out.append(new_comparison(text, ltext_out, op_out, rtext_out, float(a), float(b), res))
        return res

    return cmp
