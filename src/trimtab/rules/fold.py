"""Constant folding: a parse tree plus rule parameters -> a small intermediate form (IR).

Rule parameters are known at compile time, so every sub-expression built only from them is
evaluated once here; comparisons over constants are kept (as :class:`Comparison` records) so
a trace still reports them when they are reached.
"""

from __future__ import annotations

from collections.abc import Mapping

from .comparison import Comparison
from .nodes import BOOL_KINDS, Node
from .printer import to_text
from .runtime import ARITH, CMP, call_value, truth

#
# IR nodes are tuples:
#   ("const", value, comps)     comps: Comparisons recorded when this constant is "evaluated"
#   ("name", name)
#   ("call", fname, args)
#   ("neg", arg)
#   ("bin", op, left, right)
#   ("cmp", op, left, right, (text, left_text, right_text))
#   ("and", kids) / ("or", kids)   kids may contain consts (kept so trace reports them)
#   ("not", kid)
#   ("truth", kid)              a number used in a boolean context


def const(value: object, comps: tuple = ()) -> tuple:
    """IR constant ``("const", value, comps)``; ``comps`` are the Comparisons that produced it."""
    return ("const", value, comps)


def fold(node: Node, consts: Mapping[str, float]) -> tuple:
    """IR of ``node`` with ``consts`` (name -> float) folded in; raises ValueError on an unknown kind."""
    k = node.kind
    if k == "num" or k == "bool":
        return const(node.value)
    if k == "name":
        if node.value in consts:
            return const(consts[node.value])  # type: ignore[index]
        return ("name", node.value)
    if k == "call":
        args = [fold(c, consts) for c in node.children]
        if all(a[0] == "const" for a in args):
            return const(call_value(node.value, [a[1] for a in args]))  # type: ignore[arg-type]
        return ("call", node.value, tuple(args))
    if k == "unary":
        arg = fold(node.children[0], consts)
        return const(-arg[1]) if arg[0] == "const" else ("neg", arg)
    if k == "binop":
        left, right = (fold(c, consts) for c in node.children)
        if left[0] == "const" and right[0] == "const":
            return const(ARITH[node.value](left[1], right[1]))  # type: ignore[index]
        return ("bin", node.value, left, right)
    if k == "cmp":
        ln, rn = node.children
        left, right = fold(ln, consts), fold(rn, consts)
        op = node.value
        info = (to_text(node), to_text(ln), to_text(rn))
        if left[0] == "const" and right[0] == "const":
            res = bool(CMP[op](left[1], right[1]))  # type: ignore[index]
            comp = Comparison(
                info[0], info[1], op, info[2], float(left[1]), float(right[1]), res  # type: ignore[arg-type]
            )
            return const(res, left[2] + right[2] + (comp,))
        return ("cmp", op, left, right, info)
    if k == "not":
        arg = fold_bool(node.children[0], consts)
        return const(not arg[1], arg[2]) if arg[0] == "const" else ("not", arg)
    if k == "and" or k == "or":
        stop_on = k == "or"  # 'and' stops at the first false operand, 'or' at the first true
        kids: list[tuple] = []
        comps: list[Comparison] = []
        dynamic = False
        for child in node.children:
            ir = fold_bool(child, consts)
            kids.append(ir)
            if ir[0] != "const":
                dynamic = True
                continue
            if not dynamic:
                comps.extend(ir[2])
            if ir[1] == stop_on:
                break  # operands after this one are never evaluated
        if not dynamic:
            return const(kids[-1][1], tuple(comps))
        return (k, tuple(kids))
    raise ValueError(f"unknown node kind {k!r}")


def fold_bool(node: Node, consts: Mapping[str, float]) -> tuple:
    """Like :func:`fold`, wrapping a number used in a boolean context in ``("truth", ...)``."""
    ir = fold(node, consts)
    if node.kind in BOOL_KINDS:
        return ir
    if ir[0] == "const":
        return const(truth(ir[1]))
    return ("truth", ir)


def ir_names(ir: tuple, out: set[str]) -> None:
    """Add to ``out`` every name still free in ``ir`` (i.e. not folded into a constant)."""
    tag = ir[0]
    if tag == "name":
        out.add(ir[1])
    elif tag == "call":
        for a in ir[2]:
            ir_names(a, out)
    elif tag in ("neg", "not", "truth"):
        ir_names(ir[1], out)
    elif tag in ("bin", "cmp"):
        ir_names(ir[2], out)
        ir_names(ir[3], out)
    elif tag in ("and", "or"):
        for kid in ir[1]:
            ir_names(kid, out)
