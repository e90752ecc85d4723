"""A small, safe expression language for rule guards.

Rules are written as text such as::

    health_factor < hf_emergency_enter or margin_ratio_min < margin_emergency_enter
    abs(delta_drift) > max_delta_drift and time_since_rebalance_h >= rebalance_cooldown_h

The text is parsed once into a tree of :class:`Node` (every node carries its source span), then
compiled into nested Python closures by :func:`compile_expr`. User text is never passed to
``eval``/``exec``/``compile``; there is no attribute access, no indexing and no call other than
the three whitelisted functions.

Grammar (precedence from lowest to highest)::

    expr       := or_expr END
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := sum (CMP sum)?                  CMP: <  <=  >  >=  ==  !=   (never chained)
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | atom
    atom       := NUMBER | "true" | "false" | NAME | FUNC "(" or_expr ("," or_expr)* ")"
                | "(" or_expr ")"
    NUMBER     := 1 | 1.10 | 1. | .5 | 1e-6 | 2.5E+3         (always a float)
    NAME       := PART ("." PART)*   PART := [A-Za-z_][A-Za-z0-9_]*   e.g. margin_ratio.binance
    FUNC       := abs (1 argument) | min | max (2 or more arguments)

``and or not true false`` are reserved and cannot be names (nor parts of a dotted name).
Whitespace (including newlines) separates tokens and is otherwise ignored.

Types are checked at parse time. Names, numbers, arithmetic and function calls are numbers;
``true``/``false``, comparisons and ``and``/``or``/``not`` are booleans. Arithmetic, ``-``,
function arguments and the ordering comparisons (``< <= > >=``) need numbers; ``==``/``!=``
need both sides of the same type. ``and``/``or``/``not`` accept both types: a number is true
when it is non-zero and not NaN.

Runtime semantics:

* Arithmetic is float arithmetic. Division never raises: ``x / 0`` is ``inf`` or ``-inf``
  following the signs of ``x`` and the zero, and ``0 / 0`` (or ``nan / 0``) is ``nan``, as
  IEEE 754 prescribes.
* Every comparison involving NaN is false -- including ``!=`` -- so a missing (NaN) metric never
  makes a comparison true. Note that ``not (x < 1)`` is therefore *true* for NaN ``x``; write the
  comparison the other way round (``x >= 1``) instead of negating it.
* NaN in guards: a guard must never be *silently* switched off by missing data. The engine
  evaluates rules with :meth:`CompiledExpr.trace`; every comparison with a NaN side is flagged
  (:attr:`Comparison.undecided`) and the machine records it in the decision as a data fault.
  Rules of severity ``critical`` (emergency guards) are traced with ``nan_as=True``: they fire
  when the missing value could make them true (fail safe: an unknown health factor is treated
  as a dangerous one); other rules keep the IEEE result (false). NaN parameters never get this
  far: ``trimtab validate`` refuses them.
* ``min``/``max`` return NaN if any argument is NaN (the result does not depend on argument
  order); ``abs`` is the usual absolute value.
* ``and``/``or`` short-circuit and always return a bool; ``not`` returns a bool.
* A name that is neither a compile-time constant nor present in the environment raises
  :class:`ExprError` naming it (``KeyError`` never escapes).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from numbers import Real
from types import MappingProxyType

__all__ = [
    "ExprError",
    "Node",
    "parse",
    "names",
    "to_text",
    "Comparison",
    "ComparisonSite",
    "CompiledExpr",
    "compile_expr",
    "FUNCTIONS",
    "KEYWORDS",
]

#: Reserved words; they can never be used as names.
KEYWORDS = frozenset({"and", "or", "not", "true", "false"})
#: Whitelisted functions and their arity as (minimum, maximum or None for unbounded).
FUNCTIONS: Mapping[str, tuple[int, int | None]] = MappingProxyType(
    {"abs": (1, 1), "min": (2, None), "max": (2, None)}
)

_CMP_OPS = frozenset({"<", "<=", ">", ">=", "==", "!="})
_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_NUM_KINDS = frozenset({"num", "name", "call", "unary", "binop"})
_BOOL_KINDS = frozenset({"bool", "cmp", "and", "or", "not"})
_MAX_NESTING = 40  # parentheses / unary / not / call nesting accepted by the parser
_MAX_DEPTH = 100  # depth of the resulting tree (long operator chains count too)


# --------------------------------------------------------------------------------------------
# Errors and nodes
# --------------------------------------------------------------------------------------------


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


def _is_num(node: Node) -> bool:
    return node.kind in _NUM_KINDS


# --------------------------------------------------------------------------------------------
# Lexer and parser
# --------------------------------------------------------------------------------------------

_WS = re.compile(r"\s+")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_OPERATOR = re.compile(r"<=|>=|==|!=|[-+*/<>(),]")
_HINTS = {
    "=": "; use '==' to compare",
    "!": "; use 'not' or '!='",
    "&": "; use 'and'",
    "|": "; use 'or'",
    "[": "; indexing is not supported",
    "]": "; indexing is not supported",
    "'": "; strings are not supported",
    '"': "; strings are not supported",
    "^": "; powers are not supported",
    "%": "; use arithmetic with '/' and '*'",
}

# token kinds
_T_NUM, _T_NAME, _T_KW, _T_OP, _T_END = "number", "name", "keyword", "operator", "end"


class _Token:
    __slots__ = ("kind", "text", "start", "end")

    def __init__(self, kind: str, text: str, start: int, end: int) -> None:
        self.kind, self.text, self.start, self.end = kind, text, start, end

    def describe(self) -> str:
        if self.kind == _T_END:
            return "end of expression"
        if self.kind in (_T_NUM, _T_NAME):
            return f"{self.kind} '{self.text}'"
        return f"'{self.text}'"


class _Parser:
    """Recursive-descent parser; tokens are produced lazily, one token of lookahead."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.nesting = 0
        self.tok = self._lex()

    # -- lexing ---------------------------------------------------------------------------

    def error(self, message: str, offset: int) -> ExprError:
        return ExprError(message, self.src, offset)

    def _lex(self) -> _Token:
        src, pos = self.src, self.pos
        m = _WS.match(src, pos)
        if m:
            pos = m.end()
        if pos >= len(src):
            self.pos = pos
            return _Token(_T_END, "", pos, pos)
        ch = src[pos]
        if ch.isdigit() or (ch == "." and src[pos + 1 : pos + 2].isdigit()):
            m = _NUMBER.match(src, pos)
            end = m.end() if m else pos
            if not m or (end < len(src) and (src[end].isalnum() or src[end] in "._")):
                bad_end = end
                while bad_end < len(src) and (src[bad_end].isalnum() or src[bad_end] in "._+-"):
                    if src[bad_end] in "+-" and src[bad_end - 1] not in "eE":
                        break
                    bad_end += 1
                raise self.error(f"malformed number '{src[pos:bad_end]}'", pos)
            tok = _Token(_T_NUM, src[pos:end], pos, end)
        elif ch.isalpha() or ch == "_":
            m = _NAME.match(src, pos)
            if m is None:  # a non-ASCII letter
                raise self.error(f"unexpected character {ch!r}; names are ASCII", pos)
            end = m.end()
            if end < len(src) and src[end] == ".":
                raise self.error("a '.' in a name must be followed by a name part", end)
            if end < len(src) and (src[end].isalnum() or src[end] == "_"):
                raise self.error(f"unexpected character {src[end]!r}; names are ASCII", end)
            text = m.group()
            if text in KEYWORDS:
                tok = _Token(_T_KW, text, pos, end)
            else:
                part_at = pos
                for part in text.split("."):
                    if part in KEYWORDS:
                        raise self.error(
                            f"reserved word '{part}' cannot be part of a name", part_at
                        )
                    part_at += len(part) + 1
                tok = _Token(_T_NAME, text, pos, end)
        else:
            m = _OPERATOR.match(src, pos)
            if m is None:
                raise self.error(f"unexpected character {ch!r}{_HINTS.get(ch, '')}", pos)
            tok = _Token(_T_OP, m.group(), pos, m.end())
        self.pos = tok.end
        return tok

    def advance(self) -> _Token:
        tok = self.tok
        self.tok = self._lex()
        return tok

    def at(self, kind: str, text: str) -> bool:
        return self.tok.kind == kind and self.tok.text == text

    def enter(self, offset: int) -> None:
        self.nesting += 1
        if self.nesting > _MAX_NESTING:
            raise self.error(f"expression nested too deeply (more than {_MAX_NESTING} levels)", offset)

    # -- grammar --------------------------------------------------------------------------

    def parse(self) -> Node:
        if self.tok.kind == _T_END:
            raise self.error("empty expression", self.tok.start)
        node = self.or_expr()
        tok = self.tok
        if tok.kind != _T_END:
            if tok.kind == _T_OP and tok.text == ")":
                raise self.error("unmatched ')'", tok.start)
            raise self.error(f"unexpected {tok.describe()} after a complete expression", tok.start)
        return node

    def _bool_chain(self, kind: str, sub: Callable[[], Node]) -> Node:
        first = sub()
        if not self.at(_T_KW, kind):
            return first
        items = [first]
        while self.at(_T_KW, kind):
            self.advance()
            items.append(sub())
        kids: list[Node] = []
        for item in items:  # flatten "(a and b) and c" into one node: same semantics
            kids.extend(item.children if item.kind == kind else (item,))
        return Node(kind, None, tuple(kids), first.start, items[-1].end)

    def or_expr(self) -> Node:
        return self._bool_chain("or", self.and_expr)

    def and_expr(self) -> Node:
        return self._bool_chain("and", self.not_expr)

    def not_expr(self) -> Node:
        if self.at(_T_KW, "not"):
            tok = self.advance()
            self.enter(tok.start)
            operand = self.not_expr()
            self.nesting -= 1
            return Node("not", None, (operand,), tok.start, operand.end)
        return self.comparison()

    def _chained(self, tok: _Token) -> ExprError:
        return self.error(
            f"comparisons cannot be chained; write 'a < b and b < c' (found '{tok.text}')",
            tok.start,
        )

    def comparison(self) -> Node:
        left = self.sum()
        tok = self.tok
        if not (tok.kind == _T_OP and tok.text in _CMP_OPS):
            return left
        self.advance()
        right = self.sum()
        if self.tok.kind == _T_OP and self.tok.text in _CMP_OPS:
            raise self._chained(self.tok)
        op = tok.text
        if op in ("==", "!="):
            if _is_num(left) != _is_num(right):
                raise self.error(f"'{op}' cannot compare a number with a boolean", tok.start)
        else:
            for side in (left, right):
                if not _is_num(side):
                    raise self.error(f"'{op}' compares numbers, but this is a boolean", side.start)
        return Node("cmp", op, (left, right), left.start, right.end)

    def _need_num(self, node: Node, what: str) -> None:
        if not _is_num(node):
            raise self.error(f"{what} needs a number, but this is a boolean", node.start)

    def sum(self) -> Node:
        left = self.product()
        while self.tok.kind == _T_OP and self.tok.text in ("+", "-"):
            op = self.advance().text
            right = self.product()
            self._need_num(left, f"'{op}'")
            self._need_num(right, f"'{op}'")
            left = Node("binop", op, (left, right), left.start, right.end)
        return left

    def product(self) -> Node:
        left = self.unary()
        while self.tok.kind == _T_OP and self.tok.text in ("*", "/"):
            op = self.advance().text
            right = self.unary()
            self._need_num(left, f"'{op}'")
            self._need_num(right, f"'{op}'")
            left = Node("binop", op, (left, right), left.start, right.end)
        return left

    def unary(self) -> Node:
        if self.at(_T_OP, "-"):
            tok = self.advance()
            self.enter(tok.start)
            operand = self.unary()
            self.nesting -= 1
            self._need_num(operand, "'-'")
            return Node("unary", "-", (operand,), tok.start, operand.end)
        return self.atom()

    def atom(self) -> Node:
        tok = self.tok
        if tok.kind == _T_NUM:
            self.advance()
            return Node("num", float(tok.text), (), tok.start, tok.end)
        if tok.kind == _T_KW and tok.text in ("true", "false"):
            self.advance()
            return Node("bool", tok.text == "true", (), tok.start, tok.end)
        if tok.kind == _T_NAME:
            self.advance()
            if self.at(_T_OP, "("):
                return self.call(tok)
            return Node("name", tok.text, (), tok.start, tok.end)
        if tok.kind == _T_OP and tok.text == "(":
            self.advance()
            self.enter(tok.start)
            if self.at(_T_OP, ")"):
                raise self.error("empty parentheses", self.tok.start)
            inner = self.or_expr()
            self.nesting -= 1
            close = self.expect_close(tok)
            return replace(inner, start=tok.start, end=close.end)
        if tok.kind == _T_END:
            raise self.error("unexpected end of expression; expected a value", tok.start)
        raise self.error(f"expected a value, found {tok.describe()}", tok.start)

    def expect_close(self, open_tok: _Token) -> _Token:
        tok = self.tok
        if tok.kind == _T_OP and tok.text == ")":
            return self.advance()
        if tok.kind == _T_END:
            raise self.error("unclosed '('", open_tok.start)
        if tok.kind == _T_OP and tok.text in _CMP_OPS:
            raise self._chained(tok)
        raise self.error(f"expected ')', found {tok.describe()}", tok.start)

    def call(self, name_tok: _Token) -> Node:
        fname = name_tok.text
        if fname not in FUNCTIONS:
            allowed = ", ".join(sorted(FUNCTIONS))
            raise self.error(f"unknown function '{fname}' (allowed: {allowed})", name_tok.start)
        open_tok = self.advance()
        self.enter(open_tok.start)
        args: list[Node] = []
        if not self.at(_T_OP, ")"):
            while True:
                arg = self.or_expr()
                if not _is_num(arg):
                    raise self.error(
                        f"{fname}() needs numbers, but argument {len(args) + 1} is a boolean",
                        arg.start,
                    )
                args.append(arg)
                if self.at(_T_OP, ","):
                    self.advance()
                    continue
                break
        self.nesting -= 1
        close = self.expect_close(open_tok)
        lo, hi = FUNCTIONS[fname]
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = f"exactly {lo}" if lo == hi else f"at least {lo}"
            raise self.error(
                f"{fname}() takes {want} argument{'s' if lo != 1 else ''}, got {len(args)}",
                name_tok.start,
            )
        return Node("call", fname, tuple(args), name_tok.start, close.end)


