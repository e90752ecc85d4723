"""Interval reasoning over rule guards: can a guard hold, can two hold together, does one imply another.

The audit asks questions such as "can ``health_factor < hf_reduce`` ever hold?" or "can the
guards of two transitions hold at the same tick?". It answers them by reasoning over the
*range* each metric can take (its domain declared in :mod:`trimtab.metrics`), with parameters
folded to numbers:

1. a guard (a parse tree of :mod:`trimtab.rules`) is put in disjunctive normal form:
   a list of conjunctions of comparisons (``not`` is pushed into the comparisons);
2. in each conjunction, comparisons of a single metric (or ``abs(metric)``) against a constant
   narrow that metric's interval (open or closed at each end; integer-valued metrics drop
   intervals holding no integer);
3. every comparison is then checked with interval arithmetic on both sides.

A conjunction is *infeasible* when an interval becomes empty or a comparison cannot hold.
The answer is sound in one direction: "never holds" is a proof (for the documented metric
ranges); "can hold" may be an over-approximation when a guard relates two metrics or repeats a
metric inside arithmetic. Metrics are assumed to be numbers (``inf`` allowed, never NaN); a
metric the registry does not declare ranges over all reals.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, Mapping

from ..metrics import REGISTRY, Metric, lookup
from ..rules.nodes import Node
from ..rules.printer import to_text

INF = math.inf


@dataclass(frozen=True)
class Interval:
    """A set of reals ``lo..hi``; ``lo_open``/``hi_open`` exclude the end; ``integer`` keeps
    only whole numbers. An infinite end may be closed: ``inf`` is a value a metric takes
    (health factor without debt)."""

    lo: float = -INF
    hi: float = INF
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False

    @staticmethod
    def point(x: float) -> "Interval":
        """The single value ``x``."""
        return Interval(x, x)

    def is_point(self) -> bool:
        """Whether the interval holds exactly one value."""
        return self.lo == self.hi and not self.empty()

    def empty(self) -> bool:
        """Whether no value (no whole number, if ``integer``) lies in the interval."""
        if self.lo > self.hi:
            return True
        if self.lo == self.hi and (self.lo_open or self.hi_open):
            return True
        if self.integer:
            lo, hi = self.lo, self.hi
            if math.isfinite(lo):
                lo = math.floor(lo) + 1 if self.lo_open and float(lo).is_integer() else math.ceil(lo)
            if math.isfinite(hi):
                hi = math.ceil(hi) - 1 if self.hi_open and float(hi).is_integer() else math.floor(hi)
            if lo > hi:
                return True
        return False

    def intersect(self, o: "Interval") -> "Interval":
        """The values in both intervals (may be empty: check :meth:`empty`)."""
        if self.lo > o.lo or (self.lo == o.lo and self.lo_open):
            lo, lo_open = self.lo, self.lo_open
        else:
            lo, lo_open = o.lo, o.lo_open
        if self.hi < o.hi or (self.hi == o.hi and self.hi_open):
            hi, hi_open = self.hi, self.hi_open
        else:
            hi, hi_open = o.hi, o.hi_open
        return Interval(lo, hi, lo_open, hi_open, self.integer or o.integer)

    def describe(self, name: str) -> str:
        """``name`` constrained to this interval, as a reader would write it (``0.02 < x <= 1``)."""
        if self.is_point():
            return f"{name} = {fmt(self.lo)}"
        parts = []
        if self.lo != -INF:
            parts.append(f"{fmt(self.lo)} {'<' if self.lo_open else '<='} ")
        parts.append(name)
        if self.hi != INF:
            parts.append(f" {'<' if self.hi_open else '<='} {fmt(self.hi)}")
        if len(parts) == 1:
            return f"{name} any"
        return "".join(parts)


def fmt(x: float) -> str:
    """A number as the audit prints it: up to 6 significant digits, ``inf`` as ``inf``."""
    if x == INF:
        return "inf"
    if x == -INF:
        return "-inf"
    return f"{x:.6g}"


ALL = Interval()

# The audit's view of the metric registry: each declared domain as an Interval, built once.
_DOMAINS: dict[str, Interval] = {}
for _m in REGISTRY:
    if isinstance(_m, Metric):
        _DOMAINS.setdefault(_m.name, Interval(_m.domain.lo, _m.domain.hi, _m.domain.lo_open, _m.domain.hi_open, _m.domain.integer))


def metric_domain(name: str) -> Interval:
    """The declared range of metric ``name`` (:data:`trimtab.metrics.REGISTRY`; a family member
    such as ``margin_ratio.okx`` takes its family's), all reals if the name is not declared."""
    d = _DOMAINS.get(name)
    if d is not None:
        return d
    m = lookup(name)
    if m is None:
        return ALL
    d = m.domain
    return Interval(d.lo, d.hi, d.lo_open, d.hi_open, d.integer)


def metric_kind(name: str) -> str:
    """What metric ``name`` measures (:data:`trimtab.metrics.KINDS`): ``risk``, ``drift``, ``clock``,
    ``plan``, ``flow``, ``signal``, ``dust``, ``pnl``, ``data``, or ``other`` (also for an undeclared name)."""
    m = lookup(name)
    return m.kind if m is not None else "other"


# --------------------------------------------------------------------------- interval arithmetic
def _closed(lo: float, hi: float) -> Interval:
    if math.isnan(lo) or math.isnan(hi):
        return ALL
    return Interval(lo, hi)


def _mul(a: Interval, b: Interval) -> Interval:
    prods = []
    for x in (a.lo, a.hi):
        for y in (b.lo, b.hi):
            p = x * y
            prods.append(0.0 if math.isnan(p) else p)  # 0 x inf: the product of the finite parts
    return _closed(min(prods), max(prods))


def _div(a: Interval, b: Interval) -> Interval:
    if b.lo <= 0 <= b.hi:
        return ALL
    inv = Interval(1 / b.hi if b.hi != 0 else INF, 1 / b.lo if b.lo != 0 else INF)
    return _mul(a, _closed(min(inv.lo, inv.hi), max(inv.lo, inv.hi)))


def _abs(a: Interval) -> Interval:
    if a.lo >= 0:
        return a
    if a.hi <= 0:
        return Interval(-a.hi, -a.lo, a.hi_open, a.lo_open, a.integer)
    return Interval(0.0, max(-a.lo, a.hi), False, False, a.integer)


def _not(op: str) -> str:
    return {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}[op]


def _mirror(op: str) -> str:
    return {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}[op]


@dataclass(frozen=True)
class Literal:
    """One comparison of a conjunction: ``left op right`` (nodes of the parse tree)."""

    op: str
    left: Node
    right: Node

    def text(self) -> str:
        """The comparison as expression text."""
        return f"{to_text(self.left)} {self.op} {to_text(self.right)}"


_TRUE = Node("num", 1.0, (), 0, 0)
_ZERO = Node("num", 0.0, (), 0, 0)
MAX_CONJUNCTS = 4096


class TooComplex(Exception):
    """The normal form grew past :data:`MAX_CONJUNCTS`; the question is left unanswered."""


class Solver:
    """Answers satisfiability questions about guards for fixed parameter values.

    Args:
        params: parameter values (names folded to constants).
        domains: metric ranges overriding the declared ones (:func:`metric_domain`); a key
            ending in ``.`` (``margin_ratio.``) covers every member of that family.
    """

    def __init__(self, params: Mapping[str, float], domains: Mapping[str, Interval] | None = None):
        self.params = dict(params)
        self.domains = dict(domains or {})
        # Memos of dnf() and of feasible() without an env: the audit asks about the same guards
        # and conjunctions again and again (each transition against every earlier one). Keyed
        # by id(); every entry holds its key objects, so no id is reused while it is cached.
        # Parameters and domains are fixed for a solver's life.
        self._dnf_memo: dict[tuple[int, bool], tuple[Node, list[tuple[Literal, ...]]]] = {}
        self._feasible_memo: dict[tuple[int, ...], tuple[tuple[Literal, ...], dict[str, Interval] | None]] = {}
        self._const_memo: dict[int, tuple[Node, bool]] = {}
        self._value_memo: dict[int, tuple[Node, float]] = {}
        self._bound_memo: dict[int, tuple[Literal, tuple[str, bool, str, float] | None]] = {}
        self._metrics_memo: dict[int, tuple[Literal, frozenset[str]]] = {}

    # ----------------------------------------------------------------- ranges
    def domain(self, name: str) -> Interval:
        """The range of metric ``name``: an override given to the solver, else :func:`metric_domain`."""
        if name in self.domains:
            return self.domains[name]
        if "." in name:
            prefix = name[:name.index(".") + 1]
            if prefix in self.domains:
                return self.domains[prefix]
        return metric_domain(name)

    def is_const(self, node: Node) -> bool:
        """Whether ``node`` only uses numbers and parameters."""
        hit = self._const_memo.get(id(node))
        if hit is None:
            hit = self._const_memo[id(node)] = (node, self._is_const(node))
        return hit[1]

    def _is_const(self, node: Node) -> bool:
        if node.kind == "name":
            return node.value in self.params
        return all(self.is_const(c) for c in node.children)

    def value(self, node: Node) -> float:
        """The number a constant node folds to (raises ValueError if it is not constant)."""
        hit = self._value_memo.get(id(node))
        if hit is None:
            hit = self._value_memo[id(node)] = (node, self._value(node))
        return hit[1]

    def _value(self, node: Node) -> float:
        r = self.range(node, {})
        if not r.is_point():
            raise ValueError(f"{to_text(node)} is not constant")
        return r.lo

    def range(self, node: Node, env: Mapping[str, Interval]) -> Interval:
        """Interval of a numeric node, metrics ranging over ``env`` (else their domain)."""
        k = node.kind
        if k == "num":
            return Interval.point(float(node.value))
        if k == "bool":
            return Interval.point(1.0 if node.value else 0.0)
        if k == "name":
            if node.value in self.params:
                return Interval.point(float(self.params[node.value]))
            return env.get(node.value) or self.domain(node.value)
        if k == "unary":
            a = self.range(node.children[0], env)
            return Interval(-a.hi, -a.lo, a.hi_open, a.lo_open, a.integer)
        if k == "binop":
            a, b = (self.range(c, env) for c in node.children)
            op = node.value
            if op == "+":
                return _closed(a.lo + b.lo, a.hi + b.hi)
            if op == "-":
                return _closed(a.lo - b.hi, a.hi - b.lo)
            if op == "*":
                return _mul(a, b)
            return _div(a, b)
        if k == "call":
            args = [self.range(c, env) for c in node.children]
            if node.value == "abs":
                return _abs(args[0])
            if node.value == "min":
                return _closed(min(a.lo for a in args), min(a.hi for a in args))
            return _closed(max(a.lo for a in args), max(a.hi for a in args))
        return Interval(0.0, 1.0)  # a boolean used as a number

    # ----------------------------------------------------------------- normal form
    def dnf(self, node: Node, negate: bool = False) -> list[tuple[Literal, ...]]:
        """Disjunctive normal form of a boolean node: a list of conjunctions of literals.

        ``[]`` is false, ``[()]`` is true. Raises :class:`TooComplex` past MAX_CONJUNCTS."""
        hit = self._dnf_memo.get((id(node), negate))
        if hit is not None:
            return list(hit[1])
        out = self._dnf(node, negate)
        self._dnf_memo[(id(node), negate)] = (node, out)
        return list(out)

    def _dnf(self, node: Node, negate: bool) -> list[tuple[Literal, ...]]:
        k = node.kind
        if k == "bool":
            return [()] if bool(node.value) != negate else []
        if k == "not":
            return self.dnf(node.children[0], not negate)
        if k == "cmp":
            op = _not(node.value) if negate else node.value
            return [(Literal(op, *node.children),)]
        if k in ("and", "or"):
            conj = (k == "and") != negate
            parts = [self.dnf(c, negate) for c in node.children]
            if not conj:
                out = [c for p in parts for c in p]
                if len(out) > MAX_CONJUNCTS:
                    raise TooComplex()
                return out
            out = [()]
            for p in parts:
                out = self._and(out, p)
            return out
        # a number in a boolean context: true when non-zero
        return [(Literal("==" if negate else "!=", node, _ZERO),)]

    def _and(self, a: list[tuple], b: list[tuple]) -> list[tuple]:
        out = []
        for x in a:
            for y in b:
                c = x + y
                if self._feasible_after(x, c) is not None:
                    out.append(c)
                    if len(out) > MAX_CONJUNCTS:
                        raise TooComplex()
        return out

    def _feasible_after(self, x: tuple[Literal, ...], c: tuple[Literal, ...]) -> dict[str, Interval] | None:
        """``feasible(c)`` (not a copy) for ``c`` = ``x`` + more literals, narrowed on from ``x``'s
        intervals when they are known (:meth:`_narrowed_on`): the guards of a state's transitions
        are and-ed one after another, so each conjunction is an earlier one and a few literals."""
        key = tuple(map(id, c))
        hit = self._feasible_memo.get(key)
        if hit is None:
            known = self._feasible_memo.get(tuple(map(id, x))) if x else (x, {})
            if known is None or known[1] is None:
                env = self._feasible(c, {})
            else:
                env = self._narrowed_on(c, len(x), known[1])
            hit = self._feasible_memo[key] = (c, env)
        return hit[1]

    def _metrics(self, lit: Literal) -> frozenset[str]:
        """The names in ``lit`` that are not parameters (memoised per literal)."""
        hit = self._metrics_memo.get(id(lit))
        if hit is None:
            found = set()
            stack = [lit.left, lit.right]
            while stack:
                n = stack.pop()
                if n.kind == "name" and n.value not in self.params:
                    found.add(n.value)
                stack.extend(n.children)
            hit = self._metrics_memo[id(lit)] = (lit, frozenset(found))
        return hit[1]

    # ----------------------------------------------------------------- feasibility
    def _single(self, node: Node) -> tuple[str, bool] | None:
        """(metric, through abs) when ``node`` is a metric name or ``abs(metric)``."""
        if node.kind == "name" and node.value not in self.params:
            return node.value, False
        if node.kind == "call" and node.value == "abs" and node.children[0].kind == "name" and node.children[0].value not in self.params:
            return node.children[0].value, True
        return None

    def feasible(self, conj: Iterable[Literal], env: Mapping[str, Interval] | None = None) -> dict[str, Interval] | None:
        """Narrowed metric intervals if the conjunction can hold, else None."""
        conj = tuple(conj)
        if env:
            return self._feasible(conj, dict(env))
        key = tuple(map(id, conj))
        hit = self._feasible_memo.get(key)
        if hit is None:
            hit = self._feasible_memo[key] = (conj, self._feasible(conj, {}))
        return None if hit[1] is None else dict(hit[1])

    def _bound(self, lit: Literal) -> tuple[str, bool, str, float] | None:
        """(metric, through abs, op, constant) when ``lit`` bounds one metric (or its abs) by a
        constant, written that way round; None for any other comparison. Memoised per literal:
        it depends on the literal and the fixed parameters only."""
        hit = self._bound_memo.get(id(lit))
        if hit is None:
            left, op, right = lit.left, lit.op, lit.right
            s = self._single(left)
            if s is None or not self.is_const(right):
                s = self._single(right)
                if s is None or not self.is_const(left):
                    s = None
                else:
                    left, right, op = right, left, _mirror(op)
            # value() raises for a constant that does not fold: nothing is memoised then.
            hit = self._bound_memo[id(lit)] = (lit, None if s is None else (s[0], s[1], op, self.value(right)))
        return hit[1]

    def _feasible(self, conj: tuple[Literal, ...], env: dict[str, Interval]) -> dict[str, Interval] | None:
        for _ in range(2):
            for lit in conj:
                if not self._narrow_by(lit, env):
                    return None
        for lit in conj:
            if not self._possible_in(lit, env):
                return None
        return env

    def _narrow_by(self, lit: Literal, env: dict[str, Interval]) -> bool:
        """Narrow ``env`` in place by ``lit`` when it bounds one metric; False when that empties it."""
        bound = self._bound(lit)
        if bound is None:
            return True
        name, through_abs, op, c = bound
        nxt = _narrow(env.get(name) or self.domain(name), op, c, through_abs)
        if nxt is None:
            return True
        env[name] = nxt
        return not nxt.empty()

    def _possible_in(self, lit: Literal, env: Mapping[str, Interval]) -> bool:
        return _possible(self.range(lit.left, env), lit.op, self.range(lit.right, env))

    def _narrowed_on(self, conj: tuple[Literal, ...], known: int, base: dict[str, Interval]) -> dict[str, Interval] | None:
        """What ``_feasible(conj, {})`` returns, given the intervals ``base`` it returned for the
        feasible ``conj[:known]``. Narrowing only intersects intervals (in any order, the same
        result) except ``!=``, which only rules out an interval that is that one point: so the
        literals after ``known`` narrow twice (as there), the ``!=`` before are checked again on
        the result, and a comparison before is checked again only if it names a metric the new
        literals narrowed (otherwise it sees the intervals it held on)."""
        env = dict(base)
        for _ in range(2):
            for lit in conj[known:]:
                if not self._narrow_by(lit, env):
                    return None
        for lit in conj[:known]:
            bound = self._bound(lit)
            if bound is not None and bound[2] == "!=" and not self._narrow_by(lit, env):
                return None
        narrowed = {name for name, iv in env.items() if base.get(name) is not iv}
        for i, lit in enumerate(conj):
            if (i >= known or not narrowed.isdisjoint(self._metrics(lit))) and not self._possible_in(lit, env):
                return None
        return env

    def satisfiable(self, *nodes: Node, negated: Iterable[Node] = (), env: Mapping[str, Interval] | None = None) -> dict[str, Interval] | None:
        """Narrowed intervals of one way all ``nodes`` hold together while none of ``negated``
        holds (``env`` restricts metrics further), or None if impossible. Raises TooComplex."""
        conjs = [()]
        for n in nodes:
            conjs = self._and(conjs, self.dnf(n))
            if not conjs:
                return None
        for n in negated:
            conjs = self._and(conjs, self.dnf(n, negate=True))
            if not conjs:
                return None
        for c in conjs:
            got = self.feasible(c, env)
            if got is not None:
                return got
        return None

    def can_hold(self, *nodes: Node, negated: Iterable[Node] = (), env: Mapping[str, Interval] | None = None) -> bool:
        """Whether the nodes can hold together (True when the question is too complex)."""
        try:
            return self.satisfiable(*nodes, negated=negated, env=env) is not None
        except TooComplex:
            return True


def _narrow(cur: Interval, op: str, c: float, through_abs: bool) -> Interval | None:
    """``cur`` intersected with {x : x op c} (or {x : |x| op c}); None when not expressible."""
    if through_abs:
        if op in ("<", "<="):
            return cur.intersect(Interval(-c, c, op == "<", op == "<"))
        if op == "==":
            if c == 0:
                return cur.intersect(Interval.point(0.0))
            return None
        return None
    if op == "<":
        return cur.intersect(Interval(-INF, c, False, True))
    if op == "<=":
        return cur.intersect(Interval(-INF, c))
    if op == ">":
        return cur.intersect(Interval(c, INF, True, False))
    if op == ">=":
        return cur.intersect(Interval(c, INF))
    if op == "==":
        return cur.intersect(Interval.point(c))
    if op == "!=" and cur.is_point() and cur.lo == c:
        return replace(cur, lo_open=True)
    return None


def _possible(a: Interval, op: str, b: Interval) -> bool:
    """Whether some x in a and y in b satisfy ``x op y``."""
    if a.empty() or b.empty():
        return False
    if op == "<":
        return a.lo < b.hi
    if op == "<=":
        return a.lo < b.hi or (a.lo == b.hi and not a.lo_open and not b.hi_open)
    if op == ">":
        return a.hi > b.lo
    if op == ">=":
        return a.hi > b.lo or (a.hi == b.lo and not a.hi_open and not b.lo_open)
    if op == "==":
        return not a.intersect(b).empty()
    return not (a.is_point() and b.is_point() and a.lo == b.lo)
