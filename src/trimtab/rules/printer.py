"""Canonical text of a parse tree (:func:`to_text`), the inverse of :func:`~trimtab.rules.parse.parse`."""

from __future__ import annotations

import math

from .nodes import CMP_OPS, Node

_PREC = {"or": 1, "and": 2, "not": 3, "cmp": 4, "unary": 7}
_BINOP_PREC = {"+": 5, "-": 5, "*": 6, "/": 6}
_ATOM_PREC = 8


def _prec(node: Node) -> int:
    if node.kind == "binop":
        return _BINOP_PREC[node.value]  # type: ignore[index]
    if node.kind == "num" and node.value < 0:  # type: ignore[operator]
        return _PREC["unary"]  # only in hand-built trees: printed as a unary minus
    return _PREC.get(node.kind, _ATOM_PREC)


def _fmt_num(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        raise ValueError("NaN cannot be written as an expression literal")
    if value < 0:
        return "-" + _fmt_num(-value)
    if math.isinf(value):
        return "1e999"
    if value.is_integer() and value < 1e16:
        return str(int(value))
    return repr(value)


def to_text(node: Node) -> str:
    """Canonical text of ``node``: single spaces around binary operators, ``f(a, b)`` calls,
    numbers in shortest round-trip form, and only the parentheses the structure needs.

    ``parse(to_text(n))`` has the same structure as ``n`` (nested ``and``/``or`` are flattened,
    and a hand-built negative number comes back as a unary minus). Raises ``ValueError`` for a
    node with an unknown kind or operator, or a NaN number.
    """

    def wrap(child: Node, parens: bool) -> str:
        text = emit(child)
        return f"({text})" if parens else text

    def emit(n: Node) -> str:
        k = n.kind
        if k == "num":
            return _fmt_num(n.value)  # type: ignore[arg-type]
        if k == "bool":
            return "true" if n.value else "false"
        if k == "name":
            return str(n.value)
        if k == "call":
            return f"{n.value}({', '.join(emit(c) for c in n.children)})"
        if k == "unary":
            (c,) = n.children
            return "-" + wrap(c, _prec(c) < _PREC["unary"])
        if k == "not":
            (c,) = n.children
            return "not " + wrap(c, _prec(c) < _PREC["not"])
        if k in ("and", "or"):
            p = _PREC[k]
            return f" {k} ".join(wrap(c, _prec(c) < p) for c in n.children)
        if k == "binop":
            if n.value not in _BINOP_PREC:
                raise ValueError(f"unknown arithmetic operator {n.value!r}")
            p = _BINOP_PREC[n.value]  # type: ignore[index]
            left, right = n.children
            return f"{wrap(left, _prec(left) < p)} {n.value} {wrap(right, _prec(right) <= p)}"
        if k == "cmp":
            if n.value not in CMP_OPS:
                raise ValueError(f"unknown comparison operator {n.value!r}")
            p = _PREC["cmp"]
            left, right = n.children
            return f"{wrap(left, _prec(left) <= p)} {n.value} {wrap(right, _prec(right) <= p)}"
        raise ValueError(f"unknown node kind {k!r}")

    return emit(node)
