"""A small, safe expression language for rule guards.

Rules are written as text such as::

    health_factor < hf_emergency_enter or margin_ratio_min < margin_emergency_enter
    abs(delta_drift) > max_delta_drift and time_since_rebalance_h >= rebalance_cooldown_h

The text is parsed once into a tree of :class:`~.nodes.Node` (every node carries its source
span), then compiled into nested Python closures by :func:`~.compile.compile_expr`. User text is never passed to
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
  evaluates rules with :meth:`~.compile.CompiledExpr.trace`; every comparison with a NaN side is flagged
  (:attr:`~.comparison.Comparison.undecided`) and the machine records it in the decision as a data fault.
  Rules of severity ``critical`` (emergency guards) are traced with ``nan_as=True``: they fire
  when the missing value could make them true (fail safe: an unknown health factor is treated
  as a dangerous one); other rules keep the IEEE result (false). NaN parameters never get this
  far: ``trimtab validate`` refuses them.
* ``min``/``max`` return NaN if any argument is NaN (the result does not depend on argument
  order); ``abs`` is the usual absolute value.
* ``and``/``or`` short-circuit and always return a bool; ``not`` returns a bool.
* A name that is neither a compile-time constant nor present in the environment raises
  :class:`~.nodes.ExprError` naming it (``KeyError`` never escapes).

One module per stage (this package has no code of its own; import from the modules):

* ``nodes``      -- :class:`Node`, :class:`ExprError`, reserved words, :func:`names`
* ``parse``      -- lexer and parser: text -> Node (:func:`parse`)
* ``printer``    -- Node -> canonical text (:func:`to_text`)
* ``comparison`` -- :class:`Comparison` (evaluated) and :class:`ComparisonSite` (as written)
* ``runtime``    -- IEEE 754 arithmetic and NaN-safe comparisons
* ``fold``       -- constant folding of rule parameters into a small IR
* ``fast``       -- IR -> fast closures (the backtest hot path)
* ``trace``      -- IR -> tracing closures that record each evaluated comparison
* ``compile``    -- :func:`compile_expr` / :class:`CompiledExpr`, the entry point
"""
