"""The strategy's state machine, built with ``transitions`` from the YAML machine.

Every name was checked by :func:`trimtab.config.load.load_strategy` before this runs
(``transitions`` itself checks lazily). ``auto_transitions`` is off and ``source: "*"`` expands
to every state other than the destination.

Each :meth:`StrategyMachine.step` evaluates every rule once against the tick's metrics (with the
observed value and threshold of each comparison: the decision record) and then fires the one
event :data:`DECIDE`. Every YAML transition is registered under that event, in YAML order, with
its rules as ``conditions`` (callables reading the results just computed), so ``transitions``
does the ordered guard evaluation itself: of the transitions leaving the current state, the
first whose conditions all hold is taken and the rest are not tried (``Event._trigger``). The
taken transition's ``after`` callback records its YAML trigger name in the :class:`Decision`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from transitions import Machine

from ..config.load import Strategy


@dataclass
class Decision:
    """One machine step: what was evaluated and what (if anything) fired.

    ``rules``: one entry per rule, in rule-file order, ``{"rule", "result", "comparisons":
    [[left, observed, op, threshold, result], ...]}`` plus ``data_fault`` (the metrics a NaN
    left undecided) when there are any. ``trigger`` is the YAML trigger taken, None if none.
    """

    tick: int
    time: str
    source: str
    dest: str
    trigger: str | None
    rules: list[dict] = field(default_factory=list)
    plan_id: str | None = None

    def fired_rules(self) -> list[dict]:
        """The entries of :attr:`rules` that held."""
        return [r for r in self.rules if r["result"]]


def _num(x: float):
    """JSON-safe number: inf/nan as strings (the journal stores decisions as JSON)."""
    return x if x == x and x not in (math.inf, -math.inf) else str(x)


#: The one event every transition is registered under; its YAML ``trigger`` is only a name.
DECIDE = "decide"


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
        self.machine = Machine(model=self.model, states=list(spec.states), transitions=trans, initial=spec.initial,
                               auto_transitions=False, ignore_invalid_triggers=False)
        self._decide = getattr(self.model, DECIDE)

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
        out = []
        for name, rule in self.s.rules.items():
            # A NaN metric never silently switches a guard off: emergency (critical) rules fire
            # when the missing value could make them true; every rule records the data fault.
            value, comps = rule.expr.trace(metrics, nan_as=True if rule.spec.severity == "critical" else None)
            ok = bool(value)
            self._ok[name] = ok
            entry = {"rule": name, "result": ok,
                     "comparisons": [[c.left_text, _num(c.observed), c.op, _num(c.threshold), c.result] for c in comps]}
            faults = sorted({c.left_text for c in comps if c.undecided})
            if faults:
                entry["data_fault"] = faults
            out.append(entry)
        return out

    def step(self, tick: int, time: str, metrics: dict[str, float]) -> Decision:
        """Evaluate every rule on ``metrics`` (metric name -> float), take the first transition
        out of the current state whose rules all hold (YAML order), and return the record.

        Raises:
            ExprError: a rule reads a metric missing from ``metrics``.
        """
        rules = self.evaluate(metrics)
        src = self.state
        self._taken = None
        if src in self._leavable and self._decide():
            return Decision(tick, time, src, self.model.state, self._taken, rules)
        return Decision(tick, time, src, src, None, rules)