def _check_depth(node: Node, source: str) -> None:
    stack = [(node, 1)]
    while stack:
        n, d = stack.pop()
        if d > _MAX_DEPTH:
            raise ExprError(f"expression nested too deeply (more than {_MAX_DEPTH} levels)", source, n.start)
        stack.extend((c, d + 1) for c in n.children)


def parse(source: str) -> Node:
    """Parse expression text into a :class:`Node` tree (see the module docstring for the grammar).

    Raises :class:`ExprError` -- with the 0-based offset of the offending character -- on an
    empty input, an unexpected character or token, unbalanced parentheses, an unknown function
    or wrong number of arguments, a chained comparison (``a < b < c``), trailing text after a
    complete expression, a type error (e.g. ``true + 1``, ``abs(a < b)``), or nesting deeper than
    the implementation limits.
    """
    if not isinstance(source, str):
        raise TypeError(f"expression source must be a str, not {type(source).__name__}")
    node = _Parser(source).parse()
    _check_depth(node, source)
    return node


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


def _first_name_offset(node: Node, name: str) -> int:
    stack = [node]
    best = None
    while stack:
        n = stack.pop()
        if n.kind == "name" and n.value == name and (best is None or n.start < best):
            best = n.start
        stack.extend(n.children)
    return node.start if best is None else best


