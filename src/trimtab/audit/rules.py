"""Rule findings: what the guards can and cannot do, for the configured parameters.

* ``guard-never-holds``: a rule that can never hold over the metric ranges declared in
  :data:`trimtab.metrics.REGISTRY` (``health_factor < 0``), or a transition
  whose rules contradict each other;
* ``transition-shadowed``: the earlier transitions from a state hold whenever this one does
  (transitions are tried in file order and the first match fires), so it never fires;
* ``guard-overlap`` (warning): two transitions from one state with different outcomes, of equal
  priority (the highest severity of their rules, warning or critical), can hold at the same tick:
  only their order in the file decides;
* ``priority-inversion`` (warning): a critical transition can wait behind an earlier transition
  of lower severity that holds at the same tick;

  both ask about one tick of *this* config, so they reason over the metric ranges the config can
  produce (:mod:`trimtab.audit.scope`): a config without debt never has a health factor below
  inf, so a health-factor guard overlaps nothing in it;
* ``no-hysteresis``: the guard entering a state and the guard leaving it back (a cycle
  X -> S -> X, or a rule and its declared ``hysteresis`` partner) compare a metric against the
  same threshold, or their bands overlap: the machine would flap at the threshold;
* ``no-cooldown`` (warning): a rebalancing transition driven by a drift metric (delta_drift,
  equity_deviation, hedge_allocation_drift, net_delta) that can fire with
  ``hours_since_rebalance == 0``; critical (risk) and emergency transitions are exempt;
* ``unused-rule`` (warning): a rule of the config's rule files no transition uses.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..metrics import lookup
from ..rules.nodes import Node, names
from ..rules.printer import to_text
from .findings import Context, Trans
from .intervals import Interval, fmt, metric_domain, metric_kind

JUST_PLANNED = {"hours_since_rebalance": Interval.point(0.0)}


@dataclass(frozen=True)
class Threshold:
    """A comparison of a varying expression against a constant, varying side first."""

    metric: str  # canonical text of the varying side
    op: str
    value: float
    const: Node  # the constant side as written
    rule: str
    node: Node  # the comparison as written

    @property
    def direction(self) -> str:
        """``<`` for < and <=, ``>`` for > and >=, else the operator."""
        return "<" if self.op in ("<", "<=") else ">" if self.op in (">", ">=") else self.op

    def param(self) -> str | None:
        """The parameter the threshold is, when it is a bare parameter name."""
        return self.const.value if self.const.kind == "name" else None

    def text(self) -> str:
        """``metric op param = value`` as findings print it."""
        p = self.param()
        return f"{self.metric} {self.op} {p + ' = ' if p else ''}{fmt(self.value)}"


_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def thresholds(ctx: Context, rule: str) -> list[Threshold]:
    """Every comparison of ``rule`` between a varying side and a constant one (parameters folded)."""
    out = []
    stack = [ctx.nodes[rule]]
    while stack:
        n = stack.pop()
        if n.kind == "cmp":
            left, right = n.children
            lc, rc = ctx.solver.is_const(left), ctx.solver.is_const(right)
            if lc != rc:
                var, const, op = (right, left, _MIRROR[n.value]) if lc else (left, right, n.value)
                out.append(Threshold(to_text(var), op, ctx.solver.value(const), const, rule, n))
        stack.extend(n.children)
    return out


def threshold_loc(ctx: Context, th: Threshold):
    """Where a threshold's value is set: its parameter (config or rule default) or the rule."""
    p = th.param()
    if p:
        loc = ctx.param_loc(p)
        if loc:
            return loc
    return ctx.rule_loc(th.rule)


def check_rules(ctx: Context) -> None:
    """Append the rule findings of ``ctx`` to ``ctx.findings``."""
    _never_holds(ctx)
    _shadowed(ctx)
    _overlaps(ctx)
    _hysteresis(ctx)
    _cooldown(ctx)
    used = {r for t in ctx.transitions for r in t.when}
    for r in ctx.s.rules:
        if r not in used:
            ctx.add_at("unused-rule", ctx.rule_loc(r, None), f"rule {r!r} is not used by any transition of machine {ctx.machine.name!r}")


