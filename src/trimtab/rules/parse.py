"""Lexer and recursive-descent parser: expression text -> :class:`~trimtab.rules.nodes.Node`.

The grammar is in the :mod:`trimtab.rules` package docstring. Types (number vs boolean) are
checked here, at parse time, so later stages never see an ill-typed tree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from .nodes import (
    CMP_OPS,
    FUNCTIONS,
    KEYWORDS,
    MAX_DEPTH,
    MAX_NESTING,
    ExprError,
    Node,
    is_num,
)

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
        if self.nesting > MAX_NESTING:
            raise self.error(f"expression nested too deeply (more than {MAX_NESTING} levels)", offset)

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
        if not (tok.kind == _T_OP and tok.text in CMP_OPS):
            return left
        self.advance()
        right = self.sum()
        if self.tok.kind == _T_OP and self.tok.text in CMP_OPS:
            raise self._chained(self.tok)
        op = tok.text
        if op in ("==", "!="):
            if is_num(left) != is_num(right):
                raise self.error(f"'{op}' cannot compare a number with a boolean", tok.start)
        else:
            for side in (left, right):
                if not is_num(side):
                    raise self.error(f"'{op}' compares numbers, but this is a boolean", side.start)
        return Node("cmp", op, (left, right), left.start, right.end)

    def _need_num(self, node: Node, what: str) -> None:
        if not is_num(node):
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
        if tok.kind == _T_OP and tok.text in CMP_OPS:
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
                if not is_num(arg):
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
        if d > MAX_DEPTH:
            raise ExprError(f"expression nested too deeply (more than {MAX_DEPTH} levels)", source, n.start)
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