# --------------------------------------------------------------------------------------------
# Canonical text
# --------------------------------------------------------------------------------------------

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
            if n.value not in _CMP_OPS:
                raise ValueError(f"unknown comparison operator {n.value!r}")
            p = _PREC["cmp"]
            left, right = n.children
            return f"{wrap(left, _prec(left) <= p)} {n.value} {wrap(right, _prec(right) <= p)}"
        raise ValueError(f"unknown node kind {k!r}")

    return emit(node)


# --------------------------------------------------------------------------------------------
# Runtime helpers (shared by constant folding and the compiled closures)
# --------------------------------------------------------------------------------------------

_NAN = math.nan
_INF = math.inf


def _div_by_zero(a: float, b: float) -> float:
    """IEEE 754 result of ``a / b`` for a zero ``b``: signed infinity, or NaN for 0/0, NaN/0."""
    if a != a or a == 0:
        return _NAN
    return math.copysign(_INF, a) * math.copysign(1.0, b)


def _div(a: float, b: float) -> float:
    """``a / b`` that never raises: division by zero gives inf/-inf/nan as IEEE 754 would."""
    return a / b if b else _div_by_zero(a, b)


def _min2(a: float, b: float) -> float:
    return a if a <= b else (b if b < a else _NAN)


def _max2(a: float, b: float) -> float:
    return a if a >= b else (b if b > a else _NAN)