def _never_holds(ctx: Context) -> None:
    bad = set()
    for r, node in ctx.nodes.items():
        if ctx.can_hold(node):
            continue
        bad.add(r)
        culprits = [th for th in thresholds(ctx, r) if not ctx.can_hold(th.node)]
        if culprits:
            th = culprits[0]
            decl = lookup(th.metric) if th.metric else None
            rng = f"; {th.metric} ranges over {metric_domain(th.metric).describe(th.metric)} ({decl.domain.reason})" if decl else ""
            loc = threshold_loc(ctx, th) if th.param() and th.param() in ctx.config.parameters else ctx.rule_loc(r)
            ctx.add_at("guard-never-holds", loc, f"rule {r!r} can never hold: {th.text()} is impossible{rng}")
        else:
            ctx.add_at("guard-never-holds", ctx.rule_loc(r), f"rule {r!r} can never hold: its comparisons contradict each other "
                                                             f"for the configured parameters ({to_text(node)} with {_params_of(ctx, node)})")
    for t in ctx.transitions:
        if len(t.when) < 2 or any(r in bad for r in t.when):
            continue
        if not ctx.can_hold(ctx.guard(t)):
            ctx.add_at("guard-never-holds", ctx.trans_loc(t, "when"),
                       f"transition {t.trigger!r} can never fire: its rules {', '.join(t.when)} cannot hold together "
                       f"({' and '.join('(' + ctx.rule_text(r) + ')' for r in t.when)} with {_params_of(ctx, ctx.guard(t))})")


def _params_of(ctx: Context, node: Node) -> str:
    ps = sorted(n for n in names(node) if n in ctx.params)
    return ", ".join(f"{p} = {fmt(ctx.params[p])}" for p in ps) or "no parameters"


def _shadowed(ctx: Context) -> None:
    reported: dict[int, list[str]] = {}
    culprit: dict[int, str] = {}
    for s in ctx.machine.states:
        earlier: list[Trans] = []
        for t in ctx.outgoing(s):
            if t.index not in ctx.feasible_transitions:
                continue
            g = ctx.guard(t)
            if earlier and not ctx.can_hold(g, negated=[ctx.guard(e) for e in earlier]):
                single = [e for e in earlier if not ctx.can_hold(g, negated=[ctx.guard(e)])]
                reported.setdefault(t.index, []).append(s)
                culprit[t.index] = (f"{single[0].trigger!r} ({', '.join(single[0].when)}) holds whenever it does" if single
                                    else f"the earlier transitions {', '.join(repr(e.trigger) for e in earlier)} together hold whenever it does")
            earlier.append(t)
    for i, states in reported.items():
        t = ctx.transitions[i]
        ctx.add_at("transition-shadowed", ctx.trans_loc(t),
                   f"transition {t.trigger!r} never fires from {', '.join(map(repr, states))}: {culprit[i]}, and is tried first")


def _outcome(t: Trans):
    return (t.dest, tuple(sorted((k, str(v)) for k, v in t.overrides.items())))


