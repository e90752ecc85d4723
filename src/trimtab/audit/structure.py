"""Structure findings: the machine's graph, over transitions whose rules can hold.

* ``unreachable-state``: no path from the initial state (transitions that can never hold are
  not paths);
* ``state-cannot-be-left``: no transition to another state can fire from it;
* ``no-completion-path``: an action state with no transition that leaves it once its plan is
  complete, i.e. whose rules need ``plan_in_flight == 0`` (cannot hold with a plan in flight);
* ``emergency-unreachable``: a state with no transition straight to ``emergency`` (DESIGN.md:
  emergency guards are checked in every state); ``emergency-waits-for-plan``: from an action
  state, that transition cannot fire while a plan is in flight, so it cannot pre-empt it;
* ``no-emergency-state`` (warning): the machine has no ``emergency`` state at all, in a config
  that can be liquidated (it can hold Aave debt or a perp: :mod:`trimtab.audit.scope`); a
  config that can hold neither has no liquidation for an emergency to pre-empt.
"""
from __future__ import annotations

from .findings import Context
from .intervals import Interval

IN_FLIGHT = {"plan_in_flight": Interval.point(1.0)}


def check_structure(ctx: Context) -> None:
    """Append the structure findings of ``ctx``'s machine to ``ctx.findings``."""
    states = list(ctx.machine.states)
    live = [t for t in ctx.transitions if t.index in ctx.feasible_transitions]

    # reachability from the initial state
    seen = {ctx.machine.initial}
    todo = [ctx.machine.initial]
    while todo:
        s = todo.pop()
        for t in live:
            if s in t.sources and t.dest not in seen:
                seen.add(t.dest)
                todo.append(t.dest)
    for s in states:
        if s not in seen:
            entries = [t.trigger for t in ctx.transitions if t.dest == s and not t.star]
            why = (f"the transitions into it ({', '.join(entries)}) start from unreachable states or can never hold"
                   if entries else "no transition leads to it")
            ctx.add_at("unreachable-state", ctx.state_loc(s), f"state {s!r} is unreachable from the initial state {ctx.machine.initial!r}: {why}")

    # states that cannot be left
    for s in states:
        out = [t for t in live if s in t.sources and t.dest != s]
        if not out:
            listed = [t.trigger for t in ctx.transitions if s in t.sources and t.dest != s]
            why = f"its transitions ({', '.join(listed)}) can never hold" if listed else "no transition has it as a source"
            ctx.add_at("state-cannot-be-left", ctx.state_loc(s), f"state {s!r} cannot be left: {why}")

    # action states need a completion transition
    for s in ctx.action_states():
        out = [t for t in live if s in t.sources and t.dest != s]
        if not out:
            continue  # already reported as a state that cannot be left
        done = [t for t in out if not ctx.can_hold(ctx.guard(t), env=IN_FLIGHT)]
        if not done:
            ctx.add_at("no-completion-path", ctx.state_loc(s),
                       f"action state {s!r} has no completion path: none of its transitions "
                       f"({', '.join(t.trigger for t in out)}) waits for its plan to complete "
                       f"(a rule such as plan_complete: plan_in_flight == 0), so the plan can be abandoned half-way "
                       f"or the state is only left by an unrelated guard")

    # emergency from every state
    if ctx.emergency is None:
        if not ctx.produced.can_be_liquidated:
            return
        ctx.add("no-emergency-state", ctx.mdoc, ("states",),
                "the machine has no 'emergency' state: nothing pre-empts a plan in flight when liquidation nears", key=True)
        return
    actions = set(ctx.action_states())
    blocked: dict[int, list[str]] = {}
    for s in states:
        if s == ctx.emergency:
            continue
        to_em = [t for t in live if s in t.sources and t.dest == ctx.emergency]
        if not to_em:
            ctx.add_at("emergency-unreachable", ctx.state_loc(s),
                       f"no transition goes from {s!r} straight to {ctx.emergency!r}: an emergency "
                       f"in this state waits until the state is left (use source: \"*\" for the emergency transition)")
        elif s in actions and not any(ctx.can_hold(ctx.guard(t), env=IN_FLIGHT) for t in to_em):
            blocked.setdefault(to_em[0].index, []).append(s)
    for i, srcs in blocked.items():
        t = ctx.transitions[i]
        ctx.add_at("emergency-waits-for-plan", ctx.trans_loc(t, "when"),
                   f"transition {t.trigger!r} to {ctx.emergency!r} cannot fire while a plan is in flight in "
                   f"{', '.join(map(repr, srcs))} (its rules need plan_in_flight == 0): an emergency cannot pre-empt the plan")