def _ne(a: object, b: object) -> bool:
    """NaN-safe ``!=``: false when either side is NaN, like every other comparison."""
    return a < b or a > b  # type: ignore[operator]


def _truth(x: object) -> bool:
    """Truth of a value in a boolean context: non-zero and not NaN (bools are themselves)."""
    return x != 0 and x == x


_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _div,
}
_CMP: dict[str, Callable[[object, object], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": _ne,
}


def _call_value(fname: str, args: list) -> float:
    if fname == "abs":
        return abs(args[0])
    pick = _min2 if fname == "min" else _max2
    acc = args[0]
    for a in args[1:]:
        acc = pick(acc, a)
    return acc


# --------------------------------------------------------------------------------------------
# Comparisons reported at runtime, comparison sites for audits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One comparison as it was evaluated (returned by :meth:`CompiledExpr.trace`).

    ``text`` is the canonical text of the comparison as written. ``left_text op right_text``
    is the same comparison *normalised* so that the varying side comes first: when the written
    left side is constant (a literal, or built only from folded constants) and the right side
    is not, the sides are swapped and ``op`` mirrored -- ``1.1 > health_factor`` is reported as
    ``left_text="health_factor", op="<", right_text="1.1"``. ``observed`` is the value of
    ``left_text`` and ``threshold`` the value of ``right_text`` (as floats; booleans become
    0.0/1.0), and ``result`` is the outcome (False whenever a side is NaN).
    """

    text: str
    left_text: str
    op: str
    right_text: str
    observed: float
    threshold: float
    result: bool

    @property
    def undecided(self) -> bool:
        """True when a side is NaN: the data could not decide this comparison (a data fault)."""
        return self.observed != self.observed or self.threshold != self.threshold


@dataclass(frozen=True)
class ComparisonSite:
    """A comparison as it appears in the source (for static audits such as hysteresis checks).

    ``left``/``right`` are the unfolded operand nodes as written (no mirroring); ``text`` is the
    canonical text of the comparison and ``start``/``end`` its span in the source.
    """

    text: str
    left: Node
    op: str
    right: Node
    start: int
    end: int


def _sites(node: Node) -> tuple[ComparisonSite, ...]:
    out: list[ComparisonSite] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if n.kind == "cmp":
            left, right = n.children
            out.append(ComparisonSite(to_text(n), left, n.value, right, n.start, n.end))  # type: ignore[arg-type]
        stack.extend(reversed(n.children))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Constant folding into a small intermediate form
# --------------------------------------------------------------------------------------------
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


def _const(value: object, comps: tuple = ()) -> tuple:
    return ("const", value, comps)


def _fold(node: Node, consts: Mapping[str, float]) -> tuple:
    k = node.kind
    if k == "num" or k == "bool":
        return _const(node.value)
    if k == "name":
        if node.value in consts:
            return _const(consts[node.value])  # type: ignore[index]
        return ("name", node.value)
    if k == "call":
        args = [_fold(c, consts) for c in node.children]
        if all(a[0] == "const" for a in args):
            return _const(_call_value(node.value, [a[1] for a in args]))  # type: ignore[arg-type]
        return ("call", node.value, tuple(args))
    if k == "unary":
        arg = _fold(node.children[0], consts)
        return _const(-arg[1]) if arg[0] == "const" else ("neg", arg)
    if k == "binop":
        left, right = (_fold(c, consts) for c in node.children)
        if left[0] == "const" and right[0] == "const":
            return _const(_ARITH[node.value](left[1], right[1]))  # type: ignore[index]
        return ("bin", node.value, left, right)
    if k == "cmp":
        ln, rn = node.children
        left, right = _fold(ln, consts), _fold(rn, consts)
        op = node.value
        info = (to_text(node), to_text(ln), to_text(rn))
        if left[0] == "const" and right[0] == "const":
            res = bool(_CMP[op](left[1], right[1]))  # type: ignore[index]
            comp = Comparison(
                info[0], info[1], op, info[2], float(left[1]), float(right[1]), res  # type: ignore[arg-type]
            )
            return _const(res, left[2] + right[2] + (comp,))
        return ("cmp", op, left, right, info)
    if k == "not":
        arg = _fold_bool(node.children[0], consts)
        return _const(not arg[1], arg[2]) if arg[0] == "const" else ("not", arg)
    if k == "and" or k == "or":
        stop_on = k == "or"  # 'and' stops at the first false operand, 'or' at the first true
        kids: list[tuple] = []
        comps: list[Comparison] = []
        dynamic = False
        for child in node.children:
            ir = _fold_bool(child, consts)
            kids.append(ir)
            if ir[0] != "const":
                dynamic = True
                continue
            if not dynamic:
                comps.extend(ir[2])
            if ir[1] == stop_on:
                break  # operands after this one are never evaluated
        if not dynamic:
            return _const(kids[-1][1], tuple(comps))
        return (k, tuple(kids))
    raise ValueError(f"unknown node kind {k!r}")


def _fold_bool(node: Node, consts: Mapping[str, float]) -> tuple:
    ir = _fold(node, consts)
    if node.kind in _BOOL_KINDS:
        return ir
    if ir[0] == "const":
        return _const(_truth(ir[1]))
    return ("truth", ir)


def _ir_names(ir: tuple, out: set[str]) -> None:
    tag = ir[0]
    if tag == "name":
        out.add(ir[1])
    elif tag == "call":
        for a in ir[2]:
            _ir_names(a, out)
    elif tag in ("neg", "not", "truth"):
        _ir_names(ir[1], out)
    elif tag in ("bin", "cmp"):
        _ir_names(ir[2], out)
        _ir_names(ir[3], out)
    elif tag in ("and", "or"):
        for kid in ir[1]:
            _ir_names(kid, out)


# --------------------------------------------------------------------------------------------
# Fast closures: fn(env) -> value
# --------------------------------------------------------------------------------------------

Fn = Callable[[Mapping[str, float]], object]


def _fast(ir: tuple) -> Fn:
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
        f = _fast(arg)
        return lambda env: -f(env)
    if tag == "call":
        return _fast_call(ir[1], ir[2])
    if tag == "bin":
        return _fast_bin(ir[1], ir[2], ir[3])
    if tag == "cmp":
        return _fast_cmp(ir[1], ir[2], ir[3])
    if tag == "not":
        f = _fast(ir[1])
        return lambda env: not f(env)
    if tag == "truth":
        f = _fast(ir[1])

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
        f = _fast(arg)
        return lambda env: abs(f(env))
    pick = _min2 if fname == "min" else _max2
    fs = [_fast(a) for a in args]
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
        return _FN_CONST_ARITH[op](_fast(left), c)
    lf, rf = _fast(left), _fast(right)
    if op == "/":

        def div(env):
            a = lf(env)
            b = rf(env)
            return a / b if b else _div_by_zero(a, b)

        return div
    fn = _ARITH[op]
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
        op, left, right = _MIRROR[op], right, left
    if right[0] == "const":
        c = right[1]
        if left[0] == "name":
            return _NAME_CONST_CMP[op](left[1], c)
        return _FN_CONST_CMP[op](_fast(left), c)
    lf, rf = _fast(left), _fast(right)
    if op == "!=":

        def ne(env):
            a = lf(env)
            b = rf(env)
            return a < b or a > b

        return ne
    fn = _CMP[op]
    return lambda env: fn(lf(env), rf(env))


def _fast_bool(tag: str, kids: tuple) -> Fn:
    neutral = tag == "and"  # constants that cannot decide the result are dropped
    kept = [k for k in kids if not (k[0] == "const" and k[1] == neutral)]
    if not kept:  # pragma: no cover - folded to a constant before we get here
        return lambda env: neutral
    fs = [_fast(k) for k in kept]
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


# --------------------------------------------------------------------------------------------
# Tracing closures: fn(env, out) -> value, appending every evaluated Comparison to out
# --------------------------------------------------------------------------------------------
# Numbers never contain comparisons (the type rules forbid booleans inside arithmetic), so
# numeric sub-trees reuse the fast closures.


def _trace(ir: tuple, nan_as: bool | None = None) -> Callable[[Mapping[str, float], list], object]:
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
        f = _trace(ir[1], None if nan_as is None else not nan_as)  # polarity flips under "not"
        return lambda env, out: not f(env, out)
    if tag == "truth":
        g = _fast(ir[1])
        if nan_as is not None:
            def truth_or_fault(env, out):
                x = g(env)
                return nan_as if x != x else _truth(x)

            return truth_or_fault
        return lambda env, out: _truth(g(env))
    if tag in ("and", "or"):
        fs = tuple(_trace(k, nan_as) for k in ir[1])
        stop_on = tag == "or"

        def junction(env, out):
            for f in fs:
                if bool(f(env, out)) == stop_on:
                    return stop_on
            return not stop_on

        return junction
    g = _fast(ir)  # a number
    return lambda env, out: g(env)


def _new_comparison(text, left_text, op, right_text, observed, threshold, result) -> Comparison:
    """Build a Comparison without the frozen-dataclass ``__init__`` (twice as fast, same object)."""
    c = _object_new(Comparison)
    c.__dict__.update(
        text=text,
        left_text=left_text,
        op=op,
        right_text=right_text,
        observed=observed,
        threshold=threshold,
        result=result,
    )
    return c


_object_new = object.__new__


def _trace_side(ir: tuple, nan_as: bool | None = None):
    """(kind, payload) for one comparison operand: 0 constant value, 1 fast fn, 2 trace fn."""
    if ir[0] == "const" and not ir[2]:
        return 0, ir[1]
    if ir[0] in ("name", "call", "neg", "bin"):  # numbers never contain comparisons
        return 1, _fast(ir)
    return 2, _trace(ir, nan_as)


def _trace_cmp(ir: tuple, nan_as: bool | None = None):
    _, op, left, right, (text, left_text, right_text) = ir
    fn = _CMP[op]
    if left[0] == "const" and right[0] != "const":
        # report "varying OP' constant": observed = right side, threshold = left side
        swap = True
        op_out, ltext_out, rtext_out = _MIRROR[op], right_text, left_text
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
            out.append(_new_comparison(text, ltext_out, op_out, rtext_out, float(b), float(a), res))
        else:
            out.append(_new_comparison(text, ltext_out, op_out, rtext_out, float(a), float(b), res))
        return res

    return cmp


# --------------------------------------------------------------------------------------------
# Public compiled form
# --------------------------------------------------------------------------------------------


class CompiledExpr:
    """A parsed, constant-folded expression compiled into closures.

    Attributes: ``source`` (the text), ``node`` (the parse tree, spans relative to ``source``),
    ``names`` (names still free after constant folding, i.e. what the environment must hold),
    ``constants`` (the folded constants the expression referenced, read-only) and ``sites``
    (every comparison in the source, in source order, see :class:`ComparisonSite`).

    ``expr(env)`` evaluates on the fast path; ``expr.trace(env)`` also reports each comparison
    that was evaluated. Both return a bool for a boolean expression and a number for a numeric
    one, and raise :class:`ExprError` naming a variable missing from ``env`` (or holding a
    non-number). ``env`` values should be floats (or ints); see the module docstring for
    NaN and division-by-zero semantics.
    """

    __slots__ = ("source", "node", "names", "constants", "sites", "_fn", "_ir", "_trace_fns")

    def __init__(self, source: str, node: Node, constants: Mapping[str, float]) -> None:
        self.source = source
        self.node = node
        consts: dict[str, float] = {}
        for name in sorted(names(node)):
            if name in constants:
                value = constants[name]
                if not isinstance(value, Real):
                    raise ExprError(
                        f"constant '{name}' must be a number, got {type(value).__name__}",
                        source,
                        _first_name_offset(node, name),
                    )
                consts[name] = float(value)
        self.constants: Mapping[str, float] = MappingProxyType(consts)
        ir = _fold(node, consts)
        free: set[str] = set()
        _ir_names(ir, free)
        self.names = frozenset(free)
        self.sites = _sites(node)
        self._ir = ir
        self._fn = _fast(ir)
        self._trace_fns: dict = {}

    def __call__(self, env: Mapping[str, float]) -> bool | float:
        """Evaluate against ``env`` (a mapping holding every name in :attr:`names`)."""
        try:
            return self._fn(env)
        except (KeyError, TypeError) as exc:
            raise self._env_error(env, exc) from None

    def trace(self, env: Mapping[str, float], nan_as: bool | None = None) -> tuple[bool | float, list[Comparison]]:
        """Evaluate like ``self(env)`` and also return every comparison that was evaluated, in
        evaluation order (short-circuited operands are not evaluated and not reported;
        comparisons over folded constants are reported when reached).

        ``nan_as`` (see "NaN in guards" in the module docstring): None keeps IEEE semantics (a
        comparison with a NaN side is false); True or False makes such a comparison, and a NaN
        number used as a boolean, count as that value where it appears un-negated and as the
        opposite under ``not``: with True, the expression holds whenever it *could* hold for
        some value of the missing data. The returned comparisons keep their NaN observed or
        threshold, so :attr:`Comparison.undecided` tells the caller a data fault decided it."""
        fn = self._trace_fns.get(nan_as)
        if fn is None:
            fn = self._trace_fns[nan_as] = _trace(self._ir, nan_as)
        out: list[Comparison] = []
        try:
            value = fn(env, out)
        except (KeyError, TypeError) as exc:
            raise self._env_error(env, exc) from None
        return value, out

    def _env_error(self, env: Mapping[str, float], exc: Exception) -> Exception:
        ordered = sorted(self.names, key=lambda n: _first_name_offset(self.node, n))
        if isinstance(exc, KeyError):
            key = exc.args[0] if exc.args else None
            missing = [key] if key in self.names else []
            try:
                missing += [n for n in ordered if n not in env]
            except Exception:  # an exotic mapping; fall through to the original error
                pass
            if missing:
                name = missing[0]
                return ExprError(
                    f"variable '{name}' is not defined (not a rule parameter nor a metric)",
                    self.source,
                    _first_name_offset(self.node, name),
                )
        else:
            for name in ordered:
                try:
                    value = env[name]
                except Exception:
                    continue
                if not isinstance(value, Real):
                    return ExprError(
                        f"variable '{name}' must be a number, got {type(value).__name__}",
                        self.source,
                        _first_name_offset(self.node, name),
                    )
        return exc

    def __repr__(self) -> str:
        return f"CompiledExpr({self.source!r})"


def compile_expr(
    source_or_node: str | Node,
    constants: Mapping[str, float] | None = None,
    *,
    source: str | None = None,
) -> CompiledExpr:
    """Compile expression text (or a parsed :class:`Node`) into a :class:`CompiledExpr`.

    Names found in ``constants`` (rule parameters) are folded in at compile time, together with
    every sub-expression they make constant; other names are looked up in the environment at
    call time. A Node may be passed with the ``source`` it was parsed from, so runtime errors
    point into that text; without ``source`` the node is re-parsed from :func:`to_text`.

    Raises :class:`ExprError` for invalid text (see :func:`parse`) or a referenced constant that
    is not a number.
    """
    consts = constants if constants is not None else {}
    if isinstance(source_or_node, Node):
        if source is None:
            source = to_text(source_or_node)
            node = parse(source)
        else:
            node = source_or_node
    elif isinstance(source_or_node, str):
        if source is not None and source != source_or_node:
            raise ValueError("pass 'source' only together with a Node")
        source = source_or_node
        node = parse(source)
    else:
        raise TypeError(
            f"compile_expr expects a str or Node, not {type(source_or_node).__name__}"
        )
    return CompiledExpr(source, node, consts)