def _overlaps(ctx: Context) -> None:
    overlap: dict[tuple[int, int], list[str]] = {}
    inversion: dict[int, dict[int, list[str]]] = {}
    for s in ctx.machine.states:
        out = [t for t in ctx.outgoing(s) if t.index in ctx.feasible_transitions]
        for i, a in enumerate(out):
            for b in out[i + 1:]:
                if _outcome(a) == _outcome(b) or a.dest == ctx.emergency:
                    continue
                ra, rb = ctx.rank(a), ctx.rank(b)
                if ra > rb:
                    continue
                if ra == rb and ra < 1:
                    continue
                if ra < rb and rb < 2:
                    continue
                if not ctx.can_hold_here(ctx.guard(a), ctx.guard(b)):
                    continue
                if ra == rb:
                    overlap.setdefault((a.index, b.index), []).append(s)
                else:
                    inversion.setdefault(b.index, {}).setdefault(a.index, []).append(s)
    for (ia, ib), states in overlap.items():
        a, b = ctx.transitions[ia], ctx.transitions[ib]
        eg = ctx.witness(ctx.guard(a), ctx.guard(b), here=True)
        ctx.add_at("guard-overlap", ctx.trans_loc(b),
                   f"transitions {a.trigger!r} -> {a.dest} and {b.trigger!r} -> {b.dest} from {', '.join(map(repr, states))} "
                   f"are both {ctx.severity(a)} and can hold at the same tick{' (e.g. ' + eg + ')' if eg else ''}: "
                   f"no priority between them, only their order in the file decides ({a.trigger!r} wins)")
    for ib, earlier in inversion.items():
        b = ctx.transitions[ib]
        names_ = ", ".join(f"{ctx.transitions[ia].trigger!r} ({ctx.severity(ctx.transitions[ia])})" for ia in sorted(earlier))
        states = sorted({s for v in earlier.values() for s in v})
        ctx.add_at("priority-inversion", ctx.trans_loc(b),
                   f"critical transition {b.trigger!r} -> {b.dest} ({', '.join(b.when)}) is tried after {names_} from "
                   f"{', '.join(map(repr, states))}, which can hold at the same tick: the risk response then waits for their plan")


def _hysteresis(ctx: Context) -> None:
    pairs: list[tuple[tuple[str, ...], tuple[str, ...], str]] = []
    for r, cr in ctx.s.rules.items():
        h = cr.spec.hysteresis
        if h and h in ctx.s.rules:
            pairs.append(((r,), (h,), f"rule {r!r} declares {h!r} as its hysteresis partner"))
    for a in ctx.transitions:
        for s in a.sources:
            if s == a.dest:
                continue
            for b in ctx.transitions:
                if a.dest in b.sources and b.dest == s:
                    pairs.append((a.when, b.when, f"{s} -> {a.dest} ({a.trigger}) and back ({b.trigger})"))
    seen = set()
    for enter, leave, why in pairs:
        for er in enter:
            for lr in leave:
                for e in thresholds(ctx, er):
                    for l in thresholds(ctx, lr):
                        if e.metric != l.metric or {e.direction, l.direction} != {"<", ">"}:
                            continue
                        key = (e.metric, frozenset({(e.rule, e.value, e.op), (l.rule, l.value, l.op)}))
                        if key in seen:
                            continue
                        seen.add(key)
                        gap_ok = l.value > e.value if e.direction == "<" else l.value < e.value
                        if gap_ok:
                            continue
                        what = "share the threshold" if l.value == e.value else "overlap (the leave band starts inside the enter band)"
                        ctx.add_at("no-hysteresis", threshold_loc(ctx, l),
                                   f"no hysteresis on {e.metric}: enter guard {e.text()} ({e.rule}) and leave guard {l.text()} "
                                   f"({l.rule}) {what}, so the machine flaps around {fmt(e.value)}; {why}. "
                                   f"The leave threshold must be {'above' if e.direction == '<' else 'below'} the enter threshold")


def _cooldown(ctx: Context) -> None:
    actions = set(ctx.action_states())
    for t in ctx.transitions:
        if t.dest not in actions or t.dest == ctx.emergency or t.index not in ctx.feasible_transitions or ctx.rank(t) >= 2:
            continue
        g = ctx.guard(t)
        drift = sorted(n for n in names(g) if n not in ctx.params and metric_kind(n) == "drift")
        if not drift:
            continue
        if ctx.can_hold(g, env=JUST_PLANNED):
            ctx.add_at("no-cooldown", ctx.trans_loc(t, "when"),
                       f"rebalancing transition {t.trigger!r} ({', '.join(drift)}) has no cooldown: it can fire with "
                       f"hours_since_rebalance = 0, right after the previous plan; add a rule term such as "
                       f"`hours_since_rebalance >= rebalance_cooldown_h`")
