"""Data types of the rule-guard language: the parse tree, its errors, reserved words.

:class:`Node` is what :mod:`trimtab.rules.parse` produces and every later stage (printer,
folding, audits, diagrams) reads; :class:`ExprError` is the one error type of the language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

#: Reserved words; they can never be used as names.
KEYWORDS = frozenset({"and", "or", "not", "true", "false"})
#: Whitelisted functions and their arity as (minimum, maximum or None for unbounded).
FUNCTIONS: Mapping[str, tuple[int, int | None]] = MappingProxyType(
    {"abs": (1, 1), "min": (2, None), "max": (2, None)}
)

CMP_OPS = frozenset({"<", "<=", ">", ">=", "==", "!="})
MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
NUM_KINDS = frozenset({"num", "name", "call", "unary", "binop"})
BOOL_KINDS = frozenset({"bool", "cmp", "and", "or", "not"})
MAX_NESTING = 40  # parentheses / unary / not / call nesting accepted by the parser
MAX_DEPTH = 100  # depth of the resulting tree (long operator chains count too)


class ExprError(Exception):
    """An error in an expression, located by a 0-based character ``offset`` into ``source``.

    Raised by :func:`parse` and :func:`compile_expr` for malformed or ill-typed text, and by a
    :class:`CompiledExpr` call when a variable is missing from the environment (or holds a
    non-number). ``str(err)`` is the message followed by the offending source line and a caret
    under the offending column. ``line`` and ``column`` (both from 1) locate the offset for
    callers that report ``file:line:col`` positions.
    """

    def __init__(self, message: str, source: str, offset: int) -> None:
        super().__init__(message, source, offset)
        self.message = message
        self.source = source
        self.offset = max(0, min(int(offset), len(source)))

    @property
    def line(self) -> int:
        """1-based line of :attr:`offset` within :attr:`source`."""
        return self.source.count("\n", 0, self.offset) + 1

    @property
    def column(self) -> int:
        """1-based column of :attr:`offset` within its line."""
        return self.offset - (self.source.rfind("\n", 0, self.offset) + 1) + 1

    def __str__(self) -> str:
        start = self.source.rfind("\n", 0, self.offset) + 1
        end = self.source.find("\n", self.offset)
        if end < 0:
            end = len(self.source)
        text = self.source[start:end]
        pad = "".join("\t" if ch == "\t" else " " for ch in text[: self.offset - start])
        where = f" (line {self.line}, column {self.column})" if "\n" in self.source else ""
        return f"{self.message}{where}\n    {text}\n    {pad}^"


@dataclass(frozen=True)
class Node:
    """One node of a parsed expression.

    ``kind`` / ``value`` / ``children``:

    ======== ============================== ===============================
    kind     value                          children
    ======== ============================== ===============================
    num      float (never negative)         ()
    bool     True / False                   ()
    name     identifier (str)               ()
    call     "abs" / "min" / "max"          arguments
    unary    "-"                            (operand,)
    binop    "+" / "-" / "*" / "/"          (left, right)
    cmp      "<" "<=" ">" ">=" "==" "!="    (left, right)
    and      None                           2 or more operands (flattened)
    or       None                           2 or more operands (flattened)
    not      None                           (operand,)
    ======== ============================== ===============================

    ``start``/``end`` are the half-open character span in the source (a parenthesised
    sub-expression's span includes its parentheses), so ``source[start:end]`` is its text.
    """

    kind: str
    value: object
    children: tuple["Node", ...]
    start: int
    end: int


def is_num(node: Node) -> bool:
    """True when ``node`` is numeric (as opposed to boolean), by the type rules of the grammar."""
    return node.kind in NUM_KINDS


def names(node: Node) -> frozenset[str]:
    """All identifiers referenced by ``node`` (function names are not included)."""
    found: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n.kind == "name":
            found.add(n.value)  # type: ignore[arg-type]
        stack.extend(n.children)
    return frozenset(found)


def first_name_offset(node: Node, name: str) -> int:
    """0-based source offset of the first occurrence of ``name`` in ``node`` (``node.start`` if absent)."""
    stack = [node]
    best = None
    while stack:
        n = stack.pop()
        if n.kind == "name" and n.value == name and (best is None or n.start < best):
            best = n.start
        stack.extend(n.children)
    return node.start if best is None else best
