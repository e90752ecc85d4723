"""Compile expression text or a parse tree into a :class:`CompiledExpr` (the public entry point).

Parse (:mod:`.parse`), fold rule parameters in (:mod:`.fold`), build the fast closure
(:mod:`.fast`) and, lazily, the tracing closures (:mod:`.trace`).
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from types import MappingProxyType

from .comparison import Comparison, comparison_sites
from .fast import fast, fast_guard
from .fold import fold, ir_names
from .nodes import ExprError, Node, first_name_offset, names
from .parse import parse
from .printer import to_text
from .trace import tracer

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

    __slots__ = ("source", "node", "names", "constants", "sites", "_fn", "_ir", "_trace_fns", "_guard_fns")

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
                        first_name_offset(node, name),
                    )
                consts[name] = float(value)
        self.constants: Mapping[str, float] = MappingProxyType(consts)
        ir = fold(node, consts)
        free: set[str] = set()
        ir_names(ir, free)
        self.names = frozenset(free)
        self.sites = comparison_sites(node)
        self._ir = ir
        self._fn = fast(ir)
        self._trace_fns: dict = {}
        self._guard_fns: dict = {}

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
            fn = self._trace_fns[nan_as] = tracer(self._ir, nan_as)
        out: list[Comparison] = []
        try:
            value = fn(env, out)
        except (KeyError, TypeError) as exc:
            raise self._env_error(env, exc) from None
        return value, out

    def holds(self, env: Mapping[str, float], nan_as: bool | None = None) -> bool:
        """``bool(self.trace(env, nan_as)[0])`` without building the trace: whether the guard
        holds, with the same ``nan_as`` semantics and the same :class:`ExprError` for a name
        missing from ``env`` (or holding a non-number)."""
        try:
            return bool(self.guard(nan_as)(env))
        except (KeyError, TypeError) as exc:
            raise self._env_error(env, exc) from None

    def guard(self, nan_as: bool | None = None):
        """The raw closure behind :meth:`holds`: ``fn(env)`` whose truth is the guard's result.

        For hot loops: it raises ``KeyError``/``TypeError`` (not ExprError) on a bad ``env``;
        call :meth:`holds` or :meth:`trace` on the same ``env`` to get the ExprError."""
        fn = self._guard_fns.get(nan_as)
        if fn is None:
            fn = self._guard_fns[nan_as] = fast_guard(self._ir, nan_as)
        return fn

    def vector_guard(self, nan_as: bool | None = None):
        """:meth:`guard` over many ticks at once (:func:`trimtab.rules.vector.vector_guard`):
        ``fn(env)`` with ``env`` mapping names to float64 arrays (or floats) returns the guard's
        truth per element; None when the expression has no exact vector form."""
        from .vector import vector_guard  # numpy: imported by the engine only, not by config loading

        return vector_guard(self._ir, nan_as)

    def _env_error(self, env: Mapping[str, float], exc: Exception) -> Exception:
        ordered = sorted(self.names, key=lambda n: first_name_offset(self.node, n))
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
                    first_name_offset(self.node, name),
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
                        first_name_offset(self.node, name),
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
