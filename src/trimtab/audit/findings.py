"""Audit finding codes and the context every audit check reads.

A finding is a :class:`~trimtab.diagnostics.Diagnostic`: one static problem with a stable code
from :data:`CODES`, the :class:`~trimtab.diagnostics.Severity` that code has (error or warning),
and the ``file:line:col`` and YAML path it comes from. :class:`Context`
holds a loaded strategy with the parsed YAML documents of its config, machine, rule files and
venues (for positions), its rule parse trees, the machine's transitions with ``source: "*"``
expanded, and two interval :class:`~trimtab.audit.intervals.Solver` over its parameters: ``solver``
over the metric ranges the registry declares (what the shared machine and rules can do in any
config) and ``here`` over the ranges this config can produce (:mod:`trimtab.audit.scope`: no
debt, no perp, ...), for findings about this config's ticks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from ..config.load import Strategy
from ..config.yamldoc import YamlDoc, load_yaml
from ..diagnostics import Diagnostic, Severity
from ..rules.nodes import Node
from ..rules.parse import parse
from ..rules.printer import to_text
from .intervals import Solver, TooComplex
from .scope import config_domains

#: Every finding the audit reports: code -> (severity, area, what it means).
CODES: dict[str, tuple[Severity, str, str]] = {
    # structure
    "unreachable-state": (Severity.ERROR, "structure", "no path of transitions leads from the initial state to this state"),
    "state-cannot-be-left": (Severity.ERROR, "structure", "no transition can leave this state"),
    "no-completion-path": (Severity.ERROR, "structure", "an action state with no transition that leaves it once its plan is complete"),
    "emergency-unreachable": (Severity.ERROR, "structure", "a state with no transition straight to the emergency state"),
    "emergency-waits-for-plan": (Severity.ERROR, "structure", "the emergency transition from an action state cannot fire while a plan is in flight"),
    "no-emergency-state": (Severity.WARNING, "structure", "the machine has no state named 'emergency'"),
    # rules
    "guard-never-holds": (Severity.ERROR, "rules", "a rule, or a transition's rules together, can never hold for the configured parameters"),
    "transition-shadowed": (Severity.ERROR, "rules", "an earlier transition from the same state holds whenever this one does, so it never fires"),
    "guard-overlap": (Severity.WARNING, "rules", "two transitions from one state of equal priority, with different outcomes, can hold together"),
    "priority-inversion": (Severity.WARNING, "rules", "a lower-severity transition is tried before a critical one it can hold together with"),
    "no-hysteresis": (Severity.ERROR, "rules", "the guards entering and leaving a state share a threshold (or their bands overlap): flapping"),
    "no-cooldown": (Severity.WARNING, "rules", "a drift-driven rebalancing transition can fire right after the previous plan"),
    "unused-rule": (Severity.WARNING, "rules", "a rule no transition of the machine uses"),
    # thresholds
    "target-ltv-above-max": (Severity.ERROR, "thresholds", "a target LTV above the lending venue's maximum LTV"),
    "entry-hf-at-emergency": (Severity.ERROR, "thresholds", "the health factor implied by a target LTV is at or below the emergency threshold"),
    "entry-hf-triggers-rule": (Severity.WARNING, "thresholds", "the health factor implied by a target LTV already satisfies a risk guard"),
    "emergency-cannot-leave": (Severity.ERROR, "thresholds", "the emergency plan's health factor or margin ratio is not above the emergency leave threshold"),
    "hedge-weights-sum": (Severity.ERROR, "thresholds", "the hedge legs' weights do not sum to 1"),
    "margin-threshold-not-below-target": (Severity.ERROR, "thresholds", "a margin-ratio threshold at or above the margin ratio the hedge targets"),
    "margin-threshold-below-maintenance": (Severity.ERROR, "thresholds", "a margin-ratio threshold at or below the venue's maintenance margin"),
    "allocation-out-of-range": (Severity.ERROR, "thresholds", "a target allocation outside (0, 1]"),
    "allocations-exceed-equity": (Severity.ERROR, "thresholds", "the targets' allocations sum to more than 1"),
    # venues
    "unsupported-operation": (Severity.ERROR, "venues", "a plan of this target emits an operation the venue does not list"),
    "unknown-gas-op": (Severity.ERROR, "venues", "an operation's gas_op is not in the gas-units table (data/static.json)"),
    "trade-below-minimum": (Severity.ERROR, "venues", "the full-size trade at the configured capital is under the venue's minimum"),
    "rebalance-below-minimum": (Severity.WARNING, "venues", "the trade a drift threshold triggers is under the venue's or planner's minimum"),
    # data
    "data-missing": (Severity.ERROR, "data", "a series the strategy needs is absent or does not cover the window"),
    "data-gaps": (Severity.WARNING, "data", "a series the strategy uses has gaps (or ends early) in the window; the venue is not traded then"),
    # Its own code, so that acknowledging a known gap (audit.accept) never silences bad prices.
    "data-faulty-rows": (Severity.WARNING, "data", "a series the strategy uses has rows the data checks quarantine in the window (NaN, zero, a jump or a cross-venue outlier); the run does not trade on them"),
    # loading
    "config": (Severity.ERROR, "config", "the config does not load (see validate)"),
    # acknowledgements (trimtab.audit.accept)
    "stale-accept": (Severity.WARNING, "acknowledgements", "an audit.accept entry matches no warning (or matches an error, which cannot be accepted)"),
}

#: A rule's ``severity`` in the YAML (the priority of its guard, not a diagnostic) -> rank.
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Trans:
    """A machine transition as the engine runs it: ``sources`` expanded (``"*"``: every state
    but ``dest``), ``index`` its position in ``transitions:`` (its priority: first match wins)."""

    index: int
    trigger: str
    sources: tuple[str, ...]
    dest: str
    when: tuple[str, ...]
    overrides: dict = field(default_factory=dict, hash=False, compare=False)
    star: bool = False


class Context:
    """A loaded strategy with what the checks need. Build with ``Context(load_strategy(path))``."""

    def __init__(self, strategy: Strategy):
        self.s = strategy
        self.config = strategy.config
        self.machine = strategy.machine
        self.params = dict(strategy.params)
        self.cdoc: YamlDoc = strategy.docs["config"]
        # The machine and rule files were parsed by load_strategy (strategy.docs, by file as
        # loaded); parsing them again is most of the audit's time. Any other file is read here.
        parsed = {d.file: d for d in strategy.docs.values()}
        self.mdoc: YamlDoc = parsed.get(strategy.machine_file) or load_yaml(strategy.machine_file)
        self.rdocs: dict[str, YamlDoc] = {}
        for r in strategy.rules.values():
            if r.file not in self.rdocs:
                self.rdocs[r.file] = parsed.get(r.file) or load_yaml(r.file)
        self.vdocs: dict[str, YamlDoc] = {k.split(":", 1)[1]: d for k, d in strategy.docs.items() if k.startswith("venue:")}
        self.solver = Solver(self.params)
        self.produced = config_domains(getattr(strategy.config, "targets", None) or [])
        self.here = Solver(self.params, self.produced.domains)
        self.nodes: dict[str, Node] = {name: parse(r.spec.when) for name, r in strategy.rules.items()}
        self.transitions: list[Trans] = []
        for i, t in enumerate(self.machine.transitions):
            star = t.source == "*"
            if star:
                sources = tuple(s for s in self.machine.states if s != t.dest)
            else:
                sources = (t.source,) if isinstance(t.source, str) else tuple(t.source)
            self.transitions.append(Trans(i, t.trigger, sources, t.dest, tuple(t.when), dict(getattr(t, "overrides", {}) or {}), star))
        self.emergency = "emergency" if "emergency" in self.machine.states else None
        self.findings: list[Diagnostic] = []

    # ----------------------------------------------------------------- reporting
    def add(self, code: str, doc: YamlDoc, path: tuple, message: str, key: bool = False, hint: str | None = None) -> None:
        """Record finding ``code`` (its severity from :data:`CODES`) at ``path`` of ``doc`` (its key
        with ``key=True``), with an optional ``hint`` on how to fix it."""
        self.findings.append(doc.issue(path, message, key=key, severity=CODES[code][0], hint=hint, code=code))

    def add_at(self, code: str, loc: tuple[YamlDoc, tuple, bool], message: str, hint: str | None = None) -> None:
        """Record finding ``code`` at a ``(doc, path, key)`` location from the ``*_loc`` helpers."""
        doc, path, key = loc
        self.add(code, doc, path, message, key, hint)

    # ----------------------------------------------------------------- locations
    def rule_loc(self, rule: str, part: str | None = "when") -> tuple[YamlDoc, tuple, bool]:
        """A rule's ``when`` (or, with ``part=None``, its key) in its rule file."""
        r = self.s.rules[rule]
        return (self.rdocs[r.file], ("rules", rule) + ((part,) if part else ()), part is None)

    def state_loc(self, state: str) -> tuple[YamlDoc, tuple, bool]:
        """A state's key in the machine file."""
        return (self.mdoc, ("states", state), True)

    def trans_loc(self, t: Trans, part: str | None = None) -> tuple[YamlDoc, tuple, bool]:
        """A transition (or one of its fields) in the machine file."""
        return (self.mdoc, ("transitions", t.index) + ((part,) if part else ()), False)

    def param_loc(self, name: str) -> tuple[YamlDoc, tuple, bool] | None:
        """Where parameter ``name`` gets its value: the config's ``parameters`` or the rule
        file declaring its default."""
        if name in self.config.parameters:
            return (self.cdoc, ("parameters", name), False)
        for doc in self.rdocs.values():
            if doc.has(("parameters", name)):
                return (doc, ("parameters", name, "default"), False)
        return None

    def value_loc(self, expr, default: tuple) -> tuple[YamlDoc, tuple, bool]:
        """Where a config number-or-expression comes from: the parameter it names, else ``default``
        (a path in the config)."""
        if isinstance(expr, str) and expr.strip() in self.params:
            loc = self.param_loc(expr.strip())
            if loc:
                return loc
        return (self.cdoc, default, False)

    # ----------------------------------------------------------------- guards
    def guard(self, t: Trans) -> Node:
        """The conjunction of a transition's rules as one parse tree."""
        # One tree per transition, so the solver's memos (keyed by node) serve every question
        # asked about it; parse trees are immutable.
        guards = self.__dict__.setdefault("_guards", {})
        if t.index not in guards:
            kids = tuple(self.nodes[r] for r in t.when if r in self.nodes)
            guards[t.index] = kids[0] if len(kids) == 1 else Node("and", None, kids, 0, 0)
        return guards[t.index]

    def rank(self, t: Trans) -> int:
        """A transition's priority class: the highest severity of its rules (info 0 .. critical 2),
        or an explicit ``priority`` if the machine model has one."""
        explicit = getattr(self.machine.transitions[t.index], "priority", None)
        if explicit is not None:
            return int(explicit)
        return max((SEVERITY_RANK.get(self.s.rules[r].spec.severity, 0) for r in t.when if r in self.s.rules), default=0)

    def severity(self, t: Trans) -> str:
        """A transition's priority class as a severity name (info, warning, critical)."""
        return {0: "info", 1: "warning", 2: "critical"}.get(self.rank(t), str(self.rank(t)))

    def outgoing(self, state: str) -> list[Trans]:
        """Transitions tried from ``state``, in priority (file) order."""
        return [t for t in self.transitions if state in t.sources]

    def can_hold(self, *nodes: Node, negated=(), env=None) -> bool:
        """See :meth:`trimtab.audit.intervals.Solver.can_hold`."""
        return self.solver.can_hold(*nodes, negated=negated, env=env)

    def can_hold_here(self, *nodes: Node, negated=(), env=None) -> bool:
        """As :meth:`can_hold`, over the metric ranges this config can produce (``self.here``)."""
        return self.here.can_hold(*nodes, negated=negated, env=env)

    def witness(self, *nodes: Node, negated=(), env=None, here: bool = False) -> str:
        """One way the nodes hold together, as ``metric constraints`` text (or ''); ``here``:
        over the ranges this config can produce."""
        try:
            got = (self.here if here else self.solver).satisfiable(*nodes, negated=negated, env=env)
        except TooComplex:
            return ""
        if not got:
            return ""
        return ", ".join(iv.describe(n) for n, iv in sorted(got.items()))

    @cached_property
    def feasible_transitions(self) -> set[int]:
        """Indices of transitions whose rules can hold together."""
        return {t.index for t in self.transitions if self.can_hold(self.guard(t))}

    def action_states(self) -> list[str]:
        """States with an ``action`` (they submit a plan on entry)."""
        return [s for s, st in self.machine.states.items() if st.action is not None]

    def rule_text(self, rule: str) -> str:
        """A rule's expression in canonical text."""
        return to_text(self.nodes[rule])
