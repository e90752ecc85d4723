"""The strategy's state machine, built with ``transitions`` from the YAML machine.

Every name was checked by :func:`trimtab.config.load.load_strategy` before this runs
(``transitions`` itself checks lazily). ``auto_transitions`` is off, guards are passed as
callables, and ``source: "*"`` expands to every state other than the destination.

Each :meth:`StrategyMachine.step` evaluates every rule against the tick's metrics (with the
observed value and threshold of each comparison), tries the transitions in their YAML order,
fires at most one, and returns a :class:`Decision`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from transitions import Machine

from ..config.load import Strategy


@dataclass
class Decision:
    """One machine step: what was evaluated and what (if anything) fired."""

    tick: int
    time: str
    source: str
    dest: str
    trigger: str | None
    rules: list[dict] = field(default_factory=list)
    plan_id: str | None = None

    def fired_rules(self) -> list[dict]:
        return [r for r in self.rules if r["result"]]


def _num(x: float):
    """JSON-safe number: inf/nan as strings (the journal stores decisions as JSON)."""
    return x if x == x and x not in (math.inf, -math.inf) else str(x)


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
        self.order: list[tuple[str, list[str], str, list[str]]] = []
        trans = []
        for t in spec.transitions:
            if t.source == "*":
                sources = [st for st in spec.states if st != t.dest]
            else:
                sources = [t.source] if isinstance(t.source, str) else list(t.source)
            conds = [self._guard(r) for r in t.when]
            trans.append({"trigger": t.trigger, "source": sources, "dest": t.dest, "conditions": conds})
            self._overrides[t.trigger] = dict(t.overrides)
            self._yield_check[t.trigger] = t.yield_check
            self.order.append((t.trigger, sources, t.dest, list(t.when)))
        self.machine = Machine(model=self.model, states=list(spec.states), transitions=trans, initial=spec.initial,
                               auto_transitions=False, ignore_invalid_triggers=False)

    def _guard(self, rule: str):
        return lambda: self._ok[rule]

    @property
    def state(self) -> str:
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
        rules = self.evaluate(metrics)
        src = self.state
        for trigger, sources, dest, when in self.order:
            if src in sources and all(self._ok[r] for r in when):
                if self.model.trigger(trigger):
                    return Decision(tick, time, src, dest, trigger, rules)
        return Decision(tick, time, src, src, None, rules)
