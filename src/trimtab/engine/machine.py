"""The strategy's state machine, built with ``transitions`` from the YAML machine.

Every name was checked by :func:`trimtab.config.load.load_strategy` before this runs
(``transitions`` itself checks lazily). ``auto_transitions`` is off and ``source: "*"`` expands
to every state other than the destination.

Each :meth:`StrategyMachine.step` evaluates every rule once against the tick's metrics with its
fast closure (:meth:`CompiledExpr.guard`, the same result as the trace, NaN semantics included)
and, when some transition out of the current state has all its rules true, fires the one event
:data:`DECIDE`. Every YAML transition is registered under that event, in YAML order, with its
rules as ``conditions`` (callables reading the results just computed), so ``transitions`` does
the ordered guard evaluation itself and stays the authority for what fires: of the transitions
leaving the current state, the first whose conditions all hold is taken and the rest are not
tried (``Event._trigger``). The taken transition's ``after`` callback records its YAML trigger
name in the :class:`Decision`. The decision record (each comparison's observed value and
threshold, :func:`trace_rules`) is built only when something reads ``Decision.rules``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from transitions import Machine

from ..config.load import Strategy
from ..rules.compile import CompiledExpr


class Decision:
    """One machine step: what was evaluated and what (if anything) fired.

    ``rules``: one entry per rule, in rule-file order, ``{"rule", "result", "comparisons":
    [[left, observed, op, threshold, result], ...]}`` plus ``data_fault`` (the metrics a NaN
    left undecided) when there are any (see :func:`trace_rules`). ``trigger`` is the YAML trigger
    taken, None if none.

    ``rules`` may be given as a list, or left to be traced on first read from ``lazy`` =
    ``(rules as for trace_rules, the metrics dict the step saw)``: most ticks nobody reads it.
    The metrics dict must not be mutated after the step (the kernel builds a new one per run
    of the monitors).
    """

    __slots__ = ("tick", "time", "source", "dest", "trigger", "plan_id", "_rules", "_lazy", "_seen")

    def __init__(self, tick: int, time: str, source: str, dest: str, trigger: str | None,
                 rules: list[dict] | None = None, plan_id: str | None = None, *,
                 lazy: tuple[tuple, Mapping[str, float]] | None = None):
        self.tick, self.time, self.source, self.dest, self.trigger = tick, time, source, dest, trigger
        self.plan_id = plan_id
        self._rules = rules if rules is not None or lazy is not None else []
        self._lazy = lazy
        self._seen = lazy[1] if lazy is not None else None

    @property
    def metrics(self) -> Mapping[str, float] | None:
        """The metrics dict the step decided on (the very object, not a copy), None when the
        decision was built with an explicit ``rules`` list. Read-only by convention."""
        return self._seen

    @property
    def rules(self) -> list[dict]:
        """The per-rule trace (computed on first read when the decision was built lazily)."""
        if self._rules is None:
            triples, metrics = self._lazy  # type: ignore[misc]
            self._rules = trace_rules(triples, metrics)
            self._lazy = None  # the trace is all we needed the metrics for
        return self._rules

    @rules.setter
    def rules(self, value: list[dict]) -> None:
        self._rules, self._lazy = value, None

    def fired_rules(self) -> list[dict]:
        """The entries of :attr:`rules` that held."""
        return [r for r in self.rules if r["result"]]

    def _key(self) -> tuple:
        return (self.tick, self.time, self.source, self.dest, self.trigger, self.rules, self.plan_id)

    def __eq__(self, other: object) -> bool:
        return self._key() == other._key() if isinstance(other, Decision) else NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaced

    def __repr__(self) -> str:
        return (f"Decision(tick={self.tick!r}, time={self.time!r}, source={self.source!r}, dest={self.dest!r}, "
                f"trigger={self.trigger!r}, rules={self.rules!r}, plan_id={self.plan_id!r})")


def _num(x: float):
    """JSON-safe number: inf/nan as strings (the journal stores decisions as JSON)."""
    return x if x == x and x not in (math.inf, -math.inf) else str(x)


#: The one event every transition is registered under; its YAML ``trigger`` is only a name.
DECIDE = "decide"


def nan_as_for(severity: str) -> bool | None:
    """``nan_as`` for a rule of ``severity``: True for "critical", else None.

    A NaN metric never silently switches a guard off: emergency (critical) rules fire when the
    missing value could make them true; other rules keep the IEEE result (false)."""
    return True if severity == "critical" else None


def trace_rules(rules: Iterable[tuple[str, CompiledExpr, str]], metrics: Mapping[str, float]) -> list[dict]:
    """The decision trace of ``rules`` on ``metrics``.

    ``rules``: ``(name, compiled expression, severity)`` in rule-file order; ``metrics``: metric
    name -> float. Returns one entry per rule, ``{"rule", "result", "comparisons": [[left,
    observed, op, threshold, result], ...]}`` plus ``"data_fault"`` (sorted left texts a NaN left
    undecided) when there are any; inf/nan observed or threshold are strings (JSON-safe).

    Raises:
        ExprError: a rule reads a metric missing from ``metrics``.
    """
    out = []
    for name, expr, severity in rules:
        value, comps = expr.trace(metrics, nan_as=nan_as_for(severity))
        entry = {"rule": name, "result": bool(value),
                 "comparisons": [[c.left_text, _num(c.observed), c.op, _num(c.threshold), c.result] for c in comps]}
        faults = sorted({c.left_text for c in comps if c.undecided})
        if faults:
            entry["data_fault"] = faults
        out.append(entry)
    return out


class _Model:
    state: str


class StrategyMachine:
    """Wraps a ``transitions.Machine`` over the strategy's machine spec."""

    def __init__(self, strategy: Strategy):
        self.s = strategy
        spec = strategy.machine
        self.model = _Model()
        self._ok: dict[str, bool] = {}
        self._overrides: dict[str, dict] = {}
        self._yield_check: dict[str, bool] = {}
        #: (YAML trigger, source states, dest, rules) per transition, in YAML order.
        self.order: list[tuple[str, list[str], str, list[str]]] = []
        self._taken: str | None = None  # set by the taken transition's `after` callback
        #: (name, compiled expression, severity) per rule, in rule-file order (for trace_rules).
        self._rule_triples = tuple((n, r.expr, r.spec.severity) for n, r in strategy.rules.items())
        #: (name, fast guard closure) per rule: the same truth as the trace's result, NaN included.
        self._guards = tuple((n, e.guard(nan_as_for(sev))) for n, e, sev in self._rule_triples)
        trans = []
        for t in spec.transitions:
            if t.source == "*":
                sources = [st for st in spec.states if st != t.dest]
            else:
                sources = [t.source] if isinstance(t.source, str) else list(t.source)
            conds = [self._guard(r) for r in t.when]
            trans.append({"trigger": DECIDE, "source": sources, "dest": t.dest, "conditions": conds,
                          "after": self._recorder(t.trigger)})
            self._overrides[t.trigger] = dict(t.overrides)
            self._yield_check[t.trigger] = t.yield_check
            self.order.append((t.trigger, sources, t.dest, list(t.when)))
        # A state no transition leaves has no DECIDE event (firing it there would raise, or log a
        # warning every tick if ignored): nothing can be taken from it.
        self._leavable = frozenset(st for _, sources, _, _ in self.order for st in sources)
        #: state -> the rule lists of the transitions leaving it, in YAML order: if none has all
        #: its rules true, transitions cannot take anything, so it is not asked.
        self._candidates: dict[str, tuple[tuple[str, ...], ...]] = {
            st: tuple(tuple(when) for _, sources, _, when in self.order if st in sources) for st in self._leavable}
        #: state -> (name, guard) of the rules those transitions read, in rule-file order: the only
        #: results a step from that state uses (the trace is recomputed from the metrics).
        self._state_guards: dict[str, tuple] = {
            st: tuple((n, g) for n, g in self._guards if any(n in when for when in whens))
            for st, whens in self._candidates.items()}
        self._all_checked = False  # every rule evaluated once (a bad metric name raises at the first step)
        self._vector: dict[str, object] = {}  # rule -> its vectorised guard or None (quiet_until)
        self._constant_rules: dict[str, tuple] = {}  # fires_on
        self.machine = Machine(model=self.model, states=list(spec.states), transitions=trans, initial=spec.initial,
                               auto_transitions=False, ignore_invalid_triggers=False)
        self._decide = getattr(self.model, DECIDE)

    @property
    def quiet_ready(self) -> bool:
        """Whether :meth:`quiet_until` can answer: the first step, which checks every rule, has run."""
        return self._all_checked

    def quiet_until(self, env: Mapping[str, object], n: int) -> int | None:
        """The first of ``n`` ticks at which a transition out of the current state could fire
        (all its rules true), ``n`` if none: :meth:`step`'s candidates evaluated on the ticks'
        metrics at once (``env``: metric name -> float64 array of the n ticks, or one float for
        all), with the vectorised guards of :mod:`trimtab.rules.vector` (the truth of the fast
        closures, NaN semantics included). None when a rule needs the tick-by-tick closures
        (a shape without a vector form) or the first step has not run yet (it checks every rule).

        A transition's rules are evaluated in order until one leaves it false at every tick.

        Raises:
            KeyError: a rule evaluated reads a metric missing from ``env``.
        """
        import numpy as np  # quiet spans only (a backtest): other users of the machine never load numpy

        if not self._all_checked:
            return None
        whens = self._candidates.get(self.model.state, ())
        if not whens:
            return n
        vec = self._vector
        for when in whens:
            for r in when:
                fn = vec.get(r, vec)
                if fn is vec:
                    fn = vec[r] = next(e.vector_guard(nan_as_for(sev)) for name, e, sev in self._rule_triples if name == r)
                if fn is None:
                    return None
        truth = {}  # rule -> a bool array of the n ticks, or one bool for all
        fires = np.zeros(n, dtype=bool)
        with np.errstate(all="ignore"):  # once for every guard (vector_guard's raw functions)
            for when in whens:
                ok = True
                for r in when:
                    t = truth.get(r)
                    if t is None:
                        t = truth[r] = vec[r].raw(env)
                    ok = t if ok is True else ok & t  # a bool broadcasts over the ticks
                    if not (ok.any() if ok.__class__ is np.ndarray else ok):
                        break  # false at every tick: its other rules cannot change that
                else:
                    fires |= ok
        return int(np.argmax(fires)) if fires.any() else n

    def fires_on(self, env: Mapping[str, float]) -> bool:
        """Whether a transition out of the current state fires whatever the market does: some
        candidate transition (as :meth:`quiet_until` takes them) has rules that read only names
        of ``env`` (metric name -> float: the metrics a quiet span holds constant, such as
        ``plan_in_flight``) and all hold on it. False when that is not known (a rule reads
        another metric, or has no vector form) or the first step has not run.

        A hint only: a quiet span does not start where it is True (its first tick would end it,
        after working out all of it), and :meth:`step` then decides, exactly as always.
        """
        if not self._all_checked:
            return False
        state = self.model.state
        rules = self._constant_rules.get(state)
        if rules is None:  # the candidates decidable on env's names alone, per state, found once
            exprs = {n: (e, sev) for n, e, sev in self._rule_triples}
            rules = self._constant_rules[state] = tuple(
                tuple((r, *exprs[r]) for r in when) for when in self._candidates.get(state, ())
                if when and all(exprs[r][0].names <= env.keys() for r in when))
        vec = self._vector
        for when in rules:
            for name, expr, severity in when:
                fn = vec.get(name, vec)
                if fn is vec:
                    fn = vec[name] = expr.vector_guard(nan_as_for(severity))
                if fn is None or not bool(fn(env)):
                    break
            else:
                return True
        return False

    def _guard(self, rule: str):
        return lambda: self._ok[rule]

    def _recorder(self, trigger: str):
        def taken() -> None:
            self._taken = trigger

        return taken

    @property
    def state(self) -> str:
        """The current state's name."""
        return self.model.state

    def snapshot(self) -> dict:
        """``{"state": the current state's name}`` (guards are re-evaluated every tick)."""
        return {"state": self.model.state}

    def restore(self, snap: dict) -> None:
        """Put the machine in ``snap["state"]``.

        Raises:
            ValueError: the machine has no such state.
        """
        if snap["state"] not in self.s.machine.states:
            raise ValueError(f"machine has no state {snap['state']!r} (states: {', '.join(self.s.machine.states)})")
        self.machine.set_state(snap["state"], self.model)

    def overrides(self, trigger: str) -> dict:
        """Parameter overrides a transition adds to its destination's action."""
        return self._overrides.get(trigger, {})

    def yield_check(self, trigger: str) -> bool:
        """Whether a transition's plan goes through the yield-impact analysis first."""
        return self._yield_check.get(trigger, False)

    def action(self, state: str | None = None):
        """The action of ``state`` (default: the current one), None for a state without one."""
        return self.s.machine.states[state or self.state].action

    def evaluate(self, metrics: dict[str, float]) -> list[dict]:
        """Evaluate every rule; remember results for the guards; return the trace."""
        out = trace_rules(self._rule_triples, metrics)
        for entry in out:
            self._ok[entry["rule"]] = entry["result"]
        return out

    def step(self, tick: int, time: str, metrics: dict[str, float]) -> Decision:
        """Evaluate every rule on ``metrics`` (metric name -> float), take the first transition
        out of the current state whose rules all hold (YAML order), and return the record.

        The rules are evaluated with their fast closures (same results as :func:`trace_rules`):
        every rule at the first step, then only those the transitions out of the current state
        read (no other result can change what fires); the decision's trace is built only if
        something reads ``Decision.rules``, from this ``metrics`` dict, which must not be mutated
        afterwards.

        Raises:
            ExprError: a rule reads a metric missing from ``metrics``.
        """
        ok = self._ok
        err = None
        src = self.model.state
        guards = self._state_guards.get(src, ()) if self._all_checked else self._guards
        try:
            for name, fn in guards:
                ok[name] = fn(metrics)
        except (KeyError, TypeError) as exc:
            err = exc
        if err is not None:
            # The traced closures read the same names in the same order: this raises the
            # ExprError naming the metric (outside the except block, so without a chained KeyError).
            trace_rules(self._rule_triples, metrics)
            raise err
        self._all_checked = True
        lazy = (self._rule_triples, metrics)
        for when in self._candidates.get(src, ()):
            for r in when:
                if not ok[r]:
                    break
            else:  # this transition can fire: let transitions take the first that does
                self._taken = None
                if self._decide():
                    return Decision(tick, time, src, self.model.state, self._taken, lazy=lazy)
                break
        return Decision(tick, time, src, src, None, lazy=lazy)
